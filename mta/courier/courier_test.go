package courier

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"slices"
	"strings"
	"testing"
	"time"

	"drover/bounce"
	"drover/mta/resolve"
	"drover/mta/resolve/dnstest"
	"drover/mta/smtperr"
	"drover/queue"
	"drover/queue/engine"
	"drover/queue/shaping"
	"drover/testkit"

	"github.com/emersion/go-smtp"
)

// serveMX serves a fake MX named name on ln; it answers on testkit's cues.
func serveMX(t *testing.T, ln net.Listener, name string, o testkit.MXOptions) *testkit.MX {
	o.Listener, o.Name = ln, name
	return testkit.StartMX(t, o)
}

// serveGreeting answers every connection with greeting and closes it.
func serveGreeting(t *testing.T, ln net.Listener, greeting string) {
	testkit.Serve(t, ln, func(c net.Conn) {
		defer c.Close()
		io.WriteString(c, greeting)
		bufio.NewReader(c).ReadString('\n') // QUIT
	})
}

// world is a set of fake MX servers on 127.0.0.1, .2 and .4, all on one
// port as MX hosts are; 127.0.0.3 has nothing listening. Another server on
// 127.0.0.1 with its own port is the target of routes.
type world struct {
	port     int
	dns      *dnstest.Server
	mx1, mx2 *testkit.MX // 127.0.0.1, 127.0.0.2
	dsnMX    *testkit.MX // 127.0.0.5: DSN, SMTPUTF8, SIZE 1000
	relay    *testkit.MX // 127.0.0.1, own port
}

func newWorld(t *testing.T) *world {
	t.Helper()
	var lns []net.Listener
	for try := 0; ; try++ {
		lns = lns[:0]
		first, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		lns = append(lns, first)
		port := first.Addr().(*net.TCPAddr).Port
		for _, ip := range []string{"127.0.0.2", "127.0.0.4", "127.0.0.5"} {
			ln, err := net.Listen("tcp", fmt.Sprintf("%s:%d", ip, port))
			if err != nil {
				break
			}
			lns = append(lns, ln)
		}
		if len(lns) == 4 {
			break
		}
		for _, ln := range lns {
			ln.Close()
		}
		if try == 10 {
			t.Fatal("no port free on 127.0.0.1-5")
		}
	}
	relayLn, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	w := &world{port: lns[0].Addr().(*net.TCPAddr).Port}
	w.mx1 = serveMX(t, lns[0], "mx1.ok.test", testkit.MXOptions{})
	w.mx2 = serveMX(t, lns[1], "mx2.fallback.test", testkit.MXOptions{})
	serveGreeting(t, lns[2], "421 4.7.0 busy.greet.test too busy, try later\r\n")
	w.dsnMX = serveMX(t, lns[3], "mx.dsn.test", testkit.MXOptions{DSN: true, SMTPUTF8: true, MaxMessageBytes: 1000})
	w.relay = serveMX(t, relayLn, "relay.test", testkit.MXOptions{})
	w.dns = dnstest.Start(t, `
test.                 3600 IN SOA ns.test. hostmaster.test. 1 3600 600 86400 60
ok.test.              300 IN MX 10 mx1.ok.test.
mx1.ok.test.          300 IN A 127.0.0.1
fallback.test.        300 IN MX 10 dead.fallback.test.
fallback.test.        300 IN MX 20 mx2.fallback.test.
fallback.test.        300 IN MX 30 mx1.ok.test.
dead.fallback.test.   300 IN A 127.0.0.3
mx2.fallback.test.    300 IN A 127.0.0.2
greet.test.           300 IN MX 10 busy.greet.test.
greet.test.           300 IN MX 20 mx2.fallback.test.
busy.greet.test.      300 IN A 127.0.0.4
allbad.test.          300 IN MX 10 dead.fallback.test.
allbad.test.          300 IN MX 20 busy.greet.test.
allbad.test.          300 IN MX 30 nowhere.test.
lastgreet.test.       300 IN MX 10 dead.fallback.test.
lastgreet.test.       300 IN MX 20 busy.greet.test.
dead.test.            300 IN MX 10 dead.fallback.test.
dsn.test.             300 IN MX 10 mx.dsn.test.
mx.dsn.test.          300 IN A 127.0.0.5
null.test.            300 IN MX 0 .
routed.test.          300 IN MX 10 dead.fallback.test.
implicit.test.        300 IN A 127.0.0.2
relay.test.           300 IN A 127.0.0.1
`)
	return w
}

