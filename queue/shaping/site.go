package shaping

import (
	"net/netip"
	"strings"

	"golang.org/x/net/publicsuffix"
)

// registrable returns the registrable domain of a normalized host: its
// public suffix plus one label, from the Public Suffix List compiled into
// golang.org/x/net/publicsuffix ("gmail-smtp-in.l.google.com" gives
// "google.com"). A host that has none (an IP address, "localhost", a bare
// public suffix) stands for itself. The list includes the PSL's private
// section, so a host under a hosting suffix such as
// "us-east-1.amazonaws.com" keeps one more label; and a name can change
// when an x/net upgrade brings a new list (rarely, for mail hosts).
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
