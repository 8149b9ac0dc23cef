package engine

import (
	"fmt"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"drover/queue"
	"drover/queue/shaping"
)

// An operator's suspension of a site outlasts a restart: after it, nothing
// goes to the site until the suspension's end, on the clock, and then
// the mail goes. A suspension that ended while Drover was stopped is
// dropped at the start, its record deleted; the one that ends later is
// deleted when it ends.
func TestSuspensionsSurviveRestart(t *testing.T) { synctest.Test(t, suspensionsSurviveRestart) }

func suspensionsSurviveRestart(t *testing.T) {
	dir := t.TempDir()
	c := &mxCourier{}
	var ev events
	cfg := Config{Courier: c, Planner: &fakePlanner{siteOf: twoDomains}}
	tb := newTestbed(t, queue.Options{Dir: dir, OnEvent: ev.add}, cfg)
	enqueue(t, tb.spool, nil, "x", "u@a.test")
	tb.wait("the site is known", func() bool { return tb.stats().Messages == 0 })

	until := time.Now().Add(time.Hour)
	if w, err := tb.eng.Suspend("site", "mx.test", until, "maintenance"); err != nil || w != "" {
		t.Fatalf("Suspend: %q, %v", w, err)
	}
	if _, err := tb.eng.Suspend("domain", "c.test", time.Now().Add(10*time.Minute), "short"); err != nil {
		t.Fatal(err)
	}
	enqueue(t, tb.spool, nil, "x", "v@a.test", "v@b.test")
	synctest.Wait()
	tb.close()

	// Stopped for 20 minutes: the c.test suspension ends meanwhile.
	time.Sleep(20 * time.Minute)
	restarted := time.Now()
	tb = newTestbed(t, queue.Options{Dir: dir, OnEvent: ev.add}, cfg)
	s, e := tb.spool, tb.eng
	sp := e.Suspensions()
	if len(sp) != 1 || sp[0].Kind != "site" || sp[0].Name != "mx.test" || !sp[0].Until.Equal(until) || sp[0].Reason != "maintenance" {
		t.Errorf("Suspensions after the restart: %+v", sp)
	}
	if holds, err := s.Holds(); err != nil || len(holds) != 1 || holds[0].Name != "mx.test" {
		t.Errorf("stored holds after the restart: %+v, %v", holds, err)
	}
	enqueue(t, s, nil, "x", "w@c.test")
	tb.wait("c.test delivered", func() bool { return s.Stats().Recipients == 2 })
	if d := ev.of(queue.EventDelivered); len(d) != 2 || d[1].Recipient != "w@c.test" || !d[1].Time.Equal(restarted) {
		t.Errorf("deliveries: %+v; c.test's suspension had ended at the restart, %v", d, restarted)
	}

	time.Sleep(time.Until(until) - time.Nanosecond)
	synctest.Wait()
	if st := s.Stats(); st.Recipients != 2 {
		t.Fatalf("delivered to the suspended site before the end of its suspension: %+v", st)
	}
	if st, _ := siteStatus(e, "mx.test"); !st.Suspended || !st.SuspendedUntil.Equal(until) {
		t.Errorf("site a nanosecond before the end: %+v", st)
	}
	time.Sleep(time.Nanosecond)
	tb.wait("delivery at the end of the suspension", func() bool { return s.Stats().Recipients == 0 })
	for _, d := range ev.of(queue.EventDelivered)[2:] {
		if !d.Time.Equal(until) {
			t.Errorf("%s delivered at %v; the site was suspended until %v", d.Recipient, d.Time, until)
		}
	}
	if sp := e.Suspensions(); len(sp) != 0 {
		t.Errorf("Suspensions after the end: %+v", sp)
	}
	for _, k := range tb.keys() {
		if strings.HasPrefix(k, `"qo`) {
			t.Errorf("hold record left after the suspension ended: %s", k)
		}
	}
}

// Resume deletes the record: a suspension resumed does not come back at
// the next start.
func TestResumedSuspensionStaysResumed(t *testing.T) { synctest.Test(t, resumedSuspensionStaysResumed) }

