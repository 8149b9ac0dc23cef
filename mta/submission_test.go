package mta

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"fmt"
	"net"
	"net/smtp"
	"net/textproto"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"drover/queue"
	"drover/queue/engine"
	"drover/testkit"
)

type fakeQueue struct {
	mu     sync.Mutex
	ids    int // made by NewID
	msgs   []*queue.Message
	rcpts  [][]queue.NewRecipient
	bodies [][]byte
}

func (q *fakeQueue) NewID() string {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.newIDLocked()
}

func (q *fakeQueue) newIDLocked() string {
	q.ids++
	return fmt.Sprintf("Q%d", q.ids)
}

func (q *fakeQueue) Enqueue(msg *queue.Message, rcpts []queue.NewRecipient, body []byte) (string, error) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if msg.ID == "" {
		msg.ID = q.newIDLocked()
	}
	q.msgs = append(q.msgs, msg)
	q.rcpts = append(q.rcpts, append([]queue.NewRecipient(nil), rcpts...))
	q.bodies = append(q.bodies, append([]byte(nil), body...))
	return msg.ID, nil
}

func (q *fakeQueue) EnqueueAll(subs []queue.Submission) error {
	for _, sub := range subs {
		if _, err := q.Enqueue(sub.Msg, sub.Rcpts, sub.Body); err != nil {
			return err
		}
	}
	return nil
}

func (q *fakeQueue) last(t *testing.T) (*queue.Message, []queue.NewRecipient, string) {
	t.Helper()
	q.mu.Lock()
	defer q.mu.Unlock()
	if len(q.msgs) == 0 {
		t.Fatal("nothing queued")
	}
	n := len(q.msgs) - 1
	return q.msgs[n], q.rcpts[n], string(q.bodies[n])
}

type testServer struct {
	q      *fakeQueue
	events *eventRecorder       // the events, as the mail log has them
	reg    *prometheus.Registry // the metrics
	plain  string               // plain listener with loopback sender "app"
	strict string               // starttls listener without loopback sender
	tls    string               // implicit TLS listener
}

// startServer runs a Submission; remote=true makes every client count as
// non-loopback, as if it connected over the network.
func startServer(t *testing.T, remote bool) *testServer {
	t.Helper()
	hash := shopHash()
	cert, err := SelfSignedCertificate("mx.test")
	if err != nil {
		t.Fatal(err)
	}
	q := &fakeQueue{}
	events := &eventRecorder{}
	reg := prometheus.NewRegistry()
	metrics := NewMetrics(reg, func() queue.Stats { return queue.Stats{} }, func() []engine.SiteStatus { return nil })
	sub, err := NewSubmission(SubmissionConfig{
		Hostname: "drover.test",
		Listeners: []Listener{
			{Address: "127.0.0.1:0", Mode: "plain", LoopbackSender: "app"},
			{Address: "127.0.0.1:0", Mode: "starttls"},
			{Address: "127.0.0.1:0", Mode: "tls"},
		},
		TLS:            &tls.Config{Certificates: []tls.Certificate{cert}},
		MaxMessageSize: 64 << 10,
		MaxRecipients:  3,
		MaxLineLength:  2000,
		Senders: []*Sender{
			{Name: "app", FromDomains: []string{"app.example"}, DSN: true},
			{Name: "shop", Login: "shop", PasswordHash: hash, FromDomains: []string{"shop.example"}},
		},
		Queue:   q,
		OnEvent: Fanout(events.add, metrics.Observe),
		Metrics: metrics,
	})
	if err != nil {
		t.Fatal(err)
	}
	if remote {
		sub.isLoopback = func(net.Addr) bool { return false }
	}
	addrs, err := sub.Start()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(sub.Close)
	return &testServer{q: q, events: events, reg: reg, plain: addrs[0].String(), strict: addrs[1].String(), tls: addrs[2].String()}
}

// dialog is a raw SMTP client for exact reply checks.
type dialog struct {
	t *testing.T
	c *textproto.Conn
}

// dialTLS opens a session on an implicit-TLS listener.
func dialTLS(t *testing.T, addr string) *dialog {
	t.Helper()
	conn, err := tls.Dial("tcp", addr, &tls.Config{InsecureSkipVerify: true})
	if err != nil {
		t.Fatal(err)
	}
	return newDialog(t, conn)
}

