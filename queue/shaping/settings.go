package shaping

import (
	"fmt"
	"strings"
	"time"
)

// TLS modes of Settings.TLS and Limits.TLS.
const (
	TLSOpportunistic = "opportunistic" // STARTTLS when offered, certificate not verified; plain text otherwise
	TLSRequired      = "required"      // STARTTLS with a verified certificate, or no delivery
	TLSMTASTS        = "mta-sts"       // enforce the domain's published MTA-STS policy (RFC 8461); opportunistic without one
	TLSDisabled      = "disabled"      // never STARTTLS (test sinks, broken peers)
)

// Settings are the shaping options of one level (default, provider, site,
// domain). Every field is optional: nil means unset, inherit the level
// below. Pointers let an explicit value be told from an absent one, so an
// explicit 0 connections is an error rather than a silent default, and an
// unlimited rate or the default pool ("") can override a lower level.
// (Go 1.26: new(10) makes a *int.)
type Settings struct {
	// MaxConnections is the number of concurrent connections to the site.
	MaxConnections *int
	// MaxMessagesPerConnection is how many messages one connection carries
	// before it is closed and a new one opened.
	MaxMessagesPerConnection *int
	// MaxRecipientsPerMessage is the number of RCPT per transaction.
	MaxRecipientsPerMessage *int
	// MaxMessageRate bounds the messages (transactions) started per
	// period, over all connections to the site; unlimited by default.
	MaxMessageRate *Rate
	// MaxConnectionRate bounds the connections opened per period.
	MaxConnectionRate *Rate
	// RetryInterval is the first retry delay of a temporary failure; it
	// doubles per attempt up to MaxRetryInterval.
	RetryInterval    *time.Duration
	MaxRetryInterval *time.Duration
	// MaxAge is how long a recipient may stay queued before it expires.
	MaxAge *time.Duration
	// TLS is one of TLSOpportunistic, TLSRequired, TLSMTASTS, TLSDisabled.
	// "dane" is refused: DANE (RFC 7672) is not implemented, and taking it
	// silently as something weaker would promise a protection that is not
	// there.
	TLS *string
	// Pool is the source IP pool to send from; "" is the default pool.
	Pool *string
}

// Limits are the resolved shaping values of one site: every field is set
// (a zero Rate means unlimited, "" Pool the default pool).
type Limits struct {
	MaxConnections           int
	MaxMessagesPerConnection int
	MaxRecipientsPerMessage  int
	MaxMessageRate           Rate
	MaxConnectionRate        Rate
	RetryInterval            time.Duration
	MaxRetryInterval         time.Duration // never below RetryInterval
	MaxAge                   time.Duration
	TLS                      string
	Pool                     string
}

// BuiltinLimits are Drover's one set of default limits: the values used
// for whatever Config.Default leaves unset.
var BuiltinLimits = Limits{
	MaxConnections:           20,
	MaxMessagesPerConnection: 1000,
	MaxRecipientsPerMessage:  100, // RFC 5321 4.5.3.1.8: every server must take 100
	RetryInterval:            5 * time.Minute,
	MaxRetryInterval:         4 * time.Hour,
	MaxAge:                   120 * time.Hour,
	TLS:                      TLSOpportunistic,
}

// apply overlays the set fields of s on l.
func (l *Limits) apply(s *Settings) {
	if s == nil {
		return
	}
	setIf(&l.MaxConnections, s.MaxConnections)
	setIf(&l.MaxMessagesPerConnection, s.MaxMessagesPerConnection)
	setIf(&l.MaxRecipientsPerMessage, s.MaxRecipientsPerMessage)
	setIf(&l.MaxMessageRate, s.MaxMessageRate)
	setIf(&l.MaxConnectionRate, s.MaxConnectionRate)
	setIf(&l.RetryInterval, s.RetryInterval)
	setIf(&l.MaxRetryInterval, s.MaxRetryInterval)
	setIf(&l.MaxAge, s.MaxAge)
	setIf(&l.TLS, s.TLS)
	setIf(&l.Pool, s.Pool)
}

func setIf[T any](dst *T, src *T) {
	if src != nil {
		*dst = *src
	}
}

