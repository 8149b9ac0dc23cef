package queue

import (
	"context"
	"time"

	"drover/queue/shaping"
)

// Message is the envelope of one queued message, stored once beside its body.
type Message struct {
	ID         string    // queue id: unique, URL-safe, roughly time-ordered
	Sender     string    // configured sender (account) that submitted it
	ReturnPath string    // envelope MAIL FROM; "" is the null sender (DSNs)
	EnvID      string    // DSN ENVID (RFC 3461), as given
	Ret        string    // DSN RET: "FULL", "HDRS" or ""
	WantDSN    bool      // the sender wants DSNs for failed recipients
	Stream     string    // X-Drover-Stream (marketing, transactional, ...)
	Campaign   string    // X-Drover-Campaign
	List       string    // X-Drover-List
	Flow       string    // X-Drover-Flow
	ClientAddr string    // submitting client's IP address
	Received   time.Time // when the message was accepted
	Size       int       // body size in bytes
}

// NewRecipient is one recipient as given at submission.
type NewRecipient struct {
	Addr   string // address, as in RCPT TO
	Notify string // DSN NOTIFY parameter as given ("" = default)
	ORCPT  string // DSN ORCPT parameter as given ("" = none)
}

// Recipient is the small per-recipient record of a queued message.
type Recipient struct {
	Index       int    // position of the recipient in its message
	Addr        string // address
	Domain      string // lower-cased domain of Addr: the destination key
	Notify      string
	ORCPT       string
	Attempts    int       // delivery attempts made so far
	NextAttempt time.Time // when it is due next
	LastError   string    // last temporary failure, "" if none
	LastAttempt time.Time // when it was last tried, zero if never

	// DelayNotified is set once Options.OnDelay has been called for the
	// recipient (it is called at most once per recipient).
	DelayNotified bool
}

// Status is the outcome of one delivery attempt for one recipient.
type Status int

const (
	Temporary Status = iota // try again later (the zero value: errors are temporary unless proven permanent)
	Delivered               // the remote accepted the recipient
	Permanent               // the remote refused the recipient for good
)

// Result is the outcome of a delivery attempt for one recipient.
type Result struct {
	Status   Status
	Code     int    // SMTP reply code, 0 if the failure was local (DNS, connect)
	Enhanced string // enhanced status code "5.1.1", "" if none
	Text     string // reply text or local error text, one line
	Remote   string // remote host that answered, if any
	Class    string // bounce class for failures: "hard" or "soft"
	Reason   string // bounce reason for failures (userunknown, mailboxfull, ...)
}

// Courier opens connections to a destination. The queue calls it from its
// delivery workers; it must be safe for concurrent use.
type Courier interface {
	// Open connects to the mail servers of dest (a lower-cased recipient
	// domain) under lim, the limits of dest (Limits.TLS and Limits.Pool are
	// the courier's to apply). An error whose Permanent() method returns
	// true fails every recipient waiting for dest; every other error is
	// temporary. An error with a Result() Result method (here and from
	// Deliver) gives the result to record for the recipients, SMTP reply
	// included; its reply is also matched against Options.Rules.
	Open(ctx context.Context, dest string, lim Limits) (Conn, error)
}

// Conn is one open connection to a destination, reused for many messages.
type Conn interface {
	// Deliver sends one message to rcpts (all of the same destination) and
	// returns one Result per recipient, in order. An error from Deliver means
	// the connection is no longer usable; the results still apply.
	Deliver(ctx context.Context, msg *Message, rcpts []Recipient, body []byte) ([]Result, error)
	Close() error
}

// Site is a set of destinations that share one set of limits: the domains
// whose MX hosts are the same set (every Google-hosted domain is one site),
// or the domains sent through one route.
type Site struct {
	Name string   // readable and stable: shown in metrics and queue listings
	MX   []string // the MX hosts (or the route) that define it, for display
}

// Limits are the delivery limits of a site and of a destination. The queue
// asks Options.Limits for both: with dest "" for the site as a whole, whose
// MaxConnections, MaxMessageRate and MaxConnectionRate are shared by all
// its domains; with the domain for the rest (and for the courier).
type Limits struct {
	MaxConnections           int           // concurrent connections (site: over all its domains)
	MaxMessagesPerConnection int           // messages before a connection is closed and reopened
	MaxRecipientsPerMessage  int           // recipients per transaction
	RetryInterval            time.Duration // first retry delay; doubles per attempt, with jitter
	MaxRetryInterval         time.Duration // cap of the retry delay
	MaxAge                   time.Duration // after this a recipient fails as expired
	MaxMessageRate           float64       // transactions per second over the site, 0 = unlimited
	MaxConnectionRate        float64       // connections opened per second over the site, 0 = unlimited
	TLS                      string        // TLS mode, for the courier ("" = its default)
	Pool                     string        // source IP pool, for the courier ("" = its default)
}