func dial(t *testing.T, addr string) *dialog {
	t.Helper()
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	return newDialog(t, conn)
}

// dialPipe opens a dialog over an in-memory pipe to p.
func dialPipe(t *testing.T, p *testkit.Pipes) *dialog {
	t.Helper()
	conn, err := p.Dial(t.Context(), "tcp", "")
	if err != nil {
		t.Fatal(err)
	}
	return newDialog(t, conn)
}

func newDialog(t *testing.T, conn net.Conn) *dialog {
	t.Helper()
	d := &dialog{t: t, c: textproto.NewConn(conn)}
	t.Cleanup(func() { d.c.Close() })
	d.expect("", 220)
	return d
}

// expect sends cmd (unless "") and checks the reply code; it returns the
// reply text.
func (d *dialog) expect(cmd string, code int) string {
	d.t.Helper()
	if cmd != "" {
		if err := d.c.PrintfLine("%s", cmd); err != nil {
			d.t.Fatal(err)
		}
	}
	got, msg, err := d.c.ReadResponse(0)
	if got != code {
		d.t.Fatalf("%q: got %d %s (%v), want %d", cmd, got, msg, err, code)
	}
	return msg
}

func (d *dialog) data(body string, code int) string {
	d.t.Helper()
	d.expect("DATA", 354)
	w := d.c.DotWriter()
	w.Write([]byte(body))
	w.Close()
	return d.expect("", code)
}

func TestLoopbackSubmission(t *testing.T) {
	s := startServer(t, false)
	d := dial(t, s.plain)
	d.expect("EHLO client.test", 250)
	d.expect("MAIL FROM:<news@app.example> RET=HDRS ENVID=env42", 250)
	d.expect("RCPT TO:<a@dest.test> NOTIFY=FAILURE,DELAY ORCPT=rfc822;orig@dest.test", 250)
	d.expect("RCPT TO:<b@other.test>", 250)
	reply := d.data("From: News <news@app.example>\r\nTo: a@dest.test\r\nSubject: hi\r\n"+
		"X-Drover-Stream: marketing\r\nX-Drover-Campaign: black-friday\r\nX-Drover-List: weekly\r\nX-Drover-Flow: welcome\r\nX-Drover-Other: x\r\n\r\nbody\r\n", 250)
	if !strings.Contains(reply, "queued as Q1") {
		t.Errorf("250 reply %q does not name the queue id", reply)
	}
	msg, rcpts, body := s.q.last(t)
	if msg.Sender != "app" || msg.ReturnPath != "news@app.example" || msg.Ret != "HDRS" || msg.EnvID != "env42" || !msg.WantDSN {
		t.Errorf("message = %+v", msg)
	}
	if msg.Stream != "marketing" || msg.Campaign != "black-friday" || msg.List != "weekly" || msg.Flow != "welcome" {
		t.Errorf("control headers not recorded: %+v", msg)
	}
	if len(rcpts) != 2 || rcpts[0].Notify != "FAILURE,DELAY" || !strings.EqualFold(rcpts[0].ORCPT, "rfc822;orig@dest.test") {
		t.Errorf("recipients = %+v", rcpts)
	}
	if strings.Contains(strings.ToLower(body), "x-drover") {
		t.Errorf("control headers left in the body:\n%s", body)
	}
	for _, h := range []string{"Received: from client.test ([127.0.0.1])", "Message-ID: <", "Date: ", "Subject: hi\r\n"} {
		if !strings.Contains(body, h) {
			t.Errorf("body lacks %q:\n%s", h, body)
		}
	}
}

