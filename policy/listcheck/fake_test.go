package listcheck

import (
	"context"
	"fmt"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"

	"drover/mta/resolve"
)

// fakeResolver answers from maps, the way *resolve.Resolver does: a
// domain that is not in mx does not exist; a host that is not in addrs
// has the address 192.0.2.1 when it exists (its domain, or a name below
// it, is in mx), else it does not exist. It counts the lookups.
type fakeResolver struct {
	mx    map[string][]string // domain: hosts
	mxErr map[string]error    // domain: its error
	addrs map[string]error    // host: its error (nil: an address)
	// wait, when set, is called at the start of every lookup: it may
	// block (honouring ctx) and return an error instead of an answer.
	wait func(ctx context.Context, name string) error

	mu       sync.Mutex
	calls    map[string]int // "MX name", "A name"
	inflight atomic.Int32
	peak     atomic.Int32
}

func (f *fakeResolver) enter(ctx context.Context, kind, name string) error {
	n := f.inflight.Add(1)
	for {
		p := f.peak.Load()
		if n <= p || f.peak.CompareAndSwap(p, n) {
			break
		}
	}
	f.mu.Lock()
	if f.calls == nil {
		f.calls = make(map[string]int)
	}
	f.calls[kind+" "+name]++
	f.mu.Unlock()
	if f.wait != nil {
		return f.wait(ctx, name)
	}
	return nil
}

func (f *fakeResolver) MX(ctx context.Context, domain string) ([]string, error) {
	defer f.inflight.Add(-1)
	if err := f.enter(ctx, "MX", domain); err != nil {
		return nil, err
	}
	if err, ok := f.mxErr[domain]; ok {
		return nil, err
	}
	hosts, ok := f.mx[domain]
	if !ok {
		return nil, fmt.Errorf("resolve: %s: %w", domain, resolve.ErrNoSuchDomain)
	}
	return hosts, nil
}

func (f *fakeResolver) Addrs(ctx context.Context, host string) ([]netip.Addr, error) {
	defer f.inflight.Add(-1)
	if err := f.enter(ctx, "A", host); err != nil {
		return nil, err
	}
	if err, ok := f.addrs[host]; ok {
		if err != nil {
			return nil, err
		}
		return []netip.Addr{netip.MustParseAddr("192.0.2.1")}, nil
	}
	for d := range f.mx {
		if host == d || strings.HasSuffix(host, "."+d) {
			return []netip.Addr{netip.MustParseAddr("192.0.2.1")}, nil
		}
	}
	return nil, fmt.Errorf("resolve: %s: %w", host, resolve.ErrNoSuchDomain)
}

func (f *fakeResolver) count(kind, name string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.calls[kind+" "+name]
}

func (f *fakeResolver) total() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	n := 0
	for _, c := range f.calls {
		n += c
	}
	return n
}