// validate appends to errs a problem of each set field of s, named
// path.field.
func (s *Settings) validate(path string, errs *Errors) {
	atLeast1 := func(name string, v *int) {
		if v != nil && *v < 1 {
			errs.add(path+"."+name, "%d is less than 1", *v)
		}
	}
	atLeast1("max_connections", s.MaxConnections)
	atLeast1("max_messages_per_connection", s.MaxMessagesPerConnection)
	atLeast1("max_recipients_per_message", s.MaxRecipientsPerMessage)
	rate := func(name string, r *Rate) {
		if r != nil && (r.Count < 0 || r.Per < 0) {
			errs.add(path+"."+name, "negative rate %d per %v", r.Count, r.Per)
		}
	}
	rate("max_message_rate", s.MaxMessageRate)
	rate("max_connection_rate", s.MaxConnectionRate)
	positive := func(name string, d *time.Duration) {
		if d != nil && *d <= 0 {
			errs.add(path+"."+name, "%v is not a positive duration", *d)
		}
	}
	positive("retry_interval", s.RetryInterval)
	positive("max_retry_interval", s.MaxRetryInterval)
	positive("max_age", s.MaxAge)
	if s.RetryInterval != nil && s.MaxRetryInterval != nil && *s.MaxRetryInterval < *s.RetryInterval {
		errs.add(path+".max_retry_interval", "%v is less than retry_interval %v", *s.MaxRetryInterval, *s.RetryInterval)
	}
	if s.TLS != nil {
		switch *s.TLS {
		case TLSOpportunistic, TLSRequired, TLSMTASTS, TLSDisabled:
		case "dane":
			errs.add(path+".tls", "dane is not implemented yet; use mta-sts (enforces published MTA-STS policies) or required")
		default:
			errs.add(path+".tls", "%q is not one of opportunistic, required, mta-sts, disabled", *s.TLS)
		}
	}
}

// Error is one problem New found in a Config.
type Error struct {
	// Path names the entry at fault relative to Config, in the names of
	// the configuration file: "default.max_connections",
	// "providers.google.mx[1]", `domains[" "]`, "rules[2].factor".
	Path string
	// Rule is the name of the rule Path points into; "" for other
	// entries and for a rule without a name.
	Rule string
	// Shipped marks a problem in Config.ShippedProviders or
	// Config.ShippedRules; Path is then relative to those
	// ("providers.google.tls", "rules[3].factor").
	Shipped bool
	// Msg says what is wrong.
	Msg string
}

// Error formats e as "rules[2] (google-rate).factor: MSG", with "shipped "
// in front of a shipped entry.
func (e *Error) Error() string {
	label := e.Path
	if e.Rule != "" {
		if i := strings.IndexByte(label, ']'); i >= 0 {
			label = label[:i+1] + " (" + e.Rule + ")" + label[i+1:]
		}
	}
	if e.Shipped {
		label = "shipped " + label
	}
	return label + ": " + e.Msg
}

// Errors are the problems New found, in a stable order; New returns them
// as its error. Unwrap gives each *Error.
type Errors []*Error

// Error lists the problems, one per line.
func (e Errors) Error() string {
	lines := make([]string, len(e))
	for i, err := range e {
		lines[i] = err.Error()
	}
	return strings.Join(lines, "\n")
}

// Unwrap returns every *Error, for errors.As and errors.Is.
func (e Errors) Unwrap() []error {
	out := make([]error, len(e))
	for i, err := range e {
		out[i] = err
	}
	return out
}

func (e *Errors) add(path, format string, args ...any) {
	*e = append(*e, &Error{Path: path, Msg: fmt.Sprintf(format, args...)})
}

// addAll appends more, each marked with the rule name and whether it is
// shipped.
func (e *Errors) addAll(more Errors, rule string, shipped bool) {
	for _, err := range more {
		err.Rule, err.Shipped = rule, shipped
		*e = append(*e, err)
	}
}

// clone returns s with its own copy of every value.
func (s Settings) clone() Settings {
	s.MaxConnections = clonePtr(s.MaxConnections)
	s.MaxMessagesPerConnection = clonePtr(s.MaxMessagesPerConnection)
	s.MaxRecipientsPerMessage = clonePtr(s.MaxRecipientsPerMessage)
	s.MaxMessageRate = clonePtr(s.MaxMessageRate)
	s.MaxConnectionRate = clonePtr(s.MaxConnectionRate)
	s.RetryInterval = clonePtr(s.RetryInterval)
	s.MaxRetryInterval = clonePtr(s.MaxRetryInterval)
	s.MaxAge = clonePtr(s.MaxAge)
	s.TLS = clonePtr(s.TLS)
	s.Pool = clonePtr(s.Pool)
	return s
}

func clonePtr[T any](p *T) *T {
	if p == nil {
		return nil
	}
	v := *p
	return &v
}
