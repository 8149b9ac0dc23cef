package resolve

import (
	"errors"
	"fmt"
	"maps"
	"net"
	"net/netip"
	"slices"
	"strconv"
	"strings"
)

// Routes send the mail of the recipient domains matching a pattern to a
// fixed target instead of their MX hosts.
//
// A pattern is a domain ("example.com"), a wildcard ("*.example.com": every
// subdomain of example.com at any depth, but not example.com itself, as in
// DNS and TLS wildcards; list both to route both), or "*" (every domain).
// The most specific pattern wins: an exact domain, then the wildcard with
// the longest suffix, then "*"; so the order of the routes never matters.
//
// A target is "host", "host:port", "[192.0.2.1]", "[192.0.2.1]:2525" or
// "[2001:db8::1]:25"; the port defaults to 25. A host name is resolved with
// A/AAAA lookups, never MX; an IPv4 address may also be written without
// brackets, and a host name with them, as Postfix writes a relay host
// ("[smtp.relay.example]:587").
//
// The zero value and nil have no routes. Routes are safe for concurrent
// use.
type Routes struct {
	exact map[string]string // domain → target
	wild  map[string]string // suffix of "*.suffix" → target
	all   string            // target of "*", "" if none
}

// ErrInvalidRoute marks a route that NewRoutes refuses
// (every *RouteError matches it).
var ErrInvalidRoute = errors.New("invalid route")

// RouteError is a route that NewRoutes refuses: its
// pattern, as given, names the route, so that a caller that read the
// routes from a file can point at its key.
type RouteError struct {
	Pattern string
	// Msg says what is wrong: `target "h:0": port must be 1-65535`,
	// "pattern: not a domain".
	Msg string
}

func (e *RouteError) Error() string { return fmt.Sprintf("invalid route %q: %s", e.Pattern, e.Msg) }

// Is reports whether target is ErrInvalidRoute.
func (e *RouteError) Is(target error) bool { return target == ErrInvalidRoute }

// NewRoutes validates routes (pattern → target) and builds the lookup
// table. Every invalid route is reported, in pattern order, as a
// *RouteError (joined: Unwrap() []error). Two patterns that differ only
// in case or a trailing dot are an error.
func NewRoutes(routes map[string]string) (*Routes, error) {
	rs := &Routes{exact: make(map[string]string), wild: make(map[string]string)}
	var errs []error
	seen := make(map[string]string)
	for _, p := range slices.Sorted(maps.Keys(routes)) {
		pattern, target, err := parseRoute(p, routes[p])
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if other, ok := seen[pattern]; ok {
			errs = append(errs, &RouteError{Pattern: p, Msg: fmt.Sprintf("the same pattern as %q", other)})
			continue
		}
		seen[pattern] = p
		switch {
		case pattern == "*":
			rs.all = target
		case strings.HasPrefix(pattern, "*."):
			rs.wild[pattern[2:]] = target
		default:
			rs.exact[pattern] = target
		}
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return rs, nil
}

// Lookup returns the target for a recipient domain as "host:port" (IPv6
// addresses in brackets), and whether a route matched.
func (rs *Routes) Lookup(domain string) (target string, ok bool) {
	if rs == nil {
		return "", false
	}
	d, err := asciiDomain(domain)
	if err != nil {
		return "", false
	}
	if t, ok := rs.exact[d]; ok {
		return t, true
	}
	// Longest suffix first: "a.b.example.com" tries "b.example.com", then
	// "example.com", then "com".
	for i := strings.IndexByte(d, '.'); i >= 0; {
		if t, ok := rs.wild[d[i+1:]]; ok {
			return t, true
		}
		j := strings.IndexByte(d[i+1:], '.')
		if j < 0 {
			break
		}
		i += j + 1
	}
	if rs.all != "" {
		return rs.all, true
	}
	return "", false
}

// parseRoute validates a route and returns its normalised pattern and
// target, or a *RouteError.
func parseRoute(p, t string) (pattern, target string, err error) {
	pattern, err = parsePattern(p)
	if err != nil {
		return "", "", &RouteError{Pattern: p, Msg: "pattern: " + err.Error()}
	}
	target, err = parseTarget(t)
	if err != nil {
		return "", "", &RouteError{Pattern: p, Msg: fmt.Sprintf("target %q: %v", t, err)}
	}
	return pattern, target, nil
}

func parsePattern(p string) (string, error) {
	if p == "*" {
		return p, nil
	}
	suffix, wild := strings.CutPrefix(p, "*.")
	if strings.Contains(suffix, "*") {
		return "", errors.New(`a wildcard is "*" or a leading "*."`)
	}
	d, err := asciiDomain(suffix)
	if err != nil {
		return "", errors.New("not a domain")
	}
	if wild {
		return "*." + d, nil
	}
	return d, nil
}

func parseTarget(t string) (string, error) {
	bad := func(why string) (string, error) { return "", errors.New(why) }
	if t == "" {
		return bad("empty")
	}
	host, port := t, "25"
	if rest, ok := strings.CutPrefix(t, "["); ok {
		inside, after, ok := strings.Cut(rest, "]")
		if !ok {
			return bad("no closing bracket")
		}
		if ip, err := netip.ParseAddr(inside); err == nil && ip.Zone() == "" {
			host = ip.Unmap().String()
		} else if d, err := asciiDomain(inside); err == nil && !strings.Contains(inside, ":") {
			host = d // Postfix's "[host]": no MX lookup, which a route never does
		} else {
			return bad("brackets must hold an IP address or a host name")
		}
		if after != "" {
			p, ok := strings.CutPrefix(after, ":")
			if !ok {
				return bad("expected :port after the brackets")
			}
			port = p
		}
	} else {
		if strings.Count(t, ":") > 1 {
			return bad("an IPv6 address needs brackets, as in [2001:db8::1]:25")
		}
		if h, p, ok := strings.Cut(t, ":"); ok {
			host, port = h, p
		}
		if _, err := netip.ParseAddr(host); err != nil {
			d, err := asciiDomain(host)
			if err != nil {
				return bad("not a host name or IP address")
			}
			host = d
		}
	}
	if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 || port[0] == '0' || port[0] == '+' {
		return bad("port must be 1-65535")
	}
	return net.JoinHostPort(host, port), nil
}
