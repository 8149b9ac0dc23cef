package bounce

import (
	"regexp"
	"strings"
)

// UndisclosedRecipient is reported for a feedback report that names no
// recipient (Sisimai's placeholder, kept for comparability).
const UndisclosedRecipient = "undisclosed-recipient-in-headers@libsisimai.org.invalid"

// complaintSubject is how reports without an RFC 5965 part announce
// themselves (Microsoft's JMRP: "complaint about message from 192.0.2.1").
var complaintSubject = regexp.MustCompile(`(?i)^\s*complaint about message from\b`)

// feedbackRecords returns the records of an RFC 5965 feedback report,
// of a Microsoft-style complaint (a message/rfc822 part under a
// "complaint about message from" subject) or of an Apple Mail
// unsubscribe request; nil for anything else.
func (m *message) feedbackRecords() []record {
	_, params := mediaType(m.header.get("content-type"))
	isARF := len(m.feedback) > 0 || strings.EqualFold(params["report-type"], "feedback-report")
	switch {
	case isARF:
	case complaintSubject.MatchString(m.subject) && m.orig != nil:
		return []record{{recipient: UndisclosedRecipient, reason: "feedback", feedbackType: "abuse"}}
	case strings.EqualFold(strings.TrimSpace(m.header.get("x-apple-unsubscribe")), "true"):
		return []record{{recipient: findAddress(m.from), reason: "feedback", feedbackType: "opt-out"}}
	default:
		return nil
	}
	var fh header
	if len(m.feedback) > 0 {
		fh = m.feedback[0]
	}
	ft := strings.ToLower(strings.TrimSpace(fh.get("feedback-type")))
	if ft == "" {
		ft = "abuse"
	}
	var addrs []string
	for _, f := range fh {
		if f.name == "original-rcpt-to" || f.name == "removal-recipient" {
			addrs = append(addrs, findAddresses(f.value)...)
		}
	}
	if len(addrs) == 0 {
		addrs = findAddresses(m.orig.get("to"))
	}
	if len(addrs) == 0 {
		addrs = []string{UndisclosedRecipient}
	}
	recs := make([]record, 0, len(addrs))
	for _, a := range addrs {
		recs = append(recs, record{recipient: a, reason: "feedback", feedbackType: ft, diag: fh.get("auth-failure")})
	}
	return recs
}
