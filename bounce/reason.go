package bounce

import (
	"strings"
)

// facts is what the classifier knows about one failed recipient before
// it decides the reason.
type facts struct {
	status    string // enhanced status code, "" if none
	replyCode string // SMTP reply code, "" if none
	diag      string // diagnostic text as found
	command   string // SMTP command that failed: CONN EHLO MAIL RCPT DATA ...
	action    string // RFC 3464 Action, lowercased
	diagType  string // Diagnostic-Code type: "smtp", "x-unix", "x-postfix", ...
	host      string // remote MTA host name, lowercased
	domain    string // recipient domain, lowercased
	reporter  string // host that wrote the report (Reporting-MTA), lowercased
	sender    string // domain of the report's From, lowercased
	preset    string // reason set by the bounce format (a hint)

	lower string     // diag prepared by matchText
	index *textIndex // trigrams of lower
	seen  [64]int8   // per reason index: 0 not yet tested, 1 matches, 2 does not
	sn    string     // statusName
	snSet bool
	rs    *ruleSet
}

// retried are the reasons a format may set that the general rules still
// look at again (Sisimai's "retry" set): they are often guesses.
var retried = map[string]bool{
	"undefined": true, "onhold": true, "systemerror": true, "securityerror": true,
	"expired": true, "networkerror": true, "hostunknown": true, "userunknown": true,
}

// has reports whether the diagnostic text contains one of the phrases of
// reason r. Results are cached per reason.
func (f *facts) has(r string) bool {
	i, ok := f.rs.reasonIdx[r]
	if !ok {
		return false
	}
	switch f.seen[i] {
	case 1:
		return true
	case 2:
		return false
	}
	x := f.indexed()
	f.seen[i] = 2
	for _, p := range f.rs.phrasesOf[i] {
		if x.contains(p) {
			f.seen[i] = 1
			break
		}
	}
	for _, p := range f.rs.unlessOf[i] {
		if f.seen[i] == 1 && x.contains(p) {
			f.seen[i] = 2
		}
	}
	return f.seen[i] == 1
}

// indexed returns the trigram index of f.lower.
func (f *facts) indexed() *textIndex {
	if f.index == nil {
		f.index = newTextIndex(f.lower)
	}
	return f.index
}

// statusName is the reason the status code points to (cached). An
// address status (X.1.x) given to MAIL FROM is about the sender's
// address, the only one that command names (RFC 5321 4.1.1.2): a
// sender rejection, not a missing mailbox or domain.
func (f *facts) statusName() string {
	if !f.snSet {
		f.sn, f.snSet = f.rs.statusReason(f.status), true
		if f.command == "MAIL" && (f.sn == "userunknown" || f.sn == "hostunknown") {
			f.sn = "rejected"
		}
	}
	return f.sn
}

// holds is Sisimai's "true" test of reason r: the format said so, the
// status code points to it, or its phrases match, with these guards:
//   - userunknown: a status pointing to it counts unless the text names
//     a relaying, blocking, quota, moved, sender, null-MX or sender
//     authentication problem; the
//     phrases alone count only after RCPT TO, or on a null-MX status
//     (X.1.10, which Microsoft uses for "recipient not found") whose
//     words name no null MX.
//   - filtered: a filtered status needs a user-unknown or filter phrase;
//     otherwise those phrases count when the failure was not at MAIL or
//     RCPT (a "user unknown" after DATA is a filter in disguise).
//   - rejected: the phrases count after MAIL FROM or DATA, or when the
//     status says little.
//   - hostunknown: a status pointing to it counts unless the text is a
//     DNS failure, its phrases unless the text says the failure is
//     temporary ("not found, try again"), names a null MX or refuses
//     the client's HELO name; spamdetected never holds before DATA; mesgtoobig never
//     holds on an exceedlimit status; suspend, norelaying,
//     notcompliantrfc, badreputation and securityerror hold on phrases
//     only; contenterror does not hold on a text that gives a spam
//     verdict.
func (f *facts) holds(r string) bool {
	if f.preset == r {
		return true
	}
	sn := f.statusName()
	switch r {
	case "userunknown":
		if sn == "suspend" {
			return false
		}
		if sn == "userunknown" {
			for _, o := range []string{"norelaying", "blocked", "mailboxfull", "hasmoved", "rejected", "notaccept", "authfailure"} {
				if f.has(o) {
					return false
				}
			}
			return true
		}
		if sn == "notaccept" {
			return f.has(r) && !f.has("notaccept")
		}
		return f.command == "RCPT" && f.has(r)
	case "filtered":
		if sn == "suspend" {
			return false
		}
		if sn == "filtered" {
			return f.has("userunknown") || f.has("filtered")
		}
		if f.command != "RCPT" && f.command != "MAIL" {
			return f.has("filtered") || f.has("userunknown")
		}
		return false
	case "rejected":
		if sn == "rejected" {
			return true
		}
		switch f.command {
		case "MAIL":
			return f.has(r)
		case "DATA":
			return f.has(r)
		}
		switch sn {
		case "", "onhold", "undefined", "securityerror", "systemerror":
			return f.has(r)
		}
		return false
	case "hostunknown":
		if sn == "hostunknown" {
			return !f.has("networkerror")
		}
		// A null MX is no unknown host (the "unless" words of rules.yaml
		// keep the phrases from holding too).
		return f.has(r) && !f.has("notaccept")
	case "mesgtoobig":
		if sn == "mesgtoobig" {
			return true
		}
		if sn == "exceedlimit" {
			return false
		}
		return f.has(r)
	case "spamdetected":
		if sn == "spamdetected" {
			return true
		}
		switch f.command {
		case "CONN", "EHLO", "HELO", "MAIL", "RCPT":
			return false
		}
		return f.has(r)
	case "contenterror":
		// A spam verdict given with a media-error code (X.6.x) is a spam
		// verdict.
		return (sn == r || f.has(r)) && !f.has("spamdetected")
	case "suspend", "norelaying", "notcompliantrfc", "badreputation", "securityerror":
		return f.has(r)
	}
	return sn == r || f.has(r)
}

