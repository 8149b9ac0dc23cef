package bounce

import (
	"regexp"
	"strings"
)

// autoReplySubject is the subject of out-of-office and other automatic
// replies in the languages seen most.
var autoReplySubject = regexp.MustCompile(`(?i)^\s*(?:auto(?:matic)?[ -]?(?:reply|response|answer|antwort|respuesta)|auto:|autoreply|out of (?:the )?office|away from (?:the|my) office|on vacation|vacation|abwesenheit|absence|r[ée]ponse automatique|risposta automatica|respuesta autom[aá]tica|fuera de la oficina|automatisch antwoord|不在)`)

// isAutoReply reports whether m is an RFC 3834 automatic reply. strict
// requires a clear sign (an auto-reply subject or header) and a sender
// that is not a mail system; the lax form, used once no bounce was found,
// also accepts Auto-Submitted: auto-replied alone.
func (m *message) isAutoReply(strict bool) bool {
	if bounceFrom.MatchString(m.from) && !autoReplySubject.MatchString(m.subject) {
		return false
	}
	h := m.header
	if autoReplySubject.MatchString(m.subject) || h.has("x-autoreply") || h.has("x-autorespond") ||
		strings.EqualFold(h.get("precedence"), "auto_reply") || strings.Contains(strings.ToLower(h.get("x-auto-response-suppress")), "oof") && strings.HasPrefix(strings.ToLower(h.get("auto-submitted")), "auto-replied") {
		return true
	}
	if strict {
		return false
	}
	return strings.HasPrefix(strings.ToLower(h.get("auto-submitted")), "auto-replied")
}

// autoReplyRecords reports the sender of an auto-reply, which is the
// recipient of the mail it answers.
func (m *message) autoReplyRecords() []record {
	a := findAddress(m.from)
	if a == "" {
		return nil
	}
	return []record{{recipient: a, reason: "vacation"}}
}
