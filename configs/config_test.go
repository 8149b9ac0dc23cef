package configs

import (
	"bytes"
	"errors"
	"os"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestDefaultLoads(t *testing.T) {
	c, err := Load("")
	if err != nil {
		t.Fatal(err)
	}
	if len(c.Listeners) != 1 || c.Listeners[0].Address != "127.0.0.1:2525" || c.Listeners[0].LoopbackSender != "default" {
		t.Errorf("default listeners = %+v", c.Listeners)
	}
	if c.Senders["default"] == nil || !c.Queue.Durable || c.HTTP.Address != "127.0.0.1:8025" {
		t.Errorf("default config = %+v", c)
	}
	if c.Limits.MaxMessageSize != 25<<20 {
		t.Errorf("max_message_size = %d", c.Limits.MaxMessageSize)
	}
	if c.Hostname == "" {
		t.Error("hostname not derived")
	}
}

// The example documents the defaults: loading it gives the same config.
func TestExampleMatchesDefault(t *testing.T) {
	ex, err := Load("drover.example.yaml")
	if err != nil {
		t.Fatal(err)
	}
	def, _ := Load("")
	ex.lines, def.lines = nil, nil
	ex.file = ""
	if !reflect.DeepEqual(ex, def) {
		t.Errorf("example differs from default:\nexample %+v\ndefault %+v", ex, def)
	}
}

// Every option of the schema appears in the example file.
func TestExampleDocumentsEveryOption(t *testing.T) {
	data, err := os.ReadFile("drover.example.yaml")
	if err != nil {
		t.Fatal(err)
	}
	text := string(data)
	var walk func(reflect.Type, string)
	walk = func(typ reflect.Type, path string) {
		for typ.Kind() == reflect.Pointer || typ.Kind() == reflect.Slice || typ.Kind() == reflect.Map {
			typ = typ.Elem()
		}
		if typ.Kind() != reflect.Struct {
			return
		}
		for i := 0; i < typ.NumField(); i++ {
			f := typ.Field(i)
			tag := strings.Split(f.Tag.Get("yaml"), ",")[0]
			if tag == "" || tag == "-" {
				continue
			}
			if !strings.Contains(text, tag+":") {
				t.Errorf("option %s%s is not documented in drover.example.yaml", path, tag)
			}
			walk(f.Type, path+tag+".")
		}
	}
	walk(reflect.TypeOf(Config{}), "")
}

func TestErrorsNameKeyAndLine(t *testing.T) {
	cases := []struct{ name, yaml, want string }{
		{"unknown key", "log_level: info\nqueue:\n  retry_intervall: 5m\n", "line 3: queue.retry_intervall: unknown key"},
		{"unknown shaping key", "shaping:\n  default:\n    max_conections: 5\n", "line 3: shaping.default.max_conections: unknown key"},
		{"bad level", "hostname: a.example\nlog_level: loud\n", "line 2: log_level"},
		{"bad duration", "queue:\n  delay_notice: soon\n", "line 2"},
		{"unknown provider key", "shaping:\n  providers:\n    x:\n      mx: [a.example]\n      colour: blue\n", "line 5: shaping.providers.x.colour: unknown key"},
		{"shaping duration without unit", "shaping:\n  default:\n    retry_interval: 300\n", "line 3"},
		{"rule code not a number", "shaping:\n  rules:\n    - {name: x, code: soon, action: none}\n", "line 3"},
		{"unknown pool", "shaping:\n  domains:\n    a.test: {pool: nope}\n", `line 3: shaping.domains.a.test.pool: no pool named "nope" in pools`},
		{"bad pool", "pools:\n  p: [not-an-ip]\n", "line 2: pools.p[0]"},
		{"bad size", "limits:\n  max_message_size: huge\n", "line 2"},
		{"bad listener", "listeners:\n  - address: nowhere\n    mode: plain\n", "line 2: listeners[0].address"},
		{"unknown sender", "listeners:\n  - address: 127.0.0.1:25\n    mode: plain\n    loopback_sender: bob\n", "line 4: listeners[0].loopback_sender: no sender named \"bob\""},
		{"auth failures zero", "smtp:\n  auth:\n    max_failures_per_session: 0\n", "line 3: smtp.auth.max_failures_per_session: must be at least 1, not 0"},
		{"auth lockout_after negative", "smtp:\n  auth:\n    lockout_after: -1\n", "line 3: smtp.auth.lockout_after: must be at least 1"},
		{"auth slow after lockout", "smtp:\n  auth:\n    slow_after: 12\n", "line 3: smtp.auth.slow_after: 12 is more than smtp.auth.lockout_after (10)"},
		{"auth window zero", "smtp:\n  auth:\n    window: 0s\n", "line 3: smtp.auth.window: must be more than 0"},
		{"auth lockout without unit", "smtp:\n  auth:\n    lockout: 900\n", "line 3"},
		{"auth lockout negative", "smtp:\n  auth:\n    lockout: -5m\n", "line 3: smtp.auth.lockout: must be more than 0"},
		{"login without hash", "senders:\n  a:\n    login: a\n    from_domains: [a.example]\n", "senders.a.password_hash"},
		{"placeholder hash", "senders:\n  a:\n    login: a\n    password_hash: \"$2a$10$...\"\n    from_domains: [a.example]\n", "line 4: senders.a.password_hash"},
		{"port out of range", "listeners:\n  - address: 127.0.0.1:99999\n    mode: plain\n", "line 2: listeners[0].address: \"127.0.0.1:99999\" has no port number"},
		{"http port out of range", "http:\n  address: 127.0.0.1:70000\n", "line 2: http.address"},
		{"allowed host with a port", "http:\n  allowed_hosts:\n    - drover.internal\n    - drover.internal:8025\n", `line 4: http.allowed_hosts[1]: "drover.internal:8025" is not a host name`},
		{"allowed host as a URL", "http:\n  allowed_hosts: [\"http://drover.internal\"]\n", "line 2: http.allowed_hosts[0]"},
		{"http base url", "web:\n  base_url: http://news.example.com\n", `line 2: web.base_url: "http://news.example.com" must be https (http only for a loopback host)`},
		{"base url with a query", "web:\n  base_url: https://news.example.com/?a=b\n", "line 2: web.base_url"},
		{"base url not a url", "web:\n  base_url: news.example.com\n", "line 2: web.base_url"},
		{"bad web address", "web:\n  address: nowhere\n", "line 2: web.address"},
		{"bad sunset", "senders:\n  a:\n    from_domains: [a.example]\n    sunset_after: 7\n", "line 4: senders.a.sunset_after: 7 is not one of 0 (never), 5, 10, 20, 30"},
		{"bad list_unsubscribe", "senders:\n  a:\n    from_domains: [a.example]\n    list_unsubscribe: yes-please\n", "line 4: senders.a.list_unsubscribe"},
		{"bad stream", "senders:\n  a:\n    from_domains: [a.example]\n    stream: \"mar keting\"\n", "line 4: senders.a.stream"},
		{"negative mail log retention", "mail_log_retention: -24h\n", "line 1: mail_log_retention: must not be negative"},
		{"confirm after zero", "policy:\n  confirm_after: 0\n", "line 2: policy.confirm_after: must be at least 1"},
		{"bad spam trap", "policy:\n  spam_traps: [\"a@b@c\"]\n", "line 2: policy.spam_traps[0]"},
		{"bad consent list", "senders:\n  a:\n    from_domains: [a.example]\n    consent_required: [news, \"spring news\"]\n",
			`line 4: senders.a.consent_required[1]: "spring news" is not a list name (letters, digits, - . _) or "*"`},
		{"consent without policy", "policy:\n  enabled: false\nsenders:\n  a:\n    from_domains: [a.example]\n    consent_required: [\"*\"]\n",
			"line 6: senders.a.consent_required: requires policy.enabled: true"},
		{"bad consent stream", "policy:\n  consent_streams: [marketing, \"\"]\n", `line 2: policy.consent_streams[1]: "" is not a stream name`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse([]byte(tc.yaml))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error = %v, want it to contain %q", err, tc.want)
			}
		})
	}
}

