package bounce

import (
	"regexp"
	"strings"
)

// Non-standard bounces (and the human part of DSNs) list failed
// recipients in free text. The scanner below reads that text line by
// line: a "recipient line" starts the block of one recipient; the lines
// that follow, up to the next recipient line, are its diagnostic. Lines
// written in Sendmail's style ("550 <addr>... reason") take the lines
// before them instead, because Sendmail prints the SMTP transcript ahead
// of the verdict.

const addrPat = `[A-Za-z0-9!#$%&'*+/=?^_{|}~.-]+@[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?)+`

func isLocalChar(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.IndexByte("!#$%&'*+/=?^_{|}~.-", c) >= 0
}

func isDomainChar(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '-'
}

// findAddresses returns the addresses in s, like
// regexp.MustCompile(addrPat).FindAllString
// but without the cost of the regular expression: around each "@", the
// longest run of local-part characters before it and of domain
// characters after it, when the domain has a dot.
func findAddresses(s string) []string {
	var out []string
	for i := 0; i < len(s); i++ {
		if s[i] != '@' {
			continue
		}
		l := i
		for l > 0 && isLocalChar(s[l-1]) {
			l--
		}
		r := i + 1
		for r < len(s) && isDomainChar(s[r]) {
			r++
		}
		dom := strings.Trim(s[i+1:r], ".-")
		if l == i || !strings.Contains(dom, ".") || strings.Contains(dom, "..") {
			continue
		}
		out = append(out, s[l:i+1]+dom)
		i = i + len(dom)
	}
	return out
}

// findAddress returns the first address in s, or "".
func findAddress(s string) string {
	if a := findAddresses(s); len(a) > 0 {
		return a[0]
	}
	return ""
}

// remoteHost returns the host name a report says answered: "host
// mx.example.org[192.0.2.1] said", "host mx.example.org [192.0.2.1]:".
func remoteHost(text string) string {
	for i := 0; i < len(text); i++ {
		j := strings.IndexByte(text[i:], '[')
		if j < 0 {
			return ""
		}
		i += j
		k := i
		for k > 0 && text[k-1] == ' ' {
			k--
		}
		e := k
		for k > 0 && isDomainChar(text[k-1]) {
			k--
		}
		name := text[k:e]
		if !strings.Contains(name, ".") || !strings.ContainsAny(name, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ") {
			continue
		}
		w := strings.TrimRight(text[:k], " ")
		if hasSuffixFold(w, "host") || hasSuffixFold(w, "server") || hasSuffixFold(w, " mx") {
			return strings.Trim(name, ".-")
		}
	}
	return ""
}

// recipientLine is one way a report writes a failed recipient. pre is
// a cheap test of the trimmed, lowercased line that must pass before the
// pattern is tried.
type recipientLine struct {
	pre    func(l string) bool
	re     *regexp.Regexp
	before bool // the diagnostic precedes the line (Sendmail)
	prefix bool // the text before the address is the diagnostic
}

func firstWordHasAt(l string) bool {
	w, _, _ := strings.Cut(l, " ")
	return strings.IndexByte(w, '@') >= 0
}

// recipientLines in order of preference. Group 1 is the address; group
// 2, when present, the diagnostic on the same line (for prefix lines,
// group 1 is the diagnostic and group 2 the address).
var recipientLines = []recipientLine{
	// "  kijitora@example.jp", "<addr>:", "\"addr\":", "-- addr", ">>> addr <addr>"
	{pre: func(l string) bool { return strings.Count(l, " ") <= 2 },
		re: regexp.MustCompile(`^\s*(?:--\s+|>>>\s+|\*\s+|-\s+)?["<(]?(` + addrPat + `)[">)]?:?(?:\s+<` + addrPat + `>)?\s*[:.]?\s*$`)},
	// Sendmail: "554 <addr>... 550 Host unknown", "<addr>... User unknown"
	{pre: func(l string) bool { return strings.Contains(l, "...") },
		re: regexp.MustCompile(`^\s*(?:[245]\d\d[ -])?<(` + addrPat + `)>\.\.\.\s*(.*)$`), before: true},
	{pre: func(l string) bool { return strings.Contains(l, "...") },
		re: regexp.MustCompile(`^\s*(?:[245]\d\d[ -])(` + addrPat + `)\.\.\.\s*(.*)$`), before: true},
	// Postfix and most others: "<addr>: host x said: 550 ..."
	{pre: func(l string) bool { return l[0] == '<' },
		re: regexp.MustCompile(`^\s*<(` + addrPat + `)>:?\s+(.+)$`)},
	// OpenSMTPD, GMX and others: "addr: 550 ...", "addr [User unknown]", "addr on <date>"
	{pre: firstWordHasAt,
		re: regexp.MustCompile(`^\s*"?(` + addrPat + `)"?:\s+(.+)$`)},
	{pre: firstWordHasAt,
		re: regexp.MustCompile(`^\s*(` + addrPat + `)\s+(\[.*|\(.*|on .*|Error.*|.*(?:error|fail|unknown|reject|denied|invalid|exceed|full|quota).*)$`)},
	// "Delivery failed 20 attempts: addr", "User mailbox exceeds allowed size: addr"
	{pre: func(l string) bool { return strings.Contains(l, ":") && !firstWordHasAt(l) },
		re: regexp.MustCompile(`^\s*([A-Za-z][^:<>@]{2,80}):\s*<?(` + addrPat + `)>?\s*$`), prefix: true},
	// Sentences that name the recipient.
	{pre: func(l string) bool {
		return strings.Contains(l, "deliver") || strings.Contains(l, "recipient") || strings.Contains(l, "address") || strings.Contains(l, "sending to") || strings.Contains(l, " to ")
	},
		re: regexp.MustCompile(`(?i)(?:deliver(?:ed|y|ing)?(?: your)?(?: mail| message| e-?mail)?(?: to)?|unable to deliver(?: message| mail)?(?: to)?:?|error delivering your mail to|delivered to:?|could not deliver (?:mail |message )?to|failed to deliver to|recipient:|recipient address:|to the following (?:recipient|address)(?:\(?e?s\)?)?:?|sending to|your (?:message|mail|e-?mail) to)\s*<?(` + addrPat + `)>?[.,:]?(.*)$`)},
}

