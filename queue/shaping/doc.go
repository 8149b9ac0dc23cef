// Package shaping is Drover's traffic shaping and adaptive backoff: which
// site a recipient domain is queued under, the limits of each site, the
// rules that map a remote reply to an action on its site, and the state
// those actions leave. It is pure logic: no I/O, no DNS, no goroutines, no
// storage (so it owns no key prefix). The queue and the delivery side
// (mta) call it; cmd/drover decodes its Config from YAML.
//
// # Sites
//
// Recipients are grouped into sites: domains whose MX hosts reduce to the
// same registrable domains (or the same provider) share one queue, one set
// of limits and one adaptive state. Shaper.Site names the site
// ("google.com" for every Google-hosted domain, "outlook.com" for every
// Microsoft 365 tenant, "a.example+b.example" for a mixed MX set);
// RouteSite names the site of a routed domain. Shaper.Site gives a domain
// listed under Config.Domains a site of its own (named after the domain),
// so its own limits apply to it alone: its adaptive state is then its own
// too, not the provider's.
//
// # Limits
//
// Shaper.Resolve layers, each over the one before: BuiltinLimits,
// Config.Default, the provider whose MX patterns match the site's MX hosts
// (shipped providers from configs/providers/providers.yaml, replaced by name by the
// operator's), Config.Sites[site], Config.Domains[domain]. Every Settings
// field is optional (nil = inherit). Limits apply per site per node.
//
// # Adaptive backoff
//
// Shaper.Match finds the first Rule that matches a reply: the operator's
// rules, then the shipped ones (an operator rule named like a shipped rule
// replaces it; {name: <shipped rule>, action: none} switches it off; a
// rule with action "none" and conditions is an exception that stops the
// search and matches nothing). The
// caller applies a slow or suspend rule to the site's SiteState and a
// bounce rule to the recipient. A SiteState scales the site's limits
// (Effective) and says whether it is suspended; every action ends on its
// own, lazily, against the injected clock. Limiter spaces messages or
// connections to a site's rate exactly.
//
// # Guarantees
//
//   - New rejects an invalid Config with every problem at once, each
//     naming its entry ("providers.google.mx[1]: ...", "rules[2]
//     (google-rate).factor: ..."); a Shaper is immutable and safe for
//     concurrent use, so a reload builds a new one and swaps it in.
//   - Match does not allocate; regular expressions are compiled by New.
//   - SiteState and Limiter are safe for concurrent use and never start a
//     goroutine.
//   - A Limiter with burst 1 never starts more events than its rate allows
//     over any window (see Limiter).
package shaping
