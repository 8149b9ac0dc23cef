package shaping

import (
	"bytes"
	"fmt"
	"slices"
	"sync"

	"gopkg.in/yaml.v3"

	"drover/configs/providers"
)

// defaultsYAML is the shipped file, configs/providers/providers.yaml.
var defaultsYAML = providers.YAML

// shipped is providers.yaml decoded.
type shipped struct {
	Providers map[string]Provider `yaml:"providers"`
	Rules     []Rule              `yaml:"rules"`
}

var loadDefaults = sync.OnceValues(func() (shipped, error) {
	var d shipped
	dec := yaml.NewDecoder(bytes.NewReader(defaultsYAML))
	dec.KnownFields(true)
	if err := dec.Decode(&d); err != nil {
		return d, fmt.Errorf("shaping: configs/providers/providers.yaml: %w", err)
	}
	return d, nil
})

// DefaultProviders returns the shipped providers and rules (providers.yaml,
// embedded), fresh copies on each call. New layers Config over them.
func DefaultProviders() (map[string]Provider, []Rule) {
	d, err := loadDefaults()
	if err != nil {
		panic(err) // the embedded file is checked by the tests
	}
	providers := make(map[string]Provider, len(d.Providers))
	for name, p := range d.Providers {
		p.MX = slices.Clone(p.MX)
		p.Settings = p.Settings.clone()
		providers[name] = p
	}
	return providers, slices.Clone(d.Rules)
}

// DefaultsYAML returns the embedded defaults file, comments included: the
// documented source of every shipped value (for `drover config` commands
// and the docs).
func DefaultsYAML() []byte { return bytes.Clone(defaultsYAML) }

// clone returns s with its own copy of every value.
func (s Settings) clone() Settings {
	s.MaxConnections = clonePtr(s.MaxConnections)
	s.MaxMessagesPerConnection = clonePtr(s.MaxMessagesPerConnection)
	s.MaxRecipientsPerMessage = clonePtr(s.MaxRecipientsPerMessage)
	s.MaxMessageRate = clonePtr(s.MaxMessageRate)
	s.MaxConnectionRate = clonePtr(s.MaxConnectionRate)
	s.RetryInterval = clonePtr(s.RetryInterval)
	s.MaxRetryInterval = clonePtr(s.MaxRetryInterval)
	s.MaxAge = clonePtr(s.MaxAge)
	s.TLS = clonePtr(s.TLS)
	s.Pool = clonePtr(s.Pool)
	return s
}

func clonePtr[T any](p *T) *T {
	if p == nil {
		return nil
	}
	v := *p
	return &v
}
