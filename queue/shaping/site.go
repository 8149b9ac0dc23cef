package shaping

import (
	"net/netip"
	"slices"
	"strings"

	"golang.org/x/net/publicsuffix"
)

// SiteName returns the readable, stable name of the site a set of MX hosts
// makes, without regard to providers (Shaper.Site, which the queue uses,
// also folds the hosts of one provider into one name): each host is reduced to its registrable domain (the public
// suffix plus one label, from the Public Suffix List compiled into
// golang.org/x/net/publicsuffix), and the distinct names are sorted and
// joined with "+". So every Google-hosted domain is "google.com", every
// Microsoft 365 tenant "outlook.com", and ["mx1.a.example",
// "mx2.b.example"] is "a.example+b.example". A host that has no
// registrable domain (an IP address, "localhost", a bare public suffix)
// stands for itself. Case and trailing dots are ignored; no hosts give "".
//
// The list includes the PSL's private section, so hosts under a hosting
// suffix such as "us-east-1.amazonaws.com" keep one more label; and names
// can change when an x/net upgrade brings a new list (rarely, for mail
// hosts). The caller passes the implicit MX (the domain itself, RFC 5321
// 5.1) when a domain has no MX records.
func SiteName(mxHosts []string) string {
	names := make([]string, 0, len(mxHosts))
	for _, h := range mxHosts {
		host := normalizeHost(h)
		if host == "" {
			continue
		}
		names = append(names, registrable(host))
	}
	slices.Sort(names)
	return strings.Join(slices.Compact(names), "+")
}

func registrable(host string) string {
	if strings.HasPrefix(host, "[") {
		return host
	}
	if _, err := netip.ParseAddr(host); err == nil {
		return host
	}
	d, err := publicsuffix.EffectiveTLDPlusOne(host)
	if err != nil {
		return host
	}
	return d
}

// RouteSite returns the site name of a domain routed to a fixed next hop
// instead of its MX hosts: "route:" and the target ("route:127.0.0.1:2526"),
// so every domain routed to the same target shares one site.
func RouteSite(target string) string {
	return "route:" + strings.ToLower(strings.TrimSpace(target))
}
