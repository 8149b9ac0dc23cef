package shaping

import (
	"fmt"
	"maps"
	"slices"
	"strings"

	"golang.org/x/net/publicsuffix"
)

// Provider is a mailbox provider: the MX host patterns that identify it and
// the settings of every site whose MX hosts match.
type Provider struct {
	// MX are host patterns: "aspmx.l.google.com" matches that host only,
	// "*.google.com" any host ending in ".google.com" (not google.com
	// itself). Case and a trailing dot are ignored; "*" is allowed only as
	// the leading label. An empty list matches nothing (an operator can
	// switch a shipped provider off that way).
	MX []string
	Settings
}

// Config is the shaping configuration: the operator's settings and rules,
// layered over the ones Drover ships. The zero Config gives the built-in
// limits, no providers and no rules.
type Config struct {
	// Default is layered over BuiltinLimits for every site.
	Default Settings
	// Providers, by name, are layered over ShippedProviders: an entry
	// replaces the shipped provider of the same name entirely.
	Providers map[string]Provider
	// Sites, by site name (as Shaper.Site or RouteSite return it:
	// "google.com", "a.example+b.example", "route:127.0.0.1:2526").
	Sites map[string]Settings
	// Domains, by recipient domain. A domain listed here is its own site
	// (see Shaper.Site).
	Domains map[string]Settings
	// Rules are evaluated before ShippedRules; one named like a shipped
	// rule replaces it, and {Name: <shipped rule>, Action: ActionNone}
	// with no condition switches the shipped rule off.
	Rules []Rule

	// ShippedProviders and ShippedRules are the defaults Drover ships for
	// the large mailbox providers (cmd/drover passes the ones of
	// configs/providers/providers.yaml). They are checked like the
	// operator's; their problems are marked Error.Shipped.
	ShippedProviders map[string]Provider
	ShippedRules     []Rule
}

// Shaper resolves limits for sites and matches replies against the
// adaptive-backoff rules. It is immutable, so safe for concurrent use; a
// configuration reload builds a new one.
type Shaper struct {
	base      Limits
	providers []provider // sorted by name
	sites     map[string]*Settings
	domains   map[string]*Settings
	rules     []compiledRule
}

type provider struct {
	name     string
	operator bool
	patterns []hostPattern
	settings Settings
	site     string // site name of the hosts it matches
}

// hostPattern is a normalized MX pattern: an exact host, or a suffix
// beginning with "." for "*." patterns.
type hostPattern struct {
	s        string
	wildcard bool
}

// New validates cfg and builds a Shaper; it copies what it keeps, so cfg
// may change afterwards. An invalid cfg gives an Errors listing every
// problem, each an *Error whose Path names its entry relative to Config,
// in the names of the configuration file: "default.max_connections: 0 is
// less than 1", "providers.google.mx[1]: ...", "rules[2]
// (google-rate).factor: ...". A caller that reads Config from a file
// finds the key of each problem from Path.
func New(cfg Config) (*Shaper, error) {
	var errs Errors
	s := &Shaper{
		base:    BuiltinLimits,
		sites:   map[string]*Settings{},
		domains: map[string]*Settings{},
	}
	cfg.Default.validate("default", &errs)
	s.base.apply(&cfg.Default)

	for _, name := range slices.Sorted(maps.Keys(cfg.Providers)) {
		validateProvider(name, cfg.Providers[name], &errs)
		s.providers = append(s.providers, compileProvider(name, cfg.Providers[name], true))
	}
	for _, name := range slices.Sorted(maps.Keys(cfg.ShippedProviders)) {
		var shippedErrs Errors
		validateProvider(name, cfg.ShippedProviders[name], &shippedErrs)
		errs.addAll(shippedErrs, "", true)
		if _, replaced := cfg.Providers[name]; !replaced {
			s.providers = append(s.providers, compileProvider(name, cfg.ShippedProviders[name], false))
		}
	}
	slices.SortFunc(s.providers, func(a, b provider) int { return strings.Compare(a.name, b.name) })

	addLevel := func(kind string, in map[string]Settings, out map[string]*Settings, norm func(string) string) {
		for _, key := range slices.Sorted(maps.Keys(in)) {
			path := kind + "." + key
			k := norm(key)
			if k == "" {
				errs.add(fmt.Sprintf("%s[%q]", kind, key), "empty name")
				continue
			}
			if _, dup := out[k]; dup {
				errs.add(path, "listed twice (names are case-insensitive)")
				continue
			}
			v := in[key].clone() // the Shaper is immutable: own every value
			v.validate(path, &errs)
			out[k] = &v
		}
	}
	addLevel("sites", cfg.Sites, s.sites, func(k string) string { return strings.ToLower(strings.TrimSpace(k)) })
	addLevel("domains", cfg.Domains, s.domains, normalizeHost)

	shippedNames := map[string]bool{}
	for _, r := range cfg.ShippedRules {
		shippedNames[r.Name] = true
	}
	names := map[string]int{}
	for i, r := range cfg.Rules { // r is a copy: the Shaper owns what Match returns
		var ruleErrs Errors
		if j, dup := names[r.Name]; dup && r.Name != "" {
			ruleErrs.add(fmt.Sprintf("rules[%d]", i), "name is also used by rules[%d]", j)
		}
		names[r.Name] = i
		if r.Action == ActionNone && r.Pattern == "" && r.Status == "" && r.Code == 0 && shippedNames[r.Name] {
			errs.addAll(ruleErrs, r.Name, false)
			continue // {name: <shipped rule>, action: none}: the shipped rule is switched off
		}
		if c, ok := compileRule(fmt.Sprintf("rules[%d]", i), &r, &ruleErrs); ok {
			s.rules = append(s.rules, c)
		}
		errs.addAll(ruleErrs, r.Name, false)
	}
	shippedSeen := map[string]int{}
	for i, r := range cfg.ShippedRules {
		var ruleErrs Errors
		if j, dup := shippedSeen[r.Name]; dup && r.Name != "" {
			ruleErrs.add(fmt.Sprintf("rules[%d]", i), "name is also used by rules[%d]", j)
		}
		shippedSeen[r.Name] = i
		c, ok := compileRule(fmt.Sprintf("rules[%d]", i), &r, &ruleErrs)
		errs.addAll(ruleErrs, r.Name, true)
		if _, replaced := names[r.Name]; ok && !replaced {
			s.rules = append(s.rules, c)
		}
	}
	if len(errs) > 0 {
		return nil, errs
	}
	return s, nil
}

