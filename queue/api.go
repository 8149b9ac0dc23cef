package queue

import "time"

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
	// Held is set while an operator holds the recipient (Spool.Hold): it
	// is not delivered until released.
	Held bool
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
	Class    string // bounce class for failures: "hard" or "soft" ("" for an operator bounce)
	Reason   string // bounce reason for failures (userunknown, mailboxfull, ..., ReasonOperator)
}

// ReasonOperator is the reason of a recipient an operator bounced
// (Spool.Bounce): final, and no verdict on the address, so its class is
// neither hard nor soft and list hygiene does not count it.
const ReasonOperator = "operator"

// Selector picks queued recipients for Flush, Bounce, Delete, Hold,
// Release and List: those that match every non-empty field. IDs matches
// the recipients of any of those messages (typed IDs are normalised, see
// NormalizeID); Recipient is an address (compared without regard to case)
// or "@domain"; Site matches the site a SiteOf function names for the
// recipient's domain. All, alone, matches every recipient: Bounce, Delete,
// Hold and Release refuse an empty selector, so that "everything" is said
// on purpose.
type Selector struct {
	IDs       []string `json:"ids,omitempty"`
	Recipient string   `json:"recipient,omitempty"`
	Site      string   `json:"site,omitempty"`
	Domain    string   `json:"domain,omitempty"`
	Sender    string   `json:"sender,omitempty"`
	Campaign  string   `json:"campaign,omitempty"`
	All       bool     `json:"all,omitempty"`
}

// Empty reports whether sel names nothing, not even All.
func (sel Selector) Empty() bool {
	return len(sel.IDs) == 0 && sel.Recipient == "" && sel.Site == "" && sel.Domain == "" &&
		sel.Sender == "" && sel.Campaign == "" && !sel.All
}

// Summary describes the queued recipients of one group (see Summaries).
type Summary struct {
	Key        string    `json:"key"`
	Recipients int       `json:"recipients"`
	Messages   int       `json:"messages"`
	Oldest     time.Time `json:"oldest,omitzero"`      // receipt time of its oldest message
	LastError  string    `json:"last_error,omitempty"` // of its most recently tried recipient
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
	// EventRejected is a command a listener refused (Postfix's
	// "NOQUEUE: reject"): MAIL, RCPT or DATA, with the reply. Nothing was
	// queued, so it has no ID.
	EventRejected EventKind = "rejected"

	// The events of list hygiene (drover/policy): a recipient accepted
	// and dropped because it is suppressed (or refused at DATA, when the
	// list named in the header suppresses it), an unsubscribe, a
	// confirmed bounce (the address suppressed for every sender), an
	// engagement reported through the API (opened, clicked: Reason), and
	// a suppression an admin removed, and an entry policy made by itself
	// (a complaint's, a sunset's). Reason, Scope, List and Source say
	// which entry.
	EventSuppressed         EventKind = "suppressed"
	EventSuppressionAdded   EventKind = "suppression-added"
	EventUnsubscribed       EventKind = "unsubscribed"
	EventConfirmedBounce    EventKind = "confirmed-bounce"
	EventEngaged            EventKind = "engaged"
	EventSuppressionRemoved EventKind = "suppression-removed"
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
	// MessageID is the Message-ID header of the message received, or of
	// the message an asynchronous report returned, when it named one.
	MessageID string `json:"message_id,omitempty"`

	// The session of a received or rejected event: the client's IP
	// address, its HELO name, the AUTH login, the TLS version ("TLS1.3",
	// "" without TLS) and the listener's address.
	ClientIP string `json:"client_ip,omitempty"`
	Helo     string `json:"helo,omitempty"`
	Login    string `json:"login,omitempty"`
	TLS      string `json:"tls,omitempty"`
	Listener string `json:"listener,omitempty"`
	// RecipientAddrs are the addresses of a received message's recipients.
	RecipientAddrs []string `json:"recipients,omitempty"`
	// Command is the refused command of a rejected event: MAIL, RCPT or
	// DATA; Code, Enhanced and Text are the reply.
	Command string `json:"command,omitempty"`
	// DSN is the kind of the notice a received event is, when Drover made
	// it: DSNFailure or DSNDelay; OriginalID is the ID of the message it
	// reports on.
	DSN        string `json:"dsn,omitempty"`
	OriginalID string `json:"original_id,omitempty"`
	// Scope and Source of a policy event's suppression entry: global,
	// sender or list; what caused it (see policy.Entry).
	Scope  string `json:"scope,omitempty"`
	Source string `json:"source,omitempty"`
}

// The kinds of DSN Drover makes (Event.DSN).
const (
	DSNFailure = "failure"
	DSNDelay   = "delay"
)

// Failed is a recipient that failed for good (bounced or expired), handed
// to Options.OnFailure before its record is removed.
type Failed struct {
	Recipient Recipient
	Result    Result
	Expired   bool
}
