package mtasts

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

// Mode is a policy's mode (RFC 8461 §5).
type Mode string

// The three modes of RFC 8461.
const (
	// Enforce: never deliver to an MX outside the policy or without
	// verified TLS.
	Enforce Mode = "enforce"
	// Testing: deliver anyway, but report what enforce mode would refuse.
	Testing Mode = "testing"
	// None: the domain withdrew its policy; nothing is checked.
	None Mode = "none"
)

// MaxPolicySize is the largest policy body accepted (RFC 8461 §3.3: 64 KiB).
const MaxPolicySize = 64 << 10

// maxMaxAge is the largest max_age allowed (RFC 8461 §3.2), in seconds.
const maxMaxAge = 31557600

// ErrInvalidPolicy is wrapped by every error of ParsePolicy.
var ErrInvalidPolicy = errors.New("mtasts: invalid policy")

// Policy is a domain's MTA-STS policy. Policies returned by a Cache are
// shared between goroutines and must not be modified.
type Policy struct {
	// Domain is the policy domain (set by Cache; empty from ParsePolicy).
	Domain string
	// Mode is Enforce, Testing or None.
	Mode Mode
	// MX lists the allowed MX host patterns, lower case, without a trailing
	// dot; "*.example.com" matches exactly one leftmost label.
	MX []string
	// MaxAge is how long the policy may be applied after it was fetched.
	MaxAge time.Duration
	// ID is the id of the TXT record the policy was fetched under (set by
	// Cache).
	ID string
	// Fetched is when the policy was fetched (set by Cache).
	Fetched time.Time
}

// expires returns the instant after which p must no longer be applied.
func (p *Policy) expires() time.Time { return p.Fetched.Add(p.MaxAge) }

// Match reports whether mxHost matches one of the policy's MX patterns
// (RFC 8461 §4.1): an exact name, or "*.suffix" for a name made of exactly
// one more label before suffix. Case and a trailing dot do not matter. A nil
// policy matches nothing; use Check to decide whether to deliver.
func (p *Policy) Match(mxHost string) bool {
	if p == nil {
		return false
	}
	host := normalizeName(mxHost)
	for _, pattern := range p.MX {
		pattern = normalizeName(pattern)
		if suffix, ok := strings.CutPrefix(pattern, "*."); ok {
			label, rest, found := strings.Cut(host, ".")
			if found && label != "" && rest == suffix {
				return true
			}
		} else if host == pattern {
			return true
		}
	}
	return false
}

// Reasons for a policy violation, wrapped by Violation.
var (
	ErrMXNotInPolicy = errors.New("MX not in MTA-STS policy")
	ErrNoValidTLS    = errors.New("no valid TLS")
)

// Violation is a delivery to MX that the policy of Domain does not allow.
// Err is ErrMXNotInPolicy or ErrNoValidTLS.
type Violation struct {
	Domain string
	MX     string
	Mode   Mode
	Err    error
}

// Error names the domain, the mode, the MX and the reason.
func (v *Violation) Error() string {
	return fmt.Sprintf("mta-sts policy of %s (%s): %s: %v", v.Domain, v.Mode, v.MX, v.Err)
}

// Unwrap returns the reason, for errors.Is.
func (v *Violation) Unwrap() error { return v.Err }

// Temporary reports true: RFC 8461 §5 treats a policy failure as a
// temporary delivery failure (the policy or the MX may be fixed later).
func (v *Violation) Temporary() bool { return true }

// Violation returns what is wrong with delivering to mxHost, in Enforce and
// Testing mode alike. tlsOK tells that the connection completed STARTTLS
// with a certificate valid for mxHost (RFC 8461 §4.2: it names mxHost,
// possibly by a wildcard, chains to a trusted root and is not expired). It
// returns nil when nothing is wrong, in None mode, or when p is nil. Use it to report testing-mode
// failures; use Check to decide.
func (p *Policy) Violation(mxHost string, tlsOK bool) *Violation {
	if p == nil || (p.Mode != Enforce && p.Mode != Testing) {
		return nil
	}
	var reason error
	switch {
	case !p.Match(mxHost):
		reason = ErrMXNotInPolicy
	case !tlsOK:
		reason = ErrNoValidTLS
	default:
		return nil
	}
	return &Violation{Domain: p.Domain, MX: mxHost, Mode: p.Mode, Err: reason}
}

// Check returns nil when mail may be delivered to mxHost (see Violation for
// tlsOK), and the *Violation otherwise; only Enforce mode refuses. A nil
// policy allows everything.
func (p *Policy) Check(mxHost string, tlsOK bool) error {
	if v := p.Violation(mxHost, tlsOK); v != nil && v.Mode == Enforce {
		return v
	}
	return nil
}