// validateProvider adds the problems of provider name to errs.
func validateProvider(name string, p Provider, errs *Errors) {
	path := "providers." + name
	if strings.TrimSpace(name) == "" {
		path = fmt.Sprintf("providers[%q]", name)
		errs.add(path, "empty provider name")
	}
	p.Settings.validate(path, errs)
	for i, pat := range p.MX {
		if _, err := parseHostPattern(pat); err != nil {
			errs.add(fmt.Sprintf("%s.mx[%d]", path, i), "%v", err)
		}
	}
}

func compileProvider(name string, p Provider, operator bool) provider {
	c := provider{name: name, operator: operator, settings: p.Settings.clone()}
	for _, pat := range p.MX {
		if hp, err := parseHostPattern(pat); err == nil {
			c.patterns = append(c.patterns, hp)
		}
	}
	if len(c.patterns) > 0 {
		c.site = registrable(strings.TrimPrefix(c.patterns[0].s, "."))
	}
	return c
}

// parseHostPattern validates and normalizes an MX host pattern.
func parseHostPattern(pat string) (hostPattern, error) {
	p := normalizeHost(pat)
	host, wildcard := strings.CutPrefix(p, "*.")
	if host == "" {
		return hostPattern{}, fmt.Errorf("empty host pattern")
	}
	if strings.Contains(host, "*") {
		return hostPattern{}, fmt.Errorf("%q: only a leading \"*.\" wildcard is supported", pat)
	}
	for _, label := range strings.Split(host, ".") {
		if label == "" || label[0] == '-' || label[len(label)-1] == '-' {
			return hostPattern{}, fmt.Errorf("%q is not a host name", pat)
		}
		for i := 0; i < len(label); i++ {
			c := label[i]
			if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
				return hostPattern{}, fmt.Errorf("%q is not a host name", pat)
			}
		}
	}
	if wildcard {
		if ps, _ := publicsuffix.PublicSuffix(host); ps == host {
			return hostPattern{}, fmt.Errorf("%q would match every host under the public suffix %q", pat, host)
		}
		return hostPattern{s: "." + host, wildcard: true}, nil
	}
	return hostPattern{s: host}, nil
}

// normalizeHost lower-cases h and drops surrounding space and a trailing
// dot.
func normalizeHost(h string) string {
	return strings.TrimSuffix(strings.ToLower(strings.TrimSpace(h)), ".")
}

// matchHost reports whether host (normalized) matches p, and how
// specific the match is: exact matches beat wildcards, longer suffixes
// beat shorter ones.
func (p hostPattern) matchHost(host string) (int, bool) {
	if p.wildcard {
		if len(host) > len(p.s) && strings.HasSuffix(host, p.s) {
			return len(p.s), true
		}
		return 0, false
	}
	if host == p.s {
		return 1 << 20, true
	}
	return 0, false
}

// Provider returns the name of the provider whose MX patterns match
// mxHosts, "" if none. When several do, the most specific match wins (an
// exact host beats a wildcard, a longer wildcard suffix beats a shorter
// one), then an operator's provider beats a shipped one, then the name
// that sorts first.
func (s *Shaper) Provider(mxHosts []string) string {
	if p := s.provider(mxHosts); p != nil {
		return p.name
	}
	return ""
}

