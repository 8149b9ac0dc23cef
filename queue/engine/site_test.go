package engine

import (
	"fmt"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"drover/queue"
	"drover/queue/shaping"
)

// checkRate fails if any window of length w holds more than rate×w+1 of
// the times (a burst of one).
func checkRate(t *testing.T, what string, times []time.Time, rate float64) {
	t.Helper()
	slices.SortFunc(times, func(a, b time.Time) int { return a.Compare(b) })
	iv := time.Duration(float64(time.Second) / rate)
	for _, w := range []time.Duration{iv, 3 * iv, 10 * iv} {
		allowed := int(rate*w.Seconds()+1e-9) + 1
		for i := range times {
			n := 0
			for j := i; j < len(times) && times[j].Sub(times[i]) < w; j++ {
				n++
			}
			if n > allowed {
				t.Fatalf("%s: %d in the %v from %v, at most %d allowed at %v/s", what, n, w, times[i].Format("15:04:05.000"), allowed, rate)
			}
		}
	}
}

func deliverTimes(ds []deliverRec) []time.Time {
	out := make([]time.Time, len(ds))
	for i, d := range ds {
		out[i] = d.t
	}
	return out
}

// twoDomains is a site of two domains.
var twoDomains = map[string]string{"a.test": "mx.test", "b.test": "mx.test"}

// Two domains of one site share its connections: the site's
// MaxConnections holds over both.
func TestSiteConnectionCap(t *testing.T) {
	c := &mxCourier{delay: 3 * time.Millisecond}
	tb := newTestbed(t, queue.Options{NoSync: true}, Config{Courier: c,
		Planner: &fakePlanner{siteOf: twoDomains, limits: func(site, dest string) shaping.Limits {
			return shaping.Limits{MaxConnections: 3, TLS: "required", Pool: "p-" + site + "-" + dest}
		}}})
	s, e := tb.spool, tb.eng
	for i := range 120 {
		enqueue(t, s, nil, "x", fmt.Sprintf("u%d@a.test", i), fmt.Sprintf("u%d@b.test", i))
	}
	var sawFull atomic.Bool
	done := make(chan struct{})
	go func() {
		defer close(done)
		for s.Stats().Messages > 0 {
			if st, ok := siteStatus(e, "mx.test"); ok {
				if st.Connections > 3 || st.MaxConnections != 3 {
					t.Errorf("site status: %+v", st)
				}
				if st.Connections == 3 {
					sawFull.Store(true)
				}
			}
			time.Sleep(time.Millisecond)
		}
	}()
	waitFor(t, "delivery", func() bool { return s.Stats().Messages == 0 })
	<-done
	maxOpen, _, delivers := c.stats("mx.test")
	if maxOpen > 3 {
		t.Errorf("%d sessions at once to the site, limit 3", maxOpen)
	}
	if maxOpen < 2 || !sawFull.Load() {
		t.Errorf("the site's 3 connections were not used: at most %d at once", maxOpen)
	}
	if len(delivers) != 240 {
		t.Errorf("%d transactions, want 240", len(delivers))
	}
	c.mu.Lock()
	for _, o := range c.lims {
		if o.lim.TLS != "required" || o.lim.Pool != o.pool || (o.pool != "p-mx.test-a.test" && o.pool != "p-mx.test-b.test") {
			t.Errorf("Open got limits %+v and pool %q", o.lim, o.pool)
		}
	}
	c.mu.Unlock()
}

