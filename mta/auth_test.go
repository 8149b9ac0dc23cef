package mta

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"log/slog"
	"net"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/crypto/bcrypt"

	"drover/queue"
	"drover/queue/engine"
	"drover/testkit"
)

// shopHash is the bcrypt hash of "s3cret", the password of login "shop".
var shopHash = sync.OnceValue(func() []byte {
	h, err := bcrypt.GenerateFromPassword([]byte("s3cret"), bcrypt.MinCost)
	if err != nil {
		panic(err)
	}
	return h
})

// logBuffer is a slog JSON handler's output, safe to read while the
// server writes.
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *logBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

// records returns the logged records whose msg is msg.
func (b *logBuffer) records(t *testing.T, msg string) []map[string]any {
	t.Helper()
	b.mu.Lock()
	defer b.mu.Unlock()
	var out []map[string]any
	for _, line := range strings.Split(strings.TrimSpace(b.buf.String()), "\n") {
		var rec map[string]any
		if err := json.Unmarshal([]byte(line), &rec); err != nil {
			t.Fatalf("log line %q: %v", line, err)
		}
		if rec["msg"] == msg {
			out = append(out, rec)
		}
	}
	return out
}

type authServer struct {
	sub *Submission
	p   *testkit.Pipes
	reg *prometheus.Registry
	log *logBuffer
}

const authListener = "127.0.0.1:587"

// startAuth runs, inside a synctest bubble, a plain loopback listener
// (the client on the pipes is 127.0.0.1, so AUTH is allowed without TLS)
// whose sender "shop" logs in with "s3cret".
func startAuth(t *testing.T, limits AuthLimits) *authServer {
	t.Helper()
	a := &authServer{p: testkit.NewPipes(authListener), reg: prometheus.NewRegistry(), log: &logBuffer{}}
	metrics := NewMetrics(a.reg, func() queue.Stats { return queue.Stats{} }, func() []engine.SiteStatus { return nil })
	sub, err := NewSubmission(SubmissionConfig{
		Hostname:  "drover.test",
		Listeners: []Listener{{Address: authListener, Mode: "plain"}},
		Senders:   []*Sender{{Name: "shop", Login: "shop", PasswordHash: shopHash(), FromDomains: []string{"shop.example"}}},
		Auth:      limits,
		Queue:     &fakeQueue{}, MaxMessageSize: 1 << 20,
		Metrics: metrics,
		Logger:  slog.New(slog.NewJSONHandler(a.log, &slog.HandlerOptions{Level: slog.LevelDebug})),
	})
	if err != nil {
		t.Fatal(err)
	}
	sub.listen = func(string, string) (net.Listener, error) { return a.p, nil }
	if _, err := sub.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(sub.Close)
	a.sub = sub
	return a
}

// counter reads a counter from the registry by name (and listener, for
// a counter with that label); -1 if it is not there.
func (a *authServer) counter(t *testing.T, name, listener string) float64 {
	t.Helper()
	mfs, err := a.reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "listener" && l.GetValue() != listener {
					goto next
				}
			}
			return m.GetCounter().GetValue()
		next:
		}
	}
	return -1
}

func (a *authServer) failures(t *testing.T) float64 {
	return a.counter(t, "drover_smtp_auth_failures_total", authListener)
}

// session opens a session that has said EHLO.
func (a *authServer) session(t *testing.T) *dialog {
	t.Helper()
	d := dialPipe(t, a.p)
	d.expect("EHLO client.test", 250)
	return d
}

// plain is an AUTH PLAIN command with an initial response.
func plain(login, password string) string {
	return "AUTH PLAIN " + base64.StdEncoding.EncodeToString([]byte("\x00"+login+"\x00"+password))
}

// timed runs cmd and returns its reply and how long it took on the
// bubble's clock.
func (d *dialog) timed(cmd string, code int) (string, time.Duration) {
	d.t.Helper()
	start := time.Now()
	msg := d.expect(cmd, code)
	return msg, time.Since(start)
}

// expectClosed checks that the server has closed the connection.
func (d *dialog) expectClosed() {
	d.t.Helper()
	if code, msg, err := d.c.ReadResponse(0); err == nil {
		d.t.Errorf("connection still open: read %d %s", code, msg)
	}
}

