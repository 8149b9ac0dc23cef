package shaping

import (
	"errors"
	"strings"
	"testing"
	"time"
)

func TestHostPattern(t *testing.T) {
	tests := []struct {
		pattern, host string
		want          bool
	}{
		{"*.google.com", "gmail-smtp-in.l.google.com", true},
		{"*.google.com", "aspmx.l.google.com", true},
		{"*.google.com", "smtp.google.com", true},
		{"*.google.com", "google.com", false},
		{"*.google.com", "notgoogle.com", false},
		{"*.google.com", "google.com.evil.example", false},
		{"*.Google.COM.", "ASPMX.L.GOOGLE.COM", true},
		{"aspmx.l.google.com", "aspmx.l.google.com", true},
		{"aspmx.l.google.com", "aspmx.l.google.com.", true},
		{"aspmx.l.google.com", "alt1.aspmx.l.google.com", false},
		{"mx1.a.example", "MX1.A.Example", true},
		{"*.mx.microsoft", "contoso-com.l-v1.mx.microsoft", true},
	}
	for _, tt := range tests {
		p, err := parseHostPattern(tt.pattern)
		if err != nil {
			t.Errorf("parseHostPattern(%q): %v", tt.pattern, err)
			continue
		}
		if _, got := p.matchHost(normalizeHost(tt.host)); got != tt.want {
			t.Errorf("%q matches %q = %v, want %v", tt.pattern, tt.host, got, tt.want)
		}
	}
	for _, bad := range []string{"", "*.", "*", "*.com", "*.co.uk", "mx*.gmx.net", "a.*.example", "a..example", "a b.example", "-a.example", "a/b.example"} {
		if _, err := parseHostPattern(bad); err == nil {
			t.Errorf("parseHostPattern(%q): no error", bad)
		}
	}
}

func TestResolvePrecedence(t *testing.T) {
	cfg := Config{
		Default: Settings{MaxConnections: new(30), RetryInterval: new(10 * time.Minute), Pool: new("main")},
		Providers: map[string]Provider{
			"acme": {
				MX:       []string{"*.mx.acme.example"},
				Settings: Settings{MaxConnections: new(8), MaxMessageRate: &Rate{100, time.Second}, TLS: new(TLSRequired)},
			},
		},
		Sites: map[string]Settings{
			"acme.example": {MaxConnections: new(4), MaxMessagesPerConnection: new(10)},
		},
		Domains: map[string]Settings{
			"Big.Example.": {MaxConnections: new(2), MaxMessageRate: &Rate{}, Pool: new("")},
		},
	}
	s, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	acmeMX := []string{"in1.mx.acme.example", "in2.mx.acme.example"}
	b := BuiltinLimits
	tests := []struct {
		name           string
		domain         string
		mx             []string
		site           string // want Site(domain, mx)
		resolveDomain  string
		want           Limits
		wantProvider   string
		mutateExpected func(*Limits)
	}{
		{
			name: "default only", domain: "other.example", mx: []string{"mx.other.example"}, site: "other.example",
			want: Limits{30, b.MaxMessagesPerConnection, b.MaxRecipientsPerMessage, Rate{}, Rate{}, 10 * time.Minute, b.MaxRetryInterval, b.MaxAge, TLSOpportunistic, "main"},
		},
		{
			name: "provider over default, site over provider", domain: "small.example", mx: acmeMX, site: "acme.example",
			want:         Limits{4, 10, b.MaxRecipientsPerMessage, Rate{100, time.Second}, Rate{}, 10 * time.Minute, b.MaxRetryInterval, b.MaxAge, TLSRequired, "main"},
			wantProvider: "acme",
		},
		{
			name: "domain over site: own site, unlimited rate and default pool", domain: "big.example", mx: acmeMX, site: "big.example", resolveDomain: "BIG.example",
			want:         Limits{2, b.MaxMessagesPerConnection, b.MaxRecipientsPerMessage, Rate{}, Rate{}, 10 * time.Minute, b.MaxRetryInterval, b.MaxAge, TLSRequired, ""},
			wantProvider: "acme",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			site := s.Site(tt.domain, tt.mx)
			if site != tt.site {
				t.Fatalf("Site = %q, want %q", site, tt.site)
			}
			got, prov := s.Resolve(site, tt.resolveDomain, tt.mx)
			if got != tt.want || prov != tt.wantProvider {
				t.Errorf("Resolve(%q, %q) =\n %+v, %q\nwant\n %+v, %q", site, tt.resolveDomain, got, prov, tt.want, tt.wantProvider)
			}
		})
	}
	// The config is copied: changing it afterwards changes nothing.
	*cfg.Default.MaxConnections = 99
	if l, _ := s.Resolve("x.example", "", nil); l.MaxConnections != 30 {
		t.Errorf("Shaper shares the config: MaxConnections = %d", l.MaxConnections)
	}
	// No MX hosts: the domain is the site.
	if got := s.Site("NoMX.example.", nil); got != "nomx.example" {
		t.Errorf("Site without MX = %q", got)
	}
	// MaxRetryInterval is raised to RetryInterval.
	s2, err := New(Config{Domains: map[string]Settings{"slow.example": {RetryInterval: new(6 * time.Hour)}}})
	if err != nil {
		t.Fatal(err)
	}
	if l, _ := s2.Resolve("slow.example", "slow.example", nil); l.RetryInterval != 6*time.Hour || l.MaxRetryInterval != 6*time.Hour {
		t.Errorf("retry %v, max retry %v", l.RetryInterval, l.MaxRetryInterval)
	}
}