// The message rate of a site holds over its domains and connections, in
// every window; so does the connection rate; and a connection carries at
// most MaxMessagesPerConnection messages.
func TestSiteRates(t *testing.T) {
	for _, tc := range []struct {
		name     string
		lim      shaping.Limits
		messages int
	}{
		{"messages", shaping.Limits{MaxConnections: 4, MaxMessageRate: perSecond(10)}, 20},
		{"connections", shaping.Limits{MaxConnections: 4, MaxConnectionRate: perSecond(10), MaxMessagesPerConnection: 2}, 40},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := &mxCourier{delay: time.Millisecond}
			tb := newTestbed(t, queue.Options{NoSync: true}, Config{Courier: c,
				Planner: &fakePlanner{siteOf: twoDomains, limits: func(string, string) shaping.Limits { return tc.lim }}})
			s, e := tb.spool, tb.eng
			start := time.Now()
			for i := range tc.messages / 2 {
				enqueue(t, s, nil, "x", fmt.Sprintf("u%d@a.test", i))
				enqueue(t, s, nil, "x", fmt.Sprintf("u%d@b.test", i))
			}
			waitFor(t, "delivery", func() bool { return s.Stats().Messages == 0 })
			elapsed := time.Since(start)
			maxOpen, opens, delivers := c.stats("mx.test")
			var times []time.Time
			rate := tc.lim.MaxMessageRate.PerSecond()
			if rate > 0 {
				times = deliverTimes(delivers)
			} else {
				rate = tc.lim.MaxConnectionRate.PerSecond()
				for _, o := range opens {
					times = append(times, o.t)
				}
			}
			checkRate(t, tc.name, times, rate)
			if min := time.Duration(float64(len(times)-1) / rate * float64(time.Second)); elapsed < min {
				t.Errorf("%d events in %v: faster than %v/s", len(times), elapsed, rate)
			}
			if maxOpen > 4 {
				t.Errorf("%d sessions at once", maxOpen)
			}
			c.mu.Lock()
			defer c.mu.Unlock()
			if n := tc.lim.MaxMessagesPerConnection; n > 0 && c.perConn > n {
				t.Errorf("%d messages on one connection, limit %d", c.perConn, n)
			}
			if st, ok := siteStatus(e, "mx.test"); ok && (st.MessageRate != tc.lim.MaxMessageRate.PerSecond() || st.ConnectionRate != tc.lim.MaxConnectionRate.PerSecond()) {
				t.Errorf("site status: %+v", st)
			}
		})
	}
}

// A reply that matches a slow rule scales the site's connections down for
// the rule's duration; connections above the new maximum close after their
// message, no more open meanwhile, and the site comes back on its own.
func TestAdaptiveSlow(t *testing.T) {
	const slowFor = 600 * time.Millisecond
	rules, err := shaping.New(shaping.Config{Rules: []shaping.Rule{
		{Name: "test-rate", Pattern: "unusual rate", Action: shaping.ActionSlow, Factor: 0.25, Duration: slowFor},
	}})
	if err != nil {
		t.Fatal(err)
	}
	var throttle atomic.Int32
	c := &mxCourier{delay: 4 * time.Millisecond,
		reply: func(dest string, r queue.Recipient) queue.Result {
			if throttle.Load() > 0 && throttle.Add(-1) >= 0 {
				return queue.Result{Status: queue.Temporary, Code: 421, Enhanced: "4.7.28", Text: "4.7.28 Our system has detected an unusual rate of unsolicited mail", Remote: "mx.mx.test"}
			}
			return queue.Result{Status: queue.Delivered, Code: 250}
		}}
	var ev events
	tb := newTestbed(t, queue.Options{NoSync: true, OnEvent: ev.add}, Config{Courier: c, Rules: rules,
		Planner: &fakePlanner{siteOf: twoDomains, limits: func(string, string) shaping.Limits {
			return shaping.Limits{MaxConnections: 4, RetryInterval: 50 * time.Millisecond, MaxRetryInterval: 50 * time.Millisecond}
		}}})
	s, e := tb.spool, tb.eng
	feed := func(n int) {
		for i := range n {
			enqueue(t, s, nil, "x", fmt.Sprintf("u%d@a.test", i), fmt.Sprintf("u%d@b.test", i))
		}
	}
	feed(300)
	waitFor(t, "4 sessions", func() bool { return c.openNow("mx.test") == 4 })
	throttle.Store(1)
	waitFor(t, "the slowdown", func() bool {
		st, _ := siteStatus(e, "mx.test")
		return st.Factor == 0.25
	})
	st, _ := siteStatus(e, "mx.test")
	if st.MaxConnections != 1 || st.SlowUntil.IsZero() || !strings.Contains(st.Reason, "test-rate") {
		t.Errorf("slowed site: %+v", st)
	}
	waitFor(t, "connections closed down to 1", func() bool { return c.openNow("mx.test") <= 1 })
	settled := time.Now()
	// Keep the site busy until the slowdown ends on its own.
	waitFor(t, "the end of the slowdown", func() bool {
		if s.Stats().Messages == 0 {
			feed(100)
		}
		st, _ := siteStatus(e, "mx.test")
		return st.Factor == 1
	})
	_, opens, _ := c.stats("mx.test")
	for _, o := range opens {
		if o.t.After(settled) && o.t.Before(st.SlowUntil.Add(-50*time.Millisecond)) && o.open > 1 {
			t.Errorf("a connection opened while slowed with %d open", o.open)
		}
	}
	if n := len(ev.of(queue.EventDeferred)); n != 1 {
		t.Errorf("%d deferred events, want 1 (the throttled transaction)", n)
	}
	waitFor(t, "back to normal", func() bool {
		st, _ := siteStatus(e, "mx.test")
		if s.Stats().Messages < 50 {
			feed(100)
		}
		return st.Factor == 1 && st.MaxConnections == 4 && st.SlowUntil.IsZero() && st.Reason == ""
	})
	waitFor(t, "4 sessions again", func() bool {
		if s.Stats().Messages < 50 {
			feed(100)
		}
		return c.openNow("mx.test") == 4
	})
}

