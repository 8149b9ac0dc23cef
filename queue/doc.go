// Package queue is Drover's durable spool: it stores accepted messages in
// Pebble, schedules their recipients, keeps bounded ready queues per
// destination, runs the delivery workers (through a Courier) under the
// shaping limits of each site, backs off adaptively on throttling replies,
// retries with backoff, expires old recipients, sends delay notices,
// answers operator commands and reports what happened as events.
//
// # Storage
//
// One Pebble database per node. The queue owns every key that starts with
// the byte 'q'; other packages keep their data in the same database (see
// Spool.DB) under prefixes of their own. Message IDs are 16 characters of
// lower-case Crockford base32 (48-bit millisecond timestamp, 32-bit
// counter): unique, URL-safe, and sorted by time. idx is a recipient's
// position in its message, a big-endian uint32; due is Unix nanoseconds,
// a big-endian uint64.
//
//	qm<id>                           message envelope (Message without ID)
//	qb<id>                           body, written once
//	qr<id><idx>                      recipient record (Recipient without Index)
//	qs<dest>\x00<due><id><idx>       schedule entry; value: attempt count
//
// dest is the lower-cased domain of the recipient. Records are a version
// byte followed by varints and length-prefixed strings; recipient records
// are version 2 (a flags field: the delay notice was sent), and version 1
// records are still read. Sites, shaping state and suspensions are not
// stored: they live in memory. The schedule is keyed by destination, then
// time: the scheduler loads the due recipients
// of one destination with a forward scan from a cursor that moves back only
// when a recipient goes back to the schedule, so a backlog is not rescanned
// per message and the tombstones of delivered recipients are passed once,
// not on every load. qm, qb and qs keys are written once and removed with
// SingleDelete; qr records are rewritten on each retry and removed with
// Delete. New recipients go straight to the ready queues (and wake a
// worker) when there is room, else they wake the scheduler; it also wakes
// when a ready queue runs half empty, on a reschedule earlier than its
// timer and at the next due time, and never polls.
//
// # Guarantees
//
//   - Enqueue returns only after one batch holding the envelope, the body,
//     every recipient record and schedule entry is committed with
//     pebble.Sync (concurrent callers share one WAL sync), so a 250 reply
//     sent after it survives kill -9 and power loss. Options.NoSync is an
//     explicit weaker mode that does not wait for the disk.
//   - Delivery is at least once. Outcomes are written without sync: after
//     a crash a recipient may be delivered, bounced (OnFailure) or retried
//     once more, never lost. A recipient in flight keeps its schedule entry,
//     so after a restart it is due at once, without waiting for a lease.
//   - OnFailure sees the recipients that failed for good before their
//     records are deleted; if it fails they stay queued and it is retried.
//   - Memory does not grow with the queue: Open counts what is stored
//     without loading it, and only due recipients are held in memory: at
//     most ReadyCapacity waiting per destination, and MaxInMemory waiting
//     or in flight over all destinations. Bodies are cached up to
//     BodyCacheBytes; the others are read back when delivered. The state
//     of a destination is a few hundred bytes, dropped when it has nothing
//     queued; so is a site's, once it has no destination, connection or
//     adaptive state left. Summaries, Flush, Bounce and Delete scan the
//     recipient records with memory proportional to the groups (or to one
//     batch of 256 recipients, or one message's if more), not the queue.
//   - Shaping limits are exact: a site never has more connections open or
//     being opened than its effective MaxConnections (a slot is given back
//     only after Conn.Close returned), except for the connections that
//     were open when the maximum was lowered, which close after their
//     current message; and over any window of length T it starts at most
//     1 + rate×T transactions (Conn.Deliver calls) and connections
//     (Courier.Open calls).
//   - OnDelay is called at most once per recipient, across restarts (the
//     mark is written with the deferral; a crash between the hook and the
//     write may repeat it, as for OnFailure).
//
// # Sites and delivery
//
// Recipients are scheduled and held ready per destination (keys and ready
// queues are per domain), and delivered under the limits of the
// destination's site (Options.SiteOf; every domain hosted at Google is one
// site): its connection slots, its message and connection rates, its
// adaptive state and operator suspension are shared by all its domains.
// The site of a destination is looked up by a delivery worker before each
// connection it opens (never under a lock or in the scheduler, as it may
// wait for DNS); until the first lookup, a destination has one worker.
// Options.Limits is asked for the site as a whole (dest "") and for the
// destination at the same moments, and again by Reconfigure.
//
// Each destination has up to Limits.MaxConnections workers. A worker
// takes a slot of its site before it opens a connection (when none is
// free, the destination queues for one, FIFO among the site's domains,
// and a connection idle at another of its domains gives way); then it
// waits for the site's connection rate and calls Courier.Open with the
// destination's limits; before each transaction it waits for the site's
// message rate (both spaced exactly 1/rate apart: a burst of one; an
// unlimited rate costs one atomic load). It delivers one message at a time
// (all its ready recipients for the destination, up to
// MaxRecipientsPerMessage), reuses the connection for up to
// MaxMessagesPerConnection messages and closes it after
// Options.IdleTimeout without work, or after its current message when the
// site went over its (lowered) maximum, when the destination or its site
// is suspended, or when the destination moved to another site (SiteOf
// answered differently: membership changes apply as connections cycle).
// Rates count Conn.Deliver calls and Courier.Open calls: a courier that
// splits one Deliver into several transactions (one per recipient, for
// VERP) should be given MaxRecipientsPerMessage 1 for the message rate to
// count its transactions.
//
// A temporary failure is retried after RetryInterval * 2^(attempts-1),
// capped at MaxRetryInterval, with ±20% jitter; a recipient older than
// MaxAge at a temporary failure or when due fails as expired (Result:
// Permanent, Code 0, Enhanced 4.4.7, Reason "expired", Text "4.4.7 message
// expired after N attempts: <last error>"). A Courier error with a Result()
// Result method gives the result to record; others become a temporary
// result with the error's text, permanent if the error has a Permanent()
// method that says so. When a connection cannot be opened and no other
// connection to the destination is open, every recipient waiting in its
// ready queue gets the same result. OnEvent gets delivered, deferred,
// bounced, expired and deleted events; received is left to the submitter.
// All goroutines recover and log panics.
//
// # Adaptive backoff
//
// Each failed recipient with a remote reply (and each failed Open whose
// error carries one) is matched against Options.Rules. A slow rule scales
// the site's MaxConnections (rounded down, at least 1) and its rates (an
// unlimited rate stays unlimited) by the rule's factor; a suspend rule
// stops the site: no connection is opened and no transaction started
// until it ends, recipients stay queued (those taken for delivery go back
// unchanged, without an attempt counted), and the scheduler may keep the
// ready queues filled meanwhile (a recipient waiting there expires when it
// is taken, after the suspension). shaping.SiteState decides how actions
// combine and when they end; each one ends on its own, on a timer (the
// wall clock, not Options.Now), and the site's connections come back. A
// bounce rule fails that recipient for good (OnFailure, bounced event),
// even on a 4xx reply, keeping the reply's class and reason. Nothing new
// goes on the event stream for these; they are logged at info level, and
// Sites shows the state.
//
// # Operator control
//
// Suspend and Resume hold a site (all its domains) or one domain, until a
// time or until resumed; Resume of a site also ends its adaptive backoff.
// Suspensions live in memory and end with the process. Flush makes
// matching recipients due now (attempts and backoff kept). Bounce and
// Delete act on the matching recipients, on disk or waiting in a ready
// queue, but skip (and do not count) those in flight; their dry run
// counts what they would do. They pin each recipient in memory as the
// scheduler does, so no delivery or load races them, and write in batches.
// Flush, Bounce and Delete run one at a time, report their Progress (for
// an operator watching a long scan) every 256 recipient records read, and
// stop early when the spool closes.
// A Selector's Site matches the site a domain was last seen to belong to;
// a domain not attempted since the spool opened counts as the site named
// like itself (so does Summaries by site).
//
// # Delay notices
//
// When a recipient is deferred after it has been queued longer than
// Options.DelayNotice, OnDelay is called once for it (with the other such
// recipients of the message and attempt), and the recipient record is
// marked so that it is not called again, across restarts too. The check is
// made at each deferral, so the notice goes out at the first retry after
// DelayNotice.
package queue