// courier returns a Courier for the world; routes send routed.test and
// *.routed.test to the relay.
func (w *world) courier(t *testing.T, mod func(*Config)) *Courier {
	t.Helper()
	routes, err := resolve.NewRoutes(map[string]string{
		"routed.test":   fmt.Sprintf("relay.test:%d", port(w.relay)),
		"*.routed.test": fmt.Sprintf("[127.0.0.1]:%d", port(w.relay)),
	})
	if err != nil {
		t.Fatal(err)
	}
	cfg := Config{
		Hostname:       "out1.drover.test",
		Resolver:       resolve.New(resolve.Config{Servers: []string{w.dns.Addr}, Timeout: time.Second}),
		Routes:         routes,
		Port:           w.port,
		ConnectTimeout: 2 * time.Second,
		CommandTimeout: 2 * time.Second,
		DataTimeout:    2 * time.Second,
		Classifier: classifyFunc(func(r bounce.Reply) (string, string) {
			if strings.HasPrefix(r.Enhanced, "5") {
				return "hard", "test:" + r.Enhanced
			}
			return "soft", "test:" + r.Enhanced
		}),
	}
	if mod != nil {
		mod(&cfg)
	}
	return New(cfg)
}

func port(mx *testkit.MX) int {
	_, p, _ := net.SplitHostPort(mx.Addr)
	var n int
	fmt.Sscan(p, &n)
	return n
}

// dial plans dest and opens a connection under lim's TLS mode ("": the
// courier's default) and pool.
func dial(t *testing.T, c *Courier, dest string, lim shaping.Limits) (engine.Conn, error) {
	if lim.TLS != "" {
		sh, err := shaping.New(shaping.Config{Default: shaping.Settings{TLS: &lim.TLS}})
		if err != nil {
			t.Fatal(err)
		}
		c.cfg.Shaping = shaping.NewCurrent(sh)
	}
	p, err := c.Plan(t.Context(), dest)
	if err != nil {
		return nil, err
	}
	p.Limits.TLS = lim.TLS
	return c.Open(t.Context(), dest, p, lim.Pool)
}

func open(t *testing.T, c *Courier, dest string) engine.Conn {
	t.Helper()
	conn, err := dial(t, c, dest, shaping.Limits{})
	if err != nil {
		t.Fatalf("Open(%s): %v", dest, err)
	}
	t.Cleanup(func() { conn.Close() })
	return conn
}

func rcpts(addrs ...string) []queue.Recipient {
	var rs []queue.Recipient
	for i, a := range addrs {
		rs = append(rs, queue.Recipient{Index: i, Addr: a, Domain: a[strings.IndexByte(a, '@')+1:]})
	}
	return rs
}

func statuses(rs []queue.Result) []queue.Status {
	var out []queue.Status
	for _, r := range rs {
		out = append(out, r.Status)
	}
	return out
}

var msg = &queue.Message{ID: "m1", ReturnPath: "bounces+tok@drover.test"}

