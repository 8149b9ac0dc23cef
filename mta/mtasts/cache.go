package mtasts

import (
	"container/list"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"runtime/debug"
	"sync"
	"time"
)

const (
	// recheckInterval is how long a domain's discovery result (policy, no
	// policy, or failure) is used before the TXT record is read again.
	recheckInterval = 5 * time.Minute
	// minRefetch is the shortest interval between two discoveries of a
	// domain, even when its policy's max_age is shorter.
	minRefetch = time.Minute
	// refreshTimeout bounds one discovery (TXT lookup and fetch).
	refreshTimeout = 30 * time.Second
)

// DefaultMaxEntries is the cache size when Config.MaxEntries is 0.
const DefaultMaxEntries = 50000

// Config configures a Cache. Every field is optional.
type Config struct {
	// TXT looks up "_mta-sts" records; nil means net.DefaultResolver. Pass
	// DNSLookup with the resolver address the rest of delivery uses.
	TXT TXTLookup
	// Fetch fetches policy files; nil means &HTTPSFetcher{}.
	Fetch Fetcher
	// Now is the clock; nil means time.Now.
	Now func() time.Time
	// Logger gets policy changes and discovery failures; nil means
	// slog.Default().
	Logger *slog.Logger
	// MaxEntries bounds the number of domains cached (with or without a
	// policy); the least recently used is evicted first. Zero means
	// DefaultMaxEntries. Keep it above the number of domains mailed in a
	// max_age: an evicted policy is discovered again like a new one.
	MaxEntries int
}

// Cache discovers and caches MTA-STS policies; see the package doc. It is
// safe for concurrent use.
type Cache struct {
	txt        TXTLookup
	fetch      Fetcher
	now        func() time.Time
	log        *slog.Logger
	maxEntries int

	mu       sync.Mutex
	entries  map[string]*list.Element // domain → element of lru holding *entry
	lru      *list.List               // front: most recently used
	inflight map[string]*discovery
}

// entry is what is known of a domain.
type entry struct {
	domain    string
	policy    *Policy   // last valid policy, nil if none
	nextCheck time.Time // before it, Get answers from the entry alone
}

// discovery is one TXT lookup (and fetch) in progress, shared by the Gets
// that wait for it.
type discovery struct {
	done   chan struct{}
	policy *Policy
	err    error
}

// New returns an empty Cache.
func New(cfg Config) *Cache {
	c := &Cache{
		txt:        cfg.TXT,
		fetch:      cfg.Fetch,
		now:        cfg.Now,
		log:        cfg.Logger,
		maxEntries: cfg.MaxEntries,
		entries:    make(map[string]*list.Element),
		lru:        list.New(),
		inflight:   make(map[string]*discovery),
	}
	if c.txt == nil {
		c.txt = net.DefaultResolver
	}
	if c.fetch == nil {
		c.fetch = &HTTPSFetcher{}
	}
	if c.now == nil {
		c.now = time.Now
	}
	if c.log == nil {
		c.log = slog.Default()
	}
	if c.maxEntries <= 0 {
		c.maxEntries = DefaultMaxEntries
	}
	return c
}

// Get returns the policy to apply to mail for domain, or nil when the domain
// has none. A non-nil error means discovery failed and nothing valid was
// cached; RFC 8461 §3.3 then says to deliver as if there were no policy (the
// policy is nil). Get blocks only when the domain is due for a TXT check
// (at most every five minutes) or its policy expired; it returns early, with
// the context's error, if ctx ends first, leaving the discovery to finish
// for the next caller. A discovery error goes only to the callers that
// waited for that discovery; until the next check Get returns (nil, nil),
// so a failing domain is logged once per check, not once per message.
func (c *Cache) Get(ctx context.Context, domain string) (*Policy, error) {
	domain = normalizeName(domain)
	if !validHostname(domain) {
		return nil, fmt.Errorf("mtasts: invalid domain %q", domain)
	}
	c.mu.Lock()
	if el, ok := c.entries[domain]; ok {
		e := el.Value.(*entry)
		if now := c.now(); now.Before(e.nextCheck) {
			c.lru.MoveToFront(el)
			c.mu.Unlock()
			return valid(e.policy, now), nil
		}
	}
	d, ok := c.inflight[domain]
	if !ok {
		d = &discovery{done: make(chan struct{})}
		c.inflight[domain] = d
		go c.run(context.WithoutCancel(ctx), domain, d)
	}
	c.mu.Unlock()
	select {
	case <-d.done:
		return d.policy, d.err
	case <-ctx.Done():
		return nil, fmt.Errorf("mtasts: %s: %w", domain, context.Cause(ctx))
	}
}

