package dkim

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"
)

// These tests check Drover's signatures with verifiers that share no code
// with go-msgauth: Perl's Mail::DKIM (Debian libmail-dkim-perl) and Python's
// dkimpy (Debian python3-dkim, by the author of RFC 8463). Both fetch the
// keys over DNS from a server run by the test. Debian 12's Mail::DKIM
// (1.20230212) does not know Ed25519 ("unsupported algorithm"), so Ed25519 is
// checked with dkimpy, and with Mail::DKIM only where it is new enough to
// have Mail::DKIM::Algorithm::ed25519_sha256.

// startDNS serves records (TXT record name → value) over UDP and TCP on one
// port of 127.0.0.1 and returns the port. Other names get NXDOMAIN.
func startDNS(t *testing.T, records map[string]string) int {
	t.Helper()
	handler := dns.HandlerFunc(func(w dns.ResponseWriter, r *dns.Msg) {
		m := new(dns.Msg)
		m.SetReply(r)
		m.Authoritative = true
		if len(r.Question) == 1 {
			q := r.Question[0]
			txt, ok := records[strings.ToLower(strings.TrimSuffix(q.Name, "."))]
			switch {
			case !ok:
				m.Rcode = dns.RcodeNameError
			case q.Qtype == dns.TypeTXT:
				m.Answer = append(m.Answer, &dns.TXT{
					Hdr: dns.RR_Header{Name: q.Name, Rrtype: dns.TypeTXT, Class: dns.ClassINET, Ttl: 60},
					Txt: splitTXT(txt),
				})
			}
		}
		_ = w.WriteMsg(m)
	})
	// Find a port free for both UDP and TCP.
	var pc net.PacketConn
	var ln net.Listener
	for try := 0; ln == nil; try++ {
		var err error
		pc, err = net.ListenPacket("udp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		ln, err = net.Listen("tcp", pc.LocalAddr().String())
		if err != nil {
			pc.Close()
			if try == 10 {
				t.Fatalf("no port free for both UDP and TCP: %v", err)
			}
		}
	}
	for _, srv := range []*dns.Server{{PacketConn: pc, Handler: handler}, {Listener: ln, Handler: handler}} {
		started := make(chan struct{})
		srv.NotifyStartedFunc = func() { close(started) }
		go func() { _ = srv.ActivateAndServe() }()
		<-started
		t.Cleanup(func() { _ = srv.Shutdown() })
	}
	return pc.LocalAddr().(*net.UDPAddr).Port
}

// verifier runs one external DKIM verifier.
type verifier struct {
	name    string
	check   []string // a command that succeeds when the verifier is installed
	run     []string // the command; the DNS port and message file are appended
	install string   // the Debian packages that provide it
}

var (
	mailDKIM = verifier{
		name:    "Mail::DKIM",
		check:   []string{"perl", "-MMail::DKIM::Verifier", "-MNet::DNS::Resolver", "-e1"},
		run:     []string{"perl", "testdata/verify.pl"},
		install: "libmail-dkim-perl",
	}
	// Debian's python3-dkim is for Debian's python3, which need not be
	// first on PATH.
	dkimpy = verifier{
		name:    "dkimpy",
		check:   []string{"/usr/bin/python3", "-c", "import dkim, nacl, dns.resolver"},
		run:     []string{"/usr/bin/python3", "testdata/verify.py"},
		install: "python3-dkim",
	}
)

// need skips the test when v is not installed, or fails it under CI, which
// installs it.
func (v verifier) need(t *testing.T) {
	t.Helper()
	if out, err := exec.Command(v.check[0], v.check[1:]...).CombinedOutput(); err != nil {
		msg := fmt.Sprintf("%s not installed (apt-get install %s): %v\n%s", v.name, v.install, err, out)
		if os.Getenv("CI") != "" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
}

// verify runs v on msg and returns its output lines.
func (v verifier) verify(t *testing.T, port int, msg []byte) []string {
	t.Helper()
	file := filepath.Join(t.TempDir(), "message.eml")
	if err := os.WriteFile(file, msg, 0o600); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	args := append(v.run[1:len(v.run):len(v.run)], strconv.Itoa(port), file)
	out, err := exec.CommandContext(ctx, v.run[0], args...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s: %v\n%s", v.name, err, out)
	}
	t.Logf("%s:\n%s", v.name, out)
	return strings.Split(strings.TrimSpace(string(out)), "\n")
}

// signatureResults returns the result of each "signature a=ALGO ...
// result=RESULT ..." line, by algorithm.
func signatureResults(lines []string) map[string]string {
	results := make(map[string]string)
	for _, l := range lines {
		if !strings.HasPrefix(l, "signature ") {
			continue
		}
		var algo, result string
		for f := range strings.FieldsSeq(l) {
			if v, ok := strings.CutPrefix(f, "a="); ok {
				algo = v
			}
			if v, ok := strings.CutPrefix(f, "result="); ok {
				result = v
			}
		}
		results[algo] = result
	}
	return results
}

// interopCase is a message signed by the keys for which a verifier gets
// the DNS records.
type interopCase struct {
	name string
	keys []*Key
	algs []string
}

func interopCases(t *testing.T) (cases []interopCase, records map[string]string) {
	rsaKey := loadTestKey(t, "news.example.com", "rsa1", "rsa2048-pkcs1.pem")
	edKey := loadTestKey(t, "news.example.com", "ed1", "ed25519-pkcs8.pem")
	return []interopCase{
		{"rsa", []*Key{rsaKey}, []string{"rsa-sha256"}},
		{"ed25519", []*Key{edKey}, []string{"ed25519-sha256"}},
		{"dual", []*Key{rsaKey, edKey}, []string{"rsa-sha256", "ed25519-sha256"}},
	}, txtRecords(t, rsaKey, edKey)
}

func TestMailDKIMVerifies(t *testing.T) {
	mailDKIM.need(t)
	cases, records := interopCases(t)
	port := startDNS(t, records)
	for _, c := range cases {
		for _, file := range []string{"marketing.eml", "transactional.eml"} {
			t.Run(c.name+"/"+file, func(t *testing.T) {
				msg := signed(t, newTestSigner(t, c.keys...), "news.example.com", readMessage(t, file))
				lines := mailDKIM.verify(t, port, msg)
				knowsEd25519 := lines[0] == "ed25519=yes"
				results := signatureResults(lines)
				for _, algo := range c.algs {
					if algo == "ed25519-sha256" && !knowsEd25519 {
						continue // this Mail::DKIM cannot check it; dkimpy does
					}
					if results[algo] != "pass" {
						t.Errorf("Mail::DKIM: %s signature: %q, want pass", algo, results[algo])
					}
				}
				// A receiver that knows only RSA still passes a dual-signed
				// message.
				want := "result=pass"
				if !knowsEd25519 && c.name == "ed25519" {
					want = "result=invalid"
				}
				if overall := lines[len(lines)-1]; !strings.HasPrefix(overall, want+" ") {
					t.Errorf("Mail::DKIM: %q, want %s", overall, want)
				}
			})
		}
	}
}

func TestDKIMPyVerifies(t *testing.T) {
	dkimpy.need(t)
	cases, records := interopCases(t)
	port := startDNS(t, records)
	for _, c := range cases {
		for _, file := range []string{"marketing.eml", "transactional.eml"} {
			t.Run(c.name+"/"+file, func(t *testing.T) {
				msg := signed(t, newTestSigner(t, c.keys...), "news.example.com", readMessage(t, file))
				results := signatureResults(dkimpy.verify(t, port, msg))
				if len(results) != len(c.algs) {
					t.Errorf("dkimpy saw %d signatures, want %d", len(results), len(c.algs))
				}
				for _, algo := range c.algs {
					if results[algo] != "pass" {
						t.Errorf("dkimpy: %s signature: %q, want pass", algo, results[algo])
					}
				}
			})
		}
	}
}

// TestExternalVerifiersFail makes sure the external verifiers can fail: a
// message changed after signing, in its body or by a second From field, must
// not pass.
func TestExternalVerifiersFail(t *testing.T) {
	cases, records := interopCases(t)
	dual := cases[2]
	port := startDNS(t, records)
	msg := string(signed(t, newTestSigner(t, dual.keys...), "news.example.com", readMessage(t, "marketing.eml")))
	forgeries := map[string]string{
		"body changed":      strings.Replace(msg, "20% off", "90% off", 1),
		"second From added": "From: <ceo@news.example.com>\r\n" + msg,
	}
	for _, v := range []verifier{mailDKIM, dkimpy} {
		for name, forged := range forgeries {
			t.Run(v.name+"/"+name, func(t *testing.T) {
				v.need(t)
				results := signatureResults(v.verify(t, port, []byte(forged)))
				if len(results) != len(dual.algs) {
					t.Fatalf("%s saw %d signatures, want %d", v.name, len(results), len(dual.algs))
				}
				for algo, result := range results {
					if result == "pass" {
						t.Errorf("%s passes the %s signature of a forged message", v.name, algo)
					}
				}
			})
		}
	}
}
