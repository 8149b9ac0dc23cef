package courier

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"

	"drover/mta/mtasts"
	"drover/mta/resolve"
	"drover/mta/resolve/dnstest"
	"drover/mta/smtperr"
	"drover/queue"
	"drover/queue/shaping"
	"drover/testkit"
)

type stsTXT map[string]string

func (s stsTXT) LookupTXT(_ context.Context, name string) ([]string, error) {
	if v, ok := s[name]; ok {
		return []string{v}, nil
	}
	return nil, &net.DNSError{Err: "no such host", Name: name, IsNotFound: true}
}

type stsFetch map[string]string

func (s stsFetch) Fetch(_ context.Context, domain string) ([]byte, error) {
	if v, ok := s[domain]; ok {
		return []byte(v), nil
	}
	return nil, errors.New("no policy")
}

func TestMTASTS(t *testing.T) {
	ca := testkit.NewCA(t)
	roots, cert := ca.Pool, ca.Leaf(t, "mx.sts.test")
	tlsLn, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := tlsLn.Addr().(*net.TCPAddr).Port
	plainLn, err := net.Listen("tcp", fmt.Sprintf("127.0.0.2:%d", port))
	if err != nil {
		t.Skip("127.0.0.2 not usable:", err)
	}
	secure := serveMX(t, tlsLn, "mx.sts.test", testkit.MXOptions{TLS: &tls.Config{Certificates: []tls.Certificate{cert}}})
	plain := serveMX(t, plainLn, "plain.sts.test", testkit.MXOptions{})
	dns := dnstest.Start(t, `
test.             3600 IN SOA ns.test. hostmaster.test. 1 3600 600 86400 60
mx.sts.test.      300 IN A 127.0.0.1
plain.sts.test.   300 IN A 127.0.0.2
good.test.        300 IN MX 10 mx.sts.test.
foreign.test.     300 IN MX 10 plain.sts.test.
notls.test.       300 IN MX 10 plain.sts.test.
testing.test.     300 IN MX 10 plain.sts.test.
`)
	policy := func(mode, mx string) string {
		return "version: STSv1\nmode: " + mode + "\nmx: " + mx + "\nmax_age: 86400\n"
	}
	sts := mtasts.New(mtasts.Config{
		TXT: stsTXT{"_mta-sts.good.test": "v=STSv1; id=1", "_mta-sts.foreign.test": "v=STSv1; id=1",
			"_mta-sts.notls.test": "v=STSv1; id=1", "_mta-sts.testing.test": "v=STSv1; id=1"},
		Fetch: stsFetch{"good.test": policy("enforce", "*.sts.test"), "foreign.test": policy("enforce", "mx.other.test"),
			"notls.test": policy("enforce", "plain.sts.test"), "testing.test": policy("testing", "mx.other.test")},
	})
	var logs testkit.Buffer
	c := New(Config{
		Hostname: "out.drover.test", Port: port, MTASTS: sts, STSRoots: roots,
		Logger:         slog.New(slog.NewTextHandler(&logs, nil)),
		Resolver:       resolve.New(resolve.Config{Servers: []string{dns.Addr}, Timeout: time.Second}),
		ConnectTimeout: 2 * time.Second, CommandTimeout: 2 * time.Second, DataTimeout: 2 * time.Second,
	})
	lim := shaping.Limits{TLS: "mta-sts"}
	deliver := func(dest string) error {
		conn, err := dial(t, c, dest, lim)
		if err != nil {
			return err
		}
		defer conn.Close()
		res, err := conn.Deliver(t.Context(), &queue.Message{ID: "s", ReturnPath: "a@b.test"}, "a@b.test", rcpts("x@"+dest), []byte("Subject: s\r\n\r\nx\r\n"))
		if err == nil && res[0].Status != queue.Delivered {
			err = errors.New(res[0].Text)
		}
		return err
	}

	// Enforce: a policy MX with a valid certificate is used, over TLS.
	if err := deliver("good.test"); err != nil {
		t.Errorf("good.test: %v", err)
	}
	if msgs := secure.Transactions(); len(msgs) != 1 || !msgs[0].TLS {
		t.Errorf("good.test not delivered over TLS: %+v", msgs)
	}
	// Enforce: an MX the policy does not name, or one without TLS, gets
	// nothing; the failure is temporary.
	for _, dest := range []string{"foreign.test", "notls.test"} {
		err := deliver(dest)
		if e, ok := smtperr.As(err); !ok || e.Permanent {
			t.Errorf("%s: %v, want a temporary open error", dest, err)
		}
	}
	if msgs := plain.Transactions(); len(msgs) != 0 {
		t.Errorf("enforce mode delivered to a non-compliant MX: %+v", msgs)
	}
	// Testing mode reports but delivers.
	if err := deliver("testing.test"); err != nil {
		t.Errorf("testing.test: %v", err)
	}
	if !strings.Contains(logs.String(), "MTA-STS testing-mode violation") || !strings.Contains(logs.String(), "dest=testing.test") {
		t.Errorf("testing-mode violation not logged:\n%s", logs.String())
	}
	// Without mta-sts in the limits, no policy is looked at.
	lim.TLS = "opportunistic"
	if err := deliver("foreign.test"); err != nil {
		t.Errorf("opportunistic foreign.test: %v", err)
	}
	if msgs := plain.Transactions(); len(msgs) != 2 {
		t.Errorf("plain MX got %d messages, want 2 (testing mode, opportunistic)", len(msgs))
	}
	// A site that requires TLS does not deliver in plain text.
	lim.TLS = "required"
	if err := deliver("foreign.test"); err == nil {
		t.Error("required TLS delivered in plain text")
	}
	// TLS failures are logged with the peer and their kind.
	if l := logs.String(); !strings.Contains(l, `msg="courier: TLS failure" dest=foreign.test remote=plain.sts.test[127.0.0.2]`) || !strings.Contains(l, `reason="STARTTLS not offered"`) {
		t.Errorf("TLS failure not logged with peer and reason:\n%s", l)
	}
}