func TestDeliverAndReuse(t *testing.T) {
	w := newWorld(t)
	c := w.courier(t, nil)
	conn := open(t, c, "ok.test")

	res, err := conn.Deliver(t.Context(), msg, msg.ReturnPath, rcpts("a@ok.test", "refuse@ok.test", "defer@ok.test", "b@ok.test"), []byte("Subject: 1\r\n\r\nbody\r\n"))
	if err != nil {
		t.Fatal(err)
	}
	want := []queue.Result{
		{Status: queue.Delivered, Code: 250, Enhanced: "2.0.0", Text: "OK: queued", Remote: "mx1.ok.test[127.0.0.1]:" + fmt.Sprint(w.port)},
		{Status: queue.Permanent, Code: 550, Enhanced: "5.1.1", Text: "no such user", Class: "hard", Reason: "test:5.1.1"},
		{Status: queue.Temporary, Code: 451, Enhanced: "4.2.0", Text: "mailbox busy", Class: "soft", Reason: "test:4.2.0"},
		{Status: queue.Delivered, Code: 250, Enhanced: "2.0.0", Text: "OK: queued"},
	}
	for i := range want {
		want[i].Remote = want[0].Remote
		if res[i] != want[i] {
			t.Errorf("result %d:\n got %+v\nwant %+v", i, res[i], want[i])
		}
	}

	// The same connection takes the next messages; a refused DATA fails
	// every accepted recipient with its reply.
	res, err = conn.Deliver(t.Context(), msg, msg.ReturnPath, rcpts("c@ok.test", "refuse2@ok.test"), []byte("REJECT-ME\r\n"))
	if err != nil {
		t.Fatal(err)
	}
	if res[0].Code != 554 || res[0].Status != queue.Permanent || res[1].Code != 550 {
		t.Errorf("refused data: %+v", res)
	}
	res, err = conn.Deliver(t.Context(), msg, msg.ReturnPath, rcpts("d@ok.test"), []byte("Subject: 3\r\n\r\nbody\r\n"))
	if err != nil || res[0].Status != queue.Delivered {
		t.Fatalf("%+v %v", res, err)
	}
	if err := conn.Close(); err != nil {
		t.Errorf("Close: %v", err)
	}

	conns, msgs := w.mx1.Conns(), w.mx1.Transactions()
	if conns != 1 || len(msgs) != 2 {
		t.Fatalf("%d connections, %d messages", conns, len(msgs))
	}
	if m := msgs[0]; m.From != msg.ReturnPath || !slices.Equal(m.Rcpts, []string{"a@ok.test", "b@ok.test"}) || m.Helo != "out1.drover.test" {
		t.Errorf("server got %+v", m)
	}
}

func TestMXFallback(t *testing.T) {
	w := newWorld(t)
	c := w.courier(t, nil)
	for _, dest := range []string{"fallback.test", "greet.test"} {
		conn := open(t, c, dest)
		res, err := conn.Deliver(t.Context(), msg, msg.ReturnPath, rcpts("a@"+dest), []byte("x\r\n"))
		if err != nil || res[0].Status != queue.Delivered || !strings.HasPrefix(res[0].Remote, "mx2.fallback.test[127.0.0.2]") {
			t.Errorf("%s: %+v %v", dest, res, err)
		}
	}
	if msgs := w.mx2.Transactions(); len(msgs) != 2 {
		t.Errorf("second MX got %d messages", len(msgs))
	}
}

