package mtasts

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/miekg/dns"

	"drover/testkit"
)

func newClock() *testkit.Clock { return testkit.NewClock(time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)) }

// response is what the policy server answers for one host.
type response struct {
	status      int // 0 means 200
	contentType string
	body        string
	location    string
}

// policyServer is a local HTTPS server standing in for every
// mta-sts.<domain> host; it answers per Host header.
type policyServer struct {
	srv *httptest.Server

	mu    sync.Mutex
	hosts map[string]response
	gets  atomic.Int32
}

// newPolicyServer starts an HTTPS server whose certificate is valid for
// names, signed by a CA that only the returned client trusts. The client
// dials the server whatever host a URL names.
func newPolicyServer(t *testing.T, names ...string) (*policyServer, *http.Client) {
	t.Helper()
	ca := testkit.NewCA(t)
	ps := &policyServer{hosts: make(map[string]response)}
	ps.srv = httptest.NewUnstartedServer(http.HandlerFunc(ps.serve))
	ps.srv.TLS = &tls.Config{Certificates: []tls.Certificate{ca.Leaf(t, names...)}}
	ps.srv.Config.ErrorLog = log.New(io.Discard, "", 0) // rejected handshakes are expected
	ps.srv.StartTLS()
	t.Cleanup(ps.srv.Close)
	return ps, ps.client(ca.Pool)
}

// client returns a client that trusts roots and dials ps for every host.
func (ps *policyServer) client(roots *x509.CertPool) *http.Client {
	addr := ps.srv.Listener.Addr().String()
	var d net.Dialer
	return &http.Client{Transport: &http.Transport{
		TLSClientConfig: &tls.Config{RootCAs: roots},
		DialContext: func(ctx context.Context, network, _ string) (net.Conn, error) {
			return d.DialContext(ctx, network, addr)
		},
	}}
}

func (ps *policyServer) set(host string, r response) {
	ps.mu.Lock()
	defer ps.mu.Unlock()
	ps.hosts[host] = r
}

func (ps *policyServer) serve(w http.ResponseWriter, r *http.Request) {
	ps.gets.Add(1)
	ps.mu.Lock()
	resp, ok := ps.hosts[r.Host]
	ps.mu.Unlock()
	if !ok || r.URL.Path != "/.well-known/mta-sts.txt" || r.Method != http.MethodGet {
		http.NotFound(w, r)
		return
	}
	if resp.contentType == "" {
		resp.contentType = "text/plain"
	}
	w.Header().Set("Content-Type", resp.contentType)
	if resp.location != "" {
		w.Header().Set("Location", resp.location)
	}
	if resp.status != 0 {
		w.WriteHeader(resp.status)
	}
	_, _ = w.Write([]byte(resp.body))
}

// startDNS serves h on UDP and TCP on the same random 127.0.0.1 port and
// returns the address.
func startDNS(t *testing.T, h dns.HandlerFunc) string {
	t.Helper()
	for range 20 {
		pc, err := net.ListenPacket("udp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		l, err := net.Listen("tcp", pc.LocalAddr().String())
		if err != nil {
			pc.Close()
			continue
		}
		for _, srv := range []*dns.Server{{PacketConn: pc, Handler: h}, {Listener: l, Handler: h}} {
			started := make(chan struct{})
			srv.NotifyStartedFunc = func() { close(started) }
			go func() { _ = srv.ActivateAndServe() }()
			<-started
			t.Cleanup(func() { _ = srv.Shutdown() })
		}
		return pc.LocalAddr().String()
	}
	t.Fatal("no port free on both UDP and TCP")
	return ""
}

// txtZone answers TXT queries from records (name without trailing dot →
// records); names in servfail get SERVFAIL, others NXDOMAIN. Records are
// split into 255-byte character-strings, and UDP answers are truncated to
// the client's EDNS0 size.
func txtZone(records map[string][]string, servfail ...string) dns.HandlerFunc {
	return func(w dns.ResponseWriter, req *dns.Msg) {
		m := new(dns.Msg)
		m.SetReply(req)
		q := req.Question[0]
		name := strings.TrimSuffix(strings.ToLower(q.Name), ".")
		recs, ok := records[name]
		switch {
		case slices.Contains(servfail, name):
			m.Rcode = dns.RcodeServerFailure
		case !ok:
			m.Rcode = dns.RcodeNameError
		case q.Qtype == dns.TypeTXT:
			for _, r := range recs {
				var parts []string
				for len(r) > 255 {
					parts, r = append(parts, r[:255]), r[255:]
				}
				m.Answer = append(m.Answer, &dns.TXT{
					Hdr: dns.RR_Header{Name: q.Name, Rrtype: dns.TypeTXT, Class: dns.ClassINET, Ttl: 300},
					Txt: append(parts, r),
				})
			}
		}
		if w.LocalAddr().Network() == "udp" {
			size := dns.MinMsgSize
			if opt := req.IsEdns0(); opt != nil {
				size = int(opt.UDPSize())
			}
			m.Truncate(size)
		}
		_ = w.WriteMsg(m)
	}
}