func (s *Shaper) provider(mxHosts []string) *provider {
	var best *provider
	bestScore := -1
	for _, h := range mxHosts {
		p, score := s.hostProvider(normalizeHost(h))
		if p != nil && (score > bestScore || score == bestScore && p.operator && !best.operator) {
			best, bestScore = p, score
		}
	}
	return best
}

// hostProvider returns the provider that matches a normalized host best,
// and the score of the match (see Provider for the order).
func (s *Shaper) hostProvider(host string) (*provider, int) {
	var best *provider
	bestScore := -1
	for i := range s.providers {
		p := &s.providers[i]
		for _, pat := range p.patterns {
			score, ok := pat.matchHost(host)
			// s.providers is sorted by name, so on a full tie the first
			// one found keeps its place.
			if ok && (score > bestScore || score == bestScore && p.operator && !best.operator) {
				best, bestScore = p, score
			}
		}
	}
	return best, bestScore
}

// Site returns the site that recipients of domain are queued under, the
// key of its queue, limits and adaptive state:
//
//   - the domain itself (lower-cased) when Config.Domains lists it, so
//     that its own limits and adaptive state apply to it alone;
//   - else a name made of the MX hosts: each host a provider matches
//     counts as the provider's site, the registrable domain of the
//     provider's first MX pattern (so Google Workspace domains whose MX
//     include aspmx2.googlemail.com share "google.com" with gmail.com,
//     and Microsoft 365 tenants on *.mx.microsoft share "outlook.com");
//     every other host counts as its registrable domain (the public
//     suffix plus one label: "mx1.a.example" is "a.example"); the
//     distinct names are sorted and joined with "+"
//     ("a.example+b.example"). Case and trailing dots are ignored. The
//     caller passes the implicit MX (the domain itself, RFC 5321 5.1)
//     when a domain has no MX records;
//   - else (no MX hosts) the domain.
func (s *Shaper) Site(domain string, mxHosts []string) string {
	d := normalizeHost(domain)
	if _, ok := s.domains[d]; ok {
		return d
	}
	names := make([]string, 0, len(mxHosts))
	for _, h := range mxHosts {
		host := normalizeHost(h)
		if host == "" {
			continue
		}
		if p, _ := s.hostProvider(host); p != nil && p.site != "" {
			names = append(names, p.site)
		} else {
			names = append(names, registrable(host))
		}
	}
	if len(names) == 0 {
		return d
	}
	slices.Sort(names)
	return strings.Join(slices.Compact(names), "+")
}

// KnowsSite reports whether the configuration names a site called name
// (case ignored): the site of a provider (the registrable domain of its
// first MX pattern: "google.com", "outlook.com"), a key of Config.Sites,
// or a domain of Config.Domains (its own site). Sites made of other MX
// hosts ("a.example", "a.example+b.example") and routes are known only to
// whoever saw them planned; a provider's own name ("google") is not a
// site name.
func (s *Shaper) KnowsSite(name string) bool {
	name = strings.ToLower(strings.TrimSpace(name))
	if _, ok := s.sites[name]; ok {
		return true
	}
	if _, ok := s.domains[normalizeHost(name)]; ok {
		return true
	}
	for i := range s.providers {
		if s.providers[i].site != "" && s.providers[i].site == name {
			return true
		}
	}
	return false
}

// ProviderSite returns the site of the provider called name ("google"
// gives "google.com"), "" when there is none: to tell an operator who
// named a provider where a site was meant.
func (s *Shaper) ProviderSite(name string) string {
	name = strings.ToLower(strings.TrimSpace(name))
	for i := range s.providers {
		if strings.ToLower(s.providers[i].name) == name {
			return s.providers[i].site
		}
	}
	return ""
}

// Resolve returns the limits of a site, and the name of the provider that
// applied ("" if none): BuiltinLimits, overlaid by Config.Default, then the
// provider matching mxHosts (see Provider), then Config.Sites[site], then
// Config.Domains[domain] when domain is not "". Pass the domain only for a
// site that Site made for that domain; a site shared by several domains is
// resolved with domain "". MaxRetryInterval is raised to RetryInterval
// when a level set one above the other.
func (s *Shaper) Resolve(site, domain string, mxHosts []string) (Limits, string) {
	l := s.base
	name := ""
	if p := s.provider(mxHosts); p != nil {
		l.apply(&p.settings)
		name = p.name
	}
	l.apply(s.sites[strings.ToLower(site)])
	if domain != "" {
		l.apply(s.domains[normalizeHost(domain)])
	}
	if l.MaxRetryInterval < l.RetryInterval {
		l.MaxRetryInterval = l.RetryInterval
	}
	return l, name
}

// Rules returns the rules in the order Match tries them: the operator's,
// then the shipped ones not replaced.
func (s *Shaper) Rules() []Rule {
	out := make([]Rule, len(s.rules))
	for i, c := range s.rules {
		out[i] = *c.rule
	}
	return out
}
