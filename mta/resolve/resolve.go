// Package resolve finds where mail for a domain goes: MX resolution (RFC
// 5321 5.1) with a TTL-respecting cache, address lookups, and static routes
// that override MX.
//
// Contracts:
//
//   - MX returns the mail exchangers of a domain, most preferred first,
//     randomised among equal preferences on every call (so load spreads over
//     them). No MX record but an address record gives the implicit MX: the
//     domain itself. A null MX (RFC 7505) and NXDOMAIN are permanent errors;
//     a server failure (SERVFAIL, REFUSED) or a timeout is temporary.
//   - Addrs returns the IPv4 addresses of a host, then its IPv6 ones. One
//     family failing temporarily does not hide the other.
//   - Every error returned by MX and Addrs is an *smtperr.Error, with the
//     enhanced code a destination gets for it: permanent 5.1.2 (NXDOMAIN,
//     invalid name), 5.1.10 (null MX), 5.4.4 (no address); temporary 4.4.3
//     (server failure, timeout). errors.Is finds the sentinels
//     ErrNoSuchDomain, ErrNullMX, ErrNoAddress, ErrInvalidName,
//     ErrServerFailure.
//   - The cache holds answers for their TTL (at most one day), negative
//     answers (NXDOMAIN, no record of the type) for the TTL of the SOA in
//     the answer (RFC 2308; not at all without one), and never temporary
//     failures. It holds at most Config.CacheSize answers, dropping the
//     least recently used. Concurrent lookups of one name share one query.
//   - Queries go to the configured servers in order, over UDP with EDNS0
//     (1232 bytes), over TCP when the answer is truncated; a timeout or a
//     server failure moves on to the next server; the list is tried twice.
//   - Internationalised domain names are looked up in their A-label form.
//
// A Resolver is safe for concurrent use.
package resolve

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/miekg/dns"
	"golang.org/x/net/idna"

	"drover/mta/smtperr"
)

// Config configures a Resolver.
type Config struct {
	// Servers are the recursive DNS servers ("host:port"), tried in order.
	// Default: the nameservers of /etc/resolv.conf, or 127.0.0.1:53.
	Servers []string
	// Timeout bounds one query to one server; default 5s.
	Timeout time.Duration
	// CacheSize is the number of answers kept; default 10000, negative
	// disables the cache.
	CacheSize int
	// Now is the clock of the cache; default time.Now.
	Now func() time.Time
}

const (
	defaultTimeout   = 5 * time.Second
	defaultCacheSize = 10000
	maxTTL           = 24 * time.Hour
	ednsSize         = 1232 // DNS flag day 2020
	attempts         = 2    // passes over the server list
)

// Resolver looks up mail exchangers and addresses.
type Resolver struct {
	servers []string
	timeout time.Duration
	now     func() time.Time
	udp     *dns.Client
	tcp     *dns.Client
	cache   *cache

	mu       sync.Mutex
	inflight map[cacheKey]*call
}

// call is a query in progress, shared by the lookups that wait for it.
type call struct {
	done chan struct{}
	ans  *answer
	err  error
}

// answer is the outcome of one query, as cached.
type answer struct {
	rrs     []dns.RR // answer records of the type asked for
	nx      bool     // NXDOMAIN
	expires time.Time
}

// New returns a Resolver.
func New(cfg Config) *Resolver {
	r := &Resolver{
		servers:  cfg.Servers,
		timeout:  cfg.Timeout,
		now:      cfg.Now,
		inflight: make(map[cacheKey]*call),
	}
	if len(r.servers) == 0 {
		r.servers = systemServers()
	}
	if r.timeout <= 0 {
		r.timeout = defaultTimeout
	}
	if r.now == nil {
		r.now = time.Now
	}
	size := cfg.CacheSize
	if size == 0 {
		size = defaultCacheSize
	}
	r.cache = newCache(size)
	r.udp = &dns.Client{Net: "udp", UDPSize: ednsSize}
	r.tcp = &dns.Client{Net: "tcp"}
	return r
}

// systemServers reads the nameservers of /etc/resolv.conf.
func systemServers() []string {
	cc, err := dns.ClientConfigFromFile("/etc/resolv.conf")
	if err != nil || len(cc.Servers) == 0 {
		return []string{"127.0.0.1:53"}
	}
	servers := make([]string, len(cc.Servers))
	for i, s := range cc.Servers {
		servers[i] = net.JoinHostPort(s, cc.Port)
	}
	return servers
}

