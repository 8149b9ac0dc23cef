package resolve

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"drover/mta/resolve/dnstest"
	"drover/mta/smtperr"
	"drover/testkit"

	"github.com/miekg/dns"
)

func newResolver(t *testing.T, zone string) (*Resolver, *dnstest.Server, *testkit.Clock) {
	t.Helper()
	srv := dnstest.Start(t, zone)
	clock := testkit.NewClock(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC))
	r := New(Config{Servers: []string{srv.Addr}, Timeout: 200 * time.Millisecond, Now: clock.Now})
	return r, srv, clock
}

const testZone = `
example.test.       3600 IN SOA ns.example.test. hostmaster.example.test. 1 3600 600 86400 60
pref.example.test.  300 IN MX 10 a.mx.example.test.
pref.example.test.  300 IN MX 10 B.MX.example.test.
pref.example.test.  300 IN MX 20 c.mx.example.test.
pref.example.test.  300 IN MX 5  d.mx.example.test.
pref.example.test.  300 IN MX 30 d.mx.example.test.
implicit.example.test. 300 IN A 192.0.2.7
implicit6.example.test. 300 IN AAAA 2001:db8::7
nothing.example.test. 300 IN TXT "v=spf1 -all"
null.example.test.  300 IN MX 0 .
halfnull.example.test. 300 IN MX 0 .
halfnull.example.test. 300 IN MX 10 a.mx.example.test.
a.mx.example.test.  300 IN A 192.0.2.1
a.mx.example.test.  300 IN AAAA 2001:db8::1
b.mx.example.test.  300 IN A 192.0.2.2
alias.example.test. 300 IN CNAME a.mx.example.test.
xn--bcher-kva.example.test. 300 IN MX 10 a.mx.example.test.
`

func TestMXOrdering(t *testing.T) {
	r, _, _ := newResolver(t, testZone)
	seen := make(map[string]bool)
	for range 100 {
		hosts, err := r.MX(t.Context(), "Pref.Example.Test.")
		if err != nil {
			t.Fatal(err)
		}
		if len(hosts) != 4 || hosts[0] != "d.mx.example.test" || hosts[3] != "c.mx.example.test" {
			t.Fatalf("hosts %v", hosts)
		}
		seen[strings.Join(hosts[1:3], ",")] = true
	}
	if !seen["a.mx.example.test,b.mx.example.test"] || !seen["b.mx.example.test,a.mx.example.test"] || len(seen) != 2 {
		t.Errorf("orders among equal preferences: %v", seen)
	}
}

func TestMXErrors(t *testing.T) {
	r, srv, _ := newResolver(t, testZone)
	srv.SetRcode("servfail.example.test", dns.RcodeServerFailure)
	srv.SetRcode("refused.example.test", dns.RcodeRefused)
	tests := []struct {
		domain string
		hosts  []string
		err    error
		perm   bool
	}{
		{"implicit.example.test", []string{"implicit.example.test"}, nil, false},
		{"implicit6.example.test", []string{"implicit6.example.test"}, nil, false},
		{"halfnull.example.test", []string{"a.mx.example.test"}, nil, false},
		{"bücher.example.test", []string{"a.mx.example.test"}, nil, false},
		{"nothing.example.test", nil, ErrNoAddress, true},
		{"null.example.test", nil, ErrNullMX, true},
		{"missing.example.test", nil, ErrNoSuchDomain, true},
		{"servfail.example.test", nil, ErrServerFailure, false},
		{"refused.example.test", nil, ErrServerFailure, false},
		{"bad..name", nil, ErrInvalidName, true},
		{"", nil, ErrInvalidName, true},
	}
	for _, tt := range tests {
		hosts, err := r.MX(t.Context(), tt.domain)
		if tt.err == nil {
			if err != nil || !slices.Equal(hosts, tt.hosts) {
				t.Errorf("%s: %v, %v; want %v", tt.domain, hosts, err, tt.hosts)
			}
			continue
		}
		e, ok := smtperr.As(err)
		if !ok || !errors.Is(err, tt.err) || e.Permanent != tt.perm {
			t.Errorf("%s: %v (%T); want %v, permanent %v", tt.domain, err, err, tt.err, tt.perm)
		}
		if want := enhanced[tt.err]; ok && e.Enhanced != want {
			t.Errorf("%s: enhanced code %q, want %q", tt.domain, e.Enhanced, want)
		}
	}
}