func TestBuiltinDefaults(t *testing.T) {
	s, err := New(Config{})
	if err != nil {
		t.Fatal(err)
	}
	l, prov := s.Resolve("x.example", "", []string{"mx.x.example"})
	want := Limits{20, 1000, 100, Rate{}, Rate{}, 5 * time.Minute, 4 * time.Hour, 120 * time.Hour, TLSOpportunistic, ""}
	if l != want || prov != "" {
		t.Errorf("Resolve = %+v, %q; want %+v", l, prov, want)
	}
}

// Config.ShippedProviders apply under the operator's; New keeps its own
// copy of them.
func TestShippedProviders(t *testing.T) {
	cfg := sampleConfig()
	s, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		mx       []string
		provider string
		site     string
	}{
		{[]string{"gmail-smtp-in.l.google.com", "alt1.gmail-smtp-in.l.google.com"}, "google", "google.com"},
		{[]string{"aspmx.l.google.com", "alt1.aspmx.l.google.com", "aspmx2.googlemail.com", "aspmx3.googlemail.com"}, "google", "google.com"},
		{[]string{"aspmx.l.google.com", "mx.backup.example"}, "google", "backup.example+google.com"},
		{[]string{"example-com.mail.protection.outlook.com"}, "microsoft", "outlook.com"},
		{[]string{"contoso-com.l-v1.mx.microsoft"}, "microsoft", "outlook.com"},
		{[]string{"mailin-01.mx.aol.com"}, "yahoo", "yahoodns.net"},
		{[]string{"mx.example.com"}, "", "example.com"},
	}
	for _, tt := range tests {
		site := s.Site("x.example", tt.mx)
		_, prov := s.Resolve(site, "", tt.mx)
		if prov != tt.provider || site != tt.site {
			t.Errorf("%q: provider %q site %q, want %q %q", tt.mx, prov, site, tt.provider, tt.site)
		}
	}
	// Copies: changing the Config afterwards changes nothing.
	cfg.ShippedProviders["google"].MX[0] = "*.changed.example"
	*cfg.ShippedProviders["google"].MaxMessagesPerConnection = 1
	cfg.ShippedProviders["qq"].MaxMessageRate.Count = 1
	cfg.ShippedRules[0].Name = "changed"
	l, prov := s.Resolve("google.com", "", []string{"gmail-smtp-in.l.google.com"})
	if prov != "google" || l.TLS != TLSMTASTS || l.MaxMessagesPerConnection != 100 || l.MaxRecipientsPerMessage != 100 {
		t.Errorf("google limits %+v (%q)", l, prov)
	}
	if l, _ = s.Resolve("qq.com", "", []string{"mx1.qq.com"}); l.MaxMessageRate != (Rate{300, time.Minute}) {
		t.Errorf("qq limits %+v", l)
	}
	if r := s.Match(421, "4.7.28", "x"); r == nil || r.Name != "google-rate-limited" {
		t.Errorf("Match = %+v", r)
	}
}

