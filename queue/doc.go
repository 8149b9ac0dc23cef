// Package queue is Drover's durable spool: it stores accepted messages in
// Pebble, schedules their recipients, keeps bounded ready queues per
// destination, runs the delivery workers (through a Courier), retries with
// backoff, expires old recipients and reports what happened as events.
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
// byte followed by varints and length-prefixed strings. The schedule is
// keyed by destination, then time: the scheduler loads the due recipients
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
//     queued.
//
// # Delivery
//
// Each destination has up to Limits.MaxConnections workers; each holds one
// connection from Courier.Open, delivers one message at a time (all its
// ready recipients for the destination, up to MaxRecipientsPerMessage),
// reuses the connection for up to MaxMessagesPerConnection messages and
// closes it after Options.IdleTimeout without work. A temporary failure is
// retried after RetryInterval * 2^(attempts-1), capped at MaxRetryInterval,
// with ±20% jitter; a recipient older than MaxAge at a temporary failure or
// when due fails as expired (Result: Permanent, Code 0, Enhanced 4.4.7,
// Reason "expired", Text "4.4.7 message expired after N attempts: <last
// error>"). A Courier error with a Result() Result method gives the result
// to record; others become a temporary result with the error's text,
// permanent if the error has a Permanent() method that says so. When a
// connection cannot be opened and no other connection to the destination
// is open, every recipient waiting in its ready queue gets the same result.
// OnEvent gets delivered, deferred, bounced and expired events; received is
// left to the submitter. All goroutines recover and log panics.
package queue