// Connections bind to the addresses of the pool named by the limits, in turn.
func TestSourcePool(t *testing.T) {
	w := newWorld(t)
	c := w.courier(t, func(cfg *Config) {
		cfg.Pools = map[string][]netip.Addr{"p": {netip.MustParseAddr("127.0.0.7"), netip.MustParseAddr("127.0.0.8")}}
	})
	seen := map[string]bool{}
	for range 2 {
		qc, err := dial(t, c, "ok.test", shaping.Limits{Pool: "p"})
		if err != nil {
			t.Fatal(err)
		}
		seen[qc.(*conn).client.LocalAddr().(*net.TCPAddr).IP.String()] = true
		qc.Close()
	}
	if !seen["127.0.0.7"] || !seen["127.0.0.8"] {
		t.Errorf("source addresses %v, want both of the pool", seen)
	}
}

// TLS failures are logged with their kind.
func TestTLSFailureKinds(t *testing.T) {
	ca := testkit.NewCA(t)
	roots, cert := ca.Pool, ca.Leaf(t, "mx.sts.test")
	leaf := cert.Leaf
	verify := func(host string, pool *x509.CertPool) error {
		_, err := leaf.Verify(x509.VerifyOptions{DNSName: host, Roots: pool})
		return fmt.Errorf("smtpclient: TLS failed: %w", err)
	}
	cases := []struct {
		err  error
		want string
	}{
		{verify("mx.sts.test", x509.NewCertPool()), "certificate signed by an unknown authority"},
		{verify("other.test", roots), "certificate not valid for the host name"},
		{fmt.Errorf("x: %w", tls.AlertError(40)), "handshake refused by the server"},
		{errors.New("smtpclient: TLS failed: STARTTLS not offered"), "STARTTLS not offered"},
		{errors.New("smtpclient: TLS failed: STARTTLS refused: 454 4.7.0 no"), "STARTTLS refused"},
		{errors.New("tls: first record does not look like a TLS handshake"), "handshake failed"},
	}
	for _, c := range cases {
		if got := tlsFailure(c.err); got != c.want {
			t.Errorf("tlsFailure(%v) = %q, want %q", c.err, got, c.want)
		}
	}
}