// decide returns the reason for one failed recipient. The order:
//  1. admin rules from the config;
//  2. the rule set of the provider that the remote host, the recipient
//     domain or the host that wrote the report belongs to;
//  3. a reason set by the bounce format, unless it is a guess (retried);
//  4. a 2.x.x status is "delivered";
//  5. the "first" reasons of rules.yaml, each tested with holds;
//  6. what the status code points to (a generic transient code in a
//     "failed" report is "expired"), refined where it is vague, one of
//     the "phrases" reasons, or the diagnostic is no SMTP reply, by the
//     phrases of the "phrases" reasons and then the holds test of the
//     "fallback" reasons;
//  7. a delayed action is "expired", a failure at EHLO/HELO "blocked";
//  8. otherwise "vacation" wording, then the "lastresort" words of
//     rules.yaml, then "rejected" for a failure at MAIL FROM, then
//     "onhold" when there is text, "undefined" when there is none.
func (rs *ruleSet) decide(f *facts) string {
	f.rs = rs
	if f.lower == "" {
		f.lower = matchText(f.diag)
	}
	if r := rs.adminReason(f); r != "" {
		return r
	}
	if r := rs.providerReason(f); r != "" {
		return r
	}
	if f.preset != "" && !retried[f.preset] {
		return f.preset
	}
	if strings.HasPrefix(f.status, "2.") {
		return "delivered"
	}
	for _, r := range rs.first {
		if f.holds(r) {
			return r
		}
	}
	if r := rs.another(f); r != "" {
		return r
	}
	if f.has("vacation") {
		return "vacation"
	}
	if r := rs.lastResort(f); r != "" {
		return r
	}
	if f.command == "MAIL" {
		// Refused at MAIL FROM with nothing more said: the command names
		// only the sender (RFC 5321 4.1.1.2).
		return "rejected"
	}
	if strings.TrimSpace(f.diag) != "" {
		return "onhold"
	}
	return "undefined"
}

// another is step 6 and 7 of decide.
func (rs *ruleSet) another(f *facts) string {
	if f.preset != "" {
		return f.preset
	}
	sn := f.statusName()
	if sn == "systemerror" && strings.HasPrefix(f.action, "failed") && strings.HasPrefix(f.status, "4.") && !f.has(sn) {
		// RFC 3464 2.3.3: a "failed" action with a transient (4.X.X)
		// status is an MTA that stopped retrying a temporary failure
		// (Postfix at maximal_queue_lifetime): the message expired.
		f.sn, sn = "expired", "expired"
	}
	// A vague status, or a diagnostic that is not an SMTP reply, is
	// refined by phrases.
	try := sn == "" || sn == "onhold" || sn == "undefined" || f.diagType != "" && f.diagType != "smtp"
	for _, r := range rs.phrases {
		if r == sn {
			try = true
		}
	}
	if try {
		for _, r := range rs.phrases {
			if f.has(r) {
				return r
			}
		}
		for _, r := range rs.fallback {
			if f.holds(r) {
				return r
			}
		}
	}
	if sn != "" {
		return sn
	}
	if strings.HasPrefix(f.action, "delayed") || strings.HasPrefix(f.action, "expired") {
		return "expired"
	}
	if f.command == "EHLO" || f.command == "HELO" || f.command == "CONN" {
		return "blocked"
	}
	return ""
}

