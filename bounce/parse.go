package bounce

import (
	"errors"
	"regexp"
	"slices"
	"strings"
)

// ErrNotMessage is returned by ParseMessage for input without a single
// header field.
var ErrNotMessage = errors.New("bounce: input is not a mail message")

// message is what ParseMessage gathers from one raw message.
type message struct {
	header        header
	from, subject string
	to            string // the bounce's To: the original sender
	texts         []string
	dsn           []string
	feedback      []header
	orig          header // header of the returned message
	reportingMTA  string
	envID         string
	origMessageID string
	origRaw       []byte // the returned message, when attached whole
	level         int    // how many messages deep this one is attached
	reportText    string
	reportMatch   string
}

// ParseMessage reads one raw message (an mbox "From " line is allowed,
// LF or CRLF line ends) and returns one Classification per recipient it
// reports on: failed recipients of a DSN or non-standard bounce,
// delivered recipients of a success DSN, the complained-about recipient
// of an ARF report, the sender of an auto-reply. It returns no
// classification and no error for a message that is none of these.
func (c *Classifier) ParseMessage(raw []byte) ([]Classification, error) {
	return c.parse(raw, 0)
}

// parse is ParseMessage for a message nested level messages deep.
func (c *Classifier) parse(raw []byte, level int) ([]Classification, error) {
	b := normalize(raw)
	h, body := splitHeader(b)
	if len(h) == 0 {
		return nil, ErrNotMessage
	}
	m := &message{
		level:   level,
		header:  h,
		from:    decodeWords(h.get("from")),
		subject: decodeWords(h.get("subject")),
		to:      h.get("to"),
	}
	var w walker
	w.walk(h, body, 0)
	var html [][]byte
	for _, p := range w.parts {
		switch p.mediaType {
		case "message/delivery-status", "message/global-delivery-status":
			m.dsn = append(m.dsn, string(p.body))
		case "message/feedback-report":
			fh, _ := splitHeader(p.body)
			m.feedback = append(m.feedback, fh)
		case "message/rfc822", "message/global", "text/rfc822-headers", "message/rfc822-headers", "message/global-headers":
			if m.orig == nil {
				m.orig, _ = splitHeader(p.body)
				m.origRaw = p.body
			}
		case "text/html":
			html = append(html, p.body)
		default:
			if strings.HasPrefix(p.mediaType, "text/") || p.mediaType == "" {
				m.texts = append(m.texts, string(p.body))
			}
		}
	}
	if len(m.texts) == 0 {
		for _, h := range html {
			m.texts = append(m.texts, stripHTML(string(h)))
		}
	}
	if m.orig == nil {
		m.findInlineOriginal()
	}
	m.origMessageID = strings.Trim(m.orig.get("message-id"), "<> ")

	if recs := m.feedbackRecords(); recs != nil {
		return c.finish(recs, m), nil
	}
	if recs := m.sesRecords(); recs != nil {
		return c.finish(recs, m), nil
	}
	if recs := c.dsnRecords(m); recs != nil {
		return c.finish(recs, m), nil
	}
	if m.isAutoReply(true) {
		return c.finish(m.autoReplyRecords(), m), nil
	}
	if recs := c.textRecords(m); recs != nil {
		return c.finish(recs, m), nil
	}
	if m.isAutoReply(false) {
		return c.finish(m.autoReplyRecords(), m), nil
	}
	return nil, nil
}

// report returns the text of the report: the text parts up to the
// returned message.
func (m *message) report() string {
	if m.reportText == "" {
		var b strings.Builder
		for _, t := range m.texts {
			if at := cutAt(t); at >= 0 {
				t = t[:at]
			}
			b.WriteString(t)
			b.WriteByte('\n')
		}
		m.reportText = truncate("Subject: "+m.subject+"\n"+b.String(), maxReport)
	}
	return m.reportText
}

// reportLower is report() prepared by matchText, computed once.
func (m *message) reportLower() string {
	if m.reportMatch == "" {
		m.reportMatch = matchText(m.report())
	}
	return m.reportMatch
}

// finish classifies the records, completing bare local parts from the
// returned message and dropping duplicates.
func (c *Classifier) finish(recs []record, m *message) []Classification {
	var out []Classification
	seen := map[string]bool{}
	for _, r := range recs {
		if !strings.Contains(r.recipient, "@") {
			r.recipient = m.completeAddress(r.recipient)
		}
		r.recipient = strings.Trim(r.recipient, "<>\"' ")
		key := strings.ToLower(r.recipient)
		if r.recipient == "" || seen[key] {
			continue
		}
		seen[key] = true
		cl := c.classify(r, m)
		if (cl.Reason == "onhold" || cl.Reason == "undefined") && m.level == 0 && len(m.origRaw) > 0 {
			cl = c.fromReturned(cl, m)
		}
		out = append(out, cl)
	}
	return out
}

