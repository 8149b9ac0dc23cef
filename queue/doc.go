// Package queue is Drover's durable spool: it stores accepted messages in
// Pebble, schedules their recipients, keeps bounded ready queues per
// destination, hands due recipients out for delivery and records the
// outcomes (retries with backoff, expiry, DSN and delay-notice hooks,
// events), keeps the counters, and answers operator commands on what is
// stored. It does not deliver: the delivery engine (queue/engine) takes
// work through a narrow interface:
//
//	Spool.Start(d)          the scheduler starts; d.Ready(dest) says that
//	                        recipients of dest wait in memory, d.Drained(dest)
//	                        that nothing of dest is queued any more
//	Spool.Take(dest, max)   leases the next message's waiting recipients
//	                        (at most max(msg) of them: one transaction)
//	Lease.Todo, Lease.Body  which need an attempt (by Spool.Now); the body
//	Spool.Finish(l, o, r)   records the outcomes under the destination's
//	                        retry policy r
//
// # Storage
//
// One Pebble database per node. The queue owns every key that starts with
// the byte 'q'; other packages keep their data in the same database
// (Spool.DB) under prefixes of their own: drover/policy has 'p'. Every
// level has a bloom filter, as most point reads are for absent keys. Message IDs are 16 characters of
// lower-case Crockford base32 (48-bit millisecond timestamp, 32-bit
// counter): unique, URL-safe, and sorted by time. Enqueue makes one, or
// takes the one a caller got from NewID beforehand (submission names it
// in the Received field), refusing an ID that is stored already. idx is a recipient's
// position in its message, a big-endian uint32; due is Unix nanoseconds,
// a big-endian uint64.
//
//	qm<id>                           message envelope (Message without ID)
//	qb<id>                           body, written once
//	qr<id><idx>                      recipient record (Recipient without Index)
//	qs<dest>\x00<due><id><idx>       schedule entry; value: attempt count
//	qh                               health probe (Check): written with
//	                                 Sync, then deleted
//	qo<kind>\x00<name>               hold of the delivery engine (Hold):
//	                                 kind "site" or "domain" for an
//	                                 operator suspension, "adaptive" for
//	                                 a site's adaptive backoff state
//
// dest is the lower-cased domain of the recipient. Records are a version
// byte followed by varints and length-prefixed strings; recipient records
// are version 2 (a flags field: bit 0, the delay notice was sent; bit 1,
// held by an operator), and version 1 records are still read. A held
// recipient's schedule entry is due at 2^63-2 (the far end of time) and
// its record's next attempt says the same, so the scheduler never loads
// it; Release clears the flag and makes it due now. The schedule is keyed by destination, then
// time: the scheduler loads the due recipients
// of one destination with a forward scan from a cursor that moves back only
// when a recipient goes back to the schedule, so a backlog is not rescanned
// per message and the tombstones of delivered recipients are passed once,
// not on every load. qm, qb and qs keys are written once and removed with
// SingleDelete; qr records are rewritten on each retry and removed with
// Delete. New recipients go straight to the ready queues (and the
// dispatcher is told) when there is room, else they wake the scheduler; it also wakes
// when a ready queue runs half empty, on a reschedule earlier than its
// timer and at the next due time, and never polls.
//
// A hold record is version 1: the suspension's end (varint Unix
// nanoseconds, 0 for none), its reason, then the adaptive state: the
// factor (uvarint of its float64 bits), slowed since, slowed until, the
// slowdown's reason, suspended until, the suspension's reason. Holds,
// PutHold and DeleteHold read and write them (writes with pebble.Sync,
// even under NoSync); when a hold is over is the engine's to decide.
//
// # Guarantees
//
//   - Enqueue returns only after one batch holding the envelope, the body,
//     every recipient record and schedule entry is committed with
//     pebble.Sync (concurrent callers share one WAL sync), so a 250 reply
//     sent after it survives kill -9 and power loss. Options.NoSync is an
//     explicit weaker mode that does not wait for the disk.
//   - Enqueue refuses a message that would leave less than
//     Options.MinFreeSpace free on the spool's filesystem (or that the
//     filesystem refuses: ENOSPC, EDQUOT) with ErrStorageFull, storing
//     nothing, and accepts again by itself once there is room. Deliveries
//     go on meanwhile: the margin is where their writes, the WAL (which
//     Pebble cannot survive failing to write) and flushes go.
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
//   - Counters are changed in one place (counts.move): every queued
//     recipient is in exactly one of Scheduled, Deferred (on disk), Ready
//     (in a ready queue) and InFlight (leased or held by an operator
//     command), and Recipients is their sum.
//   - OnDelay is called at most once per recipient, across restarts (the
//     mark is written with the deferral; a crash between the hook and the
//     write may repeat it, as for OnFailure).
//
// # Retries and expiry
//
// Finish retries a temporary failure after Retry.Interval *
// 2^(attempts-1), capped at Retry.MaxInterval, with ±20% jitter, and a
// retry that would come after Retry.MaxAge is due just past it instead,
// so that the recipient expires (and its DSN goes) at its max age; a
// recipient older than Retry.MaxAge (when Lease.Todo leaves it out, or at
// a temporary failure) fails as expired (Result: Permanent, Code 0,
// Enhanced 4.4.7, Reason "expired", Text "4.4.7 message expired after N
// attempts: <last error>"). A recipient released (Outcome.Release) goes
// back to the schedule unchanged, without an attempt counted. OnEvent gets
// delivered, deferred, bounced, expired and deleted events; received is
// left to the submitter. All goroutines recover and log panics.
//
// # Operator control
//
// List pages through the message records (by ID: time of receipt), oldest
// or newest first, reading one message's recipients at a time. A
// Selector also names message IDs (typed IDs are normalised: NormalizeID)
// and a recipient (an address or @domain); with IDs, commands read only
// those messages' records. Hold marks matching recipients held (written
// with pebble.Sync) and Release makes them due again; Flush skips them.
//
// Flush makes matching recipients due now (attempts and backoff kept).
// Bounce and Delete act on the matching recipients, on disk or waiting in a
// ready queue, but skip (and do not count) those in flight; their dry run
// counts what they would do. They pin each recipient in memory as the
// scheduler does, so no delivery or load races them, and write in batches.
// Flush, Bounce, Delete, Hold and Release run one at a time, report their Progress (for
// an operator watching a long scan) every 256 recipient records read, and
// stop early when the spool closes. A Selector's Site matches the site a
// SiteOf function (the engine's) names for a domain; so does Summaries by
// site. Suspensions of sites and domains are the engine's; the spool
// only stores them (qo).
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
