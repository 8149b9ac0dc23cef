package testkit

import (
	"bufio"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"go/parser"
	"go/token"
	"io/fs"
	"net"
	"net/smtp"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"
)

// No file that is not a test imports testkit: it never ships in the
// binary.
func TestOnlyTestsImportTestkit(t *testing.T) {
	root := filepath.Join("..")
	if _, err := os.Stat(filepath.Join(root, "go.mod")); err != nil {
		t.Fatal("module root not found:", err)
	}
	fset := token.NewFileSet()
	checked := 0
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			if name := d.Name(); path != root && (name == "testdata" || name == "third_party" || strings.HasPrefix(name, ".")) {
				return filepath.SkipDir
			}
			return nil
		}
		if !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
			return nil
		}
		f, err := parser.ParseFile(fset, path, nil, parser.ImportsOnly)
		if err != nil {
			return err
		}
		checked++
		for _, imp := range f.Imports {
			if p, _ := strconv.Unquote(imp.Path.Value); p == "drover/testkit" {
				t.Errorf("%s imports drover/testkit; only tests may", path)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if checked < 50 {
		t.Fatalf("only %d files checked: not the module's tree?", checked)
	}
}

func TestClock(t *testing.T) {
	start := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	c := NewClock(start)
	if !c.Now().Equal(start) {
		t.Fatalf("Now = %v", c.Now())
	}
	var wg sync.WaitGroup
	for range 10 {
		wg.Go(func() { c.Advance(time.Second); c.Now() })
	}
	wg.Wait()
	if got := c.Now().Sub(start); got != 10*time.Second {
		t.Errorf("advanced by %v, want 10s", got)
	}
	c.Set(start.Add(-time.Hour))
	if !c.Now().Equal(start.Add(-time.Hour)) {
		t.Errorf("Set: Now = %v", c.Now())
	}
}

func TestCertificates(t *testing.T) {
	verify := func(cert tls.Certificate, pool *x509.CertPool, name string) error {
		_, err := cert.Leaf.Verify(x509.VerifyOptions{DNSName: name, Roots: pool})
		return err
	}
	self, pool := SelfSigned(t, "mx.test", "127.0.0.1")
	for _, name := range []string{"mx.test", "127.0.0.1"} {
		if err := verify(self, pool, name); err != nil {
			t.Errorf("self-signed for %s: %v", name, err)
		}
	}
	if verify(self, pool, "other.test") == nil {
		t.Error("self-signed valid for a name it does not have")
	}

	ca := NewCA(t)
	leaf := ca.Leaf(t, "a.test", "b.test")
	if err := verify(leaf, ca.Pool, "b.test"); err != nil {
		t.Errorf("leaf: %v", err)
	}
	if verify(leaf, pool, "a.test") == nil || verify(leaf, NewCA(t).Pool, "a.test") == nil {
		t.Error("leaf trusted by another pool")
	}
}

// sendOne sends one message with net/smtp over c.
func sendOne(c *smtp.Client, from string, to []string, body string) error {
	if err := c.Mail(from); err != nil {
		return err
	}
	var refused error
	for _, r := range to {
		if err := c.Rcpt(r); err != nil {
			refused = errors.Join(refused, err)
		}
	}
	w, err := c.Data()
	if err != nil {
		return errors.Join(refused, err)
	}
	fmt.Fprint(w, body)
	return errors.Join(refused, w.Close())
}

func TestMXOverTCP(t *testing.T) {
	cert, pool := SelfSigned(t, "mx.test")
	mx := StartMX(t, MXOptions{TLS: &tls.Config{Certificates: []tls.Certificate{cert}}})
	c, err := smtp.Dial(mx.Addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.Hello("client.test"); err != nil {
		t.Fatal(err)
	}
	if err := c.StartTLS(&tls.Config{RootCAs: pool, ServerName: "mx.test"}); err != nil {
		t.Fatal(err)
	}
	err = sendOne(c, "a@b.test", []string{"x@dest.test", "defer@dest.test", "refuse@dest.test"}, "Subject: 1\r\n\r\nhi\r\n")
	if err == nil || !strings.Contains(err.Error(), `451 "4.2.0 mailbox busy"`) || !strings.Contains(err.Error(), `550 "5.1.1 no such user"`) {
		t.Errorf("refusals: %v", err)
	}
	if err := sendOne(c, "a@b.test", []string{"y@dest.test"}, "REJECT-ME\r\n"); err == nil || !strings.Contains(err.Error(), `554 "5.6.0 content rejected"`) {
		t.Errorf("rejected body: %v", err)
	}
	c.Quit()

	txs := mx.Wait(t, 1, 5*time.Second)
	if len(txs) != 1 {
		t.Fatalf("transactions %+v", txs)
	}
	tx := txs[0]
	if tx.Conn != 0 || tx.Helo != "client.test" || !tx.TLS || tx.From != "a@b.test" || !slices.Equal(tx.Rcpts, []string{"x@dest.test"}) ||
		string(tx.Data) != "Subject: 1\r\n\r\nhi\r\n" || tx.At.IsZero() {
		t.Errorf("transaction %+v", tx)
	}
	if got := mx.Hellos(); !slices.Equal(got, []Hello{{"client.test", false}, {"client.test", true}}) {
		t.Errorf("hellos %v", got)
	}
	if !strings.HasPrefix(mx.Sent(0), "EHLO client.test\r\nSTARTTLS\r\n") || mx.Conns() != 1 || mx.MaxActive() != 1 {
		t.Errorf("wire %q, %d connections, %d at once", mx.Sent(0), mx.Conns(), mx.MaxActive())
	}
}

// Over pipes, inside a bubble: a callback answers, a dropped connection
// and a hidden PIPELINING.
func TestMXOverPipes(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		mx := StartMX(t, MXOptions{NoTCP: true, NoPipelining: true, Answer: func(c Command) error {
			if c.Verb == "MAIL" && c.Arg == "slow@b.test" {
				time.Sleep(time.Hour)
			}
			return Cues(c)
		}})
		dial := func() *smtp.Client {
			conn, err := mx.Dial(t.Context(), "tcp", "anything:25")
			if err != nil {
				t.Fatal(err)
			}
			c, err := smtp.NewClient(conn, "mx.test")
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { c.Close() })
			return c
		}
		c := dial()
		if err := c.Hello("pipe.test"); err != nil {
			t.Fatal(err)
		}
		if ok, _ := c.Extension("PIPELINING"); ok {
			t.Error("PIPELINING announced")
		}
		start := time.Now()
		if err := sendOne(c, "slow@b.test", []string{"x@d.test"}, "x\r\n"); err != nil {
			t.Fatal(err)
		}
		if d := time.Since(start); d != time.Hour {
			t.Errorf("slow MAIL took %v of the bubble's time", d)
		}
		tx := mx.Wait(t, 1, time.Second)[0]
		if !tx.At.Equal(start.Add(time.Hour)) || tx.Conn != 0 || tx.TLS {
			t.Errorf("transaction %+v", tx)
		}

		c2 := dial()
		c2.Hello("pipe.test")
		if err := sendOne(c2, "a@b.test", []string{"drop@d.test"}, "x\r\n"); err == nil {
			t.Error("no error from a dropped connection")
		}
		if mx.Conns() != 2 {
			t.Errorf("%d connections", mx.Conns())
		}
		if w := mx.Wire(1); len(w) == 0 || w[0].Read || !strings.HasPrefix(w[0].Data, "220 mx.test") {
			t.Errorf("connection 1: %+v", w)
		}
	})
}