func resumedSuspensionStaysResumed(t *testing.T) {
	dir := t.TempDir()
	cfg := Config{Courier: &mxCourier{}, Planner: &fakePlanner{siteOf: twoDomains}}
	tb := newTestbed(t, queue.Options{Dir: dir}, cfg)
	if _, err := tb.eng.Suspend("domain", "a.test", time.Time{}, "until resumed"); err != nil {
		t.Fatal(err)
	}
	tb.close()
	tb = newTestbed(t, queue.Options{Dir: dir}, cfg)
	if sp := tb.eng.Suspensions(); len(sp) != 1 || !sp[0].Until.IsZero() {
		t.Fatalf("Suspensions after the restart: %+v", sp)
	}
	if err := tb.eng.Resume("domain", "a.test"); err != nil {
		t.Fatal(err)
	}
	tb.close()
	tb = newTestbed(t, queue.Options{Dir: dir}, cfg)
	if sp := tb.eng.Suspensions(); len(sp) != 0 {
		t.Fatalf("Suspensions after resume and restart: %+v", sp)
	}
	enqueue(t, tb.spool, nil, "x", "u@a.test")
	tb.wait("delivery", func() bool { return tb.stats().Recipients == 0 })
}

// An adaptive slowdown (a site slowed ×0.25 for 59 minutes by a
// throttling reply) outlasts a restart: after it, the site's rate is still
// a quarter of its own until the slowdown's end, then back to normal, and
// its record is deleted.
func TestAdaptiveSlowdownSurvivesRestart(t *testing.T) {
	synctest.Test(t, adaptiveSlowdownSurvivesRestart)
}

func adaptiveSlowdownSurvivesRestart(t *testing.T) {
	dir := t.TempDir()
	rule := &shaping.Rule{Name: "test-throttle", Action: shaping.ActionSlow, Factor: 0.25, Duration: 59 * time.Minute}
	throttled := false
	c := &mxCourier{reply: func(dest string, r queue.Recipient) queue.Result {
		if strings.HasPrefix(r.Addr, "throttle") {
			throttled = true
			return queue.Result{Status: queue.Temporary, Code: 451, Enhanced: "4.7.500", Text: "4.7.500 Server busy. Please try again later"}
		}
		return queue.Result{Status: queue.Delivered, Code: 250}
	}}
	cfg := Config{Courier: c,
		Rules: ruleFunc(func(code int, enhanced, text string) *shaping.Rule {
			if strings.Contains(text, "Server busy") {
				return rule
			}
			return nil
		}),
		Planner: &fakePlanner{siteOf: twoDomains, limits: func(string, string) shaping.Limits {
			return shaping.Limits{MaxConnections: 4, MaxMessageRate: perSecond(4), RetryInterval: 2 * time.Hour, MaxRetryInterval: 2 * time.Hour}
		}}}
	tb := newTestbed(t, queue.Options{Dir: dir}, cfg)
	enqueue(t, tb.spool, nil, "x", "throttle@a.test")
	tb.wait("the throttling reply", func() bool { return tb.stats().Deferred == 1 })
	st, _ := siteStatus(tb.eng, "mx.test")
	if !throttled || st.Factor != 0.25 {
		t.Fatalf("site after the throttling reply: %+v", st)
	}
	slowUntil := st.SlowUntil
	tb.close()

	time.Sleep(time.Minute) // stopped for a minute
	tb = newTestbed(t, queue.Options{Dir: dir}, cfg)
	s, e := tb.spool, tb.eng
	st, ok := siteStatus(e, "mx.test")
	if !ok || st.Factor != 0.25 || !st.SlowUntil.Equal(slowUntil) {
		t.Errorf("site after the restart: %+v (known %v); slowed until %v", st, ok, slowUntil)
	}
	if sp := e.Suspensions(); len(sp) != 1 || !sp[0].Adaptive || sp[0].Factor != 0.25 || sp[0].Name != "mx.test" || sp[0].Reason != "test-throttle" {
		t.Errorf("Suspensions after the restart: %+v", sp)
	}
	// Delivered one a second (4/s × 0.25), not four.
	_, _, before := c.stats("mx.test")
	for i := range 5 {
		enqueue(t, s, nil, "x", fmt.Sprintf("u%d@a.test", i))
	}
	tb.wait("the slowed deliveries", func() bool { return s.Stats().Recipients == 1 })
	_, _, delivers := c.stats("mx.test")
	slowed := delivers[len(before):]
	if len(slowed) != 5 {
		t.Fatalf("%d deliveries, want 5", len(slowed))
	}
	if st, _ := siteStatus(e, "mx.test"); st.MaxConnections != 1 || st.MessageRate != 1 {
		t.Errorf("slowed site, planned: %+v", st)
	}
	for i := 1; i < len(slowed); i++ {
		if gap := slowed[i].t.Sub(slowed[i-1].t); gap < time.Second {
			t.Errorf("deliveries %v apart while slowed to 1/s", gap)
		}
	}

	// At the end of the slowdown: the site's own rate, and no record.
	time.Sleep(time.Until(slowUntil))
	synctest.Wait()
	if st, _ := siteStatus(e, "mx.test"); st.Factor != 1 {
		t.Errorf("site at the end of the slowdown: %+v", st)
	}
	if holds, err := s.Holds(); err != nil || len(holds) != 0 {
		t.Errorf("stored holds at the end of the slowdown: %+v, %v", holds, err)
	}
	_, _, before = c.stats("mx.test")
	for i := range 5 {
		enqueue(t, s, nil, "x", fmt.Sprintf("w%d@a.test", i))
	}
	tb.wait("the deliveries at full speed", func() bool { return s.Stats().Recipients == 1 })
	_, _, delivers = c.stats("mx.test")
	if fast := delivers[len(before):]; len(fast) != 5 || fast[4].t.Sub(fast[0].t) > time.Second {
		t.Errorf("5 deliveries at 4/s took %v", fast[len(fast)-1].t.Sub(fast[0].t))
	}
}