// fromReturned looks into the returned message when a report says no
// more than that delivery failed: some relays (InterScan, for one)
// return the bounce they received, which names the reason.
func (c *Classifier) fromReturned(cl Classification, m *message) Classification {
	inner, _ := c.parse(m.origRaw, m.level+1)
	for _, ic := range inner {
		if strings.EqualFold(ic.Recipient, cl.Recipient) && ic.Reason != "onhold" && ic.Reason != "undefined" {
			ic.OriginalMessageID = cl.OriginalMessageID
			return ic
		}
	}
	return cl
}

// completeAddress finds an address with the local part local among the
// recipients of the returned message.
func (m *message) completeAddress(local string) string {
	if local == "" {
		return ""
	}
	for _, v := range []string{m.header.get("x-failed-recipients"), m.orig.get("to"), m.orig.get("cc"), m.orig.get("delivered-to"), m.orig.get("x-original-to")} {
		for _, a := range findAddresses(v) {
			if strings.EqualFold(a[:strings.IndexByte(a, '@')], local) {
				return a
			}
		}
	}
	return ""
}

// findInlineOriginal reads the header of a returned message quoted in a
// text part after a marker ("------ This is a copy of the message ...").
func (m *message) findInlineOriginal() {
	for _, t := range m.texts {
		at := cutAt(t)
		if at < 0 {
			continue
		}
		rest := t[at:]
		if !strings.HasPrefix(strings.ToLower(rest), "return-path") {
			if i := strings.IndexByte(rest, '\n'); i >= 0 {
				rest = rest[i+1:]
			} else {
				rest = ""
			}
		}
		rest = strings.TrimLeft(rest, "\n")
		if oh, _ := splitHeader([]byte(rest)); len(oh) > 0 {
			m.orig = oh
			return
		}
	}
}

// excluded returns the addresses that are never failed recipients: the
// bounce's own To and From, and the sender of the returned message.
func (m *message) excluded() map[string]bool {
	ex := map[string]bool{}
	to := m.to
	if m.level > 0 {
		to = "" // a returned message is addressed to the recipient
	}
	for _, v := range []string{to, m.from, m.header.get("reply-to"), m.orig.get("from"), m.orig.get("return-path"), m.orig.get("sender")} {
		for _, a := range findAddresses(v) {
			ex[strings.ToLower(a)] = true
		}
	}
	return ex
}

// dsnRecords returns the recipients of the RFC 3464 reports of m, with
// the human-readable part supplying what the report lacks.
func (c *Classifier) dsnRecords(m *message) []record {
	var reports []dsnReport
	for _, d := range m.dsn {
		reports = append(reports, parseDSN(d))
	}
	if len(reports) == 0 {
		for _, t := range m.texts {
			if hasDSNFields(t) {
				reports = append(reports, parseDSN(t))
			}
		}
	}
	var dr []dsnRecipient
	for _, rep := range reports {
		if m.reportingMTA == "" {
			m.reportingMTA = rep.reportingMTA
		}
		if m.envID == "" {
			m.envID = rep.envID
		}
		dr = append(dr, rep.recipients...)
	}
	if len(dr) == 0 {
		return nil
	}
	texts, preamble := m.scan()
	var recs []record
	for _, d := range dr {
		addr := dsnAddress(d)
		var tr *textRecord
		if addr != "" {
			tr = texts[strings.ToLower(addr)]
		} else if len(texts) > 0 {
			// An unusable Final-Recipient (a pipe or a file): take the
			// address the text names, in order.
			for _, t := range m.textOrder(texts) {
				if !containsRecipient(recs, t.addr) {
					tr, addr = t, t.addr
					break
				}
			}
		}
		if addr == "" {
			if xf := m.header.get("x-failed-recipients"); xf != "" {
				addr = findAddress(xf)
			}
		}
		if addr == "" && len(dr) == 1 {
			if as := m.returnedRecipient(); len(as) == 1 {
				addr = as[0]
			}
		}
		if addr == "" {
			addr = localPart(d)
		}
		if addr == "" {
			continue
		}
		r := record{
			recipient: addr,
			original:  d.original,
			status:    d.status,
			diag:      d.diagnostic,
			diagType:  d.diagType,
			action:    d.action,
			remoteMTA: d.remoteMTA,
		}
		ctx := ""
		if tr != nil {
			ctx = strings.Join(tr.lines, "\n")
		}
		if len(dr) == 1 {
			ctx = strings.TrimSpace(ctx + "\n" + preamble)
		}
		if !informative(r.diag) {
			r.diag = strings.TrimSpace(r.diag + "\n" + ctx)
		}
		if c := statusComment(d.status); c != "" {
			r.diag = strings.TrimSpace(r.diag + "\n" + c)
		}
		r.context = ctx
		if r.remoteMTA == "" {
			r.remoteMTA = remoteHost(ctx)
		}
		recs = append(recs, r)
	}
	if len(recs) == 0 {
		return nil
	}
	return recs
}