func TestPipesClose(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		p := NewPipes("127.0.0.1:25")
		go func() {
			c, err := p.Accept()
			if err != nil {
				t.Error(err)
				return
			}
			if c.LocalAddr().String() != "127.0.0.1:25" || !c.RemoteAddr().(*net.TCPAddr).IP.IsLoopback() {
				t.Errorf("server side addresses %v %v", c.LocalAddr(), c.RemoteAddr())
			}
			c.Close()
		}()
		c, err := p.Dial(t.Context(), "tcp", "")
		if err != nil {
			t.Fatal(err)
		}
		c.Close()
		p.Close()
		if _, err := p.Accept(); !errors.Is(err, net.ErrClosed) {
			t.Errorf("Accept after Close: %v", err)
		}
		if _, err := p.Dial(t.Context(), "tcp", ""); err == nil || !strings.Contains(err.Error(), "refused") {
			t.Errorf("Dial after Close: %v", err)
		}
	})
}

func TestBufferWaitFor(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var b Buffer
		go func() {
			time.Sleep(time.Minute)
			fmt.Fprintln(&b, "configuration reloaded")
		}()
		start := time.Now()
		b.WaitFor(t, time.Hour, "reloaded")
		if time.Since(start) != time.Minute {
			t.Errorf("waited %v", time.Since(start))
		}
	})
}

func TestServe(t *testing.T) {
	addr := Serve(t, nil, func(c net.Conn) {
		defer c.Close()
		fmt.Fprint(c, "421 go away\r\n")
	})
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if line, err := bufio.NewReader(c).ReadString('\n'); err != nil || line != "421 go away\r\n" {
		t.Errorf("read %q, %v", line, err)
	}
}