// Bare LF and bare CR never reach the queue: they become CRLF.
func TestBareLineEndingsNormalised(t *testing.T) {
	s := startServer(t, false)
	conn, err := net.Dial("tcp", s.plain)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	r := bufio.NewReader(conn)
	fmt.Fprint(conn, "EHLO x\r\nMAIL FROM:<a@app.example>\r\nRCPT TO:<b@dest.test>\r\nDATA\r\n")
	for i := 0; i < 5; {
		line, err := r.ReadString('\n')
		if err != nil {
			t.Fatal(err)
		}
		if len(line) > 3 && line[3] == ' ' {
			i++
		}
	}
	// A smuggling attempt: "\n.\n" followed by commands.
	fmt.Fprint(conn, "From: a@app.example\r\n\r\nline1\nline2\rline3\n.\nMAIL FROM:<x@evil>\n\r\n.\r\n")
	line, _ := r.ReadString('\n')
	if !strings.HasPrefix(line, "250") {
		t.Fatalf("reply %q", line)
	}
	_, _, body := s.q.last(t)
	if strings.Contains(strings.ReplaceAll(body, "\r\n", ""), "\n") || strings.Contains(strings.ReplaceAll(body, "\r\n", ""), "\r") {
		t.Errorf("bare CR or LF stored: %q", body)
	}
	if !strings.Contains(body, "line1\r\nline2\r\nline3\r\n.\r\nMAIL FROM:<x@evil>\r\n") {
		t.Errorf("body = %q", body)
	}
}

func TestRefusals(t *testing.T) {
	s := startServer(t, false)
	big := strings.Repeat("x", 70<<10)
	cases := []struct {
		name  string
		addr  string
		steps [][2]any // command, code
		data  string
		code  int
		want  string
	}{
		{name: "relay without auth", addr: s.strict, steps: [][2]any{{"EHLO x", 250}, {"MAIL FROM:<a@app.example>", 530}}, want: "5.7.0"},
		{name: "foreign MAIL FROM", addr: s.plain, steps: [][2]any{{"EHLO x", 250}, {"MAIL FROM:<ceo@bank.example>", 550}}, want: "5.7.1"},
		{name: "foreign header From", addr: s.plain, steps: [][2]any{{"EHLO x", 250}, {"MAIL FROM:<a@app.example>", 250}, {"RCPT TO:<b@dest.test>", 250}},
			data: "From: ceo@bank.example\r\n\r\nhi\r\n", code: 550, want: "5.7.1"},
		{name: "no From", addr: s.plain, steps: [][2]any{{"EHLO x", 250}, {"MAIL FROM:<a@app.example>", 250}, {"RCPT TO:<b@dest.test>", 250}},
			data: "Subject: x\r\n\r\nhi\r\n", code: 550, want: "5.6.0"},
		{name: "declared size too big", addr: s.plain, steps: [][2]any{{"EHLO x", 250}, {"MAIL FROM:<a@app.example> SIZE=999999999", 552}}, want: "5.3.4"},
		{name: "oversize data", addr: s.plain, steps: [][2]any{{"EHLO x", 250}, {"MAIL FROM:<a@app.example>", 250}, {"RCPT TO:<b@dest.test>", 250}},
			data: "From: a@app.example\r\n\r\n" + strings.Repeat(big[:1000]+"\r\n", 70), code: 552, want: "5.3.4"},
		{name: "too many recipients", addr: s.plain, steps: [][2]any{{"EHLO x", 250}, {"MAIL FROM:<a@app.example>", 250},
			{"RCPT TO:<1@d.test>", 250}, {"RCPT TO:<2@d.test>", 250}, {"RCPT TO:<3@d.test>", 250}, {"RCPT TO:<4@d.test>", 452}}, want: "4.5.3"},
		{name: "bad recipient", addr: s.plain, steps: [][2]any{{"EHLO x", 250}, {"MAIL FROM:<a@app.example>", 250}, {"RCPT TO:<nodomain>", 501}}, want: "5.5.2"},
		{name: "malformed MAIL", addr: s.plain, steps: [][2]any{{"EHLO x", 250}, {"MAIL FROM:<a@app.example", 501}}, want: "5.5.2"},
		{name: "RCPT before MAIL", addr: s.plain, steps: [][2]any{{"EHLO x", 250}, {"RCPT TO:<b@dest.test>", 502}}, want: "5.5.1"},
		{name: "unknown command", addr: s.plain, steps: [][2]any{{"EHLO x", 250}, {"FROB", 500}}, want: "5.5.2"},
		{name: "line too long", addr: s.plain, steps: [][2]any{{"EHLO x", 250}, {"MAIL FROM:<a@app.example>", 250}, {"RCPT TO:<b@dest.test>", 250}},
			data: "From: a@app.example\r\n\r\n" + big[:3000] + "\r\n", code: 554, want: "5.6.0"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			d := dial(t, tc.addr)
			var last string
			for _, st := range tc.steps {
				last = d.expect(st[0].(string), st[1].(int))
			}
			if tc.data != "" {
				last = d.data(tc.data, tc.code)
			}
			if !strings.HasPrefix(last, tc.want) {
				t.Errorf("last reply %q, want enhanced code %s", last, tc.want)
			}
		})
	}
	if n := len(s.q.msgs); n != 0 {
		t.Errorf("%d refused messages were queued", n)
	}
}