// Suspending a site name that matches nothing known records the
// suspension but warns; a site the engine has seen, or one the shaping
// configuration names, is known.
func TestSuspendUnknownSiteWarns(t *testing.T) { synctest.Test(t, suspendUnknownSiteWarns) }

func suspendUnknownSiteWarns(t *testing.T) {
	sh, err := shaping.New(shaping.Config{
		ShippedProviders: map[string]shaping.Provider{"google": {MX: []string{"*.google.com"}}},
		Sites:            map[string]shaping.Settings{"configured.example": {}},
	})
	if err != nil {
		t.Fatal(err)
	}
	tb := newTestbed(t, queue.Options{}, Config{Courier: &mxCourier{}, Planner: &fakePlanner{siteOf: twoDomains},
		KnownSites: shaping.NewCurrent(sh)})
	e := tb.eng
	enqueue(t, tb.spool, nil, "x", "u@a.test")
	tb.wait("the site is known", func() bool { return tb.stats().Messages == 0 })
	until := time.Now().Add(time.Hour)
	// A held recipient keeps a.test known to the engine, with its site.
	if w, err := e.Suspend("site", "mx.test", until, ""); err != nil || w != "" {
		t.Fatalf("Suspend site mx.test: %q, %v", w, err)
	}
	enqueue(t, tb.spool, nil, "x", "v@a.test")
	synctest.Wait()
	for _, c := range []struct{ kind, name, warning string }{
		{"site", "mx.test", ""},            // seen by the engine, suspended again
		{"site", "google.com", ""},         // a provider's site
		{"site", "configured.example", ""}, // configured
		{"domain", "nowhere.example", ""},  // domains are not checked
		{"site", "x.example", "no known site is named x.example; the suspension is recorded"},
		{"site", "google", "the site of provider google is google.com"},
		{"site", "a.test", "a.test is a domain of site mx.test"},
	} {
		w, err := e.Suspend(c.kind, c.name, until, "")
		if err != nil {
			t.Errorf("Suspend %s %s: %v", c.kind, c.name, err)
		}
		if c.warning == "" && w != "" || !strings.Contains(w, c.warning) {
			t.Errorf("Suspend %s %s: warning %q, want %q", c.kind, c.name, w, c.warning)
		}
	}
	if sp := e.Suspensions(); len(sp) != 7 {
		t.Errorf("Suspensions: %+v, want all 7 recorded", sp)
	}
}