func TestOpenErrors(t *testing.T) {
	w := newWorld(t)
	c := w.courier(t, nil)
	tests := []struct {
		dest     string
		perm     bool
		enhanced string
		cause    error
	}{
		{"null.test", true, "5.1.10", resolve.ErrNullMX},
		{"missing.test", true, "5.1.2", resolve.ErrNoSuchDomain},
		// Every host failed: temporary, naming the last failure (here an
		// MX host that does not exist).
		{"allbad.test", false, "4.4.4", resolve.ErrNoSuchDomain},
	}
	for _, tt := range tests {
		_, err := dial(t, c, tt.dest, shaping.Limits{})
		e, ok := smtperr.As(err)
		if !ok {
			t.Fatalf("%s: error %v (%T)", tt.dest, err, err)
		}
		if e.Permanent != tt.perm || e.Enhanced != tt.enhanced || e.Code != 0 || e.Remote != "" || !errors.Is(err, tt.cause) {
			t.Errorf("%s: %v, error %+v", tt.dest, err, e)
		}
		if e.Class == "" {
			t.Errorf("%s: error %+v", tt.dest, e)
		}
	}

	// The last failure is a refusing greeting: its reply is the result.
	_, err := dial(t, c, "lastgreet.test", shaping.Limits{})
	e, ok := smtperr.As(err)
	if !ok || e.Permanent {
		t.Fatalf("error %v", err)
	}
	if e.Code != 421 || e.Enhanced != "4.7.0" || !strings.HasPrefix(e.Remote, "busy.greet.test[127.0.0.4]:") {
		t.Errorf("error %+v", e)
	}
	if !strings.Contains(err.Error(), "busy.greet.test") || !strings.Contains(err.Error(), "421") {
		t.Errorf("error text %q", err)
	}

	// Only a dead host: the connect failure.
	_, err = dial(t, c, "dead.test", shaping.Limits{})
	if e, ok := smtperr.As(err); !ok || e.Permanent || e.Enhanced != "4.4.1" {
		t.Errorf("dead host: %v", err)
	}

	// A wrong network: no usable address.
	c6 := w.courier(t, func(cfg *Config) { cfg.Network = "ip6" })
	if _, err := dial(t, c6, "ok.test", shaping.Limits{}); !errors.As(err, &e) || e.Permanent || !strings.Contains(err.Error(), "no usable address") {
		t.Errorf("ip6: %v", err)
	}
	bad := w.courier(t, func(cfg *Config) { cfg.Hostname = "" })
	if _, err := dial(t, bad, "ok.test", shaping.Limits{}); err == nil {
		t.Error("no hostname accepted")
	}
}

func TestRoutesAndLiterals(t *testing.T) {
	w := newWorld(t)
	c := w.courier(t, nil)
	// routed.test has an MX that does not answer: the route wins.
	for _, dest := range []string{"routed.test", "a.b.routed.test"} {
		conn := open(t, c, dest)
		res, err := conn.Deliver(t.Context(), msg, msg.ReturnPath, rcpts("x@"+dest), []byte("x\r\n"))
		if err != nil || res[0].Status != queue.Delivered || !strings.HasSuffix(res[0].Remote, fmt.Sprintf("[127.0.0.1]:%d", port(w.relay))) {
			t.Errorf("%s: %+v %v", dest, res, err)
		}
	}
	if msgs := w.relay.Transactions(); len(msgs) != 2 {
		t.Errorf("relay got %d messages", len(msgs))
	}
	// An address literal and an implicit MX.
	for _, dest := range []string{"[127.0.0.2]", "implicit.test"} {
		conn := open(t, c, dest)
		if res, err := conn.Deliver(t.Context(), msg, msg.ReturnPath, rcpts("x@"+dest), []byte("x\r\n")); err != nil || res[0].Status != queue.Delivered {
			t.Errorf("%s: %+v %v", dest, res, err)
		}
	}
}