func TestAuthOnlyOverTLSFromNetwork(t *testing.T) {
	s := startServer(t, true)

	// Without TLS, AUTH is neither offered nor accepted.
	d := dial(t, s.strict)
	ehlo := d.expect("EHLO x", 250)
	if strings.Contains(ehlo, "AUTH") {
		t.Errorf("AUTH offered without TLS: %q", ehlo)
	}
	d.expect("AUTH PLAIN AHNob3AAczNjcmV0", 523)

	// The loopback listener gives remote clients no sender either.
	d = dial(t, s.plain)
	d.expect("EHLO x", 250)
	d.expect("MAIL FROM:<a@app.example>", 530)

	// Over STARTTLS, AUTH PLAIN works and the sender's domains apply.
	starttls := func() *smtp.Client {
		c, err := smtp.Dial(s.strict)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		if err := c.StartTLS(&tls.Config{InsecureSkipVerify: true, ServerName: "mx.test"}); err != nil {
			t.Fatal(err)
		}
		return c
	}
	if err := starttls().Auth(smtp.PlainAuth("", "shop", "wrong", "127.0.0.1")); err == nil || !strings.Contains(err.Error(), "535") {
		t.Fatalf("wrong password: %v", err)
	}
	c := starttls()
	if err := c.Auth(smtp.PlainAuth("", "shop", "s3cret", "127.0.0.1")); err != nil {
		t.Fatal(err)
	}
	if err := c.Mail("orders@shop.example"); err != nil {
		t.Fatal(err)
	}
	if err := c.Rcpt("buyer@dest.test"); err != nil {
		t.Fatal(err)
	}
	w, _ := c.Data()
	fmt.Fprint(w, "From: orders@shop.example\r\nSubject: order\r\n\r\nthanks\r\n")
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	msg, _, body := s.q.last(t)
	if msg.Sender != "shop" || !strings.Contains(body, "with ESMTPSA") {
		t.Errorf("sender %q, body:\n%s", msg.Sender, body)
	}
}

func TestAuthLoginOverImplicitTLS(t *testing.T) {
	s := startServer(t, true)
	d := dialTLS(t, s.tls)
	if ehlo := d.expect("EHLO x", 250); !strings.Contains(ehlo, "LOGIN") {
		t.Errorf("LOGIN not offered: %q", ehlo)
	}
	d.expect("AUTH LOGIN", 334)
	d.expect("c2hvcA==", 334) // shop
	d.expect("czNjcmV0", 235) // s3cret
	d.expect("MAIL FROM:<x@app.example>", 550)
	d.expect("MAIL FROM:<x@shop.example>", 250)
}

// The 250 is not sent before Enqueue returns: a queue that blocks holds
// the reply back.
func TestReplyWaitsForQueue(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		sub, p, release := startBlocking(t)
		defer sub.Close()
		d := dialPipe(t, p)
		d.expect("EHLO x", 250)
		d.sendUnanswered()
		got := make(chan string, 1)
		go func() { _, msg, _ := d.c.ReadResponse(250); got <- msg }()
		synctest.Wait() // the session waits in Enqueue, the client for its reply
		select {
		case m := <-got:
			t.Fatalf("reply %q before the queue committed", m)
		default:
		}
		close(release)
		if m := <-got; !strings.Contains(m, "queued as B1") {
			t.Errorf("reply %q", m)
		}
	})
}

