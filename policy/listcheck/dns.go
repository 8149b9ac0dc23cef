package listcheck

import (
	"context"
	"errors"
	"net"
	"strings"

	"drover/mta/resolve"
)

// hostLookup is whether an MX host has an address; done is closed when
// it is known.
type hostLookup struct {
	done      chan struct{}
	ok        bool
	temporary bool // the lookup failed for now
}

// dnsWorker judges the domains of c.jobs, one at a time, until the
// channel is closed.
func (c *checker) dnsWorker() {
	for l := range c.jobs {
		if c.ctx.Err() == nil {
			l.problem, l.detail = c.judgeDomain(l.name)
		}
		close(l.done)
	}
}

// judgeDomain looks up a domain's mail exchangers, then their addresses
// until one has some.
func (c *checker) judgeDomain(name string) (Problem, string) {
	ctx, cancel := context.WithTimeout(c.ctx, c.opt.LookupTimeout)
	hosts, err := c.opt.Resolver.MX(ctx, name)
	cancel()
	if err != nil {
		return classify(err, name)
	}
	if len(hosts) == 0 {
		return NoMX, "no MX record and no address record (A/AAAA)"
	}
	temporary := false
	for _, h := range hosts {
		hl := c.host(h)
		if hl == nil {
			return Unverified, "the check was stopped"
		}
		if hl.ok {
			return "", ""
		}
		temporary = temporary || hl.temporary
	}
	if temporary {
		return Unverified, "temporary DNS failure looking up the MX hosts' addresses"
	}
	if len(hosts) == 1 {
		return NoMX, "the MX host " + hosts[0] + " has no address"
	}
	return NoMX, "none of the MX hosts (" + strings.Join(hosts, ", ") + ") has an address"
}

// host looks up the addresses of an MX host, once a check; nil when the
// check ends first.
func (c *checker) host(name string) *hostLookup {
	name = strings.ToLower(strings.TrimSuffix(name, "."))
	c.hostMu.Lock()
	hl, known := c.hosts[name]
	if !known {
		hl = &hostLookup{done: make(chan struct{})}
		c.hosts[name] = hl
	}
	c.hostMu.Unlock()
	if !known {
		ctx, cancel := context.WithTimeout(c.ctx, c.opt.LookupTimeout)
		addrs, err := c.opt.Resolver.Addrs(ctx, name)
		cancel()
		hl.ok = err == nil && len(addrs) > 0
		if err != nil {
			p, _ := classify(err, name)
			hl.temporary = p == Unverified
		}
		close(hl.done)
	}
	select {
	case <-hl.done:
		return hl
	case <-c.ctx.Done():
		return nil
	}
}

// classify turns a failed lookup of name into a finding: a permanent
// failure is no_mx or null_mx, any other unverified.
func classify(err error, name string) (Problem, string) {
	var ne net.Error
	switch {
	case errors.Is(err, resolve.ErrNullMX):
		return NullMX, "the domain accepts no mail (null MX, RFC 7505)"
	case errors.Is(err, resolve.ErrNoSuchDomain):
		return NoMX, "no such domain (NXDOMAIN)"
	case errors.Is(err, resolve.ErrNoAddress):
		return NoMX, "no MX record and no address record (A/AAAA)"
	case errors.Is(err, resolve.ErrInvalidName):
		return NoMX, "not a valid domain name in DNS"
	case errors.Is(err, context.DeadlineExceeded), errors.As(err, &ne) && ne.Timeout():
		return Unverified, "DNS lookup timed out"
	case errors.Is(err, resolve.ErrServerFailure):
		return Unverified, "temporary DNS failure (server failure)"
	}
	return Unverified, "temporary DNS failure: " + strings.TrimPrefix(err.Error(), "resolve: "+name+": ")
}