// ruleFunc is a RuleMatcher from a function.
type ruleFunc func(code int, enhanced, text string) *shaping.Rule

func (f ruleFunc) Match(code int, enhanced, text string) *shaping.Rule {
	return f(code, enhanced, text)
}

// A suspend rule stops the site: nothing is opened or delivered until it
// ends, the waiting recipients keep their attempt counts, and delivery
// resumes on its own.
func TestAdaptiveSuspend(t *testing.T) {
	const suspendFor = 500 * time.Millisecond
	rule := &shaping.Rule{Name: "test-block", Action: shaping.ActionSuspend, Duration: suspendFor}
	var throttle atomic.Bool
	c := &mxCourier{delay: 2 * time.Millisecond,
		reply: func(dest string, r queue.Recipient) queue.Result {
			if throttle.CompareAndSwap(true, false) {
				return queue.Result{Status: queue.Temporary, Code: 421, Enhanced: "4.7.0", Text: "4.7.0 too many messages, come back later"}
			}
			return queue.Result{Status: queue.Delivered, Code: 250}
		}}
	var ev events
	tb := newTestbed(t, queue.Options{NoSync: true, OnEvent: ev.add}, Config{Courier: c,
		Rules: ruleFunc(func(code int, enhanced, text string) *shaping.Rule {
			if strings.Contains(text, "come back later") {
				return rule
			}
			return nil
		}),
		Planner: &fakePlanner{siteOf: twoDomains, limits: func(string, string) shaping.Limits {
			return shaping.Limits{MaxConnections: 2, RetryInterval: time.Minute}
		}}})
	s, e := tb.spool, tb.eng
	for i := range 100 {
		enqueue(t, s, nil, "x", fmt.Sprintf("u%d@a.test", i), fmt.Sprintf("u%d@b.test", i))
	}
	waitFor(t, "deliveries", func() bool { return len(ev.of(queue.EventDelivered)) >= 10 })
	throttle.Store(true)
	waitFor(t, "the suspension", func() bool {
		st, _ := siteStatus(e, "mx.test")
		return st.Suspended
	})
	st, _ := siteStatus(e, "mx.test")
	if st.SuspendedUntil.IsZero() || !strings.Contains(st.Reason, "test-block") {
		t.Errorf("suspended site: %+v", st)
	}
	waitFor(t, "connections closed", func() bool { return c.openNow("mx.test") == 0 })
	quiet := time.Now()
	if now, _ := siteStatus(e, "mx.test"); now.Suspended {
		if st := s.Stats(); st.Ready == 0 {
			t.Errorf("nothing waiting in memory while suspended: %+v", st)
		}
	}
	waitFor(t, "delivery after the suspension", func() bool { return s.Stats().Recipients == 1 })
	_, opens, delivers := c.stats("mx.test")
	for _, d := range delivers {
		if d.t.After(quiet) && d.t.Before(st.SuspendedUntil) {
			t.Fatalf("delivery at %v while suspended until %v", d.t, st.SuspendedUntil)
		}
	}
	for _, o := range opens {
		if o.t.After(quiet) && o.t.Before(st.SuspendedUntil) {
			t.Fatalf("connection at %v while suspended until %v", o.t, st.SuspendedUntil)
		}
	}
	if opens[len(opens)-1].t.Before(st.SuspendedUntil) {
		t.Error("no connection after the suspension")
	}
	if st, _ := siteStatus(e, "mx.test"); st.Suspended {
		t.Errorf("still suspended: %+v", st)
	}
	for _, e := range ev.of(queue.EventDelivered) {
		if e.Attempt != 1 {
			t.Errorf("delivered at attempt %d: waiting while suspended counted as an attempt", e.Attempt)
		}
	}
	if n := len(ev.of(queue.EventDeferred)); n != 1 {
		t.Errorf("%d deferred events, want 1", n)
	}
}

