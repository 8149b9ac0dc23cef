package engine

import (
	"fmt"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"testing/synctest"
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
// MaxConnections holds over both, and is used.
func TestSiteConnectionCap(t *testing.T) { synctest.Test(t, siteConnectionCap) }

func siteConnectionCap(t *testing.T) {
	c := &mxCourier{delay: 3 * time.Millisecond}
	tb := newTestbed(t, queue.Options{NoSync: true}, Config{Courier: c,
		Planner: &fakePlanner{siteOf: twoDomains, limits: func(site, dest string) shaping.Limits {
			return shaping.Limits{MaxConnections: 3, TLS: "required", Pool: "p-" + site + "-" + dest}
		}}})
	s, e := tb.spool, tb.eng
	for i := range 120 {
		enqueue(t, s, nil, "x", fmt.Sprintf("u%d@a.test", i), fmt.Sprintf("u%d@b.test", i))
	}
	// The site's state is looked at after every call of the courier and
	// every event.
	sawFull := false
	tb.wait("delivery", func() bool {
		if st, ok := siteStatus(e, "mx.test"); ok {
			if st.Connections > 3 || st.MaxConnections != 3 {
				t.Errorf("site status: %+v", st)
			}
			if st.Connections == 3 {
				sawFull = true
			}
		}
		return s.Stats().Messages == 0
	})
	maxOpen, _, delivers := c.stats("mx.test")
	if maxOpen > 3 {
		t.Errorf("%d sessions at once to the site, limit 3", maxOpen)
	}
	if maxOpen < 3 || !sawFull {
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
// every window, and is used: the k-th transaction starts k/rate after the
// first. So does the connection rate, for the connections it opens; and
// a connection carries at most MaxMessagesPerConnection messages.
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
			synctest.Test(t, func(t *testing.T) { siteRates(t, tc.name, tc.lim, tc.messages) })
		})
	}
}