// localPart is the bare local part a DSN block names as its recipient
// (some gateways write "Final-Recipient: rfc822; user"), for finish to
// complete from the returned message; "" if there is none.
func localPart(d dsnRecipient) string {
	for _, v := range []string{d.final, d.actual, d.original} {
		v = strings.Trim(strings.TrimSpace(v), "<>\"'")
		if v != "" && !strings.ContainsAny(v, "@ /|") && strings.IndexFunc(v, func(r rune) bool { return r < 0x80 && !isLocalChar(byte(r)) }) < 0 {
			return v
		}
	}
	return ""
}

func containsRecipient(recs []record, addr string) bool {
	for _, r := range recs {
		if strings.EqualFold(r.recipient, addr) {
			return true
		}
	}
	return false
}

// dsnAddress is the recipient address of a DSN block: Final-Recipient,
// else X-Actual-Recipient, else Original-Recipient, when it is an
// address (not a pipe, a file or a mangled route).
func dsnAddress(d dsnRecipient) string {
	for _, v := range []string{d.final, d.actual, d.original} {
		v = strings.Trim(strings.TrimSpace(v), "<>\"'")
		if v != "" && findAddress(v) == v {
			return v
		}
	}
	for _, v := range []string{d.final, d.actual, d.original} {
		v = strings.TrimSpace(v)
		if strings.HasPrefix(v, "|") || strings.HasPrefix(v, "/") {
			continue
		}
		if a := findAddress(v); a != "" {
			return a
		}
	}
	return ""
}

// scan runs the free-text scanner over the text parts of m.
func (m *message) scan() (map[string]*textRecord, string) {
	out := map[string]*textRecord{}
	ex := m.excluded()
	var pre []string
	order := 0
	for _, t := range m.texts {
		recs, preamble := scanText(t, ex)
		pre = append(pre, preamble)
		for _, r := range recs {
			key := strings.ToLower(r.addr)
			if old, ok := out[key]; ok {
				old.lines = append(old.lines, r.lines...)
				continue
			}
			r.order = order
			order++
			out[key] = r
		}
	}
	return out, strings.Join(pre, "\n")
}

// textOrder returns the records of a scan in the order found.
func (m *message) textOrder(recs map[string]*textRecord) []*textRecord {
	out := make([]*textRecord, len(recs))
	for _, r := range recs {
		out[r.order] = r
	}
	return out
}

// textRecords reads a non-standard bounce: recipients and their
// diagnostics from free text.
func (c *Classifier) textRecords(m *message) []record {
	// A returned message that is itself a report is read whatever its
	// sender says (only a recipient the outer report names is taken).
	if m.level == 0 && !m.looksLikeBounce() {
		return nil
	}
	texts, preamble := m.scan()
	ordered := m.textOrder(texts)
	if len(ordered) == 0 {
		// No recipient line in the text: the X-Failed-Recipients header
		// of Exim, else the returned message's recipient.
		addrs := findAddresses(m.header.get("x-failed-recipients"))
		if len(addrs) == 0 {
			addrs = m.returnedRecipient()
		}
		body := m.report()
		var recs []record
		for _, a := range addrs {
			recs = append(recs, record{recipient: a, diag: body, context: body})
		}
		return recs
	}
	// Exim and Google name the failed recipients in X-Failed-Recipients:
	// trust the header over the text when both exist.
	if xf := findAddresses(m.header.get("x-failed-recipients")); len(xf) > 0 {
		want := map[string]bool{}
		for _, a := range xf {
			want[strings.ToLower(a)] = true
		}
		kept := ordered[:0:0]
		found := map[string]bool{}
		for _, t := range ordered {
			addr := t.addr
			if !strings.Contains(addr, "@") {
				addr = m.completeAddress(addr)
			}
			if want[strings.ToLower(addr)] {
				kept = append(kept, t)
				found[strings.ToLower(addr)] = true
			}
		}
		for _, a := range xf {
			if !found[strings.ToLower(a)] {
				found[strings.ToLower(a)] = true
				kept = append(kept, &textRecord{addr: a})
			}
		}
		ordered = kept
	}
	var recs []record
	for _, t := range ordered {
		diag := strings.TrimSpace(strings.Join(t.lines, "\n"))
		// The text before the first recipient says why when there is one
		// recipient (or nothing follows the address).
		if len(ordered) == 1 || !informative(diag) {
			diag = strings.TrimSpace(diag + "\n" + preamble)
		}
		r := record{recipient: t.addr, diag: diag, context: diag}
		r.remoteMTA = remoteHost(diag)
		recs = append(recs, r)
	}
	return recs
}