// enhanced is the enhanced code of the failure each cause makes.
var enhanced = map[error]string{
	ErrNoAddress:     "5.4.4",
	ErrNullMX:        "5.1.10",
	ErrNoSuchDomain:  "5.1.2",
	ErrInvalidName:   "5.1.2",
	ErrServerFailure: "4.4.3",
}

// A server that does not answer: each of the two attempts ends on the
// query timeout, not on the caller's deadline; the caller's deadline ends
// the wait before the next query.
func TestTimeout(t *testing.T) {
	r, srv, _ := newResolver(t, testZone)
	srv.Drop("slow.example.test")
	// Two attempts of 200ms end long before this deadline; the default
	// timeout (5s) would not.
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
	defer cancel()
	_, err := r.MX(ctx, "slow.example.test")
	if e, ok := smtperr.As(err); !ok || e.Permanent {
		t.Fatalf("error %v", err)
	}
	if ctx.Err() != nil {
		t.Errorf("the caller's deadline ended the lookup, not the query timeout: %v", err)
	}
	if n := srv.Queries(); n != 2 {
		t.Errorf("%d queries, want one per attempt (2)", n)
	}

	// A deadline shorter than the query timeout ends the first attempt of
	// each family (A and AAAA), and no query follows.
	ctx, cancel = context.WithTimeout(t.Context(), 50*time.Millisecond)
	defer cancel()
	if _, err := r.Addrs(ctx, "slow.example.test"); !errors.Is(err, context.DeadlineExceeded) || ctx.Err() == nil {
		t.Errorf("cancelled: %v", err)
	}
	if n := srv.Queries() - 2; n > 2 {
		t.Errorf("%d queries after the deadline, want one per family", n)
	}
}

func TestServerFallback(t *testing.T) {
	dead := dnstest.Start(t, "")
	dead.Drop("pref.example.test")
	good := dnstest.Start(t, testZone)
	r := New(Config{Servers: []string{dead.Addr, good.Addr}, Timeout: 100 * time.Millisecond})
	hosts, err := r.MX(t.Context(), "pref.example.test")
	if err != nil || len(hosts) != 4 {
		t.Fatalf("%v %v", hosts, err)
	}
}

func TestCacheTTL(t *testing.T) {
	r, srv, clock := newResolver(t, testZone)
	mx := func() string {
		t.Helper()
		hosts, err := r.MX(t.Context(), "pref.example.test")
		if err != nil {
			return err.Error()
		}
		return hosts[0]
	}
	if got := mx(); got != "d.mx.example.test" {
		t.Fatal(got)
	}
	srv.SetZone(`pref.example.test. 300 IN MX 10 new.example.test.`)
	clock.Advance(299 * time.Second)
	if got := mx(); got != "d.mx.example.test" {
		t.Errorf("within the TTL: %s", got)
	}
	clock.Advance(2 * time.Second)
	if got := mx(); got != "new.example.test" {
		t.Errorf("after the TTL: %s", got)
	}
	if n := srv.Queries(); n != 2 {
		t.Errorf("%d queries, want 2", n)
	}
}

func TestNegativeCache(t *testing.T) {
	r, srv, clock := newResolver(t, testZone)
	if _, err := r.MX(t.Context(), "later.example.test"); !errors.Is(err, ErrNoSuchDomain) {
		t.Fatal(err)
	}
	srv.SetZone(testZone + "later.example.test. 300 IN MX 10 a.mx.example.test.\n")
	clock.Advance(59 * time.Second) // the SOA minimum is 60s
	if _, err := r.MX(t.Context(), "later.example.test"); !errors.Is(err, ErrNoSuchDomain) {
		t.Errorf("within the negative TTL: %v", err)
	}
	clock.Advance(2 * time.Second)
	if hosts, err := r.MX(t.Context(), "later.example.test"); err != nil || hosts[0] != "a.mx.example.test" {
		t.Errorf("after the negative TTL: %v %v", hosts, err)
	}

	// Without a SOA, negative answers are not cached; failures never are.
	r, srv, _ = newResolver(t, "x.test. 300 IN A 192.0.2.1")
	srv.SetRcode("fail.test", dns.RcodeServerFailure)
	for _, name := range []string{"y.test", "fail.test"} {
		before := srv.Queries()
		r.MX(t.Context(), name)
		mid := srv.Queries()
		r.MX(t.Context(), name)
		if srv.Queries()-mid != mid-before {
			t.Errorf("%s: answer cached", name)
		}
	}
}