// A bounce rule fails the recipient for good, even on a 4xx reply.
func TestAdaptiveBounce(t *testing.T) {
	c := &mxCourier{reply: func(dest string, r queue.Recipient) queue.Result {
		if strings.HasPrefix(r.Addr, "full") {
			return queue.Result{Status: queue.Temporary, Code: 452, Enhanced: "4.2.2", Text: "4.2.2 mailbox full", Class: "soft", Reason: "mailboxfull"}
		}
		return queue.Result{Status: queue.Delivered, Code: 250}
	}}
	var ev events
	var failed atomic.Int32
	tb := newTestbed(t, queue.Options{OnEvent: ev.add,
		OnFailure: func(msg *queue.Message, body []byte, f []queue.Failed) error {
			failed.Add(int32(len(f)))
			return nil
		}}, Config{Courier: c,
		Rules: ruleFunc(func(code int, enhanced, text string) *shaping.Rule {
			if enhanced == "4.2.2" {
				return &shaping.Rule{Name: "full", Action: shaping.ActionBounce}
			}
			return nil
		})})
	s := tb.spool
	enqueue(t, s, nil, "x", "full@d.test", "ok@d.test")
	waitFor(t, "outcomes", func() bool { return s.Stats().Messages == 0 })
	b := ev.of(queue.EventBounced)
	if len(b) != 1 || b[0].Recipient != "full@d.test" || b[0].Code != 452 || b[0].Reason != "mailboxfull" || failed.Load() != 1 {
		t.Errorf("bounced: %+v, OnFailure for %d", b, failed.Load())
	}
	if n := len(ev.of(queue.EventDeferred)); n != 0 {
		t.Errorf("%d deferred", n)
	}
}

// Reconfigure applies lowered limits at once: connections above the new
// maximum close after their message.
func TestReconfigureLowersConnections(t *testing.T) {
	var maxConns atomic.Int32
	maxConns.Store(4)
	c := &mxCourier{delay: 3 * time.Millisecond}
	tb := newTestbed(t, queue.Options{NoSync: true}, Config{Courier: c,
		Planner: &fakePlanner{limits: func(string, string) shaping.Limits {
			return shaping.Limits{MaxConnections: int(maxConns.Load())}
		}}})
	s, e := tb.spool, tb.eng
	feed := func() {
		for i := range 100 {
			enqueue(t, s, nil, "x", fmt.Sprintf("u%d@r.test", i))
		}
	}
	feed()
	waitFor(t, "4 sessions", func() bool { return c.openNow("r.test") == 4 })
	maxConns.Store(1)
	e.Reconfigure()
	if st, _ := siteStatus(e, "r.test"); st.MaxConnections != 1 {
		t.Errorf("after Reconfigure: %+v", st)
	}
	waitFor(t, "1 session", func() bool { return c.openNow("r.test") <= 1 })
	settled := time.Now()
	for range 3 {
		feed()
		waitFor(t, "delivery", func() bool { return s.Stats().Messages == 0 })
	}
	_, opens, _ := c.stats("r.test")
	for _, o := range opens {
		if o.t.After(settled) && o.open > 1 {
			t.Fatalf("%d sessions after lowering MaxConnections to 1", o.open)
		}
	}
	maxConns.Store(3)
	e.Reconfigure()
	feed()
	waitFor(t, "3 sessions", func() bool { return c.openNow("r.test") == 3 })
}