// returnedRecipient guesses the failed recipient of a report that names
// none on a recipient line (the free text of older MTAs, list managers
// and forwarders): the address the report mentions that is also a
// recipient of the returned message, else the returned message's one
// recipient (To, else the envelope headers a delivering or forwarding
// MTA adds), else the one address the report mentions at all besides
// the sender's and the mail system's own.
func (m *message) returnedRecipient() []string {
	ex := m.excluded()
	var said []string
	for _, a := range findAddresses(m.report()) {
		if !ex[strings.ToLower(a)] && !systemAddress(a) && !slices.ContainsFunc(said, func(s string) bool { return strings.EqualFold(s, a) }) {
			said = append(said, a)
		}
	}
	var to []string
	for _, k := range []string{"to", "cc"} {
		to = append(to, findAddresses(m.orig.get(k))...)
	}
	for _, a := range said {
		for _, t := range to {
			if strings.EqualFold(a, t) {
				return []string{a}
			}
		}
	}
	for _, k := range []string{"to", "delivered-to", "x-original-to", "envelope-to", "x-envelope-to"} {
		if as := findAddresses(m.orig.get(k)); len(as) == 1 && !ex[strings.ToLower(as[0])] {
			return as
		}
	}
	if len(said) == 1 {
		return said
	}
	return nil
}

// systemAddress reports whether a is a mail system's own address
// (MAILER-DAEMON@, postmaster@, ...), which a report signs with and
// which is not a failed recipient.
func systemAddress(a string) bool {
	local := strings.ToLower(a[:strings.IndexByte(a, '@')])
	switch local {
	case "mailer-daemon", "postmaster", "root", "abuse", "noreply", "no-reply", "double-bounce":
		return true
	}
	return false
}

var bounceFrom = regexp.MustCompile(`(?i)mailer-daemon|postmaster|mail delivery|mail.?deliver|mailer|mmsc|<>|no-?reply|bounce|system administrator|returned`)
var bounceSubject = regexp.MustCompile(`(?i)undeliver|deliver(y|ed)? (status|fail|notification)|returned mail|failure|failed|mail system error|delivery|bounce|not delivered|non.?delivery|returning message|could not send|warning|error|rejected|undelivered|delayed|notice|returned`)

// looksLikeBounce reports whether m is written by a mail system about a
// delivery, judged by its sender, subject and header.
func (m *message) looksLikeBounce() bool {
	if m.header.has("x-failed-recipients") {
		return true
	}
	return bounceFrom.MatchString(m.from) || bounceSubject.MatchString(m.subject) || m.from == ""
}

// stripHTML turns HTML into rough text: tags go, line-breaking tags
// (<br>, closing </p>, </div>, </td>, ...) become line ends, the content
// of <style> and <script> goes, common entities are decoded.
func stripHTML(s string) string {
	var b strings.Builder
	b.Grow(len(s))
	for i := 0; i < len(s); {
		c := s[i]
		if c != '<' {
			b.WriteByte(c)
			i++
			continue
		}
		j := strings.IndexByte(s[i:], '>')
		if j < 0 {
			break
		}
		tag := strings.ToLower(s[i+1 : i+j])
		i += j + 1
		name := strings.TrimLeft(tag, "/")
		if k := strings.IndexAny(name, " \t\n/"); k >= 0 {
			name = name[:k]
		}
		switch {
		case !strings.HasPrefix(tag, "/") && (name == "style" || name == "script"):
			if k := strings.Index(strings.ToLower(s[i:]), "</"+name); k >= 0 {
				i += k
			}
		case name == "br", strings.HasPrefix(tag, "/") && (name == "p" || name == "div" || name == "tr" || name == "td" || name == "li" || len(name) == 2 && name[0] == 'h'):
			b.WriteByte('\n')
		}
	}
	r := strings.NewReplacer("&nbsp;", " ", "&lt;", "<", "&gt;", ">", "&amp;", "&", "&quot;", `"`, "&#39;", "'")
	return r.Replace(b.String())
}
