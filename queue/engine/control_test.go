package engine

import (
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"drover/queue"
	"drover/queue/shaping"
	"drover/testkit"
)

// Known sites group their domains; others count under their own name. A
// domain stays known while it has recipients queued, after its idle
// connections closed too.
func TestSummariesBySite(t *testing.T) { synctest.Test(t, summariesBySite) }

func summariesBySite(t *testing.T) {
	c := &mxCourier{reply: func(dest string, r queue.Recipient) queue.Result {
		return queue.Result{Status: queue.Temporary, Code: 451, Text: "busy " + dest}
	}}
	cfg := Config{Courier: c, Planner: &fakePlanner{siteOf: twoDomains}, IdleTimeout: time.Millisecond}
	idle := func() bool { return c.openNow("mx.test") == 0 && c.openNow("c.test") == 0 }
	dir := t.TempDir()
	tb := newTestbed(t, queue.Options{Dir: dir}, cfg)
	enqueue(t, tb.spool, nil, "x", "u@a.test", "u@b.test", "v@b.test")
	tb.wait("attempts", func() bool { st := tb.stats(); return st.Deferred == 3 && st.InFlight == 0 })
	tb.close()
	time.Sleep(time.Second)
	tb = newTestbed(t, queue.Options{Dir: dir}, cfg)
	enqueue(t, tb.spool, nil, "x", "w@b.test", "w@c.test")
	tb.wait("attempts", func() bool { st := tb.stats(); return st.Deferred == 5 && st.InFlight == 0 && idle() })
	keys := func(want string) []Summary {
		t.Helper()
		sums, err := tb.eng.Summaries("site")
		if err != nil {
			t.Fatal(err)
		}
		if g := summaryKeys(sums); g != want {
			t.Errorf("Summaries(site) = %s, want %s", g, want)
		}
		return sums
	}
	// a.test was not attempted since the reopen: it is its own site.
	sums := keys("mx.test:3/2 a.test:1/1 c.test:1/1")
	if sm := sums[0]; sm.Site == nil || sm.Site.Domains != 1 || sm.LastError != "451 busy b.test" {
		t.Errorf("site summary: %+v %+v", sm, sm.Site)
	}
	time.Sleep(time.Second)
	enqueue(t, tb.spool, nil, "x", "x@a.test")
	tb.wait("attempts", func() bool { st := tb.stats(); return st.Deferred == 6 && st.InFlight == 0 && idle() })
	sums = keys("mx.test:5/3 c.test:1/1")
	if sm := sums[0]; sm.Site == nil || sm.Site.Name != "mx.test" || sm.Site.Domains != 2 || sm.Site.Factor != 1 ||
		sm.Site.MaxConnections != shaping.BuiltinLimits.MaxConnections || sm.LastError != "451 busy a.test" {
		t.Errorf("site summary: %+v %+v", sm, sm.Site)
	}
	dsums, _ := tb.eng.Summaries("domain")
	if len(dsums) != 3 || dsums[0].Key != "b.test" || dsums[0].Site == nil || dsums[0].Site.Name != "mx.test" {
		t.Errorf("Summaries(domain): %+v", dsums)
	}

	// Without an engine, every domain is its own site.
	tb.close()
	s, err := queue.Open(queue.Options{Dir: dir, Logger: testLogger()})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close(t.Context())
	qs, err := s.Summaries("site", nil)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, sm := range qs {
		got = append(got, fmt.Sprintf("%s:%d/%d", sm.Key, sm.Recipients, sm.Messages))
	}
	if g, want := strings.Join(got, " "), "b.test:3/2 a.test:2/2 c.test:1/1"; g != want {
		t.Errorf("Summaries(site) without an engine = %s, want %s", g, want)
	}
}

// Bounce and Delete take recipients waiting in memory (here, for the
// destination's only connection) and skip those in flight.
func TestOperatorReadyAndInFlight(t *testing.T) { synctest.Test(t, operatorReadyAndInFlight) }

func operatorReadyAndInFlight(t *testing.T) {
	c := &fakeCourier{gate: make(chan struct{})}
	var ev events
	tb := newTestbed(t, queue.Options{OnEvent: ev.add}, Config{Courier: c,
		Planner: &fakePlanner{limits: func(string, string) shaping.Limits { return shaping.Limits{MaxConnections: 1} }}})
	s, e := tb.spool, tb.eng
	enqueue(t, s, &queue.Message{Campaign: "x"}, "x", "u0@g.test")
	synctest.Wait()
	if st := s.Stats(); st.InFlight != 1 {
		t.Fatalf("stats with one delivery at the gate: %+v", st)
	}
	for i := 1; i < 5; i++ {
		enqueue(t, s, &queue.Message{Campaign: "x"}, "x", fmt.Sprintf("u%d@g.test", i))
	}
	if st := s.Stats(); st.Ready != 4 {
		t.Fatalf("stats: %+v", st)
	}
	if n, err := e.Delete(queue.Selector{Campaign: "x"}, true, nil); n != 4 || err != nil {
		t.Fatalf("dry run: %d %v", n, err)
	}
	if n, err := e.Delete(queue.Selector{Campaign: "x"}, false, nil); n != 4 || err != nil {
		t.Fatalf("Delete: %d %v", n, err)
	}
	if st := s.Stats(); st.Ready != 0 || st.InFlight != 1 || st.Recipients != 1 || st.Messages != 1 {
		t.Errorf("stats: %+v", st)
	}
	close(c.gate)
	tb.wait("delivery", func() bool { return s.Stats().Messages == 0 })
	if _, delivered, _ := c.snapshot(); len(delivered) != 1 {
		t.Errorf("delivered %v", delivered)
	}
	if keys := tb.keys(); len(keys) > 0 {
		t.Errorf("keys left: %v", keys)
	}
}

