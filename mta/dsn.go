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
// No DSN is sent for a DSN (null return path), when the sender does not
// want DSNs, or for recipients whose NOTIFY excludes FAILURE.
type DSNNotifier struct {
	Hostname string // reporting MTA
	Queue    Enqueuer
	Now      func() time.Time
}

// OnFailure implements queue.Options.OnFailure.
func (n *DSNNotifier) OnFailure(msg *queue.Message, body []byte, failed []queue.Failed) error {
	if msg.ReturnPath == "" || !msg.WantDSN {
		return nil
	}
	now := time.Now()
	if n.Now != nil {
		now = n.Now()
	}
	in := bounce.DSNInput{
		ReportingMTA: n.Hostname,
		From:         "MAILER-DAEMON@" + n.Hostname,
		To:           msg.ReturnPath,
		EnvID:        msg.EnvID,
		Ret:          msg.Ret,
		Arrival:      msg.Received,
	}
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
	_, err := n.Queue.Enqueue(&queue.Message{
		Sender:   msg.Sender,
		Received: now,
		Stream:   "dsn",
	}, []queue.NewRecipient{{Addr: msg.ReturnPath}}, dsn)
	return err
}

// notifyFailure reports whether a NOTIFY parameter asks for failure DSNs:
// absent means yes (RFC 3461 leaves the default to the MTA), NEVER means no.
func notifyFailure(notify string) bool {
	if notify == "" {
		return true
	}
	for _, n := range strings.Split(notify, ",") {
		if strings.EqualFold(n, "FAILURE") {
			return true
		}
	}
	return false
}