// lastResort applies the "lastresort" rules: the first reason one of
// whose phrases occurs.
func (rs *ruleSet) lastResort(f *facts) string {
	for _, l := range rs.last {
		for _, p := range l.phrases {
			if f.indexed().contains(p) {
				return l.Reason
			}
		}
	}
	return ""
}

// adminReason applies the admin rules.
func (rs *ruleSet) adminReason(f *facts) string {
	for _, r := range rs.extra {
		if r.Status != "" && !strings.HasPrefix(f.status, r.Status) {
			continue
		}
		if r.Host != "" && !hostIn(f, r.Host) {
			continue
		}
		if r.re != nil && !r.re.MatchString(f.diag) {
			continue
		}
		return r.Reason
	}
	return ""
}

// providerReason applies the rule set of the provider the remote host or
// the recipient domain belongs to.
func (rs *ruleSet) providerReason(f *facts) string {
	for i := range rs.providers {
		p := &rs.providers[i]
		in := false
		for _, h := range p.Hosts {
			if hostIn(f, h) {
				in = true
				break
			}
		}
		if !in {
			continue
		}
		for _, r := range p.Rules {
			if r.Status != "" && !strings.HasPrefix(f.status, r.Status) {
				continue
			}
			if r.phrase.frags != nil && !f.indexed().contains(r.phrase) {
				continue
			}
			return r.Reason
		}
	}
	return ""
}

// hostIn reports whether the remote host, the recipient domain, the
// reporting host or the domain the report came from is h or ends in
// "."+h.
func hostIn(f *facts, h string) bool {
	for _, s := range [...]string{f.host, f.domain, f.reporter, f.sender} {
		if len(s) >= len(h) && strings.EqualFold(s[len(s)-len(h):], h) && (len(s) == len(h) || s[len(s)-len(h)-1] == '.') {
			return true
		}
	}
	return false
}

// matchText prepares a diagnostic for phrase matching: lowercased,
// blanks folded, and the codes of a multi-line reply ("550-5.7.1 ...
// 550 5.7.1 ...") taken out after the first, so that "multiple
// 550-5.7.1 addresses" reads "multiple addresses". A reply code later in
// the text that is not such a repetition (the reply of the next hop in
// "... -> 550 : User unknown") stays.
func matchText(diag string) string {
	s := lowerFold(diag)
	first := -1
	var code, enh string
	multi := false
	var b strings.Builder
	last := 0
	for i := 0; i+3 < len(s); i++ {
		c, e, end, ok := replyAt(s, i)
		if !ok {
			continue
		}
		if first < 0 {
			first, code, enh, multi = i, c, e, s[i+3] == '-'
			i = end - 1
			continue
		}
		if c != code || !multi && (enh == "" || e != enh) {
			continue
		}
		if b.Cap() == 0 {
			b.Grow(len(s))
		}
		b.WriteString(s[last:i])
		last = end
		i = end - 1
	}
	if last == 0 {
		return s
	}
	b.WriteString(s[last:])
	return foldSpace(b.String())
}

// replyAt reports whether a reply code ("550 ", "550-"), optionally
// followed by an enhanced code and a blank, starts at s[i] (at the start
// of s or after a blank), and where it ends.
func replyAt(s string, i int) (code, enh string, end int, ok bool) {
	if i > 0 && s[i-1] != ' ' {
		return "", "", 0, false
	}
	if s[i] != '2' && s[i] != '4' && s[i] != '5' || !isDigit(s[i+1]) || !isDigit(s[i+2]) || s[i+3] != ' ' && s[i+3] != '-' {
		return "", "", 0, false
	}
	end = i + 4
	if st, at := nextStatus(s, end); at == end && end+len(st) < len(s) && s[end+len(st)] == ' ' {
		enh = st
		end += len(st) + 1
	}
	return s[i : i+3], enh, end, true
}

// categoryOf returns the PowerMTA category of reason for the failure f.
func (rs *ruleSet) categoryOf(f *facts, reason string) string {
	for _, c := range rs.catRules {
		for _, r := range c.Reasons {
			if r == reason && f.indexed().contains(c.phrase) {
				return c.Category
			}
		}
	}
	if c := rs.category[reason]; c != "" {
		return c
	}
	return "other"
}

// temporary reports whether the failure is said to be temporary: a 4.x.x
// status, else a 4xx reply code, else a delayed action.
func temporary(status, replyCode, action string) bool {
	switch {
	case status != "":
		return status[0] == '4'
	case replyCode != "":
		return replyCode[0] == '4'
	}
	return strings.HasPrefix(action, "delayed")
}

// hardBounce is the README rule: userunknown, hostunknown and hasmoved
// are hard; notaccept is hard unless the failure is temporary; all else
// is soft.
func hardBounce(reason string, temp bool) bool {
	switch reason {
	case "userunknown", "hostunknown", "hasmoved":
		return true
	case "notaccept":
		return !temp
	}
	return false
}