// Errors name the key and what its value should be, never a Go type.
func TestErrorsNameNoGoType(t *testing.T) {
	cases := []struct{ yaml, want string }{
		{"limits:\n  max_recipients: lots\n", `line 2: limits.max_recipients: "lots" is not a whole number`},
		{"limits:\n  max_recipents: 5\n", "line 2: limits.max_recipents: unknown key"},
		{"queue:\n  durable: maybe\n", `line 2: queue.durable: "maybe" is not true or false`},
		{"queue:\n  delay_notice: soon\n", `line 2: queue.delay_notice: "soon" is not a duration`},
		{"queue:\n  delay_notice: [1]\n", "line 2: queue.delay_notice: a list is not a duration"},
		{"listeners: {a: 1}\n", "line 1: listeners: a mapping is not a list"},
	}
	for _, tc := range cases {
		_, err := Parse([]byte(tc.yaml))
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%q: error = %v, want it to contain %q", tc.yaml, err, tc.want)
		}
		if err != nil && (strings.Contains(err.Error(), "configs.") || strings.Contains(err.Error(), "!!") || strings.Contains(err.Error(), "time.Duration")) {
			t.Errorf("%q: error names a Go type: %v", tc.yaml, err)
		}
	}
}

// Durations take days, in the operator's file and in shaping, and the
// lines of errors after them stay right.
func TestDurationsTakeDays(t *testing.T) {
	c, err := Parse([]byte("queue:\n  delay_notice: 1d12h\nshaping:\n  default:\n    max_age: \"5d\"\n"))
	if err != nil {
		t.Fatal(err)
	}
	if c.Queue.DelayNotice != 36*time.Hour {
		t.Errorf("delay_notice 1d12h = %v", c.Queue.DelayNotice)
	}
	if d := c.Shaping.Default.MaxAge; d == nil || *d != 120*time.Hour {
		t.Errorf("shaping max_age 5d = %v", d)
	}
	_, err = Parse([]byte("queue: {delay_notice: 2d, durable: maybe}\n"))
	if err == nil || !strings.Contains(err.Error(), `line 1: queue.durable: "maybe"`) {
		t.Errorf("error after a day duration: %v", err)
	}
}

