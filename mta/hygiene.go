package mta

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"strings"

	"drover/mta/address"
	"drover/mta/smtperr"
	"drover/mta/tags"
	"drover/policy"
	"drover/queue"
)

// List hygiene at submission: the stream and list of a message, the
// recipient checks against the suppression list (policy.Checker), and the
// List-Unsubscribe fields of marketing mail.

// The MAIL parameters that name the message's stream and list, so that
// they are known at RCPT (the header fields of the same names come only
// with DATA).
const (
	paramStream = "X-DROVER-STREAM"
	paramList   = "X-DROVER-LIST"
)

// streamMarketing is the stream of campaign mail: the default, and the
// one that gets List-Unsubscribe fields.
const streamMarketing = "marketing"

// maxControlValue bounds a stream or list name, in bytes.
const maxControlValue = 64

// controlValueProblem says what is wrong with a stream or list name, or
// "" when it is fine: 1 to 64 ASCII letters, digits, '-', '.' and '_'.
func controlValueProblem(v string) string {
	if v == "" {
		return "it is empty"
	}
	if len(v) > maxControlValue {
		return fmt.Sprintf("it is %d bytes long, at most %d are allowed", len(v), maxControlValue)
	}
	for i := 0; i < len(v); i++ {
		c := v[i]
		if c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '.' || c == '_' {
			continue
		}
		what := fmt.Sprintf("%q", c)
		switch {
		case c == ' ':
			what = "a space"
		case c < ' ' || c >= 0x7f:
			what = fmt.Sprintf("byte 0x%02x", c)
		}
		return "it has " + what + "; use only letters, digits, '-', '.' and '_'"
	}
	return ""
}

// echoValue makes a client's parameter or field value safe to quote in
// a reply, as echoPath does a path; a value longer than any valid one is
// cut.
func echoValue(v string) string { return echo(v, maxControlValue) }

// mailControlParams returns MAIL's X-DROVER-STREAM (in lower case) and
// X-DROVER-LIST, "" for one that is absent; a bad value gets 501 5.5.4.
func mailControlParams(extra map[string]string) (stream, list string, err error) {
	for _, name := range []string{paramStream, paramList} {
		v, ok := extra[name]
		if !ok {
			continue
		}
		if p := controlValueProblem(v); p != "" {
			return "", "", smtperr.Permanentf(501, "5.5.4", "Bad MAIL parameter %s=%s: %s", name, echoValue(v), p)
		}
		if name == paramStream {
			stream = strings.ToLower(v)
		} else {
			list = v
		}
	}
	return stream, list, nil
}

// controlField is the value of an X-Drover-Stream (in lower case) or
// X-Drover-List field, given the value of the same field met before
// (prev, "" for none); an empty field names nothing. A bad value, or one
// that disagrees with prev, gets 550 5.6.0.
func controlField(f field, prev string) (string, error) {
	v := f.value()
	if v == "" {
		return prev, nil
	}
	if p := controlValueProblem(v); p != "" {
		return "", smtperr.Permanentf(550, "5.6.0", "Bad %s field %q: %s", f.name, echoValue(v), p)
	}
	if f.is("X-Drover-Stream") {
		v = strings.ToLower(v)
	}
	if prev != "" && prev != v {
		return "", smtperr.Permanentf(550, "5.6.0", "Message has two %s fields that disagree (%q and %q)", f.name, prev, v)
	}
	return v, nil
}

