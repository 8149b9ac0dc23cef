package courier

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"strconv"
	"strings"

	"drover/bounce"
	"drover/mta/mtasts"
	"drover/queue"
	"drover/queue/engine"
	"drover/queue/shaping"
)

// Route is the courier's half of a plan: the hosts to try, in order, with
// the addresses to connect to, and the MTA-STS policy that applies.
type Route struct {
	Hops   []Hop
	Routed bool           // a configured route chose the hosts (no MTA-STS)
	STS    *mtasts.Policy // the destination's policy, nil if none applies
}

// Hop is a host and the addresses to try for it (at most MaxAddresses
// over the route, in the network's order), or why it has none: Err (a
// host without address, a host the policy refuses), with Remote naming
// the host when it was the policy. Open reports the last failure in the
// order of the hops.
type Hop struct {
	Host   string
	Addrs  []netip.AddrPort
	Err    error
	Remote string
}

var _ engine.Planner = (*Courier)(nil)

// Plan implements engine.Planner: the one place where a destination is
// resolved. A matching route overrides MX; an address literal is used as
// it is; otherwise the MX hosts of dest, most preferred first. The site is
// the route's, or Shaping's Site of the MX hosts; limits are Shaping's for
// the site and for dest. Under the "mta-sts" TLS mode, the policy of an
// unrouted destination is fetched (Config.MTASTS) and, in enforce mode,
// hosts it does not name are left out. The addresses of the hosts are
// resolved up to MaxAddresses usable ones. An error is an *smtperr.Error:
// NXDOMAIN, null MX and the like are permanent; no usable address is
// temporary.
func (c *Courier) Plan(ctx context.Context, dest string) (*engine.Plan, error) {
	if c.err != nil {
		return nil, c.openError(dest, "", c.err, false)
	}
	hops, route, err := c.hops(ctx, dest)
	routed := route != ""
	if err != nil {
		return nil, c.openError(dest, "", err, true)
	}
	p := &engine.Plan{Envelope: c.cfg.Envelope}
	rt := &Route{Routed: routed}
	p.Route = rt
	if routed {
		p.MX = []string{route}
	} else {
		for _, h := range hops {
			p.MX = append(p.MX, h.Host)
		}
	}
	c.shape(dest, p)
	if p.Limits.TLS == shaping.TLSMTASTS && !routed && c.cfg.MTASTS != nil {
		if rt.STS, err = c.cfg.MTASTS.Get(ctx, dest); err != nil {
			c.log.Warn("courier: MTA-STS policy unavailable, delivering without it", "dest", dest, "err", err)
		}
	}
	n := 0
	for _, h := range hops {
		if n == c.cfg.MaxAddresses {
			break
		}
		if err := rt.STS.Check(h.Host, true); err != nil {
			c.log.Warn("courier: MX skipped by MTA-STS policy", "dest", dest, "host", h.Host, "err", err)
			rt.Hops = append(rt.Hops, Hop{Host: h.Host, Err: err, Remote: h.Host})
			continue
		}
		var addrs []netip.Addr
		if a, err := netip.ParseAddr(h.Host); err == nil {
			addrs = []netip.Addr{a}
		} else if addrs, err = c.resolver.Addrs(ctx, h.Host); err != nil {
			c.log.Debug("courier: no address", "dest", dest, "host", h.Host, "err", err)
			rt.Hops = append(rt.Hops, Hop{Host: h.Host, Err: err})
			continue
		}
		hop := Hop{Host: h.Host}
		for _, a := range addrs {
			if c.usable(a) && n < c.cfg.MaxAddresses {
				hop.Addrs = append(hop.Addrs, netip.AddrPortFrom(a, h.Port))
				n++
			}
		}
		if len(hop.Addrs) > 0 {
			rt.Hops = append(rt.Hops, hop)
		}
	}
	if n == 0 {
		last, remote := fmt.Errorf("no usable address for network %s", c.cfg.Network), ""
		if k := len(rt.Hops); k > 0 {
			last, remote = rt.Hops[k-1].Err, rt.Hops[k-1].Remote
		}
		return p, c.openError(dest, remote, last, false)
	}
	return p, nil
}