// sendUnanswered sends a message from a@app.example to b@dest.test up to
// its final dot, and leaves the reply to it unread.
func (d *dialog) sendUnanswered() {
	d.t.Helper()
	d.expect("MAIL FROM:<a@app.example>", 250)
	d.expect("RCPT TO:<b@dest.test>", 250)
	d.expect("DATA", 354)
	w := d.c.DotWriter()
	w.Write([]byte("From: a@app.example\r\n\r\nx\r\n"))
	w.Close()
}

type blockingQueue struct{ release chan struct{} }

// startBlocking runs a loopback listener over a queue that commits only
// when release is closed. The listener is in-memory pipes (the session
// sees a loopback client), so that the server runs in a synctest bubble.
func startBlocking(t *testing.T) (*Submission, *testkit.Pipes, chan struct{}) {
	t.Helper()
	release := make(chan struct{})
	sub, err := NewSubmission(SubmissionConfig{
		Hostname:  "drover.test",
		Listeners: []Listener{{Address: "127.0.0.1:587", Mode: "plain", LoopbackSender: "app"}},
		Senders:   []*Sender{{Name: "app", FromDomains: []string{"*"}}},
		Queue:     &blockingQueue{release: release}, MaxMessageSize: 1 << 20,
	})
	if err != nil {
		t.Fatal(err)
	}
	p := testkit.NewPipes("127.0.0.1:587")
	sub.listen = func(string, string) (net.Listener, error) { return p, nil }
	if _, err := sub.Start(); err != nil {
		t.Fatal(err)
	}
	return sub, p, release
}

func (q *blockingQueue) NewID() string { return "B1" }

func (q *blockingQueue) Enqueue(*queue.Message, []queue.NewRecipient, []byte) (string, error) {
	<-q.release
	return "B1", nil
}

func (q *blockingQueue) EnqueueAll(subs []queue.Submission) error {
	_, err := q.Enqueue(nil, nil, nil)
	subs[0].Msg.ID = "B1"
	return err
}

func TestNormalizeCRLF(t *testing.T) {
	for in, want := range map[string]string{
		"":                 "",
		"a\r\nb\r\n":       "a\r\nb\r\n",
		"a\nb\n":           "a\r\nb\r\n",
		"a\rb\r":           "a\r\nb\r\n",
		"\n.\n":            "\r\n.\r\n",
		"a\r\r\nb":         "a\r\n\r\nb",
		"\r":               "\r\n",
		"x\n\r\n\ry\r\n\n": "x\r\n\r\n\r\ny\r\n\r\n",
	} {
		if got := string(normalizeCRLF([]byte(in))); got != want {
			t.Errorf("normalizeCRLF(%q) = %q, want %q", in, got, want)
		}
	}
}

func FuzzNormalizeCRLF(f *testing.F) {
	for _, s := range []string{"a\nb", "\r\n.\r\n", "\r\r\n\n", "x"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		out := normalizeCRLF(in)
		for i, c := range out {
			if c == '\n' && (i == 0 || out[i-1] != '\r') || c == '\r' && (i+1 == len(out) || out[i+1] != '\n') {
				t.Fatalf("bare line ending at %d in %q", i, out)
			}
		}
		if !bytes.Equal(bytes.ReplaceAll(bytes.ReplaceAll(out, []byte("\r\n"), nil), []byte("\r"), nil),
			bytes.ReplaceAll(bytes.ReplaceAll(in, []byte("\n"), nil), []byte("\r"), nil)) {
			t.Fatalf("content changed: %q -> %q", in, out)
		}
	})
}

func TestSplitHeader(t *testing.T) {
	msg := []byte("From: a@b\r\nSubject: one\r\n two\r\nX-Drover-List: l\r\n\r\nbody\r\n")
	fields, body := splitHeader(msg)
	if len(fields) != 3 || string(body) != "body\r\n" {
		t.Fatalf("fields %d body %q", len(fields), body)
	}
	if fields[1].value() != "one two" || !fields[2].is("x-drover-list") || fields[2].value() != "l" {
		t.Errorf("fields = %q %q", fields[1].raw, fields[2].raw)
	}
	// No empty line: a non-header line starts the body.
	fields, body = splitHeader([]byte("From: a@b\r\nnot a header\r\n"))
	if len(fields) != 1 || string(body) != "not a header\r\n" {
		t.Errorf("fields %d body %q", len(fields), body)
	}
}

