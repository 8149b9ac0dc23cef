// Package engine is Drover's delivery engine: it takes due recipients from
// the spool (queue), runs the delivery workers and their connections under
// the shaping limits of each site, backs off adaptively on throttling
// replies, holds sites and domains for operators, and has the spool record
// every outcome. It is its own package so that the spool owns storage and
// counters alone, and so that everything delivery needs to know comes from
// one place: the Planner.
//
// # The plan
//
// Before each connection to a destination (a lower-cased recipient
// domain), a worker asks the Planner once for the destination's Plan: its
// site (every Google-hosted domain is one site) and MX hosts, the site's
// shared limits and the destination's own (shaping.Limits: connections,
// messages per connection, recipients per transaction, rates, retries,
// TLS mode, source pool), the Envelope (VERP return paths and source pools
// per sender and stream), and the courier's Route (hosts with their
// addresses, MTA-STS policy). The Courier opens connections along the
// route and resolves nothing. When planning fails, the destination keeps
// its previous plan (or one of its own, with shaping.BuiltinLimits) and the
// error fails the connection attempt. Reconfigure asks Planner.Refresh for
// every known destination after a reload, without DNS.
//
// # Workers and limits
//
// The spool tells the engine (Ready) when recipients of a destination wait
// in memory; a worker then takes them with Spool.Take, one transaction at
// a time: up to MaxRecipientsPerMessage recipients of one message, or one
// recipient when the message's sender uses VERP (Envelope.PerRecipient),
// so that every SMTP transaction counts against the message rate and
// MaxMessagesPerConnection. Each destination has up to MaxConnections
// workers; a worker takes a connection slot of its site before it opens a
// connection (when none is free, the destination queues for one, FIFO
// among the site's domains, and a connection idle at another of its domains
// gives way), waits for the site's connection rate, opens, and waits for
// the site's message rate before each transaction. Rates are token buckets
// of burst one (golang.org/x/time/rate), so over any window of length T a
// site starts at most 1 + rate×T transactions and connections; they run on
// the time package's clock, which testing/synctest fakes. A connection is
// reused for up to MaxMessagesPerConnection transactions, closed after
// IdleTimeout without work, after its transaction when the site went over
// its (lowered) maximum, when the destination or its site is suspended,
// when the destination moved to another site, or reopened when the next
// message needs another source pool. A site never has more connections
// open or being opened than its effective MaxConnections (a slot is given
// back only after Conn.Close returned), except for those open when the
// maximum was lowered, which close after their current transaction.
//
// A failed connection with no other connection open to the destination
// fails every recipient waiting in its ready queue with the same result;
// a permanent one (NXDOMAIN, null MX) always does.
//
// # Locks
//
// The spool calls Ready with its lock held, and Ready takes the engine's;
// the engine never calls the spool while it holds its own lock. Writes to
// the Store (suspensions, adaptive states) are ordered by a second lock,
// pmu, taken before the engine's and held across the write, which is made
// once the engine's lock is released; the spool never takes pmu. A worker
// that finds nothing to take compares the destination's signal count
// (dest.gen) with the one it saw before Take, so that a Ready that came
// meanwhile is not lost.
//
// # Adaptive backoff
//
// Each failed recipient with a remote reply (and each failed connection
// whose error carries one) is matched against Config.Rules. A slow rule
// scales the site's MaxConnections (rounded down, at least 1) and its
// rates (an unlimited rate stays unlimited) by the rule's factor; a
// suspend rule stops the site: no connection is opened and no transaction
// started until it ends, and recipients taken meanwhile go back unchanged,
// without an attempt counted. shaping.SiteState decides how actions combine
// and when they end; each one ends on its own, on a timer, and the site's
// connections come back. A bounce rule fails that recipient for good, even
// on a 4xx reply, keeping the reply's class and reason. These are logged
// at info level, and Sites shows the state.
//
// # Operator control
//
// Suspend and Resume hold a site (all its domains) or one domain, until a
// time or until resumed; Resume of a site also ends its adaptive backoff.
// Suspend warns (and still suspends) when a site name matches no site the
// engine has seen and none the shaping configuration names (KnownSites).
// Suspensions returns the operator suspensions and the adaptive
// suspensions and slowdowns in force.
//
// # Across restarts
//
// Operator suspensions and adaptive states are saved in the Store (the
// spool's Pebble database, keys qo…, synced writes) with their ends: a
// suspension when it is made, resumed (deleted) or over (deleted by its
// timer); an adaptive state when a rule changes its factor or suspension,
// or moves the end of its slowdown by a minute or more (so a crash may cut
// a slowdown short by up to a minute), and deleted when it is over or
// resumed. New loads them before anything is delivered: what is still in
// force holds (or slows) its site or domain for the time it has left, with
// the limits of the site's next plan scaled by the saved factor; what ended
// while Drover was stopped is deleted. Summaries, Flush,
// Bounce and Delete are the spool's, with the site of each domain taken
// from its latest plan (a domain not attempted since the engine started
// counts as the site named like itself).
//
// # Shutdown
//
// Close stops new transactions, lets those in flight finish (cancelling
// them when its context ends), closes connections and waits for every
// worker; close the engine before the spool. Every goroutine recovers and
// logs panics: a panicking Planner, Courier or Conn fails or releases what
// it held, never loses it.
package engine