func TestParameters(t *testing.T) {
	w := newWorld(t)
	c := w.courier(t, nil)
	m := &queue.Message{ReturnPath: "bounces@drover.test", EnvID: "id+1 x=y", Ret: "HDRS"}
	rs := rcpts("a@dsn.test", "üser@dsn.test", "b@dsn.test")
	rs[0].Notify, rs[0].ORCPT = "FAILURE,DELAY", "rfc822;a+b=c@dsn.test"
	rs[1].ORCPT = "utf-8;üser@dsn.test"
	rs[2].Notify = "BAD VALUE" // dropped, not sent
	conn := open(t, c, "dsn.test")
	body := []byte("Subject: caf\xc3\xa9\r\n\r\n8-bit body \xc3\xa9\r\n")
	res, err := conn.Deliver(t.Context(), m, m.ReturnPath, rs, body)
	if err != nil || !slices.Equal(statuses(res), []queue.Status{queue.Delivered, queue.Delivered, queue.Delivered}) {
		t.Fatalf("%+v %v", res, err)
	}
	msgs := w.dsnMX.Transactions()
	got := msgs[0]
	o := got.MailOpts
	if o.Body != smtp.Body8BitMIME || !o.UTF8 || o.Size != int64(len(body)) || o.Return != smtp.DSNReturnHeaders || o.EnvelopeID != "id+1 x=y" {
		t.Errorf("MAIL options %+v", o)
	}
	r0, r1, r2 := got.RcptOpts[0], got.RcptOpts[1], got.RcptOpts[2]
	if !slices.Equal(r0.Notify, []smtp.DSNNotify{smtp.DSNNotifyFailure, smtp.DSNNotifyDelayed}) || r0.OriginalRecipient != "a+b=c@dsn.test" || r0.OriginalRecipientType != smtp.DSNAddressTypeRFC822 {
		t.Errorf("RCPT 1 options %+v", r0)
	}
	if r1.OriginalRecipient != "üser@dsn.test" || r1.OriginalRecipientType != smtp.DSNAddressTypeUTF8 {
		t.Errorf("RCPT 2 options %+v", r1)
	}
	if r2.Notify != nil {
		t.Errorf("RCPT 3 options %+v", r2)
	}

	// The same message to a server without DSN, SMTPUTF8 or 8BITMIME
	// announcements: the non-ASCII recipient fails here, the others go.
	conn = open(t, c, "ok.test")
	rs = rcpts("a@ok.test", "üser@ok.test")
	res, err = conn.Deliver(t.Context(), m, m.ReturnPath, rs, body)
	if err != nil || res[0].Status != queue.Delivered || res[1].Status != queue.Permanent || res[1].Enhanced != "5.6.7" || res[1].Code != 0 || res[1].Class != "hard" {
		t.Fatalf("%+v %v", res, err)
	}
	msgs = w.mx1.Transactions()
	if o := msgs[0].MailOpts; o.UTF8 || o.EnvelopeID != "" || o.Return != "" {
		t.Errorf("MAIL options %+v", o)
	}
	// A non-ASCII sender cannot go at all.
	res, err = conn.Deliver(t.Context(), &queue.Message{ReturnPath: "bóunces@drover.test"}, "bóunces@drover.test", rcpts("a@ok.test"), body)
	if err != nil || res[0].Status != queue.Permanent || res[0].Enhanced != "5.6.7" {
		t.Fatalf("%+v %v", res, err)
	}
}

func TestSizeLimitAndBrokenConnection(t *testing.T) {
	w := newWorld(t)
	c := w.courier(t, nil)
	conn := open(t, c, "dsn.test") // SIZE 1000
	res, err := conn.Deliver(t.Context(), msg, msg.ReturnPath, rcpts("a@dsn.test"), bytes.Repeat([]byte("x"), 1001))
	if err != nil || res[0].Status != queue.Permanent || res[0].Enhanced != "5.3.4" {
		t.Fatalf("%+v %v", res, err)
	}

	res, err = conn.Deliver(t.Context(), msg, msg.ReturnPath, rcpts("a@dsn.test", "drop@dsn.test"), []byte("x\r\n"))
	if err == nil {
		t.Fatal("no error from a broken connection")
	}
	for _, r := range res {
		if r.Status != queue.Temporary || r.Code != 0 || r.Enhanced != "4.4.2" || r.Text == "" {
			t.Errorf("result %+v", r)
		}
	}
	res, err = conn.Deliver(t.Context(), msg, msg.ReturnPath, rcpts("a@dsn.test"), []byte("x\r\n"))
	if err == nil || res[0].Status != queue.Temporary {
		t.Errorf("after the break: %+v %v", res, err)
	}
}