// aliasLine starts the block of a local delivery (pipe or file) whose
// address follows on a "generated by" line (Exim).
var aliasLine = regexp.MustCompile(`^  (pipe to \|.*|save to .*|/[^\s@]+)\s*$`)
var generatedBy = regexp.MustCompile(`^\s+generated by (` + addrPat + `)`)

// exim reports a local part without domain: "  kijitora".
var bareLocal = regexp.MustCompile(`^  ([A-Za-z0-9._%+-]+)\s*$`)

// skipFields are header fields (quoted in reports) and report fields
// whose addresses are never failed recipients.
var skipFields = []string{"from", "to", "cc", "bcc", "reply-to", "return-path", "sender", "errors-to",
	"message-id", "received", "date", "subject", "delivered-to", "envelope-to", "original sender",
	"reporting-mta", "remote-mta", "final-recipient", "original-recipient", "diagnostic-code", "arrival-date",
	"mail from", ">>> mail from"}

// skipPhrases mark lines that give a contact or greet the sender.
var skipPhrases = []string{"please contact", "send mail to", "contact your", "contact <", "contact the",
	"for further assistance", "mailto:", "hello "}

// skipLine reports whether the addresses of a line (trimmed and
// lowercased) are never failed recipients: quoted header fields, contact
// hints, greetings and the sender in transcripts.
func skipLine(l string) bool {
	if strings.HasPrefix(l, "<<<") || strings.HasPrefix(l, "from ") || strings.HasPrefix(l, "x-") && strings.IndexByte(l, ':') > 0 && !strings.Contains(l[:strings.IndexByte(l, ':')], " ") {
		return true
	}
	if name, _, ok := strings.Cut(l, ":"); ok {
		name = strings.TrimSpace(name)
		for _, f := range skipFields {
			if name == f {
				return true
			}
		}
	}
	for _, p := range skipPhrases {
		if strings.Contains(l, p) {
			return true
		}
	}
	// "... from sender@example.org" at the end of a line names the sender.
	if i := strings.LastIndex(l, " from "); i >= 0 && !strings.Contains(strings.TrimSpace(l[i+6:]), " ") {
		return true
	}
	return false
}

// cutMarkerPhrases are what a line that ends the report says after its
// leading dashes: after it comes the returned message.
var cutMarkerPhrases = []string{
	"this is a copy of", "below this line is a copy", "original message", "the header of the original message",
	"returned message", "original mail", "unsent message", "undelivered message", "the original message",
	"message headers follow",
}

// cutAt returns where the returned message starts in a report text (the
// start of the marker line), or -1. Markers are lines such as
// "------ This is a copy of the message, including all the headers.",
// "--- Below this line is a copy of the message.", "Original message
// follows.", "Message headers follow.", "Content-Type: message/rfc822"
// and a quoted "Return-Path: <...>".
func cutAt(text string) int {
	for pos := 0; pos < len(text); {
		end := strings.IndexByte(text[pos:], '\n')
		if end < 0 {
			end = len(text)
		} else {
			end += pos
		}
		if isCutMarker(text[pos:end]) {
			return pos
		}
		pos = end + 1
	}
	return -1
}

