// Package configs owns Drover's configuration: the YAML schema, the embedded
// default configuration (default.yaml, used when `drover serve` runs without
// a file), validation, and the documented example (drover.example.yaml).
//
// It also holds the shaping defaults Drover ships for the large mailbox
// providers (configs/providers/providers.yaml, decoded by LoadShipped).
//
// Only cmd/drover reads this package; every other package takes plain
// values, and this package imports none of ours (but its data folder,
// configs/providers). Loading is strict: an unknown key or a value of the
// wrong type is an error naming its line. Parse checks what this package
// owns: the types, addresses, ports, durations, and the names one part of
// the file gives another (senders, pools). The meaning of shaping values
// and routes is checked once, by the packages that use them
// (queue/shaping, mta/resolve), called from cmd/drover: their errors name
// the entry at fault, and Config.ErrorAt turns that into the key and its
// line, so every error of a file names its key and line.
package configs

import (
	"bytes"
	_ "embed"
	"errors"
	"fmt"
	"io"
	"maps"
	"net"
	"net/mail"
	"net/url"
	"os"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"golang.org/x/crypto/bcrypt"
	"gopkg.in/yaml.v3"
)

//go:embed default.yaml
var defaultYAML []byte

// DefaultYAML returns the embedded default configuration.
func DefaultYAML() []byte { return bytes.Clone(defaultYAML) }

// Config is the whole configuration file.
type Config struct {
	Hostname string `yaml:"hostname"`
	DataDir  string `yaml:"data_dir"`
	LogLevel string `yaml:"log_level"`
	MailLog  string `yaml:"mail_log"`
	// MailLogRetention is how long the mail log's daily files are kept
	// (0: for ever).
	MailLogRetention time.Duration       `yaml:"mail_log_retention"`
	TLS              TLS                 `yaml:"tls"`
	Listeners        []Listener          `yaml:"listeners"`
	HTTP             HTTP                `yaml:"http"`
	Limits           Limits              `yaml:"limits"`
	SMTP             SMTP                `yaml:"smtp"`
	Queue            Queue               `yaml:"queue"`
	Shaping          Shaping             `yaml:"shaping"`
	Pools            map[string][]string `yaml:"pools"`
	Delivery         Delivery            `yaml:"delivery"`
	Bounces          Bounces             `yaml:"bounces"`
	Policy           Policy              `yaml:"policy"`
	Web              Web                 `yaml:"web"`
	Senders          map[string]*Sender  `yaml:"senders"`
	Routes           map[string]string   `yaml:"routes"`
	lines            map[string]int      // key path → line, for semantic errors
	file             string              // the file Load read; "" for the embedded default or Parse
}

// TLS names the certificate used by TLS listeners. When both files are
// empty, a self-signed certificate for Hostname is made at start.
type TLS struct {
	CertFile string `yaml:"cert_file"`
	KeyFile  string `yaml:"key_file"`
}

// Listener is one SMTP submission listener.
type Listener struct {
	Address string `yaml:"address"`
	// Mode: "plain" (no TLS offered), "starttls" (STARTTLS offered), "tls"
	// (implicit TLS, as on port 465).
	Mode string `yaml:"mode"`
	// LoopbackSender: unauthenticated clients connecting from a loopback
	// address submit as this sender. "" = everyone must authenticate.
	LoopbackSender string `yaml:"loopback_sender"`
}

// HTTP is the one HTTP listener: /metrics, /healthz and the admin API.
type HTTP struct {
	Address    string `yaml:"address"`
	AdminToken string `yaml:"admin_token"`
	// AllowedHosts are the names, besides IP addresses and localhost,
	// under which the admin API may be called (its Host header).
	AllowedHosts []string `yaml:"allowed_hosts"`
}

// Limits bound what a client may submit.
type Limits struct {
	MaxMessageSize Size          `yaml:"max_message_size"`
	MaxRecipients  int           `yaml:"max_recipients"`
	MaxLineLength  int           `yaml:"max_line_length"`
	ReadTimeout    time.Duration `yaml:"read_timeout"`
	WriteTimeout   time.Duration `yaml:"write_timeout"`
}

// SMTP configures the submission listeners' handling of clients.
type SMTP struct {
	Auth Auth `yaml:"auth"`
}