func TestXtext(t *testing.T) {
	for in, want := range map[string]string{
		"":            "",
		"abc":         "abc",
		"a+b=c":       "a+2Bb+3Dc",
		"a b\x00":     "a+20b+00",
		"\xc3\xa9":    "+C3+A9",
		"~!\"#<>\x7f": "~!\"#<>+7F",
	} {
		if got := xtext(in); got != want {
			t.Errorf("xtext(%q) = %q, want %q", in, got, want)
		}
	}
	for in, want := range map[string]string{
		"rfc822;a+b@x":   "rfc822;a+2Bb@x",
		"a@x":            "rfc822;a@x",
		"utf-8;ü+\\@x":   `utf-8;\x{FC}\x{2B}\x{5C}@x`,
		"UTF-8;a=\xff@x": `UTF-8;a\x{3D}\x{FFFD}@x`,
	} {
		if got := encodeORCPT(in); got != want {
			t.Errorf("encodeORCPT(%q) = %q, want %q", in, got, want)
		}
	}
}

// Senders gives VERP return paths to the senders with a bounce domain
// only, and pools by stream over the sender's.
func TestSenders(t *testing.T) {
	env := &Senders{
		VERP:         bounce.VERP{Key: []byte("0123456789abcdef")},
		BounceDomain: map[string]string{"shop": "b.test"},
		SenderPool:   map[string]string{"shop": "p1"},
		StreamPool:   map[string]map[string]string{"shop": {"transactional": "tx"}},
	}
	shop := &queue.Message{ID: "m1", Sender: "shop", ReturnPath: "app@shop.test", Stream: "marketing"}
	other := &queue.Message{ID: "m2", Sender: "other", ReturnPath: "app@other.test"}
	if !env.PerRecipient(shop) || env.PerRecipient(other) {
		t.Error("PerRecipient: want shop only")
	}
	rp := env.ReturnPath(shop, queue.Recipient{Index: 2, Addr: "a@x.test"})
	if !strings.HasPrefix(rp, "bounces+") || !strings.HasSuffix(rp, "@b.test") {
		t.Errorf("ReturnPath = %q", rp)
	}
	if got := env.ReturnPath(other, queue.Recipient{}); got != other.ReturnPath {
		t.Errorf("ReturnPath of a sender without VERP = %q", got)
	}
	if got := env.Pool(shop); got != "p1" {
		t.Errorf("Pool(marketing) = %q, want p1", got)
	}
	tx := *shop
	tx.Stream = "transactional"
	if got := env.Pool(&tx); got != "tx" {
		t.Errorf("Pool(transactional) = %q, want tx", got)
	}
	if got := env.Pool(other); got != "" {
		t.Errorf("Pool(other) = %q, want the shaping's", got)
	}
}

// The classifier learns which command a reply answered, the host that
// sent it and the recipient.
// classifyFunc is a Classifier made of a function.
type classifyFunc func(bounce.Reply) (class, reason string)

func (f classifyFunc) Classify(r bounce.Reply) bounce.Classification {
	class, reason := f(r)
	return bounce.Classification{Class: class, Reason: reason}
}

func TestClassifyGetsContext(t *testing.T) {
	w := newWorld(t)
	var got []bounce.Reply
	c := w.courier(t, func(cfg *Config) {
		cfg.Classifier = classifyFunc(func(r bounce.Reply) (string, string) {
			got = append(got, r)
			return "soft", "x"
		})
	})
	conn := open(t, c, "ok.test")
	defer conn.Close()
	conn.Deliver(t.Context(), msg, msg.ReturnPath, rcpts("refuse@ok.test", "a@ok.test"), []byte("REJECT-ME\r\n"))
	want := []string{"RCPT 550 refuse@ok.test mx1.ok.test", "DATA 554 a@ok.test mx1.ok.test"}
	var have []string
	for _, r := range got {
		have = append(have, fmt.Sprintf("%s %d %s %s", r.Command, r.Code, r.Recipient, r.RemoteMTA))
	}
	if !slices.Equal(have, want) {
		t.Errorf("classifier saw %q, want %q", have, want)
	}
}