// The causes of failed lookups, found with errors.Is.
var (
	ErrNoSuchDomain  = errors.New("no such domain (NXDOMAIN)")                  // permanent
	ErrNullMX        = errors.New("domain accepts no mail (null MX, RFC 7505)") // permanent
	ErrNoAddress     = errors.New("no address record (A/AAAA)")                 // permanent
	ErrInvalidName   = errors.New("invalid domain name")                        // permanent
	ErrServerFailure = errors.New("DNS server failure")                         // temporary: SERVFAIL, REFUSED, ...
)

// lookupError is a failed lookup of name, caused by cause. A permanent
// one has the enhanced code a destination gets for it: 5.1.10 for a null
// MX (RFC 7505), 5.4.4 (unable to route) for no address, 5.1.2 (bad
// destination system address) otherwise; a temporary one 4.4.3
// (directory server failure).
func lookupError(name string, cause error, permanent bool) *smtperr.Error {
	err := fmt.Errorf("resolve: %s: %w", name, cause)
	e := &smtperr.Error{Enhanced: "4.4.3", Message: err.Error(), Permanent: permanent, Err: err}
	switch {
	case !permanent:
	case errors.Is(cause, ErrNullMX):
		e.Enhanced = "5.1.10"
	case errors.Is(cause, ErrNoAddress):
		e.Enhanced = "5.4.4"
	default:
		e.Enhanced = "5.1.2"
	}
	return e
}

// MX returns the mail exchangers of domain, most preferred first.
func (r *Resolver) MX(ctx context.Context, domain string) ([]string, error) {
	name, err := asciiDomain(domain)
	if err != nil {
		return nil, lookupError(domain, err, true)
	}
	ans, err := r.lookup(ctx, name, dns.TypeMX)
	if err != nil {
		return nil, lookupError(name, err, false)
	}
	if ans.nx {
		return nil, lookupError(name, ErrNoSuchDomain, true)
	}
	mxs := make([]*dns.MX, 0, len(ans.rrs))
	for _, rr := range ans.rrs {
		mxs = append(mxs, rr.(*dns.MX))
	}
	if len(mxs) == 1 && mxs[0].Mx == "." {
		return nil, lookupError(name, ErrNullMX, true)
	}
	if len(mxs) == 0 {
		// RFC 5321 5.1: the domain itself is the implicit MX.
		if _, err := r.Addrs(ctx, name); err != nil {
			if errors.Is(err, ErrNoAddress) {
				return nil, lookupError(name, fmt.Errorf("no MX record, and %w", ErrNoAddress), true)
			}
			return nil, err
		}
		return []string{name}, nil
	}
	// Shuffle, then sort stably by preference: random among equals.
	rand.Shuffle(len(mxs), func(i, j int) { mxs[i], mxs[j] = mxs[j], mxs[i] })
	slices.SortStableFunc(mxs, func(a, b *dns.MX) int { return int(a.Preference) - int(b.Preference) })
	hosts := make([]string, 0, len(mxs))
	for _, mx := range mxs {
		host := strings.ToLower(strings.TrimSuffix(mx.Mx, "."))
		if host != "" && !slices.Contains(hosts, host) {
			hosts = append(hosts, host)
		}
	}
	if len(hosts) == 0 {
		return nil, lookupError(name, ErrNullMX, true)
	}
	return hosts, nil
}

// Addrs returns the addresses of host: A records, then AAAA records. An IP
// address is returned as it is.
func (r *Resolver) Addrs(ctx context.Context, host string) ([]netip.Addr, error) {
	if ip, err := netip.ParseAddr(host); err == nil {
		return []netip.Addr{ip.Unmap()}, nil
	}
	name, err := asciiDomain(host)
	if err != nil {
		return nil, lookupError(host, err, true)
	}
	type result struct {
		ans *answer
		err error
	}
	six := make(chan result, 1)
	go func() {
		ans, err := r.lookup(ctx, name, dns.TypeAAAA)
		six <- result{ans, err}
	}()
	ans4, err4 := r.lookup(ctx, name, dns.TypeA)
	res6 := <-six
	ans6, err6 := res6.ans, res6.err

	var addrs []netip.Addr
	for _, ans := range []*answer{ans4, ans6} {
		if ans == nil {
			continue
		}
		for _, rr := range ans.rrs {
			var ip net.IP
			switch rr := rr.(type) {
			case *dns.A:
				ip = rr.A
			case *dns.AAAA:
				ip = rr.AAAA
			}
			if a, ok := netip.AddrFromSlice(ip); ok {
				addrs = append(addrs, a.Unmap())
			}
		}
	}
	switch {
	case len(addrs) > 0:
		return addrs, nil
	case err4 != nil:
		return nil, lookupError(name, err4, false)
	case err6 != nil:
		return nil, lookupError(name, err6, false)
	case ans4.nx || ans6.nx:
		return nil, lookupError(name, ErrNoSuchDomain, true)
	}
	return nil, lookupError(name, ErrNoAddress, true)
}