// Auth bounds password guessing over AUTH: per session, and per client
// address across sessions and listeners.
type Auth struct {
	// MaxFailuresPerSession failed logins end the session (421 4.7.0).
	MaxFailuresPerSession int `yaml:"max_failures_per_session"`
	// SlowAfter failures from one address within Window delay the reply
	// to each further AUTH from it (1 s, doubling, up to 8 s).
	SlowAfter int `yaml:"slow_after"`
	// LockoutAfter failures from one address within Window refuse its
	// AUTH (454 4.7.0, unchecked) for Lockout.
	LockoutAfter int           `yaml:"lockout_after"`
	Window       time.Duration `yaml:"window"`
	Lockout      time.Duration `yaml:"lockout"`
}

// Queue configures the spool. Retries and per-site limits are shaping.
type Queue struct {
	Durable      bool          `yaml:"durable"`
	DelayNotice  time.Duration `yaml:"delay_notice"`
	DrainTimeout time.Duration `yaml:"drain_timeout"`
	MinFreeSpace Size          `yaml:"min_free_space"`
}

// Delivery configures the outbound SMTP client and DNS.
type Delivery struct {
	Resolver       string        `yaml:"resolver"`
	Port           int           `yaml:"port"`
	ConnectTimeout time.Duration `yaml:"connect_timeout"`
	CommandTimeout time.Duration `yaml:"command_timeout"`
	DataTimeout    time.Duration `yaml:"data_timeout"`
}

// Bounces configures VERP return paths, the inbound listener for
// asynchronous bounces and feedback reports, and extra classifier rules.
type Bounces struct {
	VERPKeyFile       string       `yaml:"verp_key_file"`
	InboundAddress    string       `yaml:"inbound_address"`
	FeedbackAddresses []string     `yaml:"feedback_addresses"`
	Rules             []BounceRule `yaml:"rules"`
}

// Policy configures list hygiene: the suppression list and the rules
// that feed it.
type Policy struct {
	// Enabled: RCPT asks the suppression list, outcomes feed it. Off,
	// Drover mails whoever it is given.
	Enabled bool `yaml:"enabled"`
	// ConfirmAfter hard bounces in a row make a confirmed bounce.
	ConfirmAfter int `yaml:"confirm_after"`
	// ConfirmUnambiguous: one hard bounce that says the mailbox or the
	// domain does not exist (user unknown, host unknown, null MX) is a
	// confirmed bounce at once.
	ConfirmUnambiguous bool `yaml:"confirm_unambiguous"`
	// Streams lists, per stream, the suppression reasons that keep a
	// recipient from it; a stream not listed follows marketing.
	Streams map[string][]string `yaml:"streams"`
	// SpamTraps are addresses and domains (a domain: "example.com" or
	// "@example.com") nothing is sent to.
	SpamTraps []string `yaml:"spam_traps"`
	// PendingConsentTTL: a double opt-in sign-up not confirmed within it
	// is deleted. ConsentProofRetention: how long the history of a
	// withdrawn or lapsed consent is kept. 0 keeps them.
	PendingConsentTTL     time.Duration `yaml:"pending_consent_ttl"`
	ConsentProofRetention time.Duration `yaml:"consent_proof_retention"`
	// ConsentStreams are the streams whose mail needs the recipient's
	// confirmed consent where a sender requires it (consent_required); a
	// stream listed neither here nor in streams follows marketing.
	ConsentStreams []string `yaml:"consent_streams"`
}

// Web is the public web listener: the recipient-facing pages (one-click
// unsubscribe), apart from the admin API.
type Web struct {
	Address string `yaml:"address"`
	// BaseURL is the public https URL the listener is reached at (through
	// a TLS-terminating proxy); "" = no https unsubscribe link in mail.
	BaseURL      string        `yaml:"base_url"`
	LinkKeysFile string        `yaml:"link_keys_file"`
	LinkMaxAge   time.Duration `yaml:"link_max_age"`
	// LocalesDir holds more languages for the pages, LANG.json each.
	LocalesDir string `yaml:"locales_dir"`
	// SignupsPerHour bounds the sign-ups of one client IP.
	SignupsPerHour int `yaml:"signups_per_hour"`
}

// BounceRule is an admin rule of the bounce classifier, tried before the
// embedded table.
type BounceRule struct {
	Pattern string `yaml:"pattern"`
	Status  string `yaml:"status"`
	Host    string `yaml:"host"`
	Reason  string `yaml:"reason"`
}