func TestAuthDefaultsAndOverrides(t *testing.T) {
	c, err := Load("")
	if err != nil {
		t.Fatal(err)
	}
	if want := (Auth{MaxFailuresPerSession: 3, SlowAfter: 5, LockoutAfter: 10, Window: 10 * time.Minute, Lockout: 15 * time.Minute}); c.SMTP.Auth != want {
		t.Errorf("default smtp.auth = %+v, want %+v", c.SMTP.Auth, want)
	}
	c, err = Parse([]byte("smtp:\n  auth:\n    lockout: 1h\n    slow_after: 2\n"))
	if err != nil {
		t.Fatal(err)
	}
	if a := c.SMTP.Auth; a.Lockout != time.Hour || a.SlowAfter != 2 || a.LockoutAfter != 10 || a.Window != 10*time.Minute {
		t.Errorf("smtp.auth = %+v", a)
	}
}

func TestOverrides(t *testing.T) {
	c, err := Parse([]byte("queue:\n  delay_notice: 1h\nlimits:\n  max_message_size: 512KiB\nroutes:\n  \"*\": \"[10.0.0.1]:2526\"\n"))
	if err != nil {
		t.Fatal(err)
	}
	if c.Queue.DelayNotice.Hours() != 1 || !c.Queue.Durable || c.Limits.MaxMessageSize != 512<<10 || c.Routes["*"] != "[10.0.0.1]:2526" {
		t.Errorf("config = %+v", c)
	}
}