// Operator suspension of a site holds all its domains; of a domain, that
// domain alone. Resume, or the end of the suspension, lets them go.
func TestOperatorSuspend(t *testing.T) {
	c := &mxCourier{}
	tb := newTestbed(t, queue.Options{}, Config{Courier: c, Planner: &fakePlanner{siteOf: twoDomains}})
	s, e := tb.spool, tb.eng
	enqueue(t, s, nil, "x", "u@a.test")
	waitFor(t, "the site is known", func() bool { return s.Stats().Messages == 0 })

	held := time.Now()
	if err := e.Suspend("site", "mx.test", time.Time{}, "maintenance"); err != nil {
		t.Fatal(err)
	}
	if err := e.Suspend("domain", "C.test", time.Now().Add(300*time.Millisecond), "short"); err != nil {
		t.Fatal(err)
	}
	if err := e.Suspend("provider", "x", time.Time{}, ""); err == nil {
		t.Error("Suspend of an unknown kind succeeded")
	}
	if sp := e.Suspensions(); len(sp) != 2 || sp[0].Name != "c.test" || sp[1].Reason != "maintenance" {
		t.Errorf("Suspensions: %+v", sp)
	}
	enqueue(t, s, nil, "x", "v@a.test", "v@b.test", "v@c.test")
	// Both domains of the site are planned, bound to it and held.
	waitFor(t, "the held domains planned", func() bool {
		st, _ := siteStatus(e, "mx.test")
		return st.Domains == 2 && st.Ready == 2
	})
	if st := s.Stats(); st.Recipients != 3 {
		t.Fatalf("delivered while suspended: %+v", st)
	}
	st, _ := siteStatus(e, "mx.test")
	if !st.Suspended || !st.SuspendedUntil.IsZero() || st.Reason != "maintenance" || st.Ready != 2 {
		t.Errorf("suspended site: %+v", st)
	}
	sums, err := e.Summaries("site")
	if err != nil || len(sums) != 2 || sums[0].Key != "mx.test" || sums[0].Suspension == nil || sums[0].Site == nil || !sums[0].Site.Suspended {
		t.Errorf("Summaries by site: %+v %v", sums, err)
	}
	waitFor(t, "the domain suspension to end", func() bool { return s.Stats().Recipients == 2 })
	resumed := time.Now()
	if err := e.Resume("site", "mx.test"); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "delivery after resume", func() bool { return s.Stats().Recipients == 0 })
	if sp := e.Suspensions(); len(sp) != 0 {
		t.Errorf("Suspensions after resume: %+v", sp)
	}
	_, _, delivers := c.stats("mx.test")
	for _, d := range delivers {
		if d.t.After(held) && d.t.Before(resumed) {
			t.Errorf("delivery to %s at %v while the site was suspended", d.dest, d.t)
		}
	}

	// A domain suspension holds one domain of a site, not the others.
	held = time.Now()
	if err := e.Suspend("domain", "a.test", time.Time{}, ""); err != nil {
		t.Fatal(err)
	}
	id := enqueue(t, s, nil, "x", "w@a.test", "w@b.test")
	waitFor(t, "b.test delivered", func() bool { return s.Stats().Recipients == 1 })
	if _, rcpts, _ := e.Show(id); len(rcpts) != 1 || rcpts[0].Domain != "a.test" || rcpts[0].Attempts != 0 {
		t.Errorf("held recipient: %+v", rcpts)
	}
	resumed = time.Now()
	e.Resume("domain", "a.test")
	waitFor(t, "a.test delivered", func() bool { return s.Stats().Recipients == 0 })
	_, _, delivers = c.stats("mx.test")
	for _, d := range delivers {
		if d.dest == "a.test" && d.t.After(held) && d.t.Before(resumed) {
			t.Errorf("delivery to a.test at %v while it was suspended", d.t)
		}
	}
}