// The third failed login of a session gets 421 and the connection is
// closed; each failure is counted and logged with the client's address,
// the login tried, the mechanism and the listener.
func TestAuthSessionClosedAfterFailures(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		a := startAuth(t, AuthLimits{})
		d := a.session(t)
		d.expect("AUTH LOGIN", 334)
		d.expect(base64.StdEncoding.EncodeToString([]byte("admin")), 334)
		d.expect(base64.StdEncoding.EncodeToString([]byte("guess1")), 535)
		d.expect(plain("shop", "guess2"), 535)
		if msg := d.expect(plain("shop", "guess3"), 421); msg != "4.7.0 Too many failed login attempts, closing connection" {
			t.Errorf("421 reply %q", msg)
		}
		d.expectClosed()

		if n := a.failures(t); n != 3 {
			t.Errorf("drover_smtp_auth_failures_total{listener=%q} = %v, want 3", authListener, n)
		}
		recs := a.log.records(t, "smtp auth failed")
		if len(recs) != 3 {
			t.Fatalf("%d failures logged, want 3", len(recs))
		}
		for i, want := range []map[string]any{
			{"client_ip": "127.0.0.1", "login": "admin", "mechanism": "LOGIN", "listener": authListener},
			{"client_ip": "127.0.0.1", "login": "shop", "mechanism": "PLAIN", "listener": authListener},
		} {
			for k, v := range want {
				if recs[i][k] != v {
					t.Errorf("failure %d logged %s=%v, want %v (%v)", i+1, k, recs[i][k], v, recs[i])
				}
			}
		}
		if strings.Contains(a.log.buf.String(), "guess") {
			t.Error("a password was logged")
		}
	})
}

// Failures from one address across sessions delay the replies to its
// AUTH (by a growing, capped delay), then lock it out: AUTH gets 454,
// even with the right password, until the lockout has passed.
func TestAuthAddressSlowedThenLockedOut(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		a := startAuth(t, AuthLimits{}) // 3 a session, slow after 5, lock out after 10
		// Failures 1-10, two per session; the reply to failure n waits
		// for the delay earned by the failures before it.
		want := []time.Duration{0, 0, 0, 0, 0, 1 * time.Second, 2 * time.Second, 4 * time.Second, 8 * time.Second, 8 * time.Second}
		var d *dialog
		for i, w := range want {
			if i%2 == 0 {
				d = a.session(t)
			}
			if _, took := d.timed(plain("shop", "wrong"), 535); took != w {
				t.Errorf("reply to failure %d after %v, want %v", i+1, took, w)
			}
		}
		if n := a.failures(t); n != 10 {
			t.Errorf("failures counted: %v, want 10", n)
		}
		if n := a.counter(t, "drover_smtp_auth_lockouts_total", ""); n != 1 {
			t.Errorf("lockouts counted: %v, want 1", n)
		}
		if len(a.log.records(t, "smtp auth locked out")) != 1 {
			t.Error("lockout not logged")
		}

		// Locked out: refused at once, the right password too.
		d = a.session(t)
		msg, took := d.timed(plain("shop", "s3cret"), 454)
		if msg != "4.7.0 Too many failed login attempts from your address, try again later" || took != 0 {
			t.Errorf("locked out: %q after %v", msg, took)
		}
		time.Sleep(14 * time.Minute)
		d = a.session(t)
		d.expect(plain("shop", "s3cret"), 454)
		d.expect("AUTH LOGIN", 454) // refused before any credentials
		if n := a.failures(t); n != 10 {
			t.Errorf("refusals counted as failures: %v", n)
		}
		if n := a.counter(t, "drover_smtp_auth_refusals_total", authListener); n != 3 {
			t.Errorf("refusals counted: %v, want 3", n)
		}

		// The lockout has passed: the count starts over.
		time.Sleep(time.Minute)
		d = a.session(t)
		if _, took := d.timed(plain("shop", "wrong"), 535); took != 0 {
			t.Errorf("first failure after the lockout delayed %v", took)
		}
		d.expect(plain("shop", "s3cret"), 235)
	})
}

// A session's refusals during a lockout count towards its limit too.
func TestAuthLockedOutSessionClosed(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		a := startAuth(t, AuthLimits{MaxFailuresPerSession: 3, SlowAfter: 2, LockoutAfter: 2})
		d := a.session(t)
		d.expect(plain("shop", "wrong"), 535)
		d.expect(plain("shop", "wrong"), 535) // locks out
		d.expect(plain("shop", "wrong"), 421)
		d.expectClosed()
	})
}

// A successful login is delayed like a failure (a client can't tell a
// failure by the wait), and it clears the address's failures.
func TestAuthSuccessResetsAddress(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		a := startAuth(t, AuthLimits{})
		fail := func(n int) (delays []time.Duration) {
			var d *dialog
			for i := range n {
				if i%2 == 0 {
					d = a.session(t)
				}
				_, took := d.timed(plain("shop", "wrong"), 535)
				delays = append(delays, took)
			}
			return delays
		}
		fail(5)
		d := a.session(t)
		if _, took := d.timed(plain("shop", "s3cret"), 235); took != time.Second {
			t.Errorf("login after 5 failures answered after %v, want 1s", took)
		}
		d.expect("MAIL FROM:<orders@shop.example>", 250)
		if got, want := fail(6), []time.Duration{0, 0, 0, 0, 0, time.Second}; !equalDurations(got, want) {
			t.Errorf("delays after the login: %v, want %v", got, want)
		}
		if len(a.log.records(t, "smtp auth succeeded")) != 1 {
			t.Error("successful login not logged at debug")
		}
	})
}

