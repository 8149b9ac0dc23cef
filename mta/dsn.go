package mta

import (
	"strconv"
	"strings"
	"time"

	"drover/bounce"
	"drover/queue"
)

// DSNNotifier sends RFC 3464 delivery status notifications to the envelope
// sender of a message whose recipients failed for good. It is the queue's
// OnFailure hook: the DSN is queued durably before the failed recipients'
// records are removed.
//
// No DSN is sent for a DSN (null return path), to a bounce address
// (MAILER-DAEMON, postmaster, a VERP return path or Drover's own bounce
// domains), when the sender does not want DSNs, or for recipients whose
// NOTIFY excludes FAILURE.
type DSNNotifier struct {
	Hostname string // reporting MTA
	Queue    Enqueuer
	Now      func() time.Time
	// DelayDSN names the senders that want delay notices for recipients
	// submitted without NOTIFY.
	DelayDSN map[string]bool
	// BounceDomains are Drover's own VERP domains: a return path there is
	// a bounce address and never gets a DSN (no backscatter loops).
	BounceDomains map[string]bool
	// OnEvent, when set, gets a received event for each notice queued,
	// naming its kind (queue.DSNFailure, queue.DSNDelay) and the ID of
	// the message it reports on (OriginalID).
	OnEvent func(queue.Event)
}

// wantsDSN reports whether a DSN may go to the return path: not to the
// null sender (a DSN is never sent for a DSN) and not to a bounce address.
func (n *DSNNotifier) wantsDSN(returnPath string) bool {
	local, domain, ok := strings.Cut(strings.ToLower(returnPath), "@")
	if !ok || n.BounceDomains[domain] {
		return false
	}
	return local != "mailer-daemon" && !strings.HasPrefix(local, "bounces+") && local != "postmaster"
}

// OnFailure implements queue.Options.OnFailure.
func (n *DSNNotifier) OnFailure(msg *queue.Message, body []byte, failed []queue.Failed) error {
	if !msg.WantDSN || !n.wantsDSN(msg.ReturnPath) {
		return nil
	}
	now := n.now()
	in := n.input(msg)
	for _, f := range failed {
		if !notifyFailure(f.Recipient.Notify) {
			continue
		}
		r := f.Result
		status := r.Enhanced
		if status == "" {
			status = "5.0.0"
			if f.Expired {
				status = "4.4.7"
			}
		}
		diag := ""
		if r.Code != 0 {
			diag = "smtp; " + strings.TrimSpace(strings.Join([]string{strconv.Itoa(r.Code), r.Enhanced, r.Text}, " "))
		} else if r.Text != "" {
			diag = "X-Drover; " + r.Text
		}
		in.Recipients = append(in.Recipients, bounce.DSNRecipient{
			Addr: f.Recipient.Addr, ORCPT: f.Recipient.ORCPT, Action: "failed",
			Status: status, RemoteMTA: r.Remote, Diagnostic: diag, LastAttempt: now,
		})
	}
	return n.send(msg, in, body, now, queue.DSNFailure)
}

// OnDelay implements queue.Options.OnDelay: a delay notice for recipients
// still queued after a temporary failure, when NOTIFY asks for DELAY, or
// without NOTIFY when the sender wants delay notices.
func (n *DSNNotifier) OnDelay(msg *queue.Message, header []byte, rcpts []queue.Recipient, until time.Time) error {
	if !msg.WantDSN || !n.wantsDSN(msg.ReturnPath) {
		return nil
	}
	now := n.now()
	in := n.input(msg)
	for _, r := range rcpts {
		if !hasNotify(r.Notify, "DELAY") && (r.Notify != "" || !n.DelayDSN[msg.Sender]) {
			continue
		}
		diag := ""
		if r.LastError != "" {
			diag = "X-Drover; " + r.LastError
		}
		in.Recipients = append(in.Recipients, bounce.DSNRecipient{
			Addr: r.Addr, ORCPT: r.ORCPT, Action: "delayed", Status: "4.4.7",
			Diagnostic: diag, LastAttempt: r.LastAttempt, WillRetryUntil: until,
		})
	}
	// The notice returns the header only, whatever RET says (RFC 3461
	// 4.3: RET is about failure notices).
	return n.send(msg, in, header, now, queue.DSNDelay)
}

func (n *DSNNotifier) now() time.Time {
	if n.Now != nil {
		return n.Now()
	}
	return time.Now()
}

func (n *DSNNotifier) input(msg *queue.Message) bounce.DSNInput {
	return bounce.DSNInput{
		ReportingMTA: n.Hostname,
		From:         "MAILER-DAEMON@" + n.Hostname,
		To:           msg.ReturnPath,
		EnvID:        msg.EnvID,
		Ret:          msg.Ret,
		Arrival:      msg.Received,
	}
}

// send queues the DSN (of kind) to the message's return path, with the
// returned header (and body for RET=FULL) when body is given.
func (n *DSNNotifier) send(msg *queue.Message, in bounce.DSNInput, body []byte, now time.Time, kind string) error {
	if len(in.Recipients) == 0 {
		return nil
	}
	fields, rest := splitHeader(body)
	for _, f := range fields {
		in.OriginalHeaders = append(in.OriginalHeaders, f.raw...)
	}
	if strings.EqualFold(msg.Ret, "FULL") {
		in.OriginalBody = rest
	}
	dsn := bounce.NewDSN(in)
	rcpts := []queue.NewRecipient{{Addr: msg.ReturnPath}}
	id, err := n.Queue.Enqueue(&queue.Message{
		Sender:   msg.Sender,
		Received: now,
		Stream:   "dsn",
	}, rcpts, dsn)
	if err != nil || n.OnEvent == nil {
		return err
	}
	ev := queue.Event{
		Kind: queue.EventReceived, Time: now, MsgID: id, Sender: msg.Sender,
		Recipients: 1, RecipientAddrs: rcptAddrs(rcpts), Size: len(dsn), Stream: "dsn",
		DSN: kind, OriginalID: msg.ID,
	}
	fields, _ = splitHeader(dsn)
	for _, f := range fields {
		if f.is("Message-ID") {
			ev.MessageID = strings.TrimSpace(f.value())
		}
	}
	n.OnEvent(ev)
	return nil
}

// notifyFailure reports whether a NOTIFY parameter asks for failure DSNs:
// absent means yes (RFC 3461 leaves the default to the MTA), NEVER means no.
func notifyFailure(notify string) bool {
	return notify == "" || hasNotify(notify, "FAILURE")
}

func hasNotify(notify, what string) bool {
	for _, n := range strings.Split(notify, ",") {
		if strings.EqualFold(n, what) {
			return true
		}
	}
	return false
}