// run performs discovery d for domain, detached from the first caller's
// cancellation so that the callers sharing it all get its result.
func (c *Cache) run(ctx context.Context, domain string, d *discovery) {
	defer func() {
		if v := recover(); v != nil {
			c.log.Error("mtasts: panic during policy discovery", "domain", domain, "panic", v, "stack", string(debug.Stack()))
			d.policy, d.err = nil, fmt.Errorf("mtasts: %s: panic during policy discovery: %v", domain, v)
		}
		c.mu.Lock()
		delete(c.inflight, domain)
		c.mu.Unlock()
		close(d.done)
	}()
	ctx, cancel := context.WithTimeout(ctx, refreshTimeout)
	defer cancel()
	d.policy, d.err = c.discover(ctx, domain)
}

// discover reads the TXT record of domain, fetches the policy when its id is
// new or the cached policy expired, records the outcome, and returns the
// policy to apply.
func (c *Cache) discover(ctx context.Context, domain string) (*Policy, error) {
	cached := c.cached(domain)
	id, err := policyID(ctx, c.txt, domain)
	switch {
	case errors.Is(err, errNoRecord):
		if cached != nil {
			c.log.Info("mtasts: TXT record gone or invalid; applying the cached policy until it expires", "domain", domain, "id", cached.ID, "err", err)
		}
		c.store(domain, cached)
		return cached, nil
	case err != nil:
		return c.failed(domain, cached, fmt.Errorf("mtasts: %s: TXT lookup: %w", domain, err))
	case cached != nil && cached.ID == id:
		c.store(domain, cached)
		return cached, nil
	}
	body, err := c.fetch.Fetch(ctx, domain)
	if err != nil {
		return c.failed(domain, cached, fmt.Errorf("mtasts: %s: policy id %s: %w", domain, id, err))
	}
	p, err := ParsePolicy(body)
	if err != nil {
		return c.failed(domain, cached, fmt.Errorf("mtasts: %s: policy id %s: %w", domain, id, err))
	}
	p.Domain, p.ID, p.Fetched = domain, id, c.now()
	c.store(domain, p)
	c.log.Info("mtasts: policy fetched", "domain", domain, "id", id, "mode", p.Mode, "mx", p.MX, "max_age", p.MaxAge)
	return p, nil
}

// failed records a discovery failure: the cached policy, if any, stays in
// force (RFC 8461 §3.3) and is returned; otherwise err is.
func (c *Cache) failed(domain string, cached *Policy, err error) (*Policy, error) {
	c.store(domain, cached)
	if cached != nil {
		c.log.Warn("mtasts: policy discovery failed; applying the cached policy", "domain", domain, "id", cached.ID, "err", err)
		return cached, nil
	}
	return nil, err
}

// cached returns the unexpired cached policy of domain, or nil.
func (c *Cache) cached(domain string) *Policy {
	c.mu.Lock()
	defer c.mu.Unlock()
	if el, ok := c.entries[domain]; ok {
		return valid(el.Value.(*entry).policy, c.now())
	}
	return nil
}

// store records p (nil: no policy) as domain's policy, to be used without a
// new TXT check for recheckInterval, or until p expires (but at least
// minRefetch).
func (c *Cache) store(domain string, p *Policy) {
	c.mu.Lock()
	defer c.mu.Unlock()
	now := c.now()
	next := now.Add(recheckInterval)
	if p != nil {
		if exp := p.expires(); exp.Before(next) {
			next = exp
			if floor := now.Add(minRefetch); next.Before(floor) {
				next = floor
			}
		}
	}
	if el, ok := c.entries[domain]; ok {
		e := el.Value.(*entry)
		e.policy, e.nextCheck = p, next
		c.lru.MoveToFront(el)
		return
	}
	c.entries[domain] = c.lru.PushFront(&entry{domain: domain, policy: p, nextCheck: next})
	for c.lru.Len() > c.maxEntries {
		oldest := c.lru.Back()
		c.lru.Remove(oldest)
		delete(c.entries, oldest.Value.(*entry).domain)
	}
}

// valid returns p if it is non-nil and not expired at now, else nil.
func valid(p *Policy, now time.Time) *Policy {
	if p == nil || !now.Before(p.expires()) {
		return nil
	}
	return p
}