// streamAndList settles the message's stream and list: the header's when
// it has them, else MAIL's parameters, else the sender's default stream
// and no list. A header field and a MAIL parameter that disagree get
// 550 5.6.0.
func (s *session) streamAndList(hdrStream, hdrList string) (stream, list string, err error) {
	stream, list = s.stream, s.list
	if hdrStream != "" {
		if s.mailStream != "" && hdrStream != s.mailStream {
			return "", "", smtperr.Permanentf(550, "5.6.0", "Message's X-Drover-Stream %q disagrees with MAIL FROM's %s=%s: name one stream, or the same in both",
				hdrStream, paramStream, s.mailStream)
		}
		stream = hdrStream
	}
	if hdrList != "" {
		if s.mailList != "" && hdrList != s.mailList {
			return "", "", smtperr.Permanentf(550, "5.6.0", "Message's X-Drover-List %q disagrees with MAIL FROM's %s=%s: name one list, or the same in both",
				hdrList, paramList, s.mailList)
		}
		list = hdrList
	}
	return stream, list, nil
}

// defaultStream is the sender's stream for a message that names none.
func (snd *Sender) defaultStream() string {
	if snd.Stream == "" {
		return streamMarketing
	}
	return strings.ToLower(snd.Stream)
}

// checkSender refuses a sender whose stream or List-Unsubscribe mode is
// not one Drover knows.
func checkSender(snd *Sender) error {
	if snd.Stream != "" {
		if p := controlValueProblem(snd.Stream); p != "" {
			return fmt.Errorf("sender %s: stream %q: %s", snd.Name, snd.Stream, p)
		}
	}
	switch snd.ListUnsubscribe {
	case "", ListUnsubscribeAdd, ListUnsubscribeKeep, ListUnsubscribeOff:
		return nil
	}
	return fmt.Errorf("sender %s: list_unsubscribe %q: want %q, %q or %q", snd.Name, snd.ListUnsubscribe,
		ListUnsubscribeAdd, ListUnsubscribeKeep, ListUnsubscribeOff)
}

// checkLinks refuses links that would make a broken List-Unsubscribe
// field: no sealing key, a base URL that is not https or holds what a
// header field cannot, a mailto domain that is no domain.
func checkLinks(l *policy.Links) error {
	if l.Tokens == nil || len(l.Tokens.Keys) == 0 {
		return errors.New("unsubscribe links: no key to seal their tokens")
	}
	for _, k := range l.Tokens.Keys {
		if len(k.Secret) != 32 {
			return fmt.Errorf("unsubscribe links: key %d has %d bytes, want 32", k.ID, len(k.Secret))
		}
	}
	if l.BaseURL != "" {
		if err := checkLinkURL(l.BaseURL); err != nil {
			return fmt.Errorf("unsubscribe links: base URL %q: %w", l.BaseURL, err)
		}
		if !httpsOrLoopback(l.BaseURL) {
			return fmt.Errorf("unsubscribe links: base URL %q is not https://HOST (RFC 8058 one-click needs HTTPS; http only for a loopback host)", l.BaseURL)
		}
	}
	for sender, d := range l.MailtoDomain {
		if d == "" {
			continue
		}
		if a, err := address.Parse(policy.MailtoLocal+"@"+d, false); err != nil || a.IsLiteral() {
			return fmt.Errorf("unsubscribe links: sender %s: mailto domain %q is not a domain", sender, d)
		}
	}
	return nil
}

// httpsOrLoopback reports whether u is an https URL with a host, or an
// http one of a loopback host (a local test: no mail leaves with it).
func httpsOrLoopback(u string) bool {
	p, err := url.Parse(u)
	if err != nil || p.Host == "" {
		return false
	}
	if p.Scheme == "https" {
		return true
	}
	h := p.Hostname()
	ip := net.ParseIP(h)
	return p.Scheme == "http" && (h == "localhost" || ip != nil && ip.IsLoopback())
}

// checkLinkURL refuses a URL that cannot stand between angle brackets
// in a header field (RFC 2369): anything but printable ASCII, spaces,
// angle brackets and commas.
func checkLinkURL(u string) error {
	for i := 0; i < len(u); i++ {
		if c := u[i]; c <= ' ' || c >= 0x7f || c == '<' || c == '>' || c == ',' {
			return fmt.Errorf("has byte 0x%02x, which a List-Unsubscribe URL cannot hold", c)
		}
	}
	return nil
}