// Sender is an account that submits mail.
type Sender struct {
	Login        string   `yaml:"login"`
	PasswordHash string   `yaml:"password_hash"`
	FromDomains  []string `yaml:"from_domains"`
	DSN          bool     `yaml:"dsn"`
	DelayDSN     bool     `yaml:"delay_dsn"`
	BounceDomain string   `yaml:"bounce_domain"`
	DKIM         []DKIM   `yaml:"dkim"`
	// Pool is the source IP pool of the sender's mail (a name in pools);
	// "" leaves the choice to the shaping. StreamPools picks a pool per
	// X-Drover-Stream (marketing, transactional, ...), over Pool.
	Pool        string            `yaml:"pool"`
	StreamPools map[string]string `yaml:"stream_pools"`
	// Stream is the stream of a message that names none (MAIL's
	// X-DROVER-STREAM or the X-Drover-Stream header).
	Stream string `yaml:"stream"`
	// ListUnsubscribe on marketing mail: "add" (Drover's headers, in place
	// of the application's), "keep" (the application's, when it has
	// them; else Drover's), "off".
	ListUnsubscribe string `yaml:"list_unsubscribe"`
	// DropSuppressed accepts suppressed recipients and drops them (a
	// suppressed event each) instead of refusing them at RCPT.
	DropSuppressed bool `yaml:"drop_suppressed"`
	// SunsetAfter: 5, 10, 20 or 30 suppresses, for this sender, a
	// recipient who engaged with none of its last N marketing messages;
	// 0 = never.
	SunsetAfter int `yaml:"sunset_after"`
	// ConsentRequired names the sender's lists (X-Drover-List) whose mail
	// (on policy.consent_streams) goes only to recipients with a
	// confirmed consent record; "*" is every list and the sender's mail
	// that names no list.
	ConsentRequired []string `yaml:"consent_required"`
	// PrivacyPolicyURL is linked from the consent checkbox of the sign-up
	// form (drover form html).
	PrivacyPolicyURL string `yaml:"privacy_policy_url"`
	// Signup names the lists that take sign-ups on the hosted form
	// (POST /subscribe/SENDER/LIST of the web listener), with the consent
	// text the form shows.
	Signup map[string]*SignupList `yaml:"signup"`
	// Confirmation is the double opt-in confirmation message.
	Confirmation *Confirmation `yaml:"confirmation"`
}

func (s *Sender) streamPools() map[string]string {
	if s == nil {
		return nil
	}
	return s.StreamPools
}

// SignupList is a list that takes sign-ups on the hosted form.
type SignupList struct {
	// DoubleOptIn: a sign-up is pending until the recipient confirms it
	// from the confirmation message.
	DoubleOptIn bool `yaml:"double_opt_in"`
	// ConsentText is what the form's checkbox says: recorded (by hash)
	// with every consent as the text the person agreed to.
	ConsentText string   `yaml:"consent_text"`
	Purposes    []string `yaml:"purposes"`
}

// Confirmation is a sender's double opt-in confirmation message: From,
// and per language (BCP 47 tag; "en" is required) the subject, text and
// HTML, with {list}, {sender} and {link}.
type Confirmation struct {
	From    string            `yaml:"from"`
	Subject map[string]string `yaml:"subject"`
	Text    map[string]string `yaml:"text"`
	HTML    map[string]string `yaml:"html"`
}

// DKIM is one signing key of a sender's From domain.
type DKIM struct {
	Domain   string `yaml:"domain"`
	Selector string `yaml:"selector"`
	KeyFile  string `yaml:"key_file"`
}

// Size is a byte count written as a number or with a unit (10MB, 512KiB).
type Size int64

var sizeRE = regexp.MustCompile(`^(\d+)\s*([KMG]I?B?|B)?$`)

// UnmarshalYAML accepts 1048576, "1MB", "1MiB", "512KB".
func (s *Size) UnmarshalYAML(n *yaml.Node) error {
	m := sizeRE.FindStringSubmatch(strings.ToUpper(strings.TrimSpace(n.Value)))
	if n.Kind != yaml.ScalarNode || m == nil {
		return fmt.Errorf("line %d: %q is not a size (e.g. 25MB, 512KiB, 1048576)", n.Line, n.Value)
	}
	v, err := strconv.ParseInt(m[1], 10, 64)
	if err != nil {
		return fmt.Errorf("line %d: %q: %w", n.Line, n.Value, err)
	}
	unit := strings.TrimSuffix(strings.TrimSuffix(m[2], "B"), "I")
	switch unit {
	case "K":
		v <<= 10
	case "M":
		v <<= 20
	case "G":
		v <<= 30
	}
	*s = Size(v)
	return nil
}