// OnDelay is called once per recipient, at its first deferral after it
// has been queued DelayNotice, and not again after a restart.
func TestDelayNotice(t *testing.T) { synctest.Test(t, delayNotice) }

func delayNotice(t *testing.T) {
	const notice = 100 * time.Millisecond
	dir := t.TempDir()
	c := &fakeCourier{decide: func(string, queue.Recipient) queue.Result {
		return queue.Result{Status: queue.Temporary, Code: 451, Text: "busy"}
	}}
	var mu sync.Mutex
	notified := map[string][]int{} // addr -> attempts at each OnDelay
	var ev events
	opts := queue.Options{Dir: dir, OnEvent: ev.add, DelayNotice: notice,
		OnDelay: func(msg *queue.Message, _ []byte, rcpts []queue.Recipient, _ time.Time) error {
			mu.Lock()
			defer mu.Unlock()
			for _, r := range rcpts {
				if r.Attempts == 0 || r.LastError == "" {
					t.Errorf("OnDelay recipient: %+v", r)
				}
				notified[r.Addr] = append(notified[r.Addr], r.Attempts)
			}
			return nil
		}}
	cfg := Config{Courier: c, Planner: &fakePlanner{limits: func(string, string) shaping.Limits {
		return shaping.Limits{RetryInterval: 20 * time.Millisecond, MaxRetryInterval: 20 * time.Millisecond}
	}}}
	calls := func() map[string][]int {
		mu.Lock()
		defer mu.Unlock()
		out := map[string][]int{}
		for k, v := range notified {
			out[k] = slices.Clone(v)
		}
		return out
	}
	// firstLate is the attempt of each recipient's first deferral past
	// DelayNotice, and how many it has had past it.
	firstLate := func() (first, late map[string]int) {
		first, late = map[string]int{}, map[string]int{}
		for _, e := range ev.of(queue.EventDeferred) {
			if e.Delay >= notice {
				if late[e.Recipient] == 0 {
					first[e.Recipient] = e.Attempt
				}
				late[e.Recipient]++
			}
		}
		return first, late
	}
	tb := newTestbed(t, opts, cfg)
	id := enqueue(t, tb.spool, nil, "x", "a@d.test", "b@d.test")
	tb.wait("two deferrals each past DelayNotice", func() bool {
		_, late := firstLate()
		return late["a@d.test"] >= 2 && late["b@d.test"] >= 2 && tb.stats().InFlight == 0
	})
	first, _ := firstLate()
	got := calls()
	for _, a := range []string{"a@d.test", "b@d.test"} {
		// Once, with the first deferral past DelayNotice: not before.
		if len(got[a]) != 1 || got[a][0] != first[a] {
			t.Errorf("OnDelay for %s at attempts %v, its first deferral past %v was attempt %d", a, got[a], notice, first[a])
		}
	}
	_, rcpts, _ := tb.eng.Show(id)
	if len(rcpts) != 2 || !rcpts[0].DelayNotified || !rcpts[1].DelayNotified {
		t.Errorf("recipients: %+v", rcpts)
	}
	tb.close()
	n := len(ev.of(queue.EventDeferred))
	tb = newTestbed(t, opts, cfg)
	tb.wait("deferrals after reopen", func() bool { return len(ev.of(queue.EventDeferred)) >= n+4 && tb.stats().InFlight == 0 })
	if after := calls(); len(after["a@d.test"]) != 1 || len(after["b@d.test"]) != 1 {
		t.Errorf("OnDelay called again after a reopen: %v", after)
	}
}

