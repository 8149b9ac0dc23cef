package engine

import (
	"context"

	"drover/queue"
	"drover/queue/shaping"
)

// Plan is how to deliver to one destination, made once per connection by
// the Planner: everything the engine and the courier need, so that
// neither looks anything up again.
type Plan struct {
	// Site names the set of destinations that share SiteLimits and an
	// adaptive state (every Google-hosted domain is one site); MX are the
	// hosts or the route that define it, for display.
	Site string
	MX   []string
	// SiteLimits are the limits of the site as a whole: its
	// MaxConnections, MaxMessageRate and MaxConnectionRate are shared by
	// all its destinations.
	SiteLimits shaping.Limits
	// Limits are the destination's own: connections, messages per
	// connection, recipients per transaction, retries, TLS, source pool.
	Limits shaping.Limits
	// Envelope gives the return path of each transaction and the source
	// pool of each message; nil: msg.ReturnPath for every recipient, in
	// one transaction, from Limits.Pool.
	Envelope Envelope
	// Route is the courier's half of the plan (the hosts to try, with
	// their addresses): the engine hands it to Courier.Open untouched.
	Route any
}

// Planner makes the plan of a destination.
type Planner interface {
	// Plan resolves dest (a lower-cased domain) into its plan. It may
	// block on DNS until ctx ends. An error fails the connection attempt
	// as a Courier.Open error would; the destination keeps the plan it
	// had.
	Plan(ctx context.Context, dest string) (*Plan, error)
	// Refresh returns p with its site and limits recomputed under the
	// configuration in force, without DNS (after a reload).
	Refresh(dest string, p *Plan) *Plan
}

// Envelope decides, per message, what the planner's configuration says
// about senders. Its methods must be cheap and must not block.
type Envelope interface {
	// PerRecipient reports whether each recipient of msg gets its own
	// return path (VERP), and so its own transaction.
	PerRecipient(msg *queue.Message) bool
	// ReturnPath is the envelope sender of msg for r when PerRecipient.
	ReturnPath(msg *queue.Message, r queue.Recipient) string
	// Pool is the source pool of msg's sender, "" for the plan's.
	Pool(msg *queue.Message) string
}

// Courier opens connections; it must be safe for concurrent use.
type Courier interface {
	// Open connects to the mail servers of dest as plan says, from the
	// source pool pool. An error that is or wraps an *smtperr.Error gives
	// the result to record for the recipients: its reply and enhanced
	// code (also matched against the adaptive rules), Message as the
	// text, Remote, Class and Reason; any other error is temporary, its
	// text the result's. A permanent error fails every recipient waiting
	// for dest.
	Open(ctx context.Context, dest string, plan *Plan, pool string) (Conn, error)
}

// Conn is one open connection to a destination, reused for many
// transactions by one goroutine at a time.
type Conn interface {
	// Deliver runs one transaction: msg from the return path from to
	// rcpts (all of the same destination), and returns one Result per
	// recipient, in order. An error means the connection is no longer
	// usable; the results still apply.
	Deliver(ctx context.Context, msg *queue.Message, from string, rcpts []queue.Recipient, body []byte) ([]queue.Result, error)
	Close() error
}

// RuleMatcher maps a remote reply to an adaptive-backoff rule, nil when no
// rule applies (shaping.Shaper implements it). It must be safe for
// concurrent use and cheap: it is called for every failed recipient with a
// remote reply.
type RuleMatcher interface {
	Match(code int, enhanced, text string) *shaping.Rule
}

// retryOf is the spool's retry policy of a destination.
func retryOf(l shaping.Limits) queue.Retry {
	return queue.Retry{Interval: l.RetryInterval, MaxInterval: l.MaxRetryInterval, MaxAge: l.MaxAge}
}