// Load reads and validates a configuration file. path "" means the
// embedded default.
func Load(path string) (*Config, error) {
	if path == "" {
		return Parse(defaultYAML)
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	c, err := Parse(data)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	c.file = path
	return c, nil
}

// File returns the path of the file Load read, "" for the embedded
// default (or a Config from Parse).
func (c *Config) File() string { return c.file }

// Parse decodes YAML over the built-in defaults and validates the result.
// Keys absent from data keep their default value.
func Parse(data []byte) (*Config, error) {
	c := &Config{}
	if err := decodeStrict(expandDays(defaultYAML, reflect.TypeOf(c).Elem()), c); err != nil {
		return nil, fmt.Errorf("embedded default: %w", err)
	}
	// A file that names senders, listeners or routes replaces the
	// default's set rather than merging into it.
	var probe struct {
		Senders   yaml.Node `yaml:"senders"`
		Listeners yaml.Node `yaml:"listeners"`
		Routes    yaml.Node `yaml:"routes"`
	}
	_ = yaml.Unmarshal(data, &probe)
	if probe.Senders.Kind != 0 {
		c.Senders = nil
	}
	if probe.Listeners.Kind != 0 {
		c.Listeners = nil
	}
	if probe.Routes.Kind != 0 {
		c.Routes = nil
	}
	data = expandDays(data, reflect.TypeOf(c).Elem())
	if err := decodeStrict(data, c); err != nil {
		return nil, err
	}
	c.lines = indexFile(data)
	if err := c.validate(); err != nil {
		return nil, err
	}
	c.applyDerived()
	return c, nil
}

func decodeStrict(data []byte, v any) error {
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(v); err != nil && !errors.Is(err, io.EOF) {
		var te *yaml.TypeError
		if errors.As(err, &te) {
			ss, lines := scalars(data, reflect.TypeOf(v).Elem()), indexFile(data)
			msgs := make([]string, len(te.Errors))
			for i, m := range te.Errors {
				msgs[i] = friendly(m, ss, lines)
			}
			return fmt.Errorf("invalid configuration:\n  %s", strings.Join(msgs, "\n  "))
		}
		return fmt.Errorf("invalid configuration: %w", err)
	}
	return nil
}

// indexFile returns the line of every key of a YAML document by path (see
// Config.Line): mapping keys by dotted path, sequence items as [i], blank
// keys as [""].
func indexFile(data []byte) map[string]int {
	var root yaml.Node
	_ = yaml.Unmarshal(data, &root)
	lines := map[string]int{}
	walkYAML(&root, nil, func(_ *yaml.Node, path string, line int, _ reflect.Type) { lines[path] = line })
	return lines
}

// child returns the path of key under path (see Config.Line).
func KeyPath(path, key string) string {
	switch {
	case strings.TrimSpace(key) == "":
		return fmt.Sprintf("%s[%q]", path, key)
	case path == "":
		return key
	}
	return path + "." + key
}

// Line returns the line of the key at path in the file Parse read: mapping
// keys joined with dots, sequence items as [i], a blank key as [""]
// ("shaping.providers.google.mx[1]", "routes.*.test",
// `shaping.domains[" "]`). When the file does not have that key, it
// returns the line of the closest enclosing key it has (so a required
// field that is missing points at its entry), and 0 when it has none: the
// value came from the embedded default.
func (c *Config) Line(path string) int { return lineOf(c.lines, path) }

func lineOf(lines map[string]int, path string) int {
	for path != "" {
		if line, ok := lines[path]; ok {
			return line
		}
		// Drop the last component: "a.b[2]" → "a.b" → "a". A key with
		// dots ("domains.a.example") just takes more steps.
		i := strings.LastIndexAny(path, ".[")
		if i < 0 {
			break
		}
		path = path[:i]
	}
	return 0
}

// KeyError is a problem with the value of one key.
type KeyError struct {
	File string // set for the shipped defaults (ShippedFile); Load names the operator's file itself
	Path string // as Config.Line takes it
	Line int    // 0: not in the file
	Msg  string
}

// Error formats e as "line 3: shaping.default.max_connections: MSG".
func (e *KeyError) Error() string {
	s := e.Path + ": " + e.Msg
	if e.Line > 0 {
		s = fmt.Sprintf("line %d: %s", e.Line, s)
	}
	if e.File != "" {
		s = e.File + ": " + s
	}
	return s
}

// ErrorAt returns the error (a *KeyError) for a problem with the value at
// path, naming the key and its line. cmd/drover reports the problems that
// other packages find in configuration values with it, so that they read
// like Parse's own.
func (c *Config) ErrorAt(path, msg string) error {
	return &KeyError{Path: path, Line: c.Line(path), Msg: msg}
}

// errAt is ErrorAt with a format.
func (c *Config) errAt(path, format string, args ...any) error {
	return c.ErrorAt(path, fmt.Sprintf(format, args...))
}

// badHostPort says what is wrong with a listening or connecting address,
// "" when it is a host:port whose port is a number from 0 to 65535 (0: any
// free port).
func badHostPort(addr string) string {
	_, port, err := net.SplitHostPort(addr)
	if err != nil {
		return "is not host:port"
	}
	if n, err := strconv.Atoi(port); err != nil || n < 0 || n > 65535 {
		return "has no port number from 0 to 65535"
	}
	return ""
}

// isHostName reports whether h is a DNS name or an IP address, without
// a port.
func isHostName(h string) bool {
	if net.ParseIP(h) != nil {
		return true
	}
	h = strings.TrimSuffix(h, ".")
	for _, label := range strings.Split(h, ".") {
		if label == "" || len(label) > 63 {
			return false
		}
		for _, r := range label {
			if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_') {
				return false
			}
		}
	}
	return true
}

