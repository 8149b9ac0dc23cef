// Package mtasts implements MTA-STS (RFC 8461) for outbound delivery: it
// discovers a recipient domain's policy (the "_mta-sts" TXT record, then the
// policy file over HTTPS), caches it, and tells the courier whether a given
// MX connection may carry mail.
//
// # Contract
//
// The courier asks the [Cache] once per delivery attempt to a domain (not per
// recipient):
//
//	p, err := cache.Get(ctx, domain)
//	if err != nil {
//		// No policy could be discovered (DNS or HTTPS failure and nothing
//		// cached). RFC 8461 §3.3: deliver as if the domain had no policy;
//		// log err. p is nil, and a nil *Policy allows everything.
//	}
//
// For each candidate MX, in MX preference order:
//
//   - before dialing, skip hosts the policy forbids: if p.Check(mx, true) is
//     non-nil (enforce mode, MX not in the policy), try the next MX;
//   - when p.Mode is [Enforce], STARTTLS is mandatory and the certificate
//     must be verified for the MX host name (RFC 8461 §4.2); after the
//     handshake (or after finding no STARTTLS), call p.Check(mx, tlsOK). A
//     non-nil error is a [*Violation]: do not send (QUIT), try the next MX,
//     and if none is left defer the message; Violation.Temporary reports
//     true, as RFC 8461 §5 requires;
//   - in [Testing] mode Check always returns nil; call p.Violation(mx, tlsOK)
//     and log (or report) a non-nil result, but deliver anyway.
//
// [None] mode and a nil *Policy allow everything and report nothing.
//
// # Caching
//
// A [Cache] keeps each domain's last valid policy in memory and applies it
// until its max_age runs out. It re-reads the TXT record at most once every
// five minutes per domain (not per message) and fetches the policy file
// again only when the TXT id changed or the cached policy expired. When
// discovery fails (no TXT record, DNS error, HTTPS error, invalid policy) a
// cached unexpired policy keeps applying (RFC 8461 §3.3, §5.1); a failure is
// not retried for five minutes either, so an unreachable policy host costs
// one attempt per five minutes, not one per message. Concurrent Gets for the
// same domain share one lookup and fetch. The cache is bounded (least
// recently used domains are evicted past Config.MaxEntries).
//
// Nothing is persisted: after a restart every policy is discovered again.
// RFC 8461 allows this; the cost is that a restart reopens the first-contact
// window in which an active attacker could hide a policy.
//
// # Parsing
//
// No maintained Go library parses MTA-STS policies and TXT records on its
// own (they live inside whole mail servers), so [ParsePolicy] and the TXT
// record parser are written here from the ABNF of RFC 8461 §3.1 and §3.2,
// and fuzzed (FuzzParsePolicy, FuzzParseTXT). ParsePolicy is strict: known
// fields must be well formed, version, mode and max_age appear exactly once,
// non-"none" policies list at least one mx, bodies are at most 64 KiB; lines
// end in LF or CRLF, unknown fields are ignored and blank lines skipped.
// Fields may come in any order (the ABNF fixes none).
//
// Domains and MX names are ASCII (IDNs as A-labels), compared without regard
// to case or a trailing dot.
//
// This package owns no storage keys.
package mtasts