func FuzzSplitHeader(f *testing.F) {
	f.Add([]byte("From: a@b\r\nSubject: x\r\n y\r\n\r\nbody"))
	f.Add([]byte(" lead\r\n"))
	f.Add([]byte("A:\r\n"))
	f.Fuzz(func(t *testing.T, in []byte) {
		msg := normalizeCRLF(in)
		fields, body := splitHeader(msg)
		var joined []byte
		for _, fl := range fields {
			joined = append(joined, fl.raw...)
			_ = fl.value()
		}
		// The fields and the body are the message, in order, minus the
		// separating empty line.
		if !bytes.HasPrefix(msg, joined) || !bytes.HasSuffix(msg, body) || len(msg)-len(joined)-len(body) > 2 {
			t.Fatalf("split lost bytes: %q -> %d fields, body %q", msg, len(fields), body)
		}
	})
}

// A shutdown that begins between the client's DATA and the server's 354
// (the server is still writing the 354: the pipe has no buffer) waits
// for the message instead of cutting it off, and a DATA after the
// shutdown began is refused with 421 before any 354.
func TestShutdownAfterDataCommand(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		sub, p, release := startBlocking(t)
		close(release)
		c := dialPipe(t, p)
		c.expect("EHLO c", 250)
		c.expect("MAIL FROM:<a@app.example>", 250)
		c.expect("RCPT TO:<b@dest.test>", 250)
		late := dialPipe(t, p)
		late.expect("EHLO late", 250)
		late.expect("MAIL FROM:<a@app.example>", 250)
		late.expect("RCPT TO:<b@dest.test>", 250)
		if err := c.c.PrintfLine("DATA"); err != nil {
			t.Fatal(err)
		}
		synctest.Wait() // the server is writing its 354, which nobody reads yet
		done := make(chan error, 1)
		go func() {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			done <- sub.Shutdown(ctx)
		}()
		synctest.Wait()
		late.expect("DATA", 421)
		c.expect("", 354)
		w := c.c.DotWriter()
		w.Write([]byte("From: a@app.example\r\n\r\nx\r\n"))
		w.Close()
		if msg := c.expect("", 250); !strings.Contains(msg, "queued as") {
			t.Errorf("message sent during the shutdown got %q", msg)
		}
		if err := <-done; err != nil {
			t.Errorf("Shutdown: %v", err)
		}
	})
}

// Shutdown lets a message being received reach the queue, then closes
// idle sessions too, without waiting for the clients to leave.
func TestShutdownDrainsThenCloses(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		sub, p, release := startBlocking(t)
		idle := dialPipe(t, p)
		idle.expect("EHLO idle", 250)
		busy := dialPipe(t, p)
		busy.expect("EHLO busy", 250)
		busy.sendUnanswered()
		synctest.Wait() // the message is now in Enqueue

		done := make(chan error, 1)
		go func() {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			done <- sub.Shutdown(ctx)
		}()
		synctest.Wait() // Shutdown has closed the listener and waits for the message
		if _, err := p.Dial(t.Context(), "tcp", ""); err == nil {
			t.Error("new connections accepted during shutdown")
		}
		close(release) // the queue commits
		if msg := busy.expect("", 250); !strings.Contains(msg, "queued as B1") {
			t.Errorf("in-flight message got %q", msg)
		}
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("Shutdown: %v", err)
			}
		case <-time.After(5 * time.Second): // on the bubble's clock
			t.Fatal("Shutdown waits for idle clients")
		}
		if _, _, err := idle.c.ReadResponse(0); err == nil {
			t.Error("idle session still open after Shutdown")
		}
	})
}

// EHLO advertises the recipient limit (RFC 9422 LIMITS RCPTMAX) that the
// session enforces.
func TestRcptMaxAdvertised(t *testing.T) {
	s := startServer(t, false)
	d := dial(t, s.plain)
	if ehlo := d.expect("EHLO x", 250); !strings.Contains(ehlo, "LIMITS RCPTMAX=") {
		t.Errorf("EHLO without LIMITS RCPTMAX: %q", ehlo)
	}
}