// check asks the policy whether addr may be mailed on stream and list;
// the zero Decision without a Checker. A store error gets 451 4.3.0.
func (s *session) check(addr, stream, list string) (policy.Decision, error) {
	chk := s.sub.cfg.Policy
	if chk == nil {
		return policy.Decision{}, nil
	}
	d, err := chk.Check(s.sender.Name, stream, list, addr)
	if err != nil {
		s.sub.cfg.Logger.Error("recipient check failed", "sender", s.sender.Name, "stream", stream, "list", list,
			"client_ip", s.clientIP, "err", err)
		return policy.Decision{}, &smtperr.Error{Code: 451, Enhanced: "4.3.0",
			Message: "Recipient check failed: local policy store error, try again later", Err: err}
	}
	return d, nil
}

// suppression is the cause of a refusal by a suppression entry, so that
// the rejected event names the entry's reason, scope and source, and the
// stream and list the recipient was checked on.
type suppression struct {
	entry        policy.Entry
	stream, list string
}

func (e *suppression) Error() string { return "recipient suppressed: " + string(e.entry.Reason) }

// refusal is the 550 5.7.1 to a suppressed recipient (at RCPT), or to a
// message whose every recipient is (at DATA).
func refusal(d policy.Decision, stream, list string) error {
	return &smtperr.Error{Code: 550, Enhanced: "5.7.1", Message: d.Text(), Permanent: true,
		Err: &suppression{entry: d.Entry, stream: stream, list: list}}
}

// asSuppression is the suppression that caused refusal e, if one did.
func asSuppression(e *smtperr.Error) (*suppression, bool) {
	var sup *suppression
	ok := errors.As(e.Err, &sup)
	return sup, ok
}

// takenOut is a recipient taken out of a message because it is
// suppressed: dropped, or refused (found at DATA, with a Decision
// without Drop).
type takenOut struct {
	rcpt     queue.NewRecipient
	decision policy.Decision
	refused  bool
}

// screen splits the recipients into those the message is queued for and
// those taken out: the ones accepted at RCPT to be dropped, and, when the
// header named another stream or list than RCPT checked with, those that
// a check with the header's suppresses.
func (s *session) screen(m *submitted) (kept []queue.NewRecipient, out []takenOut, err error) {
	recheck := m.msg.Stream != s.stream || m.msg.List != s.list
	for i, r := range s.rcpts {
		d := s.decisions[i]
		if !d.Suppressed && recheck {
			if d, err = s.check(r.Addr, m.msg.Stream, m.msg.List); err != nil {
				return nil, nil, err
			}
		}
		if d.Suppressed {
			out = append(out, takenOut{rcpt: r, decision: d, refused: !d.Drop})
			continue
		}
		kept = append(kept, r)
	}
	return kept, out, nil
}

// emitSuppressed emits one suppressed event per recipient taken out.
func (s *session) emitSuppressed(m *submitted, out []takenOut) {
	if s.sub.cfg.OnEvent == nil {
		return
	}
	for _, o := range out {
		e := o.decision.Entry
		ev := s.event(queue.EventSuppressed)
		ev.Sender, ev.ReturnPath, ev.Recipient = m.msg.Sender, m.msg.ReturnPath, o.rcpt.Addr
		ev.Stream, ev.Campaign, ev.List, ev.Flow = m.msg.Stream, m.msg.Campaign, m.msg.List, m.msg.Flow
		ev.Reason, ev.Scope, ev.Source = string(e.Reason), string(e.Kind), e.Source
		ev.MessageID = clip(m.messageID)
		s.sub.cfg.OnEvent(ev)
	}
}