// RuleMatcher maps a remote reply to an adaptive-backoff rule, nil when no
// rule applies (shaping.Shaper implements it). It must be safe for
// concurrent use and cheap: it is called for every failed recipient with a
// remote reply.
type RuleMatcher interface {
	Match(code int, enhanced, text string) *shaping.Rule
}

// SiteStatus is the live state of a site, kept in memory.
type SiteStatus struct {
	Name           string    `json:"name"`
	MX             []string  `json:"mx,omitempty"`
	Domains        int       `json:"domains"`                   // destinations known to belong to it
	Ready          int       `json:"ready"`                     // recipients in memory waiting for a connection
	Connections    int       `json:"connections"`               // open connections
	MaxConnections int       `json:"max_connections"`           // effective: configured × Factor, at least 1
	MessageRate    float64   `json:"message_rate,omitempty"`    // effective, per second; 0 = unlimited
	ConnectionRate float64   `json:"connection_rate,omitempty"` // effective, per second; 0 = unlimited
	Factor         float64   `json:"factor"`                    // 1, or the scale of a slow rule in force
	SlowUntil      time.Time `json:"slow_until,omitzero"`
	Suspended      bool      `json:"suspended,omitempty"`      // by a rule or by an operator
	SuspendedUntil time.Time `json:"suspended_until,omitzero"` // zero while suspended: until resumed
	Reason         string    `json:"reason,omitempty"`         // rule or operator reason of the state
}

// Suspension is an operator's hold on a site or a domain.
type Suspension struct {
	Kind   string    `json:"kind"` // "site" or "domain"
	Name   string    `json:"name"`
	Until  time.Time `json:"until,omitzero"` // zero: until Resume
	Reason string    `json:"reason,omitempty"`
}

// Selector picks queued recipients for Flush, Bounce and Delete: those
// that match every non-empty field. Site matches the site a domain was
// last seen to belong to; a domain not attempted since the spool opened
// belongs to the site named like itself.
type Selector struct {
	Site     string `json:"site,omitempty"`
	Domain   string `json:"domain,omitempty"`
	Sender   string `json:"sender,omitempty"`
	Campaign string `json:"campaign,omitempty"`
}

// Summary describes the queued recipients of one group (see Summaries).
type Summary struct {
	Key        string      `json:"key"`
	Recipients int         `json:"recipients"`
	Messages   int         `json:"messages"`
	Oldest     time.Time   `json:"oldest,omitzero"`      // receipt time of its oldest message
	LastError  string      `json:"last_error,omitempty"` // of its most recently tried recipient
	Site       *SiteStatus `json:"site,omitempty"`       // by site and by domain: the state of the (domain's) site, if known
	Suspension *Suspension `json:"suspension,omitempty"` // by site and by domain: an operator's hold on the group
}

// EventKind names what happened to a message or recipient.
type EventKind string

const (
	EventReceived  EventKind = "received"
	EventDelivered EventKind = "delivered"
	EventDeferred  EventKind = "deferred"
	EventBounced   EventKind = "bounced"
	EventExpired   EventKind = "expired"
	// EventComplained is a feedback report (ARF) about a recipient,
	// received by the inbound listener.
	EventComplained EventKind = "complained"
	// EventDeleted is a recipient removed by an operator (Spool.Delete),
	// without a DSN: one event per recipient.
	EventDeleted EventKind = "deleted"
)

// Event is one entry of the event stream. Consumers must not block.
type Event struct {
	Kind       EventKind     `json:"event"`
	Time       time.Time     `json:"time"`
	MsgID      string        `json:"id"`
	Sender     string        `json:"sender,omitempty"`
	ReturnPath string        `json:"from,omitempty"`
	Recipient  string        `json:"rcpt,omitempty"`
	Recipients int           `json:"rcpts,omitempty"` // received: number of recipients
	Size       int           `json:"size,omitempty"`
	Stream     string        `json:"stream,omitempty"`
	Campaign   string        `json:"campaign,omitempty"`
	List       string        `json:"list,omitempty"`
	Flow       string        `json:"flow,omitempty"`
	Attempt    int           `json:"attempt,omitempty"`
	Code       int           `json:"code,omitempty"`
	Enhanced   string        `json:"status,omitempty"`
	Text       string        `json:"reply,omitempty"`
	Remote     string        `json:"remote,omitempty"`
	Class      string        `json:"class,omitempty"`
	Reason     string        `json:"reason,omitempty"`
	Delay      time.Duration `json:"delay_ns,omitempty"` // delivered/bounced/expired: time since received
	NextRetry  time.Time     `json:"next_retry,omitzero"`
	// FeedbackType is the ARF Feedback-Type of a complained event.
	FeedbackType string `json:"feedback_type,omitempty"`
	// MessageID is the Message-ID header of the message an asynchronous
	// report returned, when it named one.
	MessageID string `json:"message_id,omitempty"`
}

// Failed is a recipient that failed for good (bounced or expired), handed
// to Options.OnFailure before its record is removed.
type Failed struct {
	Recipient Recipient
	Result    Result
	Expired   bool
}