// lookup answers one question from the cache, or by a query shared with
// concurrent lookups of the same question. Errors are temporary failures.
func (r *Resolver) lookup(ctx context.Context, name string, qtype uint16) (*answer, error) {
	key := cacheKey{name, qtype}
	if ans, ok := r.cache.get(key, r.now()); ok {
		return ans, nil
	}
	r.mu.Lock()
	c, ok := r.inflight[key]
	if !ok {
		c = &call{done: make(chan struct{})}
		r.inflight[key] = c
		// The query does not stop when this caller gives up: others
		// may be waiting for it, and it is bounded by the timeouts.
		go r.run(context.WithoutCancel(ctx), key, c)
	}
	r.mu.Unlock()
	select {
	case <-c.done:
		return c.ans, c.err
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

func (r *Resolver) run(ctx context.Context, key cacheKey, c *call) {
	c.ans, c.err = r.query(ctx, key.name, key.qtype)
	if c.err == nil && c.ans.expires.After(r.now()) {
		r.cache.put(key, c.ans)
	}
	r.mu.Lock()
	delete(r.inflight, key)
	r.mu.Unlock()
	close(c.done)
}

// query asks the servers one question.
func (r *Resolver) query(ctx context.Context, name string, qtype uint16) (*answer, error) {
	m := new(dns.Msg)
	m.SetQuestion(dns.Fqdn(name), qtype)
	m.SetEdns0(ednsSize, false)
	var last error
	for range attempts {
		for _, server := range r.servers {
			resp, err := r.exchange(ctx, m, server)
			if err != nil {
				last = err
				continue
			}
			switch resp.Rcode {
			case dns.RcodeSuccess, dns.RcodeNameError:
				return r.toAnswer(resp, qtype), nil
			}
			last = fmt.Errorf("%w: %s from %s", ErrServerFailure, dns.RcodeToString[resp.Rcode], server)
		}
	}
	return nil, last
}

// exchange sends m to server over UDP, and over TCP when the answer is
// truncated.
func (r *Resolver) exchange(ctx context.Context, m *dns.Msg, server string) (*dns.Msg, error) {
	ctx, cancel := context.WithTimeout(ctx, r.timeout)
	defer cancel()
	resp, _, err := r.udp.ExchangeContext(ctx, m, server)
	if err == nil && resp.Truncated {
		resp, _, err = r.tcp.ExchangeContext(ctx, m, server)
	}
	if err != nil {
		return nil, fmt.Errorf("query %s: %w", server, err)
	}
	return resp, nil
}

// toAnswer keeps the records of type qtype and works out how long the
// answer may be cached.
func (r *Resolver) toAnswer(resp *dns.Msg, qtype uint16) *answer {
	ans := &answer{nx: resp.Rcode == dns.RcodeNameError}
	ttl := maxTTL
	for _, rr := range resp.Answer {
		if rr.Header().Rrtype == qtype {
			ans.rrs = append(ans.rrs, rr)
		}
		ttl = min(ttl, time.Duration(rr.Header().Ttl)*time.Second)
	}
	if len(ans.rrs) == 0 {
		// Negative answer: cached for the SOA's TTL, capped by its
		// minimum field (RFC 2308 5); without a SOA, not cached.
		ttl = 0
		for _, rr := range resp.Ns {
			if soa, ok := rr.(*dns.SOA); ok {
				ttl = min(maxTTL, time.Duration(min(soa.Hdr.Ttl, soa.Minttl))*time.Second)
			}
		}
	}
	ans.expires = r.now().Add(ttl)
	return ans
}

// asciiDomain returns the lower-case A-label form of a domain name, without
// a trailing dot.
func asciiDomain(s string) (string, error) {
	name := strings.TrimSuffix(s, ".")
	for i := 0; i < len(name); i++ {
		if name[i] >= 0x80 {
			a, err := idna.Lookup.ToASCII(name)
			if err != nil {
				return "", fmt.Errorf("%w: %q: %w", ErrInvalidName, s, err)
			}
			name = a
			break
		}
	}
	name = strings.ToLower(name)
	if !validDomain(name) {
		return "", fmt.Errorf("%w: %q", ErrInvalidName, s)
	}
	return name, nil
}

// validDomain reports whether name is a plausible host or domain name:
// dot-separated labels of letters, digits, hyphens and underscores.
func validDomain(name string) bool {
	if name == "" || len(name) > 253 {
		return false
	}
	for label := range strings.SplitSeq(name, ".") {
		if label == "" || len(label) > 63 {
			return false
		}
		for i := 0; i < len(label); i++ {
			c := label[i]
			if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
				return false
			}
		}
	}
	return true
}
