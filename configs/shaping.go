package configs

import (
	"bytes"
	"fmt"
	"time"

	"drover/configs/providers"
)

// Shaping is the `shaping:` section: per-site limits, layered (default,
// provider, site, domain), and the adaptive-backoff rules. Its values are
// checked where they are used (cmd/drover hands them to queue/shaping);
// the decoder checks keys and types, and Parse that every pool named
// exists.
type Shaping struct {
	// Default is layered over the built-in limits for every site.
	Default ShapingSettings `yaml:"default"`
	// Providers, by name, replace the shipped provider of the same name
	// entirely.
	Providers map[string]ShapingProvider `yaml:"providers"`
	// Sites, by site name ("google.com", "a.example+b.example",
	// "route:127.0.0.1:2526").
	Sites map[string]ShapingSettings `yaml:"sites"`
	// Domains, by recipient domain; a domain listed here is its own site.
	Domains map[string]ShapingSettings `yaml:"domains"`
	// Rules are tried before the shipped rules; one named like a shipped
	// rule replaces it ({name: <shipped rule>, action: none} switches it
	// off).
	Rules []ShapingRule `yaml:"rules"`
}

// ShapingSettings are the options of one shaping level. Every field is
// optional: nil means unset (inherit), so that an explicit 0 can be told
// from an absent key.
type ShapingSettings struct {
	MaxConnections           *int `yaml:"max_connections,omitempty"`
	MaxMessagesPerConnection *int `yaml:"max_messages_per_connection,omitempty"`
	MaxRecipientsPerMessage  *int `yaml:"max_recipients_per_message,omitempty"`
	// MaxMessageRate and MaxConnectionRate are rates as written: "100/s",
	// "3000/m", "20/10s", "unlimited".
	MaxMessageRate    *string        `yaml:"max_message_rate,omitempty"`
	MaxConnectionRate *string        `yaml:"max_connection_rate,omitempty"`
	RetryInterval     *time.Duration `yaml:"retry_interval,omitempty"`
	MaxRetryInterval  *time.Duration `yaml:"max_retry_interval,omitempty"`
	MaxAge            *time.Duration `yaml:"max_age,omitempty"`
	// TLS: mta-sts, opportunistic, required or disabled.
	TLS *string `yaml:"tls,omitempty"`
	// Pool is a source IP pool of Config.Pools; "" is the default pool.
	Pool *string `yaml:"pool,omitempty"`
}

// ShapingProvider is a mailbox provider: the MX host patterns that
// identify it ("*.google.com") and its settings.
type ShapingProvider struct {
	MX              []string `yaml:"mx"`
	ShapingSettings `yaml:",inline"`
}

// ShapingRule maps a remote reply (pattern, status, code: every one set
// must match) to an action (slow, suspend, bounce, none).
type ShapingRule struct {
	Name     string        `yaml:"name"`
	Pattern  string        `yaml:"pattern,omitempty"`
	Status   string        `yaml:"status,omitempty"`
	Code     int           `yaml:"code,omitempty"`
	Action   string        `yaml:"action"`
	Factor   float64       `yaml:"factor,omitempty"`
	Duration time.Duration `yaml:"duration,omitempty"`
}

// pools returns the pool each level of s names, but the default pool, by
// the path of its key ("shaping.domains.a.example.pool").
func (s *Shaping) pools() map[string]string {
	out := map[string]string{}
	add := func(path string, st *ShapingSettings) {
		if st.Pool != nil && *st.Pool != "" {
			out[path+".pool"] = *st.Pool
		}
	}
	add("shaping.default", &s.Default)
	for name, p := range s.Providers {
		add(KeyPath("shaping.providers", name), &p.ShapingSettings)
	}
	for name, st := range s.Sites {
		add(KeyPath("shaping.sites", name), &st)
	}
	for name, st := range s.Domains {
		add(KeyPath("shaping.domains", name), &st)
	}
	return out
}

// ShippedFile names the shipped shaping defaults in errors.
const ShippedFile = "configs/providers/providers.yaml"

// Shipped is the shaping Drover ships (configs/providers/providers.yaml):
// the large mailbox providers and the adaptive-backoff rules, under which
// the operator's Shaping is layered.
type Shipped struct {
	Providers map[string]ShapingProvider `yaml:"providers"`
	Rules     []ShapingRule              `yaml:"rules"`
	lines     map[string]int
}

// LoadShipped decodes the shipped shaping defaults, strictly, as Parse
// does; each call returns a fresh copy.
func LoadShipped() (*Shipped, error) {
	s := &Shipped{}
	if err := decodeStrict(providers.YAML, s); err != nil {
		return nil, fmt.Errorf("%s: %w", ShippedFile, err)
	}
	s.lines = indexFile(providers.YAML)
	return s, nil
}

// Line returns the line of the key at path in the shipped file
// ("providers.google.tls", "rules[3]"), as Config.Line does.
func (s *Shipped) Line(path string) int { return lineOf(s.lines, path) }

// ErrorAt returns the error for a problem with the shipped value at path,
// naming the shipped file, the key and its line.
func (s *Shipped) ErrorAt(path, msg string) error {
	return &KeyError{File: ShippedFile, Path: path, Line: s.Line(path), Msg: msg}
}

// ProvidersYAML returns the shipped shaping defaults, comments included:
// the documented source of every shipped value.
func ProvidersYAML() []byte { return bytes.Clone(providers.YAML) }