func siteRates(t *testing.T, name string, lim shaping.Limits, messages int) {
	c := &mxCourier{delay: time.Millisecond}
	tb := newTestbed(t, queue.Options{NoSync: true}, Config{Courier: c,
		Planner: &fakePlanner{siteOf: twoDomains, limits: func(string, string) shaping.Limits { return lim }}})
	s, e := tb.spool, tb.eng
	start := time.Now()
	for i := range messages / 2 {
		enqueue(t, s, nil, "x", fmt.Sprintf("u%d@a.test", i))
		enqueue(t, s, nil, "x", fmt.Sprintf("u%d@b.test", i))
	}
	tb.wait("delivery", func() bool { return s.Stats().Messages == 0 })
	elapsed := time.Since(start)
	maxOpen, opens, delivers := c.stats("mx.test")
	var times []time.Time
	rate := lim.MaxMessageRate.PerSecond()
	if rate > 0 {
		times = deliverTimes(delivers)
	} else {
		rate = lim.MaxConnectionRate.PerSecond()
		for _, o := range opens {
			times = append(times, o.t)
		}
	}
	checkRate(t, name, times, rate)
	if min := time.Duration(float64(len(times)-1) / rate * float64(time.Second)); elapsed < min {
		t.Errorf("%d events in %v: faster than %v/s", len(times), elapsed, rate)
	}
	iv := time.Duration(float64(time.Second) / rate)
	for k, at := range times {
		if want := start.Add(time.Duration(k) * iv); !at.Equal(want) {
			t.Errorf("%s: event %d at +%v, want +%v", name, k, at.Sub(start), want.Sub(start))
		}
	}
	if maxOpen > 4 {
		t.Errorf("%d sessions at once", maxOpen)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if n := lim.MaxMessagesPerConnection; n > 0 && c.perConn > n {
		t.Errorf("%d messages on one connection, limit %d", c.perConn, n)
	}
	if st, ok := siteStatus(e, "mx.test"); ok && (st.MessageRate != lim.MaxMessageRate.PerSecond() || st.ConnectionRate != lim.MaxConnectionRate.PerSecond()) {
		t.Errorf("site status: %+v", st)
	}
}

// A reply that matches a slow rule scales the site's connections down for
// the rule's duration; connections above the new maximum close after their
// message, no more open meanwhile, and the site comes back on its own,
// exactly when the duration is over.
func TestAdaptiveSlow(t *testing.T) { synctest.Test(t, adaptiveSlow) }

func adaptiveSlow(t *testing.T) {
	const slowFor, delay = 600 * time.Millisecond, 4 * time.Millisecond
	rules, err := shaping.New(shaping.Config{Rules: []shaping.Rule{
		{Name: "test-rate", Pattern: "unusual rate", Action: shaping.ActionSlow, Factor: 0.25, Duration: slowFor},
	}})
	if err != nil {
		t.Fatal(err)
	}
	var throttle atomic.Int32
	var throttledAt atomic.Int64 // when the throttling reply was given
	c := &mxCourier{delay: delay,
		reply: func(dest string, r queue.Recipient) queue.Result {
			if throttle.Load() > 0 && throttle.Add(-1) >= 0 {
				throttledAt.Store(time.Now().UnixNano())
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
	// 600 transactions: at one connection of 4ms for the slowdown, more
	// than the site can carry before it ends.
	for i := range 300 {
		enqueue(t, s, nil, "x", fmt.Sprintf("u%d@a.test", i), fmt.Sprintf("u%d@b.test", i))
	}
	synctest.Wait()
	if n := c.openNow("mx.test"); n != 4 {
		t.Fatalf("%d sessions with work queued, want 4", n)
	}
	throttle.Store(1)
	tb.wait("the slowdown", func() bool {
		st, _ := siteStatus(e, "mx.test")
		return st.Factor == 0.25
	})
	st, _ := siteStatus(e, "mx.test")
	at := time.Unix(0, throttledAt.Load())
	if st.MaxConnections != 1 || !st.SlowUntil.Equal(at.Add(slowFor)) || !strings.Contains(st.Reason, "test-rate") {
		t.Errorf("slowed site: %+v; throttled at %v", st, at)
	}
	tb.wait("connections closed down to 1", func() bool { return c.openNow("mx.test") <= 1 })
	settled := time.Now()
	if d := settled.Sub(at); d > delay {
		t.Errorf("connections above the maximum closed %v after the throttling reply, more than a message's %v", d, delay)
	}
	// Slowed until a nanosecond before the end.
	time.Sleep(time.Until(st.SlowUntil) - time.Nanosecond)
	synctest.Wait()
	if now, _ := siteStatus(e, "mx.test"); now.Factor != 0.25 || now.MaxConnections != 1 || c.openNow("mx.test") > 1 {
		t.Errorf("a nanosecond before the end of the slowdown: %+v, %d sessions", now, c.openNow("mx.test"))
	}
	// Back to normal at the end, with 4 sessions again at once.
	time.Sleep(time.Nanosecond)
	synctest.Wait()
	if now, _ := siteStatus(e, "mx.test"); now.Factor != 1 || now.MaxConnections != 4 || !now.SlowUntil.IsZero() || now.Reason != "" {
		t.Errorf("at the end of the slowdown: %+v", now)
	}
	if n := c.openNow("mx.test"); n != 4 {
		t.Errorf("%d sessions at the end of the slowdown, want 4", n)
	}
	if st := s.Stats(); st.Messages == 0 {
		t.Fatalf("the queue ran dry during the slowdown: %+v", st)
	}
	_, opens, _ := c.stats("mx.test")
	for _, o := range opens {
		if o.t.After(settled) && o.t.Before(st.SlowUntil) && o.open > 1 {
			t.Errorf("a connection opened at %v while slowed with %d open", o.t, o.open)
		}
	}
	if n := len(ev.of(queue.EventDeferred)); n != 1 {
		t.Errorf("%d deferred events, want 1 (the throttled transaction)", n)
	}
}

// ruleFunc is a RuleMatcher from a function.
type ruleFunc func(code int, enhanced, text string) *shaping.Rule

func (f ruleFunc) Match(code int, enhanced, text string) *shaping.Rule {
	return f(code, enhanced, text)
}

// A suspend rule stops the site: nothing is opened or delivered until it
// ends, the waiting recipients keep their attempt counts, and delivery
// resumes on its own, exactly at its end.
func TestAdaptiveSuspend(t *testing.T) { synctest.Test(t, adaptiveSuspend) }

func adaptiveSuspend(t *testing.T) {
	const suspendFor = 500 * time.Millisecond
	rule := &shaping.Rule{Name: "test-block", Action: shaping.ActionSuspend, Duration: suspendFor}
	var throttle atomic.Bool
	var throttledAt atomic.Int64 // when the throttling reply was given
	c := &mxCourier{delay: 2 * time.Millisecond,
		reply: func(dest string, r queue.Recipient) queue.Result {
			if throttle.CompareAndSwap(true, false) {
				throttledAt.Store(time.Now().UnixNano())
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
	tb.wait("deliveries", func() bool { return len(ev.of(queue.EventDelivered)) >= 10 })
	throttle.Store(true)
	tb.wait("the suspension", func() bool {
		st, _ := siteStatus(e, "mx.test")
		return st.Suspended
	})
	st, _ := siteStatus(e, "mx.test")
	at := time.Unix(0, throttledAt.Load())
	if !st.SuspendedUntil.Equal(at.Add(suspendFor)) || !strings.Contains(st.Reason, "test-block") {
		t.Errorf("suspended site: %+v; throttled at %v", st, at)
	}
	tb.wait("connections closed", func() bool { return c.openNow("mx.test") == 0 })
	quiet := time.Now()
	if now, _ := siteStatus(e, "mx.test"); now.Suspended {
		if st := s.Stats(); st.Ready == 0 {
			t.Errorf("nothing waiting in memory while suspended: %+v", st)
		}
	}
	// Suspended until a nanosecond before the end, resumed at the end.
	time.Sleep(time.Until(st.SuspendedUntil) - time.Nanosecond)
	synctest.Wait()
	if now, _ := siteStatus(e, "mx.test"); !now.Suspended || c.openNow("mx.test") != 0 {
		t.Errorf("a nanosecond before the end of the suspension: %+v, %d sessions", now, c.openNow("mx.test"))
	}
	time.Sleep(time.Nanosecond)
	synctest.Wait()
	if now, _ := siteStatus(e, "mx.test"); now.Suspended || c.openNow("mx.test") != 2 {
		t.Errorf("at the end of the suspension: %+v, %d sessions, want 2", now, c.openNow("mx.test"))
	}
	// All delivered but the throttled one, which waits for its retry.
	tb.wait("delivery after the suspension", func() bool { return len(ev.of(queue.EventDelivered)) == 199 })
	if st := s.Stats(); st.Recipients != 1 {
		t.Errorf("stats after the deliveries: %+v", st)
	}
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
	if i := slices.IndexFunc(opens, func(o openRec) bool { return o.t.After(quiet) }); i < 0 || !opens[i].t.Equal(st.SuspendedUntil) {
		t.Errorf("no connection at the end of the suspension, %v", st.SuspendedUntil)
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
func TestAdaptiveBounce(t *testing.T) { synctest.Test(t, adaptiveBounce) }

func adaptiveBounce(t *testing.T) {
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
	tb.wait("outcomes", func() bool { return s.Stats().Messages == 0 })
	b := ev.of(queue.EventBounced)
	if len(b) != 1 || b[0].Recipient != "full@d.test" || b[0].Code != 452 || b[0].Reason != "mailboxfull" || failed.Load() != 1 {
		t.Errorf("bounced: %+v, OnFailure for %d", b, failed.Load())
	}
	if n := len(ev.of(queue.EventDeferred)); n != 0 {
		t.Errorf("%d deferred", n)
	}
}

// Reconfigure applies lowered limits at once: connections above the new
// maximum close after their message; raised ones open more at once.
func TestReconfigureLowersConnections(t *testing.T) { synctest.Test(t, reconfigureLowersConnections) }

func reconfigureLowersConnections(t *testing.T) {
	const delay = 3 * time.Millisecond
	var maxConns atomic.Int32
	maxConns.Store(4)
	c := &mxCourier{delay: delay}
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
	synctest.Wait()
	if n := c.openNow("r.test"); n != 4 {
		t.Fatalf("%d sessions with work queued, want 4", n)
	}
	maxConns.Store(1)
	e.Reconfigure()
	lowered := time.Now()
	if st, _ := siteStatus(e, "r.test"); st.MaxConnections != 1 {
		t.Errorf("after Reconfigure: %+v", st)
	}
	tb.wait("1 session", func() bool { return c.openNow("r.test") <= 1 })
	settled := time.Now()
	if d := settled.Sub(lowered); d > delay {
		t.Errorf("connections above the maximum closed %v after Reconfigure, more than a message's %v", d, delay)
	}
	for range 3 {
		feed()
		tb.wait("delivery", func() bool { return s.Stats().Messages == 0 })
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
	synctest.Wait()
	if n := c.openNow("r.test"); n != 3 {
		t.Errorf("%d sessions after raising MaxConnections to 3", n)
	}
}

// Operator suspension of a site holds all its domains; of a domain, that
// domain alone. Resume, or the end of the suspension, exactly when due,
// lets them go.
func TestOperatorSuspend(t *testing.T) { synctest.Test(t, operatorSuspend) }

func operatorSuspend(t *testing.T) {
	c := &mxCourier{}
	var ev events
	tb := newTestbed(t, queue.Options{OnEvent: ev.add}, Config{Courier: c, Planner: &fakePlanner{siteOf: twoDomains}})
	s, e := tb.spool, tb.eng
	enqueue(t, s, nil, "x", "u@a.test")
	tb.wait("the site is known", func() bool { return s.Stats().Messages == 0 })
	_, _, before := c.stats("mx.test")

	held := time.Now()
	if _, err := e.Suspend("site", "mx.test", time.Time{}, "maintenance"); err != nil {
		t.Fatal(err)
	}
	until := held.Add(300 * time.Millisecond)
	if _, err := e.Suspend("domain", "C.test", until, "short"); err != nil {
		t.Fatal(err)
	}
	if _, err := e.Suspend("provider", "x", time.Time{}, ""); err == nil {
		t.Error("Suspend of an unknown kind succeeded")
	}
	if sp := e.Suspensions(); len(sp) != 2 || sp[0].Name != "c.test" || sp[1].Reason != "maintenance" {
		t.Errorf("Suspensions: %+v", sp)
	}
	enqueue(t, s, nil, "x", "v@a.test", "v@b.test", "v@c.test")
	// Both domains of the site are planned, bound to it and held.
	synctest.Wait()
	if st := s.Stats(); st.Recipients != 3 {
		t.Fatalf("delivered while suspended: %+v", st)
	}
	st, _ := siteStatus(e, "mx.test")
	if !st.Suspended || !st.SuspendedUntil.IsZero() || st.Reason != "maintenance" || st.Domains != 2 || st.Ready != 2 {
		t.Errorf("suspended site: %+v", st)
	}
	sums, err := e.Summaries("site")
	if err != nil || len(sums) != 2 || sums[0].Key != "mx.test" || sums[0].Suspension == nil || sums[0].Site == nil || !sums[0].Site.Suspended {
		t.Errorf("Summaries by site: %+v %v", sums, err)
	}
	tb.wait("the domain suspension to end", func() bool { return s.Stats().Recipients == 2 })
	if d := ev.of(queue.EventDelivered); len(d) != 2 || d[1].Recipient != "v@c.test" || !d[1].Time.Equal(until) {
		t.Errorf("delivered %+v; c.test was suspended until %v", d, until)
	}
	resumed := time.Now()
	if err := e.Resume("site", "mx.test"); err != nil {
		t.Fatal(err)
	}
	tb.wait("delivery after resume", func() bool { return s.Stats().Recipients == 0 })
	if sp := e.Suspensions(); len(sp) != 0 {
		t.Errorf("Suspensions after resume: %+v", sp)
	}
	_, _, delivers := c.stats("mx.test")
	for _, d := range delivers[len(before):] {
		if d.t.Before(resumed) {
			t.Errorf("delivery to %s at %v while the site was suspended", d.dest, d.t)
		}
	}

	// A domain suspension holds one domain of a site, not the others.
	_, _, before = c.stats("mx.test")
	if _, err := e.Suspend("domain", "a.test", time.Time{}, ""); err != nil {
		t.Fatal(err)
	}
	id := enqueue(t, s, nil, "x", "w@a.test", "w@b.test")
	tb.wait("b.test delivered", func() bool { return s.Stats().Recipients == 1 })
	synctest.Wait()
	if _, rcpts, _ := e.Show(id); len(rcpts) != 1 || rcpts[0].Domain != "a.test" || rcpts[0].Attempts != 0 {
		t.Errorf("held recipient: %+v", rcpts)
	}
	time.Sleep(time.Second)
	resumed = time.Now()
	e.Resume("domain", "a.test")
	tb.wait("a.test delivered", func() bool { return s.Stats().Recipients == 0 })
	_, _, delivers = c.stats("mx.test")
	for _, d := range delivers[len(before):] {
		if d.dest == "a.test" && !d.t.Equal(resumed) {
			t.Errorf("delivery to a.test at %v; it was suspended until %v", d.t, resumed)
		}
	}
}

// A connection refused with a reply that matches a suspend rule suspends
// the site; the recipients that were waiting are not failed with it but
// wait for the end of the suspension, and go then.
func TestAdaptiveSuspendOnOpen(t *testing.T) { synctest.Test(t, adaptiveSuspendOnOpen) }

func adaptiveSuspendOnOpen(t *testing.T) {
	const suspendFor = 300 * time.Millisecond
	var opens atomic.Int32
	c := &fakeCourier{gate: make(chan struct{}), gateOpen: true, openErr: func(string) error {
		if opens.Add(1) == 1 {
			return resultError(queue.Result{Status: queue.Temporary, Code: 421, Enhanced: "4.7.0", Text: "4.7.0 too many connections from your IP", Remote: "mx.d.test"})
		}
		return nil
	}}
	var ev events
	rule := &shaping.Rule{Name: "conns", Action: shaping.ActionSuspend, Duration: suspendFor}
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
	synctest.Wait()
	if st := s.Stats(); st.Ready != 4 {
		t.Fatalf("stats with the first Open at the gate: %+v", st)
	}
	start := time.Now()
	close(c.gate)
	tb.wait("delivery", func() bool { return len(ev.of(queue.EventDelivered)) == 4 })
	if st := s.Stats(); st.Recipients != 1 {
		t.Errorf("stats: %+v", st)
	}
	calls, _, _ := c.snapshot()
	var at []time.Duration
	for _, cl := range calls {
		at = append(at, cl.t.Sub(start))
	}
	if len(at) != 4 || at[0] != suspendFor {
		t.Errorf("deliveries at +%v; the suspension was of %v", at, suspendFor)
	}
	if d := ev.of(queue.EventDeferred); len(d) != 1 || d[0].Code != 421 {
		t.Errorf("deferred: %+v", d)
	}
	for _, e := range ev.of(queue.EventDelivered) {
		if e.Attempt != 1 || !e.Time.Equal(start.Add(suspendFor)) {
			t.Errorf("delivered at attempt %d, +%v", e.Attempt, e.Time.Sub(start))
		}
	}
}

// A connection that goes idle while another domain of its site waits for
// a slot gives the slot way at once, instead of holding it until its idle
// timeout.
func TestIdleConnectionGivesWay(t *testing.T) { synctest.Test(t, idleConnectionGivesWay) }

func idleConnectionGivesWay(t *testing.T) {
	const idle = 10 * time.Second
	c := &fakeCourier{gate: make(chan struct{})}
	tb := newTestbed(t, queue.Options{}, Config{Courier: c, IdleTimeout: idle,
		Planner: &fakePlanner{siteOf: twoDomains, limits: func(string, string) shaping.Limits { return shaping.Limits{MaxConnections: 1} }}})
	s, e := tb.spool, tb.eng
	enqueue(t, s, nil, "x", "u@a.test")
	synctest.Wait()
	if st := s.Stats(); st.InFlight != 1 {
		t.Fatalf("a.test not in flight: %+v", st)
	}
	enqueue(t, s, nil, "x", "u@b.test")
	// b.test is planned, bound to the site, and waits for its only slot.
	synctest.Wait()
	if st, _ := siteStatus(e, "mx.test"); st.Domains != 2 || st.Ready != 1 {
		t.Fatalf("b.test not waiting for the slot: %+v", st)
	}
	start := time.Now()
	close(c.gate)
	tb.wait("both delivered", func() bool { return s.Stats().Messages == 0 })
	if d := time.Since(start); d != 0 {
		t.Errorf("b.test delivered %v after a.test's connection went idle (idle timeout %v), want at once", d, idle)
	}
	if n := c.openConns(); n > 1 {
		t.Errorf("%d connections open, the site allows 1", n)
	}
}
