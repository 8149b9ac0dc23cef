package mtasts

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"drover/testkit"
)

// fakeTXT serves "_mta-sts" records from a map and counts lookups.
type fakeTXT struct {
	mu      sync.Mutex
	records map[string][]string
	err     error
	lookups atomic.Int32
}

func (f *fakeTXT) set(domain string, records ...string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.records["_mta-sts."+domain] = records
}

func (f *fakeTXT) fail(err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.err = err
}

func (f *fakeTXT) LookupTXT(_ context.Context, name string) ([]string, error) {
	f.lookups.Add(1)
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.records[name], f.err
}

// fakeFetcher serves policy bodies from a map, counts fetches, and can be
// made to fail or to block until released.
type fakeFetcher struct {
	mu      sync.Mutex
	bodies  map[string]string
	err     error
	gate    chan struct{} // if non-nil, Fetch waits for it to close
	started chan struct{} // if non-nil, Fetch signals on it first
	fetches atomic.Int32
}

func (f *fakeFetcher) set(domain, body string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.bodies[domain] = body
}

func (f *fakeFetcher) fail(err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.err = err
}

func (f *fakeFetcher) Fetch(ctx context.Context, domain string) ([]byte, error) {
	f.fetches.Add(1)
	if f.started != nil {
		f.started <- struct{}{}
	}
	if f.gate != nil {
		<-f.gate
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.err != nil {
		return nil, f.err
	}
	body, ok := f.bodies[domain]
	if !ok {
		return nil, errors.New("404 Not Found")
	}
	return []byte(body), nil
}

type fixture struct {
	cache *Cache
	clock *testkit.Clock
	txt   *fakeTXT
	fetch *fakeFetcher
	log   *testkit.Buffer
}

func newFixture(maxEntries int) *fixture {
	f := &fixture{
		clock: newClock(),
		txt:   &fakeTXT{records: make(map[string][]string)},
		fetch: &fakeFetcher{bodies: make(map[string]string)},
		log:   &testkit.Buffer{},
	}
	f.cache = New(Config{
		TXT:        f.txt,
		Fetch:      f.fetch,
		Now:        f.clock.Now,
		Logger:     slog.New(slog.NewTextHandler(f.log, nil)),
		MaxEntries: maxEntries,
	})
	return f
}

func policyBody(mode Mode, mx string, maxAge time.Duration) string {
	return fmt.Sprintf("version: STSv1\nmode: %s\nmx: %s\nmax_age: %d\n", mode, mx, int(maxAge.Seconds()))
}

// get calls Get and checks the returned policy's mode and id ("" for none)
// and the number of TXT lookups and fetches so far.
func (f *fixture) get(t *testing.T, domain string, mode Mode, id string, lookups, fetches int32) *Policy {
	t.Helper()
	p, err := f.cache.Get(context.Background(), domain)
	if err != nil {
		t.Fatalf("Get(%q): %v", domain, err)
	}
	switch {
	case id == "" && p != nil:
		t.Errorf("Get(%q) = %+v, want no policy", domain, p)
	case id != "" && (p == nil || p.ID != id || p.Mode != mode || p.Domain != normalizeName(domain)):
		t.Errorf("Get(%q) = %+v, want mode %s id %s", domain, p, mode, id)
	}
	if got := f.txt.lookups.Load(); got != lookups {
		t.Errorf("after Get(%q): %d TXT lookups, want %d", domain, got, lookups)
	}
	if got := f.fetch.fetches.Load(); got != fetches {
		t.Errorf("after Get(%q): %d fetches, want %d", domain, got, fetches)
	}
	return p
}

func TestCacheEndToEnd(t *testing.T) {
	dnsAddr := startDNS(t, txtZone(map[string][]string{
		"_mta-sts.example.com": {"v=STSv1; id=20260301T1200;", "v=spf1 -all"},
		"_mta-sts.example.net": {"v=STSv1; id=1;"},
	}))
	ps, client := newPolicyServer(t, "mta-sts.example.com", "mta-sts.example.net", "mta-sts.example.org")
	ps.set("mta-sts.example.com", response{body: enforcePolicy})
	ps.set("mta-sts.example.net", response{body: "version: STSv1\r\nmode: testing\r\nmx: mx.example.net\r\nmax_age: 86400\r\n"})
	ps.set("mta-sts.example.org", response{body: enforcePolicy}) // never asked: no TXT record
	cache := New(Config{
		TXT:    DNSLookup(dnsAddr, 2*time.Second),
		Fetch:  &HTTPSFetcher{Client: client},
		Logger: slog.New(slog.DiscardHandler),
	})
	ctx := context.Background()

	p, err := cache.Get(ctx, "Example.COM.")
	if err != nil || p == nil {
		t.Fatalf("Get(example.com) = %v, %v", p, err)
	}
	if p.Mode != Enforce || p.ID != "20260301T1200" || p.Domain != "example.com" || p.MaxAge != 7*24*time.Hour {
		t.Errorf("example.com policy %+v", p)
	}
	if err := p.Check("mx1.mx.example.com", true); err != nil {
		t.Errorf("enforce, matching MX, valid TLS: %v", err)
	}
	if err := p.Check("mx.attacker.example", true); !errors.Is(err, ErrMXNotInPolicy) || !strings.Contains(err.Error(), "mx.attacker.example") {
		t.Errorf("enforce, foreign MX: %v", err)
	}
	if err := p.Check("mx1.mx.example.com", false); !errors.Is(err, ErrNoValidTLS) {
		t.Errorf("enforce, no TLS: %v", err)
	}

	p, err = cache.Get(ctx, "example.net")
	if err != nil || p == nil || p.Mode != Testing {
		t.Fatalf("Get(example.net) = %+v, %v", p, err)
	}
	if err := p.Check("mx.attacker.example", false); err != nil {
		t.Errorf("testing mode refused delivery: %v", err)
	}
	if v := p.Violation("mx.attacker.example", false); !errors.Is(v, ErrMXNotInPolicy) {
		t.Errorf("testing mode report: %v", v)
	}

	if p, err := cache.Get(ctx, "example.org"); p != nil || err != nil {
		t.Errorf("Get(example.org) without TXT record = %+v, %v; want no policy", p, err)
	}
	if got := ps.gets.Load(); got != 2 {
		t.Errorf("policy server saw %d GETs, want 2", got)
	}
}

func TestCacheFreshnessAndIDChange(t *testing.T) {
	f := newFixture(0)
	f.txt.set("example.com", "v=STSv1; id=one;")
	f.fetch.set("example.com", policyBody(Enforce, "mx.example.com", 24*time.Hour))

	first := f.get(t, "example.com", Enforce, "one", 1, 1)
	if !first.Fetched.Equal(f.clock.Now()) {
		t.Errorf("Fetched = %v, want %v", first.Fetched, f.clock.Now())
	}
	f.clock.Advance(4 * time.Minute)
	if p := f.get(t, "example.com", Enforce, "one", 1, 1); p != first {
		t.Error("a fresh cached policy was replaced")
	}

	// Past the recheck interval the TXT record is read again; same id, no
	// fetch.
	f.clock.Advance(2 * time.Minute)
	f.get(t, "example.com", Enforce, "one", 2, 1)

	// A new id is seen at the next recheck, and the policy fetched again.
	f.txt.set("example.com", "v=STSv1; id=two;")
	f.fetch.set("example.com", policyBody(Testing, "mx.example.com", 24*time.Hour))
	f.clock.Advance(time.Minute)
	f.get(t, "example.com", Enforce, "one", 2, 1)
	f.clock.Advance(4 * time.Minute)
	f.get(t, "example.com", Testing, "two", 3, 2)
	if !strings.Contains(f.log.String(), "policy fetched") || !strings.Contains(f.log.String(), "id=two") {
		t.Errorf("no log of the new policy:\n%s", f.log)
	}

	// A withdrawn policy ("none") replaces it.
	f.txt.set("example.com", "v=STSv1; id=three;")
	f.fetch.set("example.com", "version: STSv1\nmode: none\nmax_age: 86400\n")
	f.clock.Advance(5 * time.Minute)
	p := f.get(t, "example.com", None, "three", 4, 3)
	if err := p.Check("anything.example", false); err != nil {
		t.Errorf("mode none refused: %v", err)
	}
}

func TestCacheFetchFailureKeepsCachedPolicy(t *testing.T) {
	f := newFixture(0)
	f.txt.set("example.com", "v=STSv1; id=one;")
	f.fetch.set("example.com", policyBody(Enforce, "mx.example.com", 24*time.Hour))
	first := f.get(t, "example.com", Enforce, "one", 1, 1)

	// The id changes but the policy host fails: the cached policy stays.
	f.txt.set("example.com", "v=STSv1; id=two;")
	f.fetch.fail(errors.New("connection refused"))
	f.clock.Advance(5 * time.Minute)
	if p := f.get(t, "example.com", Enforce, "one", 2, 2); p != first {
		t.Error("the cached policy was not kept")
	}
	if !strings.Contains(f.log.String(), "applying the cached policy") || !strings.Contains(f.log.String(), "connection refused") {
		t.Errorf("failure not logged:\n%s", f.log)
	}
	// The failure is not retried per message, only after the interval.
	f.clock.Advance(4 * time.Minute)
	f.get(t, "example.com", Enforce, "one", 2, 2)

	// An invalid policy is a failure too.
	f.fetch.fail(nil)
	f.fetch.set("example.com", "version: STSv1\nmode: enforce\nmax_age: 86400\n")
	f.clock.Advance(time.Minute)
	f.get(t, "example.com", Enforce, "one", 3, 3)
	if !strings.Contains(f.log.String(), "without mx field") {
		t.Errorf("parse failure not logged:\n%s", f.log)
	}

	// So is a DNS failure.
	f.txt.fail(errors.New("SERVFAIL"))
	f.clock.Advance(5 * time.Minute)
	f.get(t, "example.com", Enforce, "one", 4, 3)

	// And a vanished record: the cached policy applies until it expires.
	f.txt.fail(nil)
	f.txt.set("example.com")
	f.clock.Advance(5 * time.Minute)
	f.get(t, "example.com", Enforce, "one", 5, 3)
	f.clock.Advance(24*time.Hour - 20*time.Minute) // 24h after the fetch
	f.get(t, "example.com", Enforce, "", 6, 3)
}

func TestCacheMaxAgeExpiry(t *testing.T) {
	f := newFixture(0)
	f.txt.set("example.com", "v=STSv1; id=one;")
	f.fetch.set("example.com", policyBody(Enforce, "mx.example.com", time.Hour))
	f.get(t, "example.com", Enforce, "one", 1, 1)

	// Rechecks with the same id do not extend or refetch the policy...
	for i := range 11 {
		f.clock.Advance(5 * time.Minute)
		f.get(t, "example.com", Enforce, "one", int32(i+2), 1)
	}
	// ...until max_age is over: then it is refetched.
	f.clock.Advance(5 * time.Minute)
	p := f.get(t, "example.com", Enforce, "one", 13, 2)
	if !p.Fetched.Equal(f.clock.Now()) {
		t.Errorf("Fetched = %v, want now", p.Fetched)
	}

	// An expired policy is not applied when the refetch fails.
	f.fetch.fail(errors.New("timeout"))
	f.clock.Advance(time.Hour)
	p, err := f.cache.Get(context.Background(), "example.com")
	if p != nil || err == nil || !strings.Contains(err.Error(), "example.com") || !strings.Contains(err.Error(), "timeout") {
		t.Errorf("after expiry with failing fetch: %+v, %v; want no policy and the error", p, err)
	}
	// The error is reported once; until the next check there is no policy.
	f.get(t, "example.com", "", "", 14, 3)
}

func TestCacheShortMaxAgeRefreshesAtExpiry(t *testing.T) {
	f := newFixture(0)
	f.txt.set("example.com", "v=STSv1; id=one;")
	f.fetch.set("example.com", policyBody(Enforce, "mx.example.com", 2*time.Minute))
	f.get(t, "example.com", Enforce, "one", 1, 1)
	f.clock.Advance(2*time.Minute - time.Second)
	f.get(t, "example.com", Enforce, "one", 1, 1)
	f.clock.Advance(time.Second) // expired: discovered again before the recheck interval
	f.get(t, "example.com", Enforce, "one", 2, 2)

	// max_age 0 does not turn into a fetch per message.
	f.fetch.set("example.com", policyBody(Enforce, "mx.example.com", 0))
	f.clock.Advance(2 * time.Minute)
	f.get(t, "example.com", Enforce, "one", 3, 3) // applied to the caller that fetched it
	f.get(t, "example.com", "", "", 3, 3)
	f.clock.Advance(time.Minute)
	f.get(t, "example.com", Enforce, "one", 4, 4)
}

func TestCacheNoPolicy(t *testing.T) {
	f := newFixture(0)
	f.get(t, "example.com", "", "", 1, 0)
	f.clock.Advance(time.Minute)
	f.get(t, "example.com", "", "", 1, 0) // "no policy" is cached too

	f.txt.set("example.com", "v=STSv1; id=one;", "v=STSv1; id=two;") // two records: none
	f.clock.Advance(5 * time.Minute)
	f.get(t, "example.com", "", "", 2, 0)

	f.txt.set("example.com", "v=STSv1; id=one;")
	f.fetch.set("example.com", policyBody(Enforce, "mx.example.com", time.Hour))
	f.clock.Advance(5 * time.Minute)
	f.get(t, "example.com", Enforce, "one", 3, 1)
}

func TestCacheFailureWithoutCachedPolicy(t *testing.T) {
	f := newFixture(0)
	f.txt.set("example.com", "v=STSv1; id=one;")
	f.fetch.fail(errors.New("connection refused"))
	p, err := f.cache.Get(context.Background(), "example.com")
	if p != nil || err == nil || !strings.Contains(err.Error(), "mtasts: example.com: policy id one: connection refused") {
		t.Errorf("Get = %+v, %v", p, err)
	}
	f.get(t, "example.com", "", "", 1, 1) // not retried at once

	f.txt.fail(errors.New("i/o timeout"))
	p, err = f.cache.Get(context.Background(), "example.net")
	if p != nil || err == nil || !strings.Contains(err.Error(), "mtasts: example.net: TXT lookup: i/o timeout") {
		t.Errorf("Get = %+v, %v", p, err)
	}
}

func TestCacheSharesOneDiscovery(t *testing.T) {
	f := newFixture(0)
	f.txt.set("example.com", "v=STSv1; id=one;")
	f.fetch.set("example.com", policyBody(Enforce, "mx.example.com", time.Hour))
	f.fetch.gate = make(chan struct{})
	f.fetch.started = make(chan struct{}, 1)

	const n = 20
	results := make(chan *Policy, n)
	var wg sync.WaitGroup
	for range n {
		wg.Go(func() {
			p, err := f.cache.Get(context.Background(), "example.com")
			if err != nil {
				t.Errorf("Get: %v", err)
			}
			results <- p
		})
	}
	<-f.fetch.started

	// A caller that gives up does not cancel the shared discovery.
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	if p, err := f.cache.Get(ctx, "example.com"); p != nil || !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Get with expiring context = %+v, %v", p, err)
	}
	close(f.fetch.gate)
	wg.Wait()
	close(results)
	var first *Policy
	for p := range results {
		if first == nil {
			first = p
		}
		if p == nil || p != first {
			t.Fatalf("callers got different policies: %p, %p", first, p)
		}
	}
	if got := f.fetch.fetches.Load(); got != 1 {
		t.Errorf("%d fetches for %d concurrent Gets, want 1", got, n)
	}
	if got := f.txt.lookups.Load(); got != 1 {
		t.Errorf("%d TXT lookups for %d concurrent Gets, want 1", got, n)
	}
}