// Operator commands race deliveries, retries and the scheduler: every
// recipient ends exactly once (delivered, bounced or deleted), and nothing
// is left behind.
//
// Real time, not a synctest bubble: there, the commands' pauses and the
// millisecond retries would end only when every goroutine is blocked, so
// commands, retries and deliveries would take turns instead of racing.
func TestControlUnderLoad(t *testing.T) {
	c := &fakeCourier{decide: func(dest string, r queue.Recipient) queue.Result {
		if r.Attempts < len(r.Addr)%3 {
			return queue.Result{Status: queue.Temporary, Code: 451, Text: "again"}
		}
		return queue.Result{Status: queue.Delivered}
	}}
	var ev events
	var hookMu sync.Mutex
	hooked := map[string]int{}
	tb := newTestbed(t, queue.Options{NoSync: true, ReadyCapacity: 4, MaxInMemory: 16, OnEvent: ev.add,
		OnFailure: func(msg *queue.Message, body []byte, failed []queue.Failed) error {
			hookMu.Lock()
			defer hookMu.Unlock()
			for _, f := range failed {
				hooked[msg.ID+" "+f.Recipient.Addr]++
			}
			return nil
		}}, Config{Courier: c, Planner: &fakePlanner{
		siteOf: map[string]string{"d0.test": "s.test", "d1.test": "s.test"},
		limits: func(string, string) shaping.Limits {
			return shaping.Limits{MaxConnections: 2, MaxRecipientsPerMessage: 2, RetryInterval: time.Millisecond, MaxRetryInterval: 3 * time.Millisecond}
		}}})
	s, e := tb.spool, tb.eng
	var wg sync.WaitGroup
	stop := make(chan struct{})
	var rounds atomic.Int64
	var opErr error
	var opMu sync.Mutex
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			var err error
			switch i % 4 {
			case 0:
				_, err = e.Flush(queue.Selector{}, nil)
			case 1:
				_, err = e.Delete(queue.Selector{Campaign: "c3"}, false, nil)
			case 2:
				_, err = e.Bounce(queue.Selector{Campaign: "c2", Site: "s.test"}, "test", false, nil)
			case 3:
				_, err = e.Summaries("site")
			}
			if err != nil {
				opMu.Lock()
				opErr = err
				opMu.Unlock()
			}
			rounds.Add(1)
			time.Sleep(time.Millisecond)
		}
	}()
	var pwg sync.WaitGroup
	for p := range 3 {
		pwg.Add(1)
		go func() {
			defer pwg.Done()
			for i := range 60 {
				var addrs []string
				for j := range 1 + i%4 {
					addrs = append(addrs, fmt.Sprintf("u%d.%d.%s@d%d.test", p, i, strings.Repeat("x", j), (i+j)%3))
				}
				enqueue(t, s, &queue.Message{Campaign: fmt.Sprintf("c%d", i%4)}, "x", addrs...)
			}
		}()
	}
	pwg.Wait()
	// A few more rounds of commands after the last enqueue.
	after := rounds.Load()
	testkit.WaitFor(t, patience, "more operator commands", func() bool { return rounds.Load() >= after+20 })
	close(stop)
	wg.Wait()
	if opErr != nil {
		t.Errorf("operator command: %v", opErr)
	}
	total := 0
	for range 3 {
		for i := range 60 {
			total += 1 + i%4
		}
	}
	// Events follow the records' removal: wait for both.
	tb.wait("the queue to drain and every recipient's end event", func() bool {
		return s.Stats().Messages == 0 &&
			len(ev.of(queue.EventDelivered))+len(ev.of(queue.EventBounced))+len(ev.of(queue.EventDeleted)) >= total
	})
	_, delivered, _ := c.snapshot()
	ends := map[string][]queue.EventKind{}
	ev.mu.Lock()
	all := slices.Clone(ev.all)
	ev.mu.Unlock()
	for _, e := range all {
		if e.Kind == queue.EventDelivered || e.Kind == queue.EventBounced || e.Kind == queue.EventDeleted {
			ends[e.MsgID+" "+e.Recipient] = append(ends[e.MsgID+" "+e.Recipient], e.Kind)
			if e.Kind == queue.EventBounced && (e.Campaign != "c2" || strings.Contains(e.Recipient, "@d2.test")) ||
				e.Kind == queue.EventDeleted && e.Campaign != "c3" {
				t.Errorf("%s of %s (%s)", e.Kind, e.Recipient, e.Campaign)
			}
		}
	}
	if len(ends) != total {
		t.Errorf("%d recipients ended, want %d", len(ends), total)
	}
	for k, kinds := range ends {
		if len(kinds) != 1 {
			t.Errorf("%s ended %v", k, kinds)
		}
		if kinds[0] == queue.EventDelivered && delivered[k] != 1 || kinds[0] != queue.EventDelivered && delivered[k] != 0 {
			t.Errorf("%s: %v, delivered %d times", k, kinds, delivered[k])
		}
		if kinds[0] == queue.EventBounced && hooked[k] != 1 {
			t.Errorf("%s bounced, OnFailure %d times", k, hooked[k])
		}
	}
	if st := s.Stats(); st != (queue.Stats{}) {
		t.Errorf("stats: %+v", st)
	}
	if keys := tb.keys(); len(keys) > 0 {
		t.Errorf("keys left: %v", keys)
	}
	t.Logf("%d delivered, %d bounced, %d deleted", len(ev.of(queue.EventDelivered)), len(ev.of(queue.EventBounced)), len(ev.of(queue.EventDeleted)))
}
