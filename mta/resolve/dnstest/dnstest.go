// Package dnstest runs an in-process authoritative DNS server for tests, so
// that tests of MX resolution, delivery and DKIM verification need no real
// DNS. It is a test-support package (outside the architecture's component
// table): only _test.go files should import it.
//
// The server answers from zone text (RFC 1035 master file format, origin
// ".", default TTL 3600) on a port of 127.0.0.1, UDP and TCP on the same
// port (StartAt serves on a given address instead):
//
//	srv := dnstest.Start(t, `
//		example.com. 300 IN MX 10 mx1.example.com.
//		mx1.example.com. 300 IN A 127.0.0.1
//	`)
//	r := resolve.New(resolve.Config{Servers: []string{srv.Addr}})
//
// It follows CNAMEs inside the zone, answers NXDOMAIN for names with no
// record at or below them and NODATA for names with records of other
// types, puts the zone's SOA (if any) in negative answers, and truncates
// UDP answers that do not fit the client's buffer (512 bytes, or its EDNS0
// size) so that clients retry over TCP. Failures are set per name with
// SetRcode and Drop.
package dnstest

import (
	"net"
	"strings"
	"sync"
	"testing"

	"github.com/miekg/dns"
)

// Server is a running test DNS server.
type Server struct {
	Addr string // "127.0.0.1:port" (StartAt: its address), UDP and TCP

	tb      testing.TB
	mu      sync.Mutex
	records []dns.RR
	rcodes  map[string]int
	dropped map[string]bool
	queries int
}

// Start serves zone until the test ends. A zone that does not parse fails
// the test.
func Start(tb testing.TB, zone string) *Server {
	tb.Helper()
	return StartAt(tb, "127.0.0.1:0", zone)
}

// StartAt is Start on a given address, UDP and TCP, such as port 53 of a
// spare loopback address for a program that reads /etc/resolv.conf (whose
// resolver only talks to port 53). Port 0 picks a port free for both.
// An address that cannot be listened on fails the test.
func StartAt(tb testing.TB, addr string, zone string) *Server {
	tb.Helper()
	s := &Server{tb: tb, rcodes: make(map[string]int), dropped: make(map[string]bool)}
	s.SetZone(zone)
	var (
		pc  net.PacketConn
		ln  net.Listener
		err error
	)
	for range 20 {
		if pc, err = net.ListenPacket("udp", addr); err != nil {
			tb.Fatalf("dnstest: %v", err)
		}
		if ln, err = net.Listen("tcp", pc.LocalAddr().String()); err == nil {
			break
		}
		pc.Close()
		if _, port, _ := net.SplitHostPort(addr); port != "0" {
			break // a fixed port: trying again gets the same answer
		}
	}
	if err != nil {
		tb.Fatalf("dnstest: no port for UDP and TCP at %s: %v", addr, err)
	}
	s.Addr = pc.LocalAddr().String()
	var started sync.WaitGroup
	started.Add(2)
	udp := &dns.Server{PacketConn: pc, Handler: s, NotifyStartedFunc: started.Done}
	tcp := &dns.Server{Listener: ln, Handler: s, NotifyStartedFunc: started.Done}
	go udp.ActivateAndServe()
	go tcp.ActivateAndServe()
	started.Wait()
	tb.Cleanup(func() {
		udp.Shutdown()
		tcp.Shutdown()
	})
	return s
}

// SetZone replaces the records served. A zone that does not parse fails
// the test.
func (s *Server) SetZone(zone string) {
	s.tb.Helper()
	zp := dns.NewZoneParser(strings.NewReader(zone), ".", "")
	zp.SetDefaultTTL(3600)
	var records []dns.RR
	for rr, ok := zp.Next(); ok; rr, ok = zp.Next() {
		rr.Header().Name = strings.ToLower(rr.Header().Name)
		records = append(records, rr)
	}
	if err := zp.Err(); err != nil {
		s.tb.Fatalf("dnstest: zone: %v", err)
	}
	s.mu.Lock()
	s.records = records
	s.mu.Unlock()
}

// SetRcode makes every query for name (any type) fail with rcode, such as
// dns.RcodeServerFailure; dns.RcodeSuccess restores normal answers.
func (s *Server) SetRcode(name string, rcode int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if rcode == dns.RcodeSuccess {
		delete(s.rcodes, canonical(name))
	} else {
		s.rcodes[canonical(name)] = rcode
	}
}

// Drop makes the server ignore queries for name, so that clients time out.
func (s *Server) Drop(name string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.dropped[canonical(name)] = true
}

// Queries returns the number of queries received.
func (s *Server) Queries() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.queries
}

func canonical(name string) string { return dns.Fqdn(strings.ToLower(name)) }

// ServeDNS answers one query; it implements dns.Handler.
func (s *Server) ServeDNS(w dns.ResponseWriter, req *dns.Msg) {
	s.mu.Lock()
	s.queries++
	resp := s.answer(req)
	s.mu.Unlock()
	if resp == nil {
		return // dropped
	}
	if _, udp := w.RemoteAddr().(*net.UDPAddr); udp {
		size := dns.MinMsgSize
		if opt := req.IsEdns0(); opt != nil {
			size = int(opt.UDPSize())
		}
		resp.Truncate(size)
	}
	w.WriteMsg(resp)
}

// answer builds the reply to req; nil means no reply. s.mu is held.
func (s *Server) answer(req *dns.Msg) *dns.Msg {
	resp := new(dns.Msg)
	if len(req.Question) != 1 {
		return resp.SetRcode(req, dns.RcodeFormatError)
	}
	q := req.Question[0]
	name := canonical(q.Name)
	if s.dropped[name] {
		return nil
	}
	if rc, ok := s.rcodes[name]; ok {
		return resp.SetRcode(req, rc)
	}
	resp.SetReply(req)
	resp.Authoritative = true
	resp.RecursionAvailable = true
	for hops := 0; hops < 8; hops++ {
		var cname *dns.CNAME
		found := false
		for _, rr := range s.records {
			h := rr.Header()
			if h.Name != name {
				continue
			}
			switch {
			case h.Rrtype == q.Qtype || q.Qtype == dns.TypeANY:
				resp.Answer = append(resp.Answer, rr)
				found = true
			case h.Rrtype == dns.TypeCNAME:
				cname = rr.(*dns.CNAME)
			}
		}
		if found || cname == nil {
			break
		}
		resp.Answer = append(resp.Answer, cname)
		name = canonical(cname.Target)
	}
	if len(resp.Answer) == 0 || resp.Answer[len(resp.Answer)-1].Header().Rrtype == dns.TypeCNAME {
		if !s.exists(name) {
			resp.Rcode = dns.RcodeNameError
		}
		if soa := s.soa(name); soa != nil {
			resp.Ns = append(resp.Ns, soa)
		}
	}
	return resp
}

// exists reports whether the zone has a record at or below name.
func (s *Server) exists(name string) bool {
	for _, rr := range s.records {
		if n := rr.Header().Name; n == name || strings.HasSuffix(n, "."+name) {
			return true
		}
	}
	return false
}

// soa returns the SOA record closest above name, if any.
func (s *Server) soa(name string) dns.RR {
	var best dns.RR
	for _, rr := range s.records {
		n := rr.Header().Name
		if rr.Header().Rrtype == dns.TypeSOA && (n == name || n == "." || strings.HasSuffix(name, "."+n)) &&
			(best == nil || len(n) > len(best.Header().Name)) {
			best = rr
		}
	}
	return best
}
