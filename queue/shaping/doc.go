// Package shaping is Drover's traffic shaping and adaptive backoff: which
// site a recipient domain is queued under, the limits of each site, the
// rules that map a remote reply to an action on its site, and the state
// those actions leave. It is pure logic: no I/O, no DNS, no goroutines, no
// storage (so it owns no key prefix), and no imports of Drover's other
// packages: it takes a plain Config. The queue and the delivery side call
// it; cmd/drover fills its Config from the configuration file (configs)
// and from the shipped provider defaults (configs/providers).
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
// Shaper.Resolve layers, each over the one before: BuiltinLimits (the one
// set of default limits), Config.Default, the provider whose MX patterns
// match the site's MX hosts (Config.ShippedProviders, replaced by name by
// Config.Providers), Config.Sites[site], Config.Domains[domain]. Every
// Settings field is optional (nil = inherit). Limits apply per site per
// node.
//
// # Adaptive backoff
//
// Shaper.Match finds the first Rule that matches a reply: Config.Rules,
// then Config.ShippedRules (an operator rule named like a shipped rule
// replaces it; {name: <shipped rule>, action: none} switches it off; a
// rule with action "none" and conditions is an exception that stops the
// search and matches nothing). The caller applies a slow or suspend rule
// to the site's SiteState and a bounce rule to the recipient. A SiteState
// scales the site's limits (Effective) and says whether it is suspended;
// every action ends on its own, lazily, against the injected clock.
// Spacing messages and connections to a site's rates is the delivery
// engine's (Rate.PerSecond and Rate.Interval give the figures).
//
// # Guarantees
//
//   - New rejects an invalid Config with every problem at once (Errors),
//     each an *Error whose Path names its entry as the configuration file
//     does ("providers.google.mx[1]", "rules[2].factor"), so that the
//     caller can point at the key and its line; a Shaper is immutable and
//     safe for concurrent use, so a reload builds a new one and swaps it
//     in.
//   - Match does not allocate; regular expressions are compiled by New.
//   - SiteState is safe for concurrent use and never starts a goroutine.
package shaping
