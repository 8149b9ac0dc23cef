// Package policy is list hygiene: it decides, before anything leaves,
// whether a sender may mail a recipient, and learns from what happens to
// the mail it let through. It keeps the suppression list, the consent
// records and their proof, the lists' re-permission campaigns, the
// hygiene counters (hard bounces in a row, engagement per sender,
// campaign outcomes) and the sealed tokens of recipient links.
//
// # Suppression
//
// An Entry suppresses an address in a Scope: Global (every sender: a
// confirmed bounce, a spam trap), PerSender (a complaint, an unsubscribe
// from a message that named no list, inactivity) or PerList (an
// unsubscribe from one list; lists belong to their sender). It records
// its Reason, its Source (what caused it: "bounced:QUEUEID:REASON",
// "complained:QUEUEID", "one-click:QUEUEID", "mailto:QUEUEID",
// "import:FILE", "admin", "sunset:N") and its time. An address holds at
// most one entry per scope and reason: adding it again changes nothing
// (so a replayed unsubscribe is harmless). Addresses are compared by
// Normalize, the one place that says how: the canonical form, without
// regard to case, local part included.
//
// Check (the Checker of mta's RCPT) looks at the global entries and at
// those of the sender asking, never at another sender's, so a refusal
// reveals nothing of other senders' lists. Which reasons keep a recipient
// from which stream is configurable (Config.Streams); by default marketing
// mail honours all of them and transactional mail ignores unsubscribes
// and inactivity, never bounces, complaints, traps or admins' entries. A
// spam trap (Config.SpamTraps, an address or a whole domain) is refused
// for every stream; the hit is counted for the sender, and the refusal
// does not say it is a trap. A check is one lookup of Store.Lookup, which
// the Pebble store answers from an index in memory (about 0.35 µs with a
// million entries; 24 MB, read at start in about a second).
//
// # Consent
//
// A Consent record says where an address's consent to one list of one
// sender stands (List "" is the sender's mail that names no list):
// pending (a double opt-in's sign-up), confirmed, withdrawn or lapsed;
// how it was obtained (single-opt-in, double-opt-in, import, api); and
// its proof: the sign-up's time, IP address, user agent and source (the
// form's URL, the import's file, the API key's name), the consent text
// shown and the purposes consented to, and for a double opt-in the
// confirmation's time, IP address and user agent. The text is stored
// once, by its SHA-256, and records name it by that hash. The history is
// append-only: a record is never changed. A confirmation is a new record,
// confirmed, that repeats the sign-up's proof and adds the confirmation;
// a withdrawal is a new record that repeats the proof and says when and
// through what it ended. RecordConsent refuses a record without its
// proof (at least its time, source and text), a confirmed double opt-in
// without its confirmation or a pending sign-up to confirm, and an
// address suppressed for every sender or for the sender for a complaint
// (a consent cannot make mailable what the suppression list forbids). A
// record that repeats the latest, a withdrawal of an ended consent and
// an import's line that repeats a record of the history add nothing.
// ImportConsent and ExportConsent read and write CSV and JSON lines,
// with the suppression import's rules: all or nothing, invalid lines by
// number. Consent records are written with Sync: they are proof.
//
// Where a sender requires consent (SenderRules.ConsentRequired: lists,
// or "*" for every list and its mail that names no list), Check refuses
// mail on the streams of Config.ConsentStreams (by default marketing; a
// stream named neither there nor in Streams follows marketing) to an
// address whose latest record for the list is not confirmed: a Decision
// with Reason NoConsent ("Recipient has no confirmed consent for list
// news"), which no suppression entry has. Suppressions apply first. The
// check reads no consent where none is required, and one point read of
// the latest record (pt) where it is.
//
// # Re-permission
//
// A re-permission campaign (StartRepermission) asks the addresses of a
// list whose consent is confirmed to confirm it again by a deadline. It
// is one record (pr: the sender, the list, its start, its deadline); no
// consent record changes when it starts, and the recipient check does
// not change while it runs, so the re-permission message and its
// reminders reach every confirmed address. A re-confirmation is a new
// confirmed record given since the start (an [opt-in: ...] link's
// confirmation page records one with fresh proof): recorded since, and
// given since (its confirmation's time, or the sign-up's), so that an
// import of an old consent is none. While the campaign runs, ListConsent
// shows a confirmation from before the start as pending, with
// Repermission "pending" (a double opt-in's sign-up has none), and one
// given since with Repermission "reconfirmed". When the deadline has
// passed by the policy's clock (Config.Now), the deadline run (at start,
// every hour, or RunRepermissionDeadlines) appends a lapsed record,
// source "repermission:<start, RFC 3339>", for every address whose
// latest record is still a confirmation from before the start, a synced
// batch of a thousand at a time, in the background; the check refuses
// them from then on, as any latest record other than confirmed. The
// campaign is then written ended with its counts (confirmed at the
// start, re-confirmed, lapsed). A list has one campaign running at a
// time: another is refused (ErrRepermissionRunning) until it ends. A run
// stopped midway leaves the campaign running; the next one lapses the
// rest and counts the lapsed records from the histories.
//
// # Hygiene rules
//
// Observe feeds outcomes of the event stream (received, delivered,
// bounced, complained, unsubscribed); a goroutine applies them in batches
// and never blocks the caller (a full queue of outcomes drops and counts
// them). A hard bounce adds one to the address's run; ConfirmAfter (3) in
// a row, or one whose reason leaves no doubt (userunknown, hostunknown,
// notaccept: the null MX) unless WaitForRun, make a confirmed bounce: a
// global entry. A soft bounce never suppresses, an operator's bounce
// counts nothing; a delivery or an engagement ends the run. A complaint
// suppresses the address for its sender at once; an unsubscribe, for its
// list or its sender. Each delivery of a marketing message adds one to
// the address's messages since it last engaged with the sender
// (Engagement.Since); Engage (opened, clicked) sets it back to zero and
// lifts an inactivity entry. With SenderRules.SunsetAfter N, the N-th
// marketing message without engagement suppresses the address for that
// sender (Inactive): only recipients who have received at least N count,
// so a new list has no history to judge. Asynchronous reports name a
// queue ID; the message's campaign and list come from the record kept of
// each received message (30 days).
//
// Suppressions are written with Sync before the call that made them
// returns (Unsubscribe returns after its entry is on disk). Hygiene
// records are written in batches without Sync: a crash may lose the last
// moments of counters, never a suppression.
//
// # Store
//
// Store is the small interface of the state; the callers never see
// which. PebbleStore keeps it in the node's Pebble database, beside the
// spool (queue.Spool.DB), under prefixes that start with 'p':
//
//	pa<sender>\x00<addr>                      the address's attributes with the sender (its name)
//	pc<addr>\x00<sender>\x00<list>            the lists the address has consent records with (an index)
//	pe<hmac>                                 an erased address's keyed hash (16 bytes): it stays suppressed
//	pf                                       padding written by Purge, deleted at once
//	pr<sender>\x00<list>\x00<started>        a re-permission campaign: deadline, end, counts
//	ps<addr>                                 every suppression entry of the address
//	pt<sender>\x00<list>\x00<addr>            the latest consent record's status and number
//	pu<sender>\x00<list>\x00<addr>\x00<seq>   every consent record of the address with the list
//	pv<sha256>                               a consent text
//	pw<id>                                   a received message's sender, stream, campaign, list
//	px<sender>\x00<day>\x00<campaign>        a campaign's tallies for one day (UTC)
//	py<addr>                                 the address's hard bounces in a row
//	pz<sender>\x00<addr>                     the address's engagement with the sender
//
// Tables that are large and seldom written sort below every prefix
// written with each message. A memtable flush holds the records written
// with every message (pw to pz) and the spool's ('q'), which sort next
// to each other; were a large table's keys among them, each table a
// flush makes would span it, overlap its tables, and every compaction
// would rewrite it while mail flows. So the attributes (pa), the
// suppression list (ps) and the consent records (pt to pv), millions of
// keys that change only when an admin, an import or a recipient acts,
// sort first, and compactions leave them alone; so do the re-permission
// campaigns (pr), few and written twice each.
//
// addr is Normalize's form; day is the Unix day, seq the record's
// number and started the campaign's start (Unix seconds) as big-endian
// uint64s; sha256 is the text's 32 bytes. Values are a version byte
// (pa, pr, ps, pt, pu) and varints and length-prefixed strings; pv's is
// the text. A shared store for many nodes (Redis
// Cluster) implements the same interface: one hash per address for ps,
// a hash per sender and list for pt, a list per address for pu, a
// hash per sender for pr, counters for the rest.
//
// # Erasure
//
// Erase (GDPR art. 17) deletes every record of an address under every
// prefix (its consent histories, found through pc; its attributes and
// engagement with every sender; its suppression entries and its run) and
// keeps only HMAC-SHA256(Config.ErasureKey, address) in pe, so that the
// address stays suppressed for every sender without being stored: Check
// refuses it, and a consent record or import of it is refused, but for
// the person's own double opt-in, whose confirmation drops the hash.
// Purge then makes the deleted values gone from the files: a flush,
// padding that overwrites every write-ahead log Pebble keeps for reuse,
// and a compaction of the whole database (the MANIFEST is rewritten at
// each change, see queue.Open).
//
// # Links
//
// Tokens seals what a recipient link names (sender, list, address, queue
// ID, time made) with XChaCha20-Poly1305 under a key ring kept in the
// data directory (LoadKeys, RotateKeys): the URL reveals nothing, cannot
// be forged or altered, and names its key by id so keys rotate while
// older links keep working. Links makes the List-Unsubscribe targets
// (RFC 2369, RFC 8058): the one-click URL of the public web listener and
// a mailto URL whose subject carries the token.
//
// # Lists and reports
//
// Import reads CSV or JSON lines and commits the whole file in one
// atomic batch, or nothing: an invalid line is reported with its number
// and, unless SkipInvalid, nothing is imported. Export writes the same
// formats. Remove refuses to lift an unsubscribe or a complaint without
// force and reports every removal as an event. Report gives a sender's
// outcomes per campaign (bounce rate, flagged above 2 %) and its
// non-engagers for 5, 10, 20 and 30 messages; ToRemove the addresses to
// take off its list.
//
// policy imports nothing of Drover's but drover/mta/address, the RFC 5321
// parser (a leaf package), to check the addresses admins and imports give.
package policy