// A connection refused with a reply that matches a suspend rule suspends
// the site; the recipients that were waiting are not failed with it but
// wait for the end of the suspension.
func TestAdaptiveSuspendOnOpen(t *testing.T) {
	var opens atomic.Int32
	c := &fakeCourier{gate: make(chan struct{}), gateOpen: true, openErr: func(string) error {
		if opens.Add(1) == 1 {
			return resultError(queue.Result{Status: queue.Temporary, Code: 421, Enhanced: "4.7.0", Text: "4.7.0 too many connections from your IP", Remote: "mx.d.test"})
		}
		return nil
	}}
	var ev events
	rule := &shaping.Rule{Name: "conns", Action: shaping.ActionSuspend, Duration: 300 * time.Millisecond}
	tb := newTestbed(t, queue.Options{OnEvent: ev.add}, Config{Courier: c,
		Planner: &fakePlanner{limits: func(string, string) shaping.Limits { return shaping.Limits{MaxConnections: 1} }},
		Rules: ruleFunc(func(code int, enhanced, text string) *shaping.Rule {
			if strings.Contains(text, "too many connections") {
				return rule
			}
			return nil
		})})
	s := tb.spool
	for i := range 5 {
		enqueue(t, s, nil, "x", fmt.Sprintf("u%d@d.test", i))
	}
	waitFor(t, "queued", func() bool { return s.Stats().Ready == 4 })
	start := time.Now()
	close(c.gate)
	waitFor(t, "delivery", func() bool { return s.Stats().Recipients == 1 })
	if time.Since(start) < 250*time.Millisecond {
		t.Errorf("delivered %v after a suspension of 300ms", time.Since(start))
	}
	if d := ev.of(queue.EventDeferred); len(d) != 1 || d[0].Code != 421 {
		t.Errorf("deferred: %+v", d)
	}
	for _, e := range ev.of(queue.EventDelivered) {
		if e.Attempt != 1 {
			t.Errorf("delivered at attempt %d", e.Attempt)
		}
	}
}

// A connection that goes idle while another domain of its site waits for
// a slot gives the slot way at once, instead of holding it until its idle
// timeout.
func TestIdleConnectionGivesWay(t *testing.T) {
	const idle = 10 * time.Second
	c := &fakeCourier{gate: make(chan struct{})}
	tb := newTestbed(t, queue.Options{}, Config{Courier: c, IdleTimeout: idle,
		Planner: &fakePlanner{siteOf: twoDomains, limits: func(string, string) shaping.Limits { return shaping.Limits{MaxConnections: 1} }}})
	s, e := tb.spool, tb.eng
	enqueue(t, s, nil, "x", "u@a.test")
	waitFor(t, "a.test in flight", func() bool { return s.Stats().InFlight == 1 })
	enqueue(t, s, nil, "x", "u@b.test")
	// b.test is planned, bound to the site, and waits for its only slot.
	waitFor(t, "b.test waiting for the slot", func() bool {
		st, _ := siteStatus(e, "mx.test")
		return st.Domains == 2 && st.Ready == 1
	})
	start := time.Now()
	close(c.gate)
	waitFor(t, "both delivered", func() bool { return s.Stats().Messages == 0 })
	if d := time.Since(start); d > idle/2 {
		t.Errorf("b.test delivered %v after a.test's connection went idle (idle timeout %v)", d, idle)
	}
	if n := c.openConns(); n > 1 {
		t.Errorf("%d connections open, the site allows 1", n)
	}
}