func TestProviderOverrideAndTies(t *testing.T) {
	cfg := sampleConfig()
	cfg.Providers = map[string]Provider{
		// Replaces the shipped google entirely: no more *.googlemail.com.
		"google": {MX: []string{"*.google.com"}, Settings: Settings{MaxConnections: new(3)}},
		// An exact host beats the wildcard.
		"gsuite-big": {MX: []string{"aspmx.l.google.com"}, Settings: Settings{MaxConnections: new(7)}},
		// Same specificity as shipped yahoo's pattern: the operator's wins.
		"zz-yahoo": {MX: []string{"*.yahoodns.net"}, Settings: Settings{MaxConnections: new(9)}},
		// Off.
		"apple": {},
		// Longer suffix wins over a shorter one.
		"a-wide":   {MX: []string{"*.example.net"}, Settings: Settings{MaxConnections: new(1)}},
		"b-narrow": {MX: []string{"*.mx.example.net"}, Settings: Settings{MaxConnections: new(2)}},
	}
	s, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		mx    []string
		prov  string
		conns int
	}{
		{[]string{"gmail-smtp-in.l.google.com"}, "google", 3},
		{[]string{"aspmx2.googlemail.com"}, "", 20},
		{[]string{"alt1.aspmx.l.google.com", "aspmx.l.google.com"}, "gsuite-big", 7},
		{[]string{"mta5.am0.yahoodns.net"}, "zz-yahoo", 9},
		{[]string{"mx01.mail.icloud.com"}, "", 20},
		{[]string{"a.mx.example.net", "b.example.net"}, "b-narrow", 2},
		{[]string{"b.example.net"}, "a-wide", 1},
	}
	for _, tt := range tests {
		l, prov := s.Resolve(s.Site("x.example", tt.mx), "", tt.mx)
		if prov != tt.prov || l.MaxConnections != tt.conns {
			t.Errorf("%q: provider %q conns %d, want %q %d", tt.mx, prov, l.MaxConnections, tt.prov, tt.conns)
		}
		if got := s.Provider(tt.mx); got != tt.prov {
			t.Errorf("Provider(%q) = %q", tt.mx, got)
		}
	}
}