// The shaping section decodes into configs' own types, keys as written;
// its values are checked by cmd/drover (with queue/shaping), not here.
func TestShapingSection(t *testing.T) {
	c, err := Parse([]byte(`pools:
  main: [192.0.2.1]
shaping:
  default:
    max_connections: 10
    max_message_rate: 3000/m
    max_connection_rate: 0
    retry_interval: 10m
    tls: mta-sts
    pool: main
  providers:
    google:
      mx: ["*.google.com"]
      max_connections: 5
      max_connection_rate: 20/10s
  sites:
    outlook.com:
      max_message_rate: unlimited
  domains:
    example.com:
      pool: ""
      max_age: 24h
    " ": {}
  rules:
    - name: custom
      pattern: 'slow down'
      code: 421
      action: slow
      factor: 0.25
      duration: 15m
    - name: odd
      action: slow
      factor: 7
`))
	if err != nil {
		t.Fatal(err)
	}
	sh := c.Shaping
	if d := sh.Default; *d.MaxConnections != 10 || *d.MaxMessageRate != "3000/m" || *d.MaxConnectionRate != "0" ||
		*d.RetryInterval != 10*time.Minute || *d.TLS != "mta-sts" || *d.Pool != "main" || d.MaxAge == nil {
		t.Errorf("default %+v", d)
	}
	if g := sh.Providers["google"]; g.MX[0] != "*.google.com" || *g.MaxConnections != 5 || *g.MaxConnectionRate != "20/10s" || g.TLS != nil {
		t.Errorf("google %+v", g)
	}
	if r := sh.Sites["outlook.com"].MaxMessageRate; r == nil || *r != "unlimited" {
		t.Errorf("outlook.com rate %v", r)
	}
	if d := sh.Domains["example.com"]; d.Pool == nil || *d.Pool != "" || *d.MaxAge != 24*time.Hour || d.MaxConnections != nil {
		t.Errorf("example.com %+v", d)
	}
	want := ShapingRule{Name: "custom", Pattern: "slow down", Code: 421, Action: "slow", Factor: 0.25, Duration: 15 * time.Minute}
	if len(sh.Rules) != 2 || sh.Rules[0] != want || sh.Rules[1].Factor != 7 {
		t.Errorf("rules %+v", sh.Rules)
	}
	for path, line := range map[string]int{
		"shaping.default.max_message_rate":    6,
		"shaping.providers.google.mx[0]":      13, // a flow sequence: the line of the item
		"shaping.domains.example.com.max_age": 22,
		`shaping.domains[" "]`:                23,
		"shaping.rules[1]":                    31,
		"shaping.rules[1].duration":           31, // missing: its rule's line
		"shaping.rules[1].factor":             33,
		"routes":                              0, // from the embedded default
	} {
		if got := c.Line(path); got != line {
			t.Errorf("Line(%q) = %d, want %d", path, got, line)
		}
	}
	err = c.ErrorAt("shaping.rules[1].factor", "7 is not between 0 and 1")
	var ke *KeyError
	if !errors.As(err, &ke) || err.Error() != "line 33: shaping.rules[1].factor: 7 is not between 0 and 1" {
		t.Errorf("ErrorAt = %v", err)
	}
}

// The shipped shaping defaults decode into the same types, with lines.
func TestShipped(t *testing.T) {
	s, err := LoadShipped()
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"google", "microsoft", "yahoo", "apple", "comcast", "gmx", "mailru", "qq", "netease"} {
		if len(s.Providers[name].MX) == 0 {
			t.Errorf("shipped provider %q missing", name)
		}
	}
	if len(s.Rules) == 0 || s.Rules[0].Name == "" {
		t.Errorf("shipped rules %+v", s.Rules)
	}
	if s.Line("providers.google.tls") == 0 || s.Line("rules[0]") == 0 {
		t.Error("no lines for shipped keys")
	}
	if err := s.ErrorAt("rules[0].factor", "x"); !strings.HasPrefix(err.Error(), ShippedFile+": line ") {
		t.Errorf("ErrorAt = %v", err)
	}
	// A fresh copy each time.
	s.Providers["google"].MX[0] = "changed"
	if s2, _ := LoadShipped(); s2.Providers["google"].MX[0] == "changed" {
		t.Error("LoadShipped shares values")
	}
	if !bytes.Contains(ProvidersYAML(), []byte("\nproviders:\n")) {
		t.Error("ProvidersYAML")
	}
}

