package dnstest

import (
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"
)

func query(t *testing.T, addr, network, name string, qtype uint16, edns bool) *dns.Msg {
	t.Helper()
	m := new(dns.Msg).SetQuestion(dns.Fqdn(name), qtype)
	if edns {
		m.SetEdns0(1232, false)
	}
	c := &dns.Client{Net: network, Timeout: 300 * time.Millisecond}
	resp, _, err := c.Exchange(m, addr)
	if err != nil {
		t.Fatalf("%s %s: %v", name, dns.TypeToString[qtype], err)
	}
	return resp
}

func TestServer(t *testing.T) {
	srv := Start(t, `
$TTL 120
example.test.      IN SOA ns.example.test. h.example.test. 1 3600 600 86400 30
www.example.test.  IN CNAME host.example.test.
Host.Example.Test. IN A 192.0.2.1
a.b.example.test.  IN TXT "deep"
`)
	tests := []struct {
		name   string
		qtype  uint16
		rcode  int
		answer []string
		soa    bool
	}{
		{"host.example.test", dns.TypeA, dns.RcodeSuccess, []string{"host.example.test.\t120\tIN\tA\t192.0.2.1"}, false},
		{"HOST.example.test", dns.TypeA, dns.RcodeSuccess, []string{"host.example.test.\t120\tIN\tA\t192.0.2.1"}, false},
		{"www.example.test", dns.TypeA, dns.RcodeSuccess, []string{"www.example.test.\t120\tIN\tCNAME\thost.example.test.", "host.example.test.\t120\tIN\tA\t192.0.2.1"}, false},
		{"host.example.test", dns.TypeMX, dns.RcodeSuccess, nil, true},     // NODATA
		{"b.example.test", dns.TypeA, dns.RcodeSuccess, nil, true},         // empty non-terminal
		{"missing.example.test", dns.TypeA, dns.RcodeNameError, nil, true}, // NXDOMAIN
		{"other.test", dns.TypeA, dns.RcodeNameError, nil, false},          // no SOA above
	}
	for _, tt := range tests {
		resp := query(t, srv.Addr, "udp", tt.name, tt.qtype, false)
		var got []string
		for _, rr := range resp.Answer {
			got = append(got, rr.String())
		}
		if resp.Rcode != tt.rcode || strings.Join(got, "|") != strings.Join(tt.answer, "|") || (len(resp.Ns) == 1) != tt.soa {
			t.Errorf("%s %s: rcode %d, answer %q, ns %v", tt.name, dns.TypeToString[tt.qtype], resp.Rcode, got, resp.Ns)
		}
	}
	if n := srv.Queries(); n != len(tests) {
		t.Errorf("%d queries", n)
	}
}

func TestFailuresAndTruncation(t *testing.T) {
	var zone strings.Builder
	for i := range 60 {
		fmt.Fprintf(&zone, "big.test. IN MX %d mx%d.big.test.\n", i, i)
	}
	srv := Start(t, zone.String())
	if resp := query(t, srv.Addr, "udp", "big.test", dns.TypeMX, false); !resp.Truncated || len(resp.Answer) == 60 {
		t.Errorf("UDP without EDNS0: truncated %v, %d records", resp.Truncated, len(resp.Answer))
	}
	if resp := query(t, srv.Addr, "tcp", "big.test", dns.TypeMX, false); resp.Truncated || len(resp.Answer) != 60 {
		t.Errorf("TCP: truncated %v, %d records", resp.Truncated, len(resp.Answer))
	}

	srv.SetRcode("big.test", dns.RcodeServerFailure)
	if resp := query(t, srv.Addr, "udp", "big.test", dns.TypeMX, true); resp.Rcode != dns.RcodeServerFailure {
		t.Errorf("rcode %d", resp.Rcode)
	}
	srv.SetRcode("big.test", dns.RcodeSuccess)
	if resp := query(t, srv.Addr, "udp", "big.test", dns.TypeMX, true); resp.Rcode != dns.RcodeSuccess {
		t.Errorf("rcode %d after reset", resp.Rcode)
	}

	srv.Drop("big.test")
	m := new(dns.Msg).SetQuestion("big.test.", dns.TypeMX)
	c := &dns.Client{Timeout: 100 * time.Millisecond}
	if _, _, err := c.Exchange(m, srv.Addr); err == nil {
		t.Error("dropped query answered")
	}
}

func TestStartAt(t *testing.T) {
	// A port that was free a moment ago, as a test would name port 53.
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := pc.LocalAddr().String()
	pc.Close()
	srv := StartAt(t, addr, "host.example.test. IN A 192.0.2.7\n")
	if srv.Addr != addr {
		t.Errorf("Addr %s, want %s", srv.Addr, addr)
	}
	for _, network := range []string{"udp", "tcp"} {
		resp := query(t, addr, network, "host.example.test", dns.TypeA, false)
		if len(resp.Answer) != 1 || resp.Answer[0].(*dns.A).A.String() != "192.0.2.7" {
			t.Errorf("%s: answer %v", network, resp.Answer)
		}
	}
}