// Refresh implements engine.Planner: the site and limits of p under the
// shaping in force, without DNS.
func (c *Courier) Refresh(dest string, p *engine.Plan) *engine.Plan {
	np := *p
	np.MX = slices.Clone(p.MX)
	c.shape(dest, &np)
	return &np
}

// shape sets the site and the limits of a plan whose MX (or route) is set.
func (c *Courier) shape(dest string, p *engine.Plan) {
	var sh *shaping.Shaper
	if c.cfg.Shaping != nil {
		sh = c.cfg.Shaping.Load()
	}
	routed := false
	if rt, ok := p.Route.(*Route); ok {
		routed = rt.Routed
	}
	switch {
	case routed:
		p.Site = shaping.RouteSite(p.MX[0])
	case sh != nil:
		p.Site = sh.Site(dest, p.MX)
	default:
		p.Site = dest
	}
	if sh == nil {
		p.Limits, p.SiteLimits = shaping.BuiltinLimits, shaping.BuiltinLimits
		return
	}
	p.Limits, _ = sh.Resolve(p.Site, dest, p.MX)
	p.SiteLimits, _ = sh.Resolve(p.Site, "", p.MX)
}

// hop is a host to connect to.
type hop struct {
	Host string // host name or IP address
	Port uint16
}

// hops returns the hosts to try for dest, in order, and the route target
// that chose them ("" when none did).
func (c *Courier) hops(ctx context.Context, dest string) ([]hop, string, error) {
	if target, ok := c.cfg.Routes.Lookup(dest); ok {
		host, p, err := net.SplitHostPort(target)
		if err != nil {
			return nil, target, fmt.Errorf("route target %q: %w", target, err)
		}
		port, err := strconv.ParseUint(p, 10, 16)
		if err != nil {
			return nil, target, fmt.Errorf("route target %q: %w", target, err)
		}
		return []hop{{host, uint16(port)}}, target, nil
	}
	port := uint16(c.cfg.Port)
	if lit, ok := strings.CutPrefix(dest, "["); ok {
		lit = strings.TrimSuffix(lit, "]")
		if len(lit) > 5 && strings.EqualFold(lit[:5], "ipv6:") {
			lit = lit[5:]
		}
		ip, err := netip.ParseAddr(lit)
		if err != nil {
			return nil, "", fmt.Errorf("address literal %q: %w", dest, err)
		}
		return []hop{{ip.String(), port}}, "", nil
	}
	hosts, err := c.resolver.MX(ctx, dest)
	if err != nil {
		return nil, "", err
	}
	hops := make([]hop, len(hosts))
	for i, h := range hosts {
		hops[i] = hop{h, port}
	}
	return hops, "", nil
}

// usable reports whether the configured network allows address a.
func (c *Courier) usable(a netip.Addr) bool {
	switch c.cfg.Network {
	case "ip4":
		return a.Is4()
	case "ip6":
		return a.Is6()
	}
	return true
}

// Senders is the engine.Envelope of the configured senders: VERP return
// paths for those with a bounce domain, and source pools per sender and
// stream.
type Senders struct {
	VERP bounce.VERP
	// BounceDomain maps the senders that use VERP to their bounce domain.
	BounceDomain map[string]string
	// SenderPool maps a sender to its source pool, and StreamPool a
	// sender to the pool of each of its streams (X-Drover-Stream), which
	// wins.
	SenderPool map[string]string
	StreamPool map[string]map[string]string
}

var _ engine.Envelope = (*Senders)(nil)

// PerRecipient reports whether msg's sender uses VERP.
func (s *Senders) PerRecipient(msg *queue.Message) bool { return s.BounceDomain[msg.Sender] != "" }

// ReturnPath is the VERP address of r: bounces+TOKEN@<bounce domain>.
func (s *Senders) ReturnPath(msg *queue.Message, r queue.Recipient) string {
	if d := s.BounceDomain[msg.Sender]; d != "" {
		return s.VERP.Encode(msg.ID, r.Index, msg.Sender, d)
	}
	return msg.ReturnPath
}

// Pool is the source pool of msg's sender for its stream, "" for the
// shaping's.
func (s *Senders) Pool(msg *queue.Message) string {
	if p := s.StreamPool[msg.Sender][msg.Stream]; p != "" {
		return p
	}
	return s.SenderPool[msg.Sender]
}