func TestCacheBounded(t *testing.T) {
	srv := dnstest.Start(t, testZone)
	r := New(Config{Servers: []string{srv.Addr}, CacheSize: 2})
	for _, h := range []string{"a.mx.example.test", "b.mx.example.test"} {
		if _, err := r.Addrs(t.Context(), h); err != nil { // 2 answers: A and AAAA
			t.Fatal(err)
		}
	}
	if n := r.cache.lru.Len(); n != 2 {
		t.Errorf("cache holds %d answers", n)
	}
	before := srv.Queries()
	r.Addrs(t.Context(), "b.mx.example.test")
	if srv.Queries() != before {
		t.Error("recent answers were dropped")
	}
	r.Addrs(t.Context(), "a.mx.example.test")
	if srv.Queries() != before+2 {
		t.Error("old answers were kept")
	}

	r = New(Config{Servers: []string{srv.Addr}, CacheSize: -1})
	r.Addrs(t.Context(), "b.mx.example.test")
	before = srv.Queries()
	r.Addrs(t.Context(), "b.mx.example.test")
	if srv.Queries() != before+2 {
		t.Error("cache not disabled")
	}
}

func TestAddrs(t *testing.T) {
	r, _, _ := newResolver(t, testZone)
	tests := []struct {
		host  string
		addrs string
		err   error
	}{
		{"a.mx.example.test", "[192.0.2.1 2001:db8::1]", nil},
		{"alias.example.test", "[192.0.2.1 2001:db8::1]", nil},
		{"192.0.2.9", "[192.0.2.9]", nil},
		{"2001:db8::9", "[2001:db8::9]", nil},
		{"missing.example.test", "[]", ErrNoSuchDomain},
		{"nothing.example.test", "[]", ErrNoAddress},
	}
	for _, tt := range tests {
		addrs, err := r.Addrs(t.Context(), tt.host)
		if got := fmt.Sprint(addrs); got != tt.addrs || !errors.Is(err, tt.err) {
			t.Errorf("%s: %s %v; want %s %v", tt.host, got, err, tt.addrs, tt.err)
		}
	}
}

func TestTruncatedAnswerOverTCP(t *testing.T) {
	var zone strings.Builder
	for i := range 80 {
		fmt.Fprintf(&zone, "big.test. 300 IN MX %d mx%02d.a-rather-long-name-to-fill-the-packet.big.test.\n", i, i)
	}
	r, _, _ := newResolver(t, zone.String())
	hosts, err := r.MX(t.Context(), "big.test")
	if err != nil || len(hosts) != 80 || hosts[79] != "mx79.a-rather-long-name-to-fill-the-packet.big.test" {
		t.Fatalf("%d hosts, %v", len(hosts), err)
	}
}

func TestConcurrentLookupsShareOneQuery(t *testing.T) {
	r, srv, _ := newResolver(t, testZone)
	var wg sync.WaitGroup
	for range 20 {
		wg.Go(func() {
			if _, err := r.MX(t.Context(), "pref.example.test"); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	if n := srv.Queries(); n != 1 {
		t.Errorf("%d queries", n)
	}
}

func TestDefaultServers(t *testing.T) {
	r := New(Config{})
	for _, s := range r.servers {
		if _, err := netip.ParseAddrPort(s); err != nil {
			t.Errorf("server %q: %v", s, err)
		}
	}
	if len(r.servers) == 0 {
		t.Error("no servers")
	}
}