// A sender's pools must be configured, like the shaping's.
func TestPolicyDefaults(t *testing.T) {
	c, err := Parse([]byte("listeners:\n  - {address: 127.0.0.1:2525, mode: plain}\nsenders:\n  shop:\n    from_domains: [shop.example]\nweb:\n  base_url: http://127.0.0.1:8026\n"))
	if err != nil {
		t.Fatal(err)
	}
	if s := c.Senders["shop"]; s.Stream != "marketing" || s.ListUnsubscribe != "add" || s.SunsetAfter != 0 || s.DropSuppressed {
		t.Errorf("sender defaults %+v", s)
	}
	if !c.Policy.Enabled || c.Policy.ConfirmAfter != 3 || !c.Policy.ConfirmUnambiguous || len(c.Policy.Streams["transactional"]) != 5 {
		t.Errorf("policy defaults %+v", c.Policy)
	}
	if c.Web.LinkMaxAge != 365*24*time.Hour || c.Web.Address != "127.0.0.1:8026" {
		t.Errorf("web defaults %+v", c.Web)
	}
	if len(c.Senders["shop"].ConsentRequired) != 0 || !slices.Equal(c.Policy.ConsentStreams, []string{"marketing"}) {
		t.Errorf("consent defaults: required %v, streams %v", c.Senders["shop"].ConsentRequired, c.Policy.ConsentStreams)
	}
}

// Consent: the lists a sender requires it for, the streams that need it;
// a file's list of streams replaces the default's.
func TestConsentOptions(t *testing.T) {
	c, err := Parse([]byte("listeners:\n  - {address: 127.0.0.1:2525, mode: plain}\npolicy:\n  consent_streams: [newsletter, promo]\nsenders:\n  shop:\n    from_domains: [shop.example]\n    consent_required: [spring-news, \"*\"]\n"))
	if err != nil {
		t.Fatal(err)
	}
	if got := c.Senders["shop"].ConsentRequired; !slices.Equal(got, []string{"spring-news", "*"}) {
		t.Errorf("consent_required %v", got)
	}
	if got := c.Policy.ConsentStreams; !slices.Equal(got, []string{"newsletter", "promo"}) {
		t.Errorf("consent_streams %v", got)
	}
	c, err = Parse([]byte("policy:\n  consent_streams: []\n"))
	if err != nil || c.Policy.ConsentStreams == nil || len(c.Policy.ConsentStreams) != 0 {
		t.Errorf("consent_streams: [] gives %#v, %v", c.Policy.ConsentStreams, err)
	}
}

func TestSenderPools(t *testing.T) {
	_, err := Parse([]byte("senders:\n  shop:\n    from_domains: [shop.example]\n    pool: nope\n    stream_pools: {transactional: tx}\n"))
	if err == nil || !strings.Contains(err.Error(), `senders.shop.pool`) || !strings.Contains(err.Error(), `no pool named "nope"`) ||
		!strings.Contains(err.Error(), `senders.shop.stream_pools.transactional`) {
		t.Errorf("error %v", err)
	}
	if _, err := Parse([]byte("pools: {m: [192.0.2.1], tx: [192.0.2.2]}\nsenders:\n  default: {from_domains: [\"*\"]}\n  shop:\n    from_domains: [shop.example]\n    pool: m\n    stream_pools: {transactional: tx}\n")); err != nil {
		t.Errorf("valid pools: %v", err)
	}
}

// FuzzExpandDays: rewriting days never panics and never moves a line.
func FuzzExpandDays(f *testing.F) {
	f.Add([]byte("queue:\n  delay_notice: 5d\n"))
	f.Add([]byte("queue: {delay_notice: '1d12h', drain_timeout: 2d}\nshaping:\n  default:\n    max_age: \"3d\"\n"))
	f.Add([]byte("queue:\n  delay_notice: 99999999999999999999d\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		out := expandDays(data, reflect.TypeOf(Config{}))
		if bytes.Count(out, []byte("\n")) != bytes.Count(data, []byte("\n")) {
			t.Fatalf("lines moved: %q -> %q", data, out)
		}
	})
}