func TestCacheEvictsLeastRecentlyUsed(t *testing.T) {
	f := newFixture(2)
	f.get(t, "a.example", "", "", 1, 0)
	f.get(t, "b.example", "", "", 2, 0)
	f.get(t, "a.example", "", "", 2, 0) // a is now the most recent
	f.get(t, "c.example", "", "", 3, 0) // evicts b
	f.get(t, "a.example", "", "", 3, 0)
	f.get(t, "b.example", "", "", 4, 0) // discovered again, evicts c
	f.get(t, "c.example", "", "", 5, 0)
	if n := len(f.cache.entries); n != 2 {
		t.Errorf("%d entries, want 2", n)
	}
}

// panicTXT is a broken TXTLookup.
type panicTXT struct{}

func (panicTXT) LookupTXT(context.Context, string) ([]string, error) { panic("broken resolver") }

func TestCacheSurvivesPanicsAndBadInput(t *testing.T) {
	var log testkit.Buffer
	c := New(Config{TXT: panicTXT{}, Logger: slog.New(slog.NewTextHandler(&log, nil))})
	if _, err := c.Get(context.Background(), "example.com"); err == nil || !strings.Contains(err.Error(), "broken resolver") {
		t.Errorf("panicking resolver: err = %v", err)
	}
	if !strings.Contains(log.String(), "panic during policy discovery") {
		t.Errorf("panic not logged:\n%s", log.String())
	}
	for _, d := range []string{"", ".", "exa mple.com", "example.com/x", "-bad.example"} {
		if _, err := c.Get(context.Background(), d); err == nil {
			t.Errorf("Get(%q) accepted an invalid domain", d)
		}
	}
}

func TestNewDefaults(t *testing.T) {
	c := New(Config{})
	if c.txt != net.DefaultResolver || c.maxEntries != DefaultMaxEntries || c.log == nil || c.now == nil {
		t.Errorf("defaults: %+v", c)
	}
	if _, ok := c.fetch.(*HTTPSFetcher); !ok {
		t.Errorf("default fetcher %T", c.fetch)
	}
	if d := DNSLookup("127.0.0.1", time.Second).(*dnsLookup); d.server != "127.0.0.1:53" {
		t.Errorf("DNSLookup without a port dials %q", d.server)
	}
}