func TestNewErrors(t *testing.T) {
	tests := []struct {
		name string
		cfg  Config
		want []string // substrings of the error
	}{
		{"zero limit", Config{Default: Settings{MaxConnections: new(0)}}, []string{"default.max_connections: 0 is less than 1"}},
		{"negative limit", Config{Sites: map[string]Settings{"google.com": {MaxMessagesPerConnection: new(-1)}}}, []string{"sites.google.com.max_messages_per_connection: -1 is less than 1"}},
		{"negative duration", Config{Domains: map[string]Settings{"a.example": {MaxAge: new(-time.Hour)}}}, []string{"domains.a.example.max_age: -1h0m0s is not a positive duration"}},
		{"zero retry", Config{Default: Settings{RetryInterval: new(time.Duration(0))}}, []string{"default.retry_interval"}},
		{"retry above max", Config{Default: Settings{RetryInterval: new(time.Hour), MaxRetryInterval: new(time.Minute)}}, []string{"default.max_retry_interval: 1m0s is less than retry_interval 1h0m0s"}},
		{"unknown tls", Config{Default: Settings{TLS: new("always")}}, []string{`default.tls: "always" is not one of opportunistic, required, mta-sts, disabled`}},
		{"dane", Config{Providers: map[string]Provider{"x": {MX: []string{"mx.x.example"}, Settings: Settings{TLS: new("dane")}}}}, []string{"providers.x.tls: dane is not implemented yet"}},
		{"bad rate", Config{Default: Settings{MaxMessageRate: &Rate{-1, time.Second}}}, []string{"default.max_message_rate"}},
		{"bad mx", Config{Providers: map[string]Provider{"google": {MX: []string{"*.google.com", "mx*.google.com"}}}}, []string{"providers.google.mx[1]: ", "leading"}},
		{"mx public suffix", Config{Providers: map[string]Provider{"uk": {MX: []string{"*.co.uk"}}}}, []string{"providers.uk.mx[0]: ", "public suffix"}},
		{"empty provider name", Config{Providers: map[string]Provider{"": {}}}, []string{`providers[""]: empty provider name`}},
		{"duplicate domain", Config{Domains: map[string]Settings{"A.example": {}, "a.example.": {}}}, []string{"listed twice"}},
		{"empty domain", Config{Domains: map[string]Settings{" ": {}}}, []string{"empty name"}},
		{"bad regex", Config{Rules: []Rule{{Name: "ok", Code: 421, Action: "slow", Factor: 0.5, Duration: time.Minute}, {}, {Name: "google-rate", Pattern: "(", Action: "slow", Factor: 0.5, Duration: time.Minute}}},
			[]string{"rules[2] (google-rate).pattern: error parsing regexp", "rules[1]: name is required", "rules[1]: set at least one of pattern, status, code", "rules[1].action: required"}},
		{"bad action", Config{Rules: []Rule{{Name: "x", Code: 421, Action: "defer"}}}, []string{`rules[0] (x).action: "defer" is not one of slow, suspend, bounce, none`}},
		{"factor", Config{Rules: []Rule{{Name: "x", Code: 421, Action: "slow", Factor: 1, Duration: time.Minute}, {Name: "y", Code: 421, Action: "slow", Factor: 0, Duration: time.Minute}}},
			[]string{"rules[0] (x).factor: 1 is not between 0 and 1", "rules[1] (y).factor: 0 is not between 0 and 1"}},
		{"durations", Config{Rules: []Rule{{Name: "x", Code: 421, Action: "suspend"}, {Name: "y", Code: 421, Action: "slow", Factor: 0.5, Duration: -time.Minute}, {Name: "z", Code: 550, Action: "bounce", Duration: time.Minute}}},
			[]string{"rules[0] (x).duration: required for action suspend", "rules[1] (y).duration: -1m0s is negative", "rules[2] (z).duration: only for actions slow and suspend"}},
		{"status", Config{Rules: []Rule{{Name: "a", Status: "4.7.x", Action: "none"}, {Name: "b", Status: "3.1.1", Action: "none"}, {Name: "c", Status: "4.7.28", Code: 550, Action: "none"}, {Name: "d", Status: "4.7.1.1", Action: "none"}}},
			[]string{"rules[0] (a).status", "rules[1] (b).status: \"3.1.1\": class must be 2, 4 or 5", "rules[2] (c): status \"4.7.28\" can never come with code 550", "rules[3] (d).status"}},
		{"code", Config{Rules: []Rule{{Name: "a", Code: 250, Action: "none"}}}, []string{"rules[0] (a).code: 250 is not a 4xx or 5xx reply code"}},
		{"duplicate rule", Config{Rules: []Rule{{Name: "a", Code: 421, Action: "none"}, {Name: "a", Code: 450, Action: "none"}}}, []string{"rules[1] (a): name is also used by rules[0]"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, err := New(tt.cfg)
			if err == nil {
				t.Fatalf("New: no error, Shaper %v", s != nil)
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q\ndoes not contain %q", err, w)
				}
			}
		})
	}
}