var streamName = regexp.MustCompile(`^[A-Za-z0-9._-]{1,64}$`)

// badBaseURL says what is wrong with the public base URL, "" when it is
// an https URL with a host and no query or fragment (http only for a
// loopback host: a local test, never mail that goes out).
func badBaseURL(s string) string {
	u, err := url.Parse(s)
	switch {
	case err != nil || u.Host == "" || u.Opaque != "":
		return "is not an absolute URL"
	case u.RawQuery != "" || u.Fragment != "" || u.User != nil:
		return "must have no query, fragment or user"
	case u.Scheme == "https":
		return ""
	case u.Scheme == "http":
		h := u.Hostname()
		if ip := net.ParseIP(h); h == "localhost" || (ip != nil && ip.IsLoopback()) {
			return ""
		}
		return "must be https (http only for a loopback host)"
	}
	return "must be an https URL"
}

func (c *Config) validate() error {
	var errs []error
	add := func(path, format string, args ...any) { errs = append(errs, c.errAt(path, format, args...)) }

	switch c.LogLevel {
	case "debug", "info", "warn", "error":
	default:
		add("log_level", "%q is not one of debug, info, warn, error", c.LogLevel)
	}
	if c.DataDir == "" {
		add("data_dir", "must not be empty")
	}
	if c.MailLogRetention < 0 {
		add("mail_log_retention", "must not be negative (0 keeps the mail log for ever)")
	}
	if (c.TLS.CertFile == "") != (c.TLS.KeyFile == "") {
		add("tls", "cert_file and key_file go together")
	}
	if len(c.Listeners) == 0 {
		add("listeners", "at least one listener is needed")
	}
	for i, l := range c.Listeners {
		p := fmt.Sprintf("listeners[%d]", i)
		if msg := badHostPort(l.Address); msg != "" {
			add(p+".address", "%q %s", l.Address, msg)
		}
		switch l.Mode {
		case "plain", "starttls", "tls":
		default:
			add(p+".mode", "%q is not one of plain, starttls, tls", l.Mode)
		}
		if l.LoopbackSender != "" && c.Senders[l.LoopbackSender] == nil {
			add(p+".loopback_sender", "no sender named %q", l.LoopbackSender)
		}
	}
	if msg := badHostPort(c.HTTP.Address); c.HTTP.Address != "" && msg != "" {
		add("http.address", "%q %s", c.HTTP.Address, msg)
	}
	for i, h := range c.HTTP.AllowedHosts {
		if !isHostName(h) {
			add(fmt.Sprintf("http.allowed_hosts[%d]", i), "%q is not a host name (no scheme, port or path)", h)
		}
	}
	if msg := badHostPort(c.Bounces.InboundAddress); c.Bounces.InboundAddress != "" && msg != "" {
		add("bounces.inbound_address", "%q %s", c.Bounces.InboundAddress, msg)
	}
	if c.Limits.MaxMessageSize < 1024 {
		add("limits.max_message_size", "must be at least 1KB")
	}
	if c.Limits.MaxRecipients < 1 {
		add("limits.max_recipients", "must be at least 1")
	}
	if c.Limits.MaxLineLength != 0 && c.Limits.MaxLineLength < 1000 {
		add("limits.max_line_length", "must be 0 (no limit) or at least 1000 (RFC 5321)")
	}
	a := c.SMTP.Auth
	for _, k := range []struct {
		key string
		n   int
	}{{"max_failures_per_session", a.MaxFailuresPerSession}, {"slow_after", a.SlowAfter}, {"lockout_after", a.LockoutAfter}} {
		if k.n < 1 {
			add("smtp.auth."+k.key, "must be at least 1, not %d", k.n)
		}
	}
	if a.SlowAfter > a.LockoutAfter && a.LockoutAfter >= 1 {
		add("smtp.auth.slow_after", "%d is more than smtp.auth.lockout_after (%d): replies would never be slowed", a.SlowAfter, a.LockoutAfter)
	}
	if a.Window <= 0 {
		add("smtp.auth.window", "must be more than 0, not %s", a.Window)
	}
	if a.Lockout <= 0 {
		add("smtp.auth.lockout", "must be more than 0, not %s", a.Lockout)
	}
	if c.Queue.DelayNotice < 0 {
		add("queue.delay_notice", "must not be negative")
	}
	if c.Queue.DrainTimeout <= 0 {
		add("queue.drain_timeout", "must be more than 0")
	}
	if c.Queue.MinFreeSpace < 1<<20 {
		add("queue.min_free_space", "must be at least 1MB")
	}
	pools := c.Shaping.pools()
	for name, snd := range c.Senders {
		if snd != nil && snd.Pool != "" {
			pools[KeyPath("senders."+name, "pool")] = snd.Pool
		}
		for stream, p := range snd.streamPools() {
			pools[KeyPath("senders."+name+".stream_pools", stream)] = p
		}
	}
	for _, path := range slices.Sorted(maps.Keys(pools)) {
		if c.Pools[pools[path]] == nil {
			add(path, "no pool named %q in pools", pools[path])
		}
	}
	for name, ips := range c.Pools {
		for i, ip := range ips {
			if net.ParseIP(ip) == nil {
				add(fmt.Sprintf("pools.%s[%d]", name, i), "%q is not an IP address", ip)
			}
		}
	}
	d := c.Delivery
	if d.Resolver != "" {
		if msg := badHostPort(d.Resolver); msg != "" {
			add("delivery.resolver", "%q %s", d.Resolver, msg)
		}
	}
	if d.Port < 1 || d.Port > 65535 {
		add("delivery.port", "%d is not a port", d.Port)
	}
	if c.Policy.PendingConsentTTL < 0 || c.Policy.ConsentProofRetention < 0 {
		add("policy", "pending_consent_ttl and consent_proof_retention must not be negative (0 keeps the records)")
	}
	if c.Policy.ConfirmAfter < 1 {
		add("policy.confirm_after", "must be at least 1, not %d", c.Policy.ConfirmAfter)
	}
	for i, t := range c.Policy.SpamTraps {
		if d := t[strings.LastIndex(t, "@")+1:]; !isHostName(d) || strings.Count(t, "@") > 1 {
			add(fmt.Sprintf("policy.spam_traps[%d]", i), "%q is not an address or a domain", t)
		}
	}
	for i, s := range c.Policy.ConsentStreams {
		if !streamName.MatchString(s) {
			add(fmt.Sprintf("policy.consent_streams[%d]", i), "%q is not a stream name (letters, digits, - . _)", s)
		}
	}
	if msg := badHostPort(c.Web.Address); c.Web.Address != "" && msg != "" {
		add("web.address", "%q %s", c.Web.Address, msg)
	}
	if c.Web.BaseURL != "" {
		if msg := badBaseURL(c.Web.BaseURL); msg != "" {
			add("web.base_url", "%q %s", c.Web.BaseURL, msg)
		}
	}
	if c.Web.SignupsPerHour < 1 {
		add("web.signups_per_hour", "must be at least 1")
	}
	if c.Web.LinkMaxAge < 0 {
		add("web.link_max_age", "must not be negative (0: links never expire)")
	}
	logins := map[string]string{}
	for _, name := range slices.Sorted(maps.Keys(c.Senders)) {
		s := c.Senders[name]
		p := "senders." + name
		if s == nil {
			add(p, "empty sender")
			continue
		}
		if s.Login != "" {
			if other, dup := logins[s.Login]; dup {
				add(p+".login", "login %q is also used by sender %q", s.Login, other)
			}
			logins[s.Login] = name
			if _, err := bcrypt.Cost([]byte(s.PasswordHash)); err != nil {
				add(p+".password_hash", "a login needs a bcrypt password hash (drover passwd makes one): %v", err)
			}
		}
		if len(s.FromDomains) == 0 {
			add(p+".from_domains", "at least one domain (or \"*\") is needed")
		}
		if s.Stream != "" && !streamName.MatchString(s.Stream) {
			add(p+".stream", "%q is not a stream name (letters, digits, - . _)", s.Stream)
		}
		switch s.ListUnsubscribe {
		case "", "add", "keep", "off":
		default:
			add(p+".list_unsubscribe", "%q is not one of add, keep, off", s.ListUnsubscribe)
		}
		switch s.SunsetAfter {
		case 0, 5, 10, 20, 30:
		default:
			add(p+".sunset_after", "%d is not one of 0 (never), 5, 10, 20, 30", s.SunsetAfter)
		}
		for i, l := range s.ConsentRequired {
			if l != "*" && !streamName.MatchString(l) {
				add(fmt.Sprintf("%s.consent_required[%d]", p, i), "%q is not a list name (letters, digits, - . _) or \"*\"", l)
			}
		}
		doi := false
		for _, name := range slices.Sorted(maps.Keys(s.Signup)) {
			l, lp := s.Signup[name], p+".signup."+name
			if !streamName.MatchString(name) {
				add(lp, "%q is not a list name (letters, digits, - . _)", name)
			}
			if l == nil || strings.TrimSpace(l.ConsentText) == "" {
				add(lp+".consent_text", "a list that takes sign-ups needs the consent text its form shows")
				continue
			}
			doi = doi || l.DoubleOptIn
		}
		if doi && (c.Web.BaseURL == "" || c.Web.Address == "") {
			add(p+".signup", "double opt-in needs the web listener (web.address) and its public web.base_url for the confirmation link")
		}
		if doi {
			cf := s.Confirmation
			switch {
			case cf == nil || cf.From == "":
				add(p+".confirmation.from", "double opt-in needs a confirmation message with a From address")
			case cf.Subject["en"] == "" || cf.Text["en"] == "":
				add(p+".confirmation", "the confirmation needs an English (en) subject and text")
			case !strings.Contains(cf.Text["en"], "{link}"):
				add(p+".confirmation.text", "the text must hold {link}, the confirmation page's address")
			}
			if cf != nil && cf.From != "" {
				if _, err := mail.ParseAddress(cf.From); err != nil {
					add(p+".confirmation.from", "%q is not an address: %v", cf.From, err)
				}
			}
		}
		if s.PrivacyPolicyURL != "" {
			if u, err := url.Parse(s.PrivacyPolicyURL); err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
				add(p+".privacy_policy_url", "%q is not an http(s) URL", s.PrivacyPolicyURL)
			}
		}
		if len(s.ConsentRequired) > 0 && !c.Policy.Enabled {
			add(p+".consent_required", "requires policy.enabled: true (without it nothing is checked)")
		}
		for i, k := range s.DKIM {
			kp := fmt.Sprintf("%s.dkim[%d]", p, i)
			if k.Domain == "" || k.Selector == "" || k.KeyFile == "" {
				add(kp, "domain, selector and key_file are all required")
			}
		}
	}
	return errors.Join(errs...)
}

func (c *Config) applyDerived() {
	for _, s := range c.Senders {
		if s.Stream == "" {
			s.Stream = "marketing"
		}
		if s.ListUnsubscribe == "" {
			s.ListUnsubscribe = "add"
		}
	}
	if c.Hostname == "" {
		if h, err := os.Hostname(); err == nil && strings.Contains(h, ".") {
			c.Hostname = h
		} else if err == nil {
			c.Hostname = h + ".localdomain"
		} else {
			c.Hostname = "localhost.localdomain"
		}
	}
}
