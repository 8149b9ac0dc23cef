package bounce

import (
	"strings"
)

// dsnRecipient is one per-recipient block of an RFC 3464
// message/delivery-status (or of the same fields written as text).
type dsnRecipient struct {
	final, original, actual string
	action, status          string
	remoteMTA, diagnostic   string
	diagType                string
}

// dsnReport is a parsed delivery-status body.
type dsnReport struct {
	reportingMTA string
	envID        string
	recipients   []dsnRecipient
}

// isDSNField reports whether a line starts with one of the recipient
// fields of RFC 3464, which is how delivery-status text is recognised
// inside text parts.
func hasDSNFields(text string) bool {
	lower := strings.ToLower(text)
	for _, f := range []string{"final-recipient:", "final-recipient :", "original-recipient:"} {
		i := strings.Index(lower, f)
		if i >= 0 && (i == 0 || lower[i-1] == '\n') {
			return true
		}
	}
	return false
}

// parseDSN reads delivery-status fields. It is tolerant: blocks are
// separated by blank lines, but a recipient field that repeats within a
// block starts a new recipient (some MTAs write no blank lines), fields
// may come in any order, field names may have a blank before the colon,
// continuation lines are unfolded, and lines that are not fields are
// skipped. The comment of a Status field ("5.0.0 (mailbox disabled)")
// is kept with the status.
func parseDSN(text string) dsnReport {
	var rep dsnReport
	var cur *dsnRecipient
	seen := map[string]bool{} // recipient fields in cur
	newRecipient := func() {
		rep.recipients = append(rep.recipients, dsnRecipient{})
		cur = &rep.recipients[len(rep.recipients)-1]
		clear(seen)
	}
	var lastName string
	set := func(name, value string) {
		switch name {
		case "reporting-mta":
			rep.reportingMTA = stripType(value)
			return
		case "original-envelope-id":
			rep.envID = value
			return
		case "final-recipient", "original-recipient", "x-actual-recipient", "action", "status",
			"remote-mta", "diagnostic-code":
		default:
			return
		}
		if cur == nil || seen[name] {
			newRecipient()
		}
		seen[name] = true
		switch name {
		case "final-recipient":
			cur.final = stripType(value)
		case "original-recipient":
			cur.original = stripType(value)
		case "x-actual-recipient":
			cur.actual = stripType(value)
		case "action":
			cur.action = strings.ToLower(strings.TrimSpace(value))
		case "status":
			cur.status = value
		case "remote-mta":
			cur.remoteMTA = stripType(value)
			if i := strings.IndexAny(cur.remoteMTA, " \t("); i > 0 {
				cur.remoteMTA = cur.remoteMTA[:i]
			}
		case "diagnostic-code":
			t, v, ok := strings.Cut(value, ";")
			if ok && !strings.ContainsAny(strings.TrimSpace(t), " \t") {
				cur.diagType = strings.ToLower(strings.TrimSpace(t))
				cur.diagnostic = strings.TrimSpace(v)
			} else {
				cur.diagnostic = value
			}
		}
	}
	for _, line := range strings.Split(text, "\n") {
		if strings.TrimSpace(line) == "" {
			// A blank line ends a block: the next recipient field starts
			// a new recipient.
			if cur != nil && (cur.final != "" || cur.original != "") {
				cur = nil
			}
			lastName = ""
			continue
		}
		if line[0] == ' ' || line[0] == '\t' {
			if cur != nil {
				switch lastName {
				case "diagnostic-code":
					cur.diagnostic += " " + strings.TrimSpace(line)
				case "status":
					cur.status += " " + strings.TrimSpace(line)
				}
			}
			continue
		}
		name, value, ok := strings.Cut(line, ":")
		if !ok {
			lastName = ""
			continue
		}
		name = strings.ToLower(strings.TrimSpace(name))
		if name == "" || strings.ContainsAny(name, " \t") {
			lastName = ""
			continue
		}
		lastName = name
		set(name, strings.TrimSpace(value))
	}
	// Blocks without a recipient (a per-message block misread) go.
	out := rep.recipients[:0]
	for _, r := range rep.recipients {
		if r.final != "" || r.original != "" || r.actual != "" {
			out = append(out, r)
		}
	}
	rep.recipients = out
	return rep
}

// statusComment returns the comment of a Status field: "5.0.0 (mailbox
// disabled)" gives "mailbox disabled".
func statusComment(status string) string {
	i := strings.IndexByte(status, '(')
	if i < 0 {
		return ""
	}
	return strings.TrimSpace(strings.Trim(status[i:], "() "))
}

// stripType removes an RFC 3464 address or name type ("rfc822;",
// "dns;") from a field value, and the source route of an address
// ("<@relay.example:user@example.org>").
func stripType(v string) string {
	v = strings.TrimSpace(v)
	if t, rest, ok := strings.Cut(v, ";"); ok && !strings.ContainsAny(t, " \t@<") {
		v = strings.TrimSpace(rest)
	}
	if strings.HasPrefix(strings.TrimLeft(v, "<"), "@") {
		if i := strings.IndexByte(v, ':'); i > 0 {
			v = strings.Trim(v[i+1:], "<> ")
		}
	}
	return v
}