// Each problem is an *Error with the path of its entry, the rule it is in
// and whether it is shipped, so that a caller can find its key without
// reading the message.
func TestNewErrorsStructured(t *testing.T) {
	cfg := Config{
		Default:   Settings{MaxConnections: new(0)},
		Providers: map[string]Provider{"google": {MX: []string{"mx*.google.com"}}},
		Domains:   map[string]Settings{" ": {}},
		Rules:     []Rule{{Name: "fast", Code: 421, Action: ActionSlow, Factor: 2, Duration: time.Minute}},
		ShippedProviders: map[string]Provider{
			"google": {MX: []string{"*.google.com"}, Settings: Settings{TLS: new("dane")}}, // checked even when replaced
		},
		ShippedRules: []Rule{{Name: "old", Action: ActionSuspend, Code: 421}},
	}
	_, err := New(cfg)
	var list Errors
	if !errors.As(err, &list) {
		t.Fatalf("error %T %v is not an Errors", err, err)
	}
	want := []Error{
		{Path: "default.max_connections", Msg: "0 is less than 1"},
		{Path: "providers.google.mx[0]", Msg: `"mx*.google.com": only a leading "*." wildcard is supported`},
		{Path: "providers.google.tls", Shipped: true, Msg: "dane is not implemented yet; use mta-sts (enforces published MTA-STS policies) or required"},
		{Path: `domains[" "]`, Msg: "empty name"},
		{Path: "rules[0].factor", Rule: "fast", Msg: "2 is not between 0 and 1 (exclusive)"},
		{Path: "rules[0].duration", Rule: "old", Shipped: true, Msg: "required for action suspend"},
	}
	if len(list) != len(want) {
		t.Fatalf("got %d errors, want %d:\n%v", len(list), len(want), err)
	}
	for i, e := range list {
		if *e != want[i] {
			t.Errorf("error %d = %+v, want %+v", i, *e, want[i])
		}
	}
	var one *Error
	if !errors.As(err, &one) || one != list[0] {
		t.Errorf("errors.As(*Error) = %v", one)
	}
	if got := list[4].Error(); got != "rules[0] (fast).factor: 2 is not between 0 and 1 (exclusive)" {
		t.Errorf("Error() = %q", got)
	}
	if got := list[5].Error(); got != "shipped rules[0] (old).duration: required for action suspend" {
		t.Errorf("Error() = %q", got)
	}
}

// Operator rules come first; one named like a shipped rule with action
// none and no condition switches it off; action none with a condition is
// an exception.
func TestOperatorRulesOverShipped(t *testing.T) {
	cfg := sampleConfig()
	cfg.Rules = []Rule{
		{Name: "custom", Pattern: "slow down", Code: 421, Action: ActionSlow, Factor: 0.25, Duration: 15 * time.Minute},
		{Name: "google-rate-limited", Action: ActionNone},
		{Name: "not-this-one", Pattern: "rate limited for testing", Action: ActionNone},
	}
	s, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if r := s.Match(421, "4.7.28", "Our system has detected an unusual rate of unsolicited mail"); r == nil || r.Name != "google-unusual-rate" {
		t.Errorf("google-rate-limited switched off, then Match = %+v", r)
	}
	if r := s.Match(421, "4.7.28", "[1.2.3.4] temporarily rate limited"); r == nil || r.Name != "rate-limited" {
		t.Errorf("google-rate-limited switched off, then Match = %+v", r)
	}
	if r := s.Match(421, "4.7.28", "[1.2.3.4] rate limited for testing"); r != nil {
		t.Errorf("action none: Match = %+v", r)
	}
	if r := s.Match(421, "", "please slow down"); r == nil || *r != cfg.Rules[0] {
		t.Errorf("custom rule: Match = %+v", r)
	}
	got := s.Rules()
	if got[0].Name != "custom" || got[1].Name != "not-this-one" || got[1].Action != ActionNone {
		t.Errorf("Rules()[:2] = %+v", got[:2])
	}
	for _, r := range got {
		if r.Name == "google-rate-limited" {
			t.Errorf("switched-off rule still listed: %+v", r)
		}
	}
	// Switching off needs a shipped rule's name.
	cfg.Rules = []Rule{{Name: "no-such-rule", Action: ActionNone}}
	if _, err := New(cfg); err == nil {
		t.Error("{name: no-such-rule, action: none}: no error")
	}
}

// Current swaps the Shaper in force; Match follows it.
func TestCurrent(t *testing.T) {
	a, err := New(Config{Rules: []Rule{{Name: "a", Pattern: "busy", Action: ActionSlow, Factor: 0.5, Duration: time.Minute}}})
	if err != nil {
		t.Fatal(err)
	}
	b, err := New(Config{})
	if err != nil {
		t.Fatal(err)
	}
	c := NewCurrent(a)
	if r := c.Match(421, "", "too busy"); r == nil || r.Name != "a" {
		t.Fatalf("Match = %v, want rule a", r)
	}
	c.Store(b)
	if c.Load() != b || c.Match(421, "", "too busy") != nil {
		t.Error("Store did not put the new shaping in force")
	}
}