func isCutMarker(line string) bool {
	l := strings.TrimSpace(line)
	if len(l) < 8 || len(l) > 160 {
		return false
	}
	switch l[0] {
	case '-', '*', 'o', 'O', 'm', 'M', 'c', 'C', 'r', 'R':
	default:
		return hasSuffixFold(strings.TrimRight(l, "."), "original message follows")
	}
	low := strings.ToLower(l)
	if low[0] == '-' {
		rest := strings.TrimLeft(low, "-")
		if len(low)-len(rest) < 2 {
			return false
		}
		rest = strings.TrimSpace(rest)
		for _, p := range cutMarkerPhrases {
			if strings.HasPrefix(rest, p) {
				return true
			}
		}
		return strings.Contains(rest, "original message") && strings.HasSuffix(rest, "--") || len(low)-len(strings.TrimLeft(low, "-")) >= 5 && strings.HasPrefix(rest, "original")
	}
	if low[0] == '*' {
		return strings.HasPrefix(strings.TrimSpace(strings.TrimLeft(low, "*")), "end of message") && strings.HasPrefix(low, "***")
	}
	low = strings.TrimRight(low, ".: ")
	return strings.HasSuffix(low, "original message follows") || low == "message headers follow" || low == "original message" && strings.HasSuffix(l, ":") ||
		strings.HasPrefix(low, "content-type: message/rfc822") || strings.HasPrefix(low, "return-path: <")
}

// textRecord is one recipient found in free text.
type textRecord struct {
	addr  string
	lines []string
	order int // position among the recipients of the message
}

// scanText finds the recipients of free text and the lines about each.
// It also returns the text before the first recipient (the preamble).
func scanText(text string, exclude map[string]bool) ([]*textRecord, string) {
	if at := cutAt(text); at >= 0 {
		text = text[:at]
	}
	lines := strings.Split(text, "\n")
	var recs []*textRecord
	byAddr := map[string]*textRecord{}
	var cur *textRecord
	var pending []string // lines since the last recipient line
	var preamble []string
	seenRecipient := false
	pendingAlias := -1 // index in recs of a record waiting for "generated by"

	add := func(addr string) *textRecord {
		key := strings.ToLower(addr)
		if r, ok := byAddr[key]; ok {
			return r
		}
		r := &textRecord{addr: addr}
		byAddr[key] = r
		recs = append(recs, r)
		return r
	}
	for _, line := range lines {
		if len(line) > maxLine || strings.IndexByte(line, '@') < 0 {
			// No address: it cannot name a recipient (cheap test first,
			// the patterns below are costly).
			if strings.HasPrefix(line, "  ") && aliasLine.MatchString(line) {
				r := &textRecord{addr: "", lines: []string{line}}
				recs = append(recs, r)
				pendingAlias = len(recs) - 1
				cur = r
				seenRecipient = true
				continue
			}
			if !seenRecipient {
				if strings.HasPrefix(line, "  ") && len(preamble) > 0 {
					if m := bareLocal.FindStringSubmatch(line); m != nil {
						cur = add(m[1])
						seenRecipient = true
						continue
					}
				}
				preamble = append(preamble, line)
				pending = append(pending, line)
				continue
			}
			if cur != nil {
				cur.lines = append(cur.lines, line)
			}
			pending = append(pending, line)
			continue
		}
		if m := generatedBy.FindStringSubmatch(line); m != nil && pendingAlias >= 0 {
			r := recs[pendingAlias]
			r.addr = m[1]
			byAddr[strings.ToLower(m[1])] = r
			pendingAlias = -1
			r.lines = append(r.lines, line)
			continue
		}
		matched := false
		low := strings.ToLower(strings.TrimSpace(line))
		if !skipLine(low) {
			for _, rl := range recipientLines {
				if !rl.pre(low) {
					continue
				}
				m := rl.re.FindStringSubmatch(line)
				if m == nil {
					continue
				}
				addr := m[1]
				diag := ""
				if rl.prefix {
					addr, diag = m[2], m[1]
				} else if len(m) > 2 {
					diag = m[2]
				}
				if exclude[strings.ToLower(addr)] {
					break
				}
				r := add(addr)
				if rl.before {
					r.lines = append(r.lines, pending...)
					r.lines = append(r.lines, diag)
					cur = nil
				} else {
					if diag != "" {
						r.lines = append(r.lines, diag)
					}
					cur = r
				}
				pending = nil
				matched = true
				seenRecipient = true
				break
			}
		}
		if matched {
			continue
		}
		if !seenRecipient {
			preamble = append(preamble, line)
			pending = append(pending, line)
			continue
		}
		if cur != nil {
			cur.lines = append(cur.lines, line)
		}
		pending = append(pending, line)
	}
	out := recs[:0]
	for _, r := range recs {
		if r.addr != "" {
			out = append(out, r)
		}
	}
	return out, strings.Join(preamble, "\n")
}

// informative reports whether text says something beyond addresses and
// punctuation: four letters outside words that hold an "@".
func informative(text string) bool {
	letters := 0
	for _, w := range strings.Fields(text) {
		if strings.IndexByte(w, '@') >= 0 {
			continue
		}
		for i := 0; i < len(w); i++ {
			if c := w[i]; c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' {
				letters++
			}
		}
		if letters >= 4 {
			return true
		}
	}
	return false
}

// hasSuffixFold is strings.HasSuffix ignoring ASCII case.
func hasSuffixFold(s, suffix string) bool {
	return len(s) >= len(suffix) && strings.EqualFold(s[len(s)-len(suffix):], suffix)
}