// With the real classifier, a destination whose server refuses the
// connection is deferred as a network error, not as an expiry.
func TestRefusedConnectionIsNetworkError(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close() // nothing listens there now: the connection is refused
	routes, err := resolve.NewRoutes(map[string]string{"*": addr})
	if err != nil {
		t.Fatal(err)
	}
	c := New(Config{Hostname: "out.drover.test", Routes: routes, Classifier: bounce.NewClassifier(nil), ConnectTimeout: 2 * time.Second})
	_, err = dial(t, c, "refused.test", shaping.Limits{})
	e, ok := smtperr.As(err)
	if !ok || e.Permanent || e.Reason != "networkerror" || e.Class != "soft" || e.Enhanced != "4.4.1" {
		t.Fatalf("error %v (%+v), want a temporary networkerror", err, e)
	}
}

// Plan is where delivery looks names up; Open and Deliver execute the
// plan without a DNS query, and Refresh re-reads the shaping without one.
func TestOpenAndRefreshDoNoDNS(t *testing.T) {
	w := newWorld(t)
	c := w.courier(t, func(cfg *Config) {
		// No cache: a lookup in Open would reach the server.
		cfg.Resolver = resolve.New(resolve.Config{Servers: []string{w.dns.Addr}, Timeout: time.Second, CacheSize: -1})
	})
	p, err := c.Plan(t.Context(), "ok.test")
	if err != nil {
		t.Fatal(err)
	}
	before := w.dns.Queries()
	conn, err := c.Open(t.Context(), "ok.test", p, "")
	if err != nil {
		t.Fatal(err)
	}
	if res, err := conn.Deliver(t.Context(), msg, msg.ReturnPath, rcpts("a@ok.test"), []byte("x\r\n")); err != nil || res[0].Status != queue.Delivered {
		t.Fatalf("deliver: %v %+v", err, res)
	}
	conn.Close()

	sh, err := shaping.New(shaping.Config{Default: shaping.Settings{MaxConnections: new(3)}})
	if err != nil {
		t.Fatal(err)
	}
	c.cfg.Shaping = shaping.NewCurrent(sh)
	np := c.Refresh("ok.test", p)
	if np.Limits.MaxConnections != 3 || np.SiteLimits.MaxConnections != 3 || np.Route != p.Route {
		t.Errorf("refreshed plan %+v, want the new limits on the same route", np)
	}
	if n := w.dns.Queries(); n != before {
		t.Errorf("%d DNS queries after the plan was made, want none", n-before)
	}
}

// A body is scanned for 8-bit bytes once per message on a connection (the
// recipients of a VERP message come one transaction each), and again for
// the next message.
func TestEightBitOncePerMessage(t *testing.T) {
	w := newWorld(t)
	c := w.courier(t, nil)
	conn := open(t, c, "ok.test")
	eight := &queue.Message{ID: "v1", ReturnPath: "a@drover.test"}
	seven := &queue.Message{ID: "v2", ReturnPath: "a@drover.test"}
	for _, tx := range []struct {
		m    *queue.Message
		rcpt string
		body string
	}{
		{eight, "a@ok.test", "Subject: caf\xc3\xa9\r\n\r\n\xc3\xa9\r\n"},
		{eight, "b@ok.test", "Subject: caf\xc3\xa9\r\n\r\n\xc3\xa9\r\n"},
		{seven, "c@ok.test", "Subject: plain\r\n\r\nascii\r\n"},
	} {
		if _, err := conn.Deliver(t.Context(), tx.m, tx.m.ReturnPath, rcpts(tx.rcpt), []byte(tx.body)); err != nil {
			t.Fatal(err)
		}
	}
	var got []smtp.BodyType
	for _, x := range w.mx1.Transactions() {
		got = append(got, x.MailOpts.Body)
	}
	if want := []smtp.BodyType{smtp.Body8BitMIME, smtp.Body8BitMIME, ""}; !slices.Equal(got, want) {
		t.Errorf("BODY parameters %q, want %q", got, want)
	}
}
