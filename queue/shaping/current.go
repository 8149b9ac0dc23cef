package shaping

import "sync/atomic"

// Current holds the Shaper in force: the planner and the engine read it,
// a configuration reload stores a new one. It is safe for concurrent use.
type Current struct{ p atomic.Pointer[Shaper] }

// NewCurrent returns a Current holding s.
func NewCurrent(s *Shaper) *Current {
	c := &Current{}
	c.p.Store(s)
	return c
}

// Load returns the Shaper in force.
func (c *Current) Load() *Shaper { return c.p.Load() }

// Store puts s in force.
func (c *Current) Store(s *Shaper) { c.p.Store(s) }

// Match is the Shaper in force's Match (the engine's RuleMatcher).
func (c *Current) Match(code int, enhanced, text string) *Rule {
	return c.p.Load().Match(code, enhanced, text)
}

// KnowsSite is the Shaper in force's KnowsSite.
func (c *Current) KnowsSite(name string) bool { return c.p.Load().KnowsSite(name) }

// ProviderSite is the Shaper in force's ProviderSite.
func (c *Current) ProviderSite(name string) string { return c.p.Load().ProviderSite(name) }