// A delayed reply does not hold up a shutdown: closing the session ends
// the wait.
func TestAuthDelayEndsAtShutdown(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		a := startAuth(t, AuthLimits{SlowAfter: 1, LockoutAfter: 5, Delay: time.Hour, MaxDelay: time.Hour})
		a.session(t).expect(plain("shop", "wrong"), 535)
		d := a.session(t)
		if err := d.c.PrintfLine("%s", plain("shop", "wrong")); err != nil {
			t.Fatal(err)
		}
		replied := make(chan struct{})
		go func() { d.c.ReadResponse(0); close(replied) }()
		time.Sleep(time.Minute)
		select {
		case <-replied:
			t.Fatal("second failure answered without a delay")
		default:
		}
		start := time.Now()
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Hour)
		defer cancel()
		if err := a.sub.Shutdown(ctx); err != nil {
			t.Errorf("Shutdown: %v", err)
		}
		if took := time.Since(start); took > time.Second {
			t.Errorf("Shutdown took %v: it waited for the delayed reply", took)
		}
		<-replied
	})
}

func equalDurations(a, b []time.Duration) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// With no sender that can log in, AUTH is neither offered nor accepted.
func TestNoAuthWithoutLogins(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		sub, p, release := startBlocking(t) // sender "app" has no login
		defer sub.Close()
		close(release)
		d := dialPipe(t, p)
		if ehlo := d.expect("EHLO x", 250); strings.Contains(ehlo, "AUTH") {
			t.Errorf("AUTH offered with no login: %q", ehlo)
		}
		d.expect(plain("app", "x"), 504)
		d.expect("MAIL FROM:<a@app.example>", 250) // the loopback sender still works
	})
	// A login without a password hash can't log in either.
	synctest.Test(t, func(t *testing.T) {
		sub, err := NewSubmission(SubmissionConfig{
			Hostname:  "drover.test",
			Listeners: []Listener{{Address: authListener, Mode: "plain"}},
			Senders:   []*Sender{{Name: "shop", Login: "shop", FromDomains: []string{"*"}}},
			Queue:     &fakeQueue{},
		})
		if err != nil {
			t.Fatal(err)
		}
		p := testkit.NewPipes(authListener)
		sub.listen = func(string, string) (net.Listener, error) { return p, nil }
		if _, err := sub.Start(); err != nil {
			t.Fatal(err)
		}
		defer sub.Close()
		if ehlo := dialPipe(t, p).expect("EHLO x", 250); strings.Contains(ehlo, "AUTH") {
			t.Errorf("AUTH offered with no password hash: %q", ehlo)
		}
	})
}

// The guard forgets expired addresses, tracks at most MaxAddresses, and
// counts an IPv6 client by its /64.
func TestAuthGuardBounded(t *testing.T) {
	clock := testkit.NewClock(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC))
	g := newAuthGuard(AuthLimits{MaxAddresses: 3, LockoutAfter: 2}.withDefaults(), clock.Now)
	g.failed("192.0.2.1")
	g.failed("192.0.2.1") // locked out
	clock.Advance(time.Minute)
	g.failed("192.0.2.2")
	clock.Advance(time.Minute)
	g.failed("192.0.2.3")
	g.failed("192.0.2.4") // full: forgets 192.0.2.2, the oldest not locked out
	if n := g.tracked(); n != 3 {
		t.Errorf("tracking %d addresses, want 3", n)
	}
	if _, until := g.admit("192.0.2.1"); until.IsZero() {
		t.Error("a locked-out address was forgotten to make room")
	}
	if n, _ := g.failed("192.0.2.2"); n != 1 {
		t.Errorf("192.0.2.2 has %d failures, want 1 (forgotten)", n)
	}

	g.failed("2001:db8:1:2::1")
	if n, until := g.failed("2001:db8:1:2:ffff::9"); n != 2 || until.IsZero() {
		t.Errorf("same /64: %d failures, locked until %v", n, until)
	}
	if _, until := g.admit("2001:db8:1:3::1"); !until.IsZero() {
		t.Error("another /64 locked out")
	}

	clock.Advance(time.Hour) // past window and lockout
	g.failed("198.51.100.1") // sweeps
	if n := g.tracked(); n != 1 {
		t.Errorf("tracking %d addresses after they expired, want 1", n)
	}
}