// ParsePolicy parses a policy file (RFC 8461 §3.2). Domain, ID and Fetched
// are left empty. Every error wraps ErrInvalidPolicy and names the line.
func ParsePolicy(body []byte) (*Policy, error) {
	if len(body) > MaxPolicySize {
		return nil, fmt.Errorf("%w: %d bytes, over the limit of %d", ErrInvalidPolicy, len(body), MaxPolicySize)
	}
	p := &Policy{}
	var haveVersion, haveMode, haveMaxAge bool
	lines := strings.Split(string(body), "\n")
	for i, line := range lines {
		line = strings.TrimSuffix(line, "\r")
		if strings.Trim(line, " \t") == "" {
			continue
		}
		fail := func(format string, args ...any) (*Policy, error) {
			return nil, fmt.Errorf("%w: line %d: %s", ErrInvalidPolicy, i+1, fmt.Sprintf(format, args...))
		}
		key, value, ok := strings.Cut(line, ":")
		if !ok {
			return fail("no colon in %q", line)
		}
		value = strings.Trim(value, " \t")
		switch key {
		case "version":
			if haveVersion {
				return fail("version repeated")
			}
			if value != "STSv1" {
				return fail("version %q is not STSv1", value)
			}
			haveVersion = true
		case "mode":
			if haveMode {
				return fail("mode repeated")
			}
			switch m := Mode(value); m {
			case Enforce, Testing, None:
				p.Mode = m
			default:
				return fail("mode %q is not enforce, testing or none", value)
			}
			haveMode = true
		case "max_age":
			if haveMaxAge {
				return fail("max_age repeated")
			}
			if value == "" || len(value) > 10 || strings.Trim(value, "0123456789") != "" {
				return fail("max_age %q is not a number of seconds", value)
			}
			secs, _ := strconv.ParseInt(value, 10, 64) // ≤ 10 digits: no overflow
			if secs > maxMaxAge {
				return fail("max_age %d is over the maximum of %d", secs, maxMaxAge)
			}
			p.MaxAge = time.Duration(secs) * time.Second
			haveMaxAge = true
		case "mx":
			pattern := normalizeName(value)
			if !validHostname(strings.TrimPrefix(pattern, "*.")) {
				return fail("mx %q is not a host name or *.domain pattern", value)
			}
			p.MX = append(p.MX, pattern)
		default:
			if !validExtName(key) {
				return fail("field name %q is invalid", key)
			}
			if !validExtValue(value) {
				return fail("value of %q is empty or has control characters", key)
			}
		}
	}
	switch {
	case !haveVersion:
		return nil, fmt.Errorf("%w: no version field", ErrInvalidPolicy)
	case !haveMode:
		return nil, fmt.Errorf("%w: no mode field", ErrInvalidPolicy)
	case !haveMaxAge:
		return nil, fmt.Errorf("%w: no max_age field", ErrInvalidPolicy)
	case p.Mode != None && len(p.MX) == 0:
		return nil, fmt.Errorf("%w: mode %s without mx field", ErrInvalidPolicy, p.Mode)
	}
	return p, nil
}

// normalizeName lower-cases an ASCII host name and drops one trailing dot.
func normalizeName(s string) string {
	return strings.ToLower(strings.TrimSuffix(s, "."))
}

// validHostname reports whether s is a lower-case LDH host name (RFC 5321
// Domain): labels of 1–63 letters, digits and inner hyphens, at most 253
// bytes in all.
func validHostname(s string) bool {
	if s == "" || len(s) > 253 {
		return false
	}
	for label := range strings.SplitSeq(s, ".") {
		if label == "" || len(label) > 63 || label[0] == '-' || label[len(label)-1] == '-' {
			return false
		}
		for i := 0; i < len(label); i++ {
			c := label[i]
			if !isLowerAlnum(c) && c != '-' {
				return false
			}
		}
	}
	return true
}

func isLowerAlnum(c byte) bool { return c >= 'a' && c <= 'z' || c >= '0' && c <= '9' }

func isAlnum(c byte) bool { return isLowerAlnum(c) || c >= 'A' && c <= 'Z' }

// validExtName checks an extension field name, in a policy (RFC 8461 §3.2
// sts-policy-ext-name) or a TXT record (§3.1 sts-ext-name): a letter or
// digit, then up to 31 letters, digits, "_", "-" or ".".
func validExtName(s string) bool {
	if s == "" || len(s) > 32 || !isAlnum(s[0]) {
		return false
	}
	for i := 1; i < len(s); i++ {
		if c := s[i]; !isAlnum(c) && c != '_' && c != '-' && c != '.' {
			return false
		}
	}
	return true
}

// validExtValue checks a policy extension value (RFC 8461 §3.2
// sts-policy-ext-value, already trimmed): non-empty UTF-8 without control
// characters.
func validExtValue(s string) bool {
	if s == "" || !utf8.ValidString(s) {
		return false
	}
	for _, r := range s {
		if r < 0x20 || r == 0x7f {
			return false
		}
	}
	return true
}
