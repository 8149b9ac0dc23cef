package shaping

import (
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// Rule actions.
const (
	ActionSlow    = "slow"    // scale the site's connections and rates by Factor for Duration
	ActionSuspend = "suspend" // deliver nothing to the site for Duration
	ActionBounce  = "bounce"  // fail the recipient for good, even on a 4xx reply
	ActionNone    = "none"    // match and stop: Match returns nil (an exception to later rules); with no condition and a shipped rule's name, switches that rule off
)

// Rule maps a remote reply to an adaptive-backoff action. At least one of
// Pattern, Status and Code is set, and every one that is set must match.
type Rule struct {
	// Name identifies the rule in errors, logs, metrics and
	// Status.Reason. Required; unique among the operator's rules. An
	// operator rule named like a shipped rule replaces it.
	Name string
	// Pattern is a regular expression (RE2) searched for in the reply
	// text, case-insensitively. The text is without the reply code and
	// enhanced code.
	Pattern string
	// Status is an enhanced status code (RFC 3463) or a prefix of one:
	// "4.7.28" matches 4.7.28 only; "4.7" or "4.7." matches 4.7.x; "4"
	// matches class 4. Components are compared whole ("4.7.2" does not
	// match 4.7.28).
	Status string
	// Code is a reply code (400-599) the reply must have; 0 = any.
	Code int
	// Action is ActionSlow, ActionSuspend, ActionBounce or ActionNone.
	Action string
	// Factor is the slow action's scale, 0 < Factor < 1; unset for the
	// other actions.
	Factor float64
	// Duration is how long slow and suspend last before the site returns
	// to normal on its own; unset for bounce and none.
	Duration time.Duration
}

// compiledRule is a validated Rule ready for Match.
type compiledRule struct {
	rule *Rule
	re   *regexp.Regexp // nil: no pattern
	lits [][]byte       // one of them is in every match of re; nil: unknown (see prefilter.go)
	// litsExact: re matches exactly the texts that contain one of lits.
	litsExact bool
	code      int
	status    string // "" none; "4.7.28" exact; "4.7." prefix
	exact     bool
}

// compileRule validates r and prepares it for Match; problems are added
// to errs under label, the path of the rule ("rules[2]").
func compileRule(label string, r *Rule, errs *Errors) (compiledRule, bool) {
	n := len(*errs)
	c := compiledRule{rule: r, code: r.Code}
	if r.Name == "" {
		errs.add(label, "name is required")
	}
	if r.Pattern == "" && r.Status == "" && r.Code == 0 {
		errs.add(label, "set at least one of pattern, status, code")
	}
	if r.Pattern != "" {
		re, err := regexp.Compile("(?i)" + r.Pattern)
		if err != nil {
			errs.add(label+".pattern", "%v", err)
		} else {
			c.re = re
			c.lits, c.litsExact = requiredLiterals(r.Pattern)
		}
	}
	if r.Status != "" {
		s, exact, err := parseStatusPattern(r.Status)
		if err != nil {
			errs.add(label+".status", "%v", err)
		}
		c.status, c.exact = s, exact
		if err == nil && r.Code != 0 && s[0] != byte('0'+r.Code/100) {
			errs.add(label, "status %q can never come with code %d", r.Status, r.Code)
		}
	}
	if r.Code != 0 && (r.Code < 400 || r.Code > 599) {
		errs.add(label+".code", "%d is not a 4xx or 5xx reply code", r.Code)
	}
	if r.Duration < 0 {
		errs.add(label+".duration", "%v is negative", r.Duration)
	}
	switch r.Action {
	case ActionSlow:
		if !(r.Factor > 0 && r.Factor < 1) {
			errs.add(label+".factor", "%v is not between 0 and 1 (exclusive)", r.Factor)
		}
		if r.Duration == 0 {
			errs.add(label+".duration", "required for action slow")
		}
	case ActionSuspend:
		if r.Factor != 0 {
			errs.add(label+".factor", "only for action slow")
		}
		if r.Duration == 0 {
			errs.add(label+".duration", "required for action suspend")
		}
	case ActionBounce, ActionNone:
		if r.Factor != 0 {
			errs.add(label+".factor", "only for action slow")
		}
		if r.Duration != 0 {
			errs.add(label+".duration", "only for actions slow and suspend")
		}
	case "":
		errs.add(label+".action", "required: slow, suspend, bounce or none")
	default:
		errs.add(label+".action", "%q is not one of slow, suspend, bounce, none", r.Action)
	}
	return c, len(*errs) == n
}

// parseStatusPattern validates an enhanced status code or prefix and
// returns it in the form match uses: the full code when exact, else the
// prefix ending in ".".
func parseStatusPattern(s string) (string, bool, error) {
	t := strings.TrimSuffix(s, ".")
	parts := strings.Split(t, ".")
	if len(parts) > 3 {
		return "", false, fmt.Errorf("%q has more than three components", s)
	}
	for i, p := range parts {
		limit := 999
		if i == 0 {
			limit = 9
		}
		n, err := strconv.Atoi(p)
		if err != nil || len(p) > 3 || n < 0 || n > limit || p[0] == '+' || p[0] == '-' {
			return "", false, fmt.Errorf("%q is not an enhanced status code (such as 4.7.28) or a prefix of one (4.7.)", s)
		}
	}
	switch parts[0] {
	case "2", "4", "5":
	default:
		return "", false, fmt.Errorf("%q: class must be 2, 4 or 5", s)
	}
	if len(parts) == 3 {
		return t, true, nil
	}
	return t + ".", false, nil
}

// matchesCodes reports whether the reply matches the code and status
// conditions of c.
func (c *compiledRule) matchesCodes(code int, enhanced string) bool {
	if c.code != 0 && c.code != code {
		return false
	}
	if c.status != "" {
		if c.exact {
			if enhanced != c.status {
				return false
			}
		} else if !strings.HasPrefix(enhanced, c.status) {
			return false
		}
	}
	return true
}

// Match returns the first rule (operator rules first, then the shipped
// ones) that matches a reply, or nil when none does or the first that
// does has action none. code is the reply code (0 for a local failure),
// enhanced the enhanced status code ("" if none), text the reply text. When
// code is 0 or enhanced is "", they are taken from the start of text if it
// begins with them ("421-4.7.28 ..." or "4.7.28 ..."). The returned Rule is
// shared: do not modify it. Match is safe for concurrent use and does not
// allocate.
func (s *Shaper) Match(code int, enhanced, text string) *Rule {
	if code == 0 || enhanced == "" {
		c, e, rest := leadingCodes(text)
		if code == 0 && c != 0 {
			code = c
		}
		if enhanced == "" && e != "" {
			enhanced = e
		}
		if c != 0 || e != "" {
			text = rest
		}
	}
	// The text is lower-cased once, for the first pattern that has a
	// prefilter (see prefilter.go).
	var scratch [512]byte
	lower, ascii, lowered := scratch[:0], false, false
	for i := range s.rules {
		c := &s.rules[i]
		if !c.matchesCodes(code, enhanced) {
			continue
		}
		if c.re != nil {
			if c.lits != nil && !lowered {
				lower, ascii = lowerASCII(lower, text)
				lowered = true
			}
			if !c.textMatches(text, lower, ascii) {
				continue
			}
		}
		if c.rule.Action == ActionNone {
			return nil
		}
		return c.rule
	}
	return nil
}

// textMatches runs the pattern of c on text; lower is text lower-cased,
// valid when ascii.
func (c *compiledRule) textMatches(text string, lower []byte, ascii bool) bool {
	if c.lits != nil && ascii {
		if !mayMatch(c.lits, lower) {
			return false
		}
		if c.litsExact {
			return true
		}
	}
	return c.re.MatchString(text)
}

// leadingCodes takes a reply code ("421 " or "421-") and an enhanced
// status code ("4.7.28 ") off the start of text, when present.
func leadingCodes(text string) (code int, enhanced, rest string) {
	rest = text
	if len(rest) >= 4 && isDigit(rest[0]) && isDigit(rest[1]) && isDigit(rest[2]) && (rest[3] == ' ' || rest[3] == '-') {
		code = int(rest[0]-'0')*100 + int(rest[1]-'0')*10 + int(rest[2]-'0')
		rest = rest[4:]
	} else if len(rest) == 3 && isDigit(rest[0]) && isDigit(rest[1]) && isDigit(rest[2]) {
		return int(rest[0]-'0')*100 + int(rest[1]-'0')*10 + int(rest[2]-'0'), "", ""
	}
	// class "." subject(1-3 digits) "." detail(1-3 digits), then space or end.
	if len(rest) >= 2 && (rest[0] == '2' || rest[0] == '4' || rest[0] == '5') && rest[1] == '.' {
		i := 2
		for part := 0; part < 2; part++ {
			j := i
			for j < len(rest) && j-i < 3 && isDigit(rest[j]) {
				j++
			}
			if j == i {
				return code, "", rest
			}
			i = j
			if part == 0 {
				if i >= len(rest) || rest[i] != '.' {
					return code, "", rest
				}
				i++
			}
		}
		if i == len(rest) {
			return code, rest, ""
		}
		if rest[i] == ' ' {
			return code, rest[:i], rest[i+1:]
		}
	}
	return code, "", rest
}

func isDigit(b byte) bool { return b >= '0' && b <= '9' }