// wantsLinks reports whether the message gets Drover's List-Unsubscribe
// fields, and so one copy per recipient: marketing mail, with links
// configured, of a sender whose mode is "add", or "keep" when the
// message has no List-Unsubscribe of its own.
func (s *session) wantsLinks(m *submitted) bool {
	if s.sub.cfg.Links == nil || m.msg.Stream != streamMarketing {
		return false
	}
	switch s.sender.ListUnsubscribe {
	case ListUnsubscribeOff:
		return false
	case ListUnsubscribeKeep:
		return !m.ownUnsubscribe
	}
	return true
}

// maxHeaderLine is the longest line a header may have (RFC 5322 2.1.1),
// without its CRLF.
const maxHeaderLine = 998

// unsubscribeFields are the List-Unsubscribe (RFC 2369) and
// List-Unsubscribe-Post (RFC 8058) fields of copy c, whose token names
// its recipient.
func (s *session) unsubscribeFields(m *submitted, c *queued) ([]byte, error) {
	web, mailto := s.sub.cfg.Links.Unsubscribe(policy.Recipient{
		Sender: m.msg.Sender, List: m.msg.List, Address: c.rcpts[0].Addr, MsgID: c.id})
	fields, err := listUnsubscribe(web, mailto)
	if err != nil {
		s.sub.cfg.Logger.Error("List-Unsubscribe field not made", "sender", m.msg.Sender, "err", err)
		return nil, &smtperr.Error{Code: 451, Enhanced: "4.3.0", Message: "Unsubscribe link not made: local configuration error, try again later", Err: err}
	}
	return fields, nil
}

// listUnsubscribe makes the fields for a one-click URL and a mailto URL
// ("" for none): folded after the comma, so that each URL has a line of
// its own; it refuses a URL that holds what a field cannot or makes a
// line longer than 998 bytes.
func listUnsubscribe(web, mailto string) ([]byte, error) {
	var urls []string
	for _, u := range []string{web, mailto} {
		if u == "" {
			continue
		}
		if err := checkLinkURL(u); err != nil {
			return nil, fmt.Errorf("URL %.40q...: %w", u, err)
		}
		urls = append(urls, "<"+u+">")
	}
	b := []byte("List-Unsubscribe: " + strings.Join(urls, ",\r\n ") + "\r\n")
	if web != "" {
		// RFC 8058 one-click: only with an HTTPS URL to POST to.
		b = append(b, "List-Unsubscribe-Post: List-Unsubscribe=One-Click\r\n"...)
	}
	for line := range strings.SplitSeq(string(b), "\r\n") {
		if len(line) > maxHeaderLine {
			return nil, fmt.Errorf("List-Unsubscribe line of %d bytes, more than %d", len(line), maxHeaderLine)
		}
	}
	return b, nil
}

// fillTags replaces the [opt-in: ...], [unsubscribe: ...] and
// [manage: ...] tags of copy c's message with its recipient's links
// (mta/tags), before the copy is signed. A tag the message cannot hold
// refuses the message with 554 5.6.0; without links
// (no web.base_url) a tagged message is refused too: its links would lead
// nowhere.
func (s *session) fillTags(m *submitted, c *queued, msg []byte) ([]byte, error) {
	l := s.sub.cfg.Links
	r := policy.Recipient{Sender: m.msg.Sender, List: m.msg.List, Address: c.rcpts[0].Addr, MsgID: c.id}
	out, err := tags.Rewrite(msg, func(kind tags.Kind) (string, error) {
		var u string
		switch {
		case l == nil:
		case kind == tags.Unsubscribe:
			u, _ = l.Unsubscribe(r)
		case kind == tags.OptIn:
			u = l.OptIn(r)
		case kind == tags.Manage:
			u = l.Manage(r)
		}
		if u == "" {
			return "", fmt.Errorf("this server makes no [%s: ...] links", kind)
		}
		return u, nil
	})
	if err != nil {
		return nil, smtperr.Permanentf(554, "5.6.0", "Message refused: %s", clip(err.Error()))
	}
	return out, nil
}
