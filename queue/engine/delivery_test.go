package engine

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"drover/queue"
	"drover/queue/shaping"
)

func TestEnqueueDeliver(t *testing.T) {
	c := &fakeCourier{}
	var ev events
	tb := newTestbed(t, queue.Options{OnEvent: ev.add}, Config{Courier: c})
	s := tb.spool
	var ids []string
	for i := range 20 {
		ids = append(ids, enqueue(t, s, nil, fmt.Sprintf("body %d", i), "a@x.test", "b@x.test", "C@Y.Test"))
	}
	waitFor(t, "all delivered", func() bool { return s.Stats().Messages == 0 })

	calls, delivered, _ := c.snapshot()
	for _, id := range ids {
		for _, a := range []string{"a@x.test", "b@x.test", "C@Y.Test"} {
			if n := delivered[id+" "+a]; n != 1 {
				t.Errorf("%s %s delivered %d times", id, a, n)
			}
		}
		if _, err := s.Body(id); !errors.Is(err, queue.ErrNotFound) {
			t.Errorf("Body(%s) after delivery: %v", id, err)
		}
		if _, _, err := tb.eng.Show(id); !errors.Is(err, queue.ErrNotFound) {
			t.Errorf("Show(%s) after delivery: %v", id, err)
		}
	}
	for _, cl := range calls {
		if cl.dest != "x.test" && cl.dest != "y.test" {
			t.Errorf("delivery to destination %q", cl.dest)
		}
		if i := slices.Index(ids, cl.id); cl.body != fmt.Sprintf("body %d", i) {
			t.Errorf("message %s delivered with body %q", cl.id, cl.body)
		}
		if cl.from != "bounces@acme.test" {
			t.Errorf("message %s delivered from %q", cl.id, cl.from)
		}
	}
	if st := s.Stats(); st != (queue.Stats{}) {
		t.Errorf("stats after delivery: %+v", st)
	}
	dl := ev.of(queue.EventDelivered)
	if len(dl) != 60 {
		t.Fatalf("%d delivered events, want 60", len(dl))
	}
	for _, e := range dl {
		if e.Attempt != 1 || e.Code != 250 || e.Sender != "acme" || e.ReturnPath != "bounces@acme.test" || e.Delay < 0 || e.Size == 0 {
			t.Errorf("delivered event: %+v", e)
		}
	}
	if keys := tb.keys(); len(keys) > 0 {
		t.Errorf("keys left after delivery: %v", keys)
	}
}

func TestPerRecipientResults(t *testing.T) {
	clk := newClock()
	c := &fakeCourier{decide: func(dest string, r queue.Recipient) queue.Result {
		switch {
		case strings.HasPrefix(r.Addr, "later"):
			return queue.Result{Status: queue.Temporary, Code: 451, Enhanced: "4.2.0", Text: "4.2.0 try later", Remote: "mx.d.test"}
		case strings.HasPrefix(r.Addr, "bad"):
			return queue.Result{Status: queue.Permanent, Code: 550, Enhanced: "5.1.1", Text: "5.1.1 no such user", Class: "hard", Reason: "userunknown"}
		}
		return queue.Result{Status: queue.Delivered, Code: 250}
	}}
	var ev events
	var mu sync.Mutex
	var hooked [][]queue.Failed
	var s *queue.Spool
	tb := newTestbed(t, queue.Options{Now: clk.Now, OnEvent: ev.add,
		OnFailure: func(msg *queue.Message, body []byte, failed []queue.Failed) error {
			// Called before the records go: they must still be there.
			_, rcpts, err := s.Show(msg.ID)
			if err != nil || !slices.ContainsFunc(rcpts, func(r queue.Recipient) bool { return r.Addr == "bad@d.test" }) {
				t.Errorf("OnFailure: records already gone: %v %v", rcpts, err)
			}
			if string(body) != "hello" {
				t.Errorf("OnFailure body %q", body)
			}
			mu.Lock()
			hooked = append(hooked, failed)
			mu.Unlock()
			return nil
		}}, Config{Courier: c})
	s = tb.spool
	id := enqueue(t, s, nil, "hello", "ok@d.test", "later@d.test", "bad@d.test")
	waitFor(t, "outcomes", func() bool { return s.Stats().InFlight == 0 && len(ev.of(queue.EventDeferred)) == 1 })

	calls, _, _ := c.snapshot()
	if len(calls) != 1 || len(calls[0].addrs) != 3 {
		t.Fatalf("want one delivery with 3 recipients, got %+v", calls)
	}
	if n := len(ev.of(queue.EventDelivered)); n != 1 {
		t.Errorf("%d delivered events", n)
	}
	b := ev.of(queue.EventBounced)
	if len(b) != 1 || b[0].Recipient != "bad@d.test" || b[0].Code != 550 || b[0].Class != "hard" || b[0].Reason != "userunknown" {
		t.Errorf("bounced events: %+v", b)
	}
	d := ev.of(queue.EventDeferred)[0]
	now := clk.Now()
	if d.Recipient != "later@d.test" || d.Attempt != 1 || d.Code != 451 || d.Remote != "mx.d.test" ||
		d.NextRetry.Before(now.Add(4*time.Minute)) || d.NextRetry.After(now.Add(6*time.Minute)) {
		t.Errorf("deferred event: %+v", d)
	}
	mu.Lock()
	if len(hooked) != 1 || len(hooked[0]) != 1 || hooked[0][0].Recipient.Addr != "bad@d.test" ||
		hooked[0][0].Result.Code != 550 || hooked[0][0].Expired || hooked[0][0].Recipient.Attempts != 1 {
		t.Errorf("OnFailure calls: %+v", hooked)
	}
	mu.Unlock()

	msg, rcpts, err := tb.eng.Show(id)
	if err != nil {
		t.Fatal(err)
	}
	if msg.Sender != "acme" || msg.Size != 5 || !msg.Received.Equal(now) {
		t.Errorf("Show message: %+v", msg)
	}
	if len(rcpts) != 1 {
		t.Fatalf("Show recipients: %+v", rcpts)
	}
	r := rcpts[0]
	if r.Addr != "later@d.test" || r.Index != 1 || r.Domain != "d.test" || r.Attempts != 1 ||
		r.LastError != "451 4.2.0 try later" || !r.NextAttempt.Equal(d.NextRetry) || !r.LastAttempt.Equal(now) {
		t.Errorf("Show recipient: %+v", r)
	}
	st := s.Stats()
	if st.Messages != 1 || st.Recipients != 1 || st.Deferred != 1 || st.Ready != 0 || !st.Oldest.Equal(now) {
		t.Errorf("stats: %+v", st)
	}
	if body, err := s.Body(id); err != nil || string(body) != "hello" {
		t.Errorf("Body: %q %v", body, err)
	}
	ds, err := tb.eng.Summaries("domain")
	if err != nil || len(ds) != 1 || ds[0].Key != "d.test" || ds[0].Recipients != 1 || !ds[0].Oldest.Equal(now) || ds[0].LastError != "451 4.2.0 try later" {
		t.Errorf("Summaries: %+v %v", ds, err)
	}
}

// Many producers, small ready queues, and retries that come back within
// milliseconds: the scheduler's loads race with enqueues, deliveries and
// reschedules, and still every recipient is delivered exactly once.
func TestNoDuplicateDeliveries(t *testing.T) {
	c := &fakeCourier{decide: func(dest string, r queue.Recipient) queue.Result {
		if r.Attempts < len(r.Addr)%3 {
			return queue.Result{Status: queue.Temporary, Code: 451, Text: "again"}
		}
		return queue.Result{Status: queue.Delivered}
	}}
	tb := newTestbed(t, queue.Options{NoSync: true, ReadyCapacity: 3, MaxInMemory: 8}, Config{Courier: c,
		Planner: &fakePlanner{limits: func(string, string) shaping.Limits {
			return shaping.Limits{MaxConnections: 2, MaxRecipientsPerMessage: 2, RetryInterval: time.Millisecond, MaxRetryInterval: 3 * time.Millisecond}
		}}})
	s := tb.spool
	var mu sync.Mutex
	want := map[string]bool{}
	var wg sync.WaitGroup
	for p := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 75 {
				var addrs []string
				for j := range 1 + i%4 {
					addrs = append(addrs, fmt.Sprintf("u%d.%d.%s@d%d.test", p, i, strings.Repeat("x", j), (i+j)%3))
				}
				id := enqueue(t, s, nil, "x", addrs...)
				mu.Lock()
				for _, a := range addrs {
					want[id+" "+a] = true
				}
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	waitFor(t, "delivery", func() bool { return s.Stats().Messages == 0 })
	_, delivered, _ := c.snapshot()
	if len(delivered) != len(want) {
		t.Errorf("%d recipients delivered, want %d", len(delivered), len(want))
	}
	for k, n := range delivered {
		if n != 1 || !want[k] {
			t.Errorf("%s delivered %d times", k, n)
		}
	}
	if st := s.Stats(); st != (queue.Stats{}) {
		t.Errorf("stats: %+v", st)
	}
	if keys := tb.keys(); len(keys) > 0 {
		t.Errorf("keys left: %v", keys)
	}
}

func TestGroupingAndSplit(t *testing.T) {
	c := &fakeCourier{}
	tb := newTestbed(t, queue.Options{}, Config{Courier: c,
		Planner: &fakePlanner{limits: func(string, string) shaping.Limits { return shaping.Limits{MaxRecipientsPerMessage: 2} }}})
	s := tb.spool
	addrs := []string{"1@a.test", "1@b.test", "2@a.test", "3@a.test", "2@b.test", "4@A.test", "5@a.test", "3@b.test"}
	id := enqueue(t, s, nil, "x", addrs...)
	waitFor(t, "delivery", func() bool { return s.Stats().Messages == 0 })
	calls, delivered, _ := c.snapshot()
	sizes := map[string][]int{}
	for _, cl := range calls {
		sizes[cl.dest] = append(sizes[cl.dest], len(cl.addrs))
		for _, a := range cl.addrs {
			if !strings.HasSuffix(strings.ToLower(a), "@"+cl.dest) {
				t.Errorf("%s delivered to %s", a, cl.dest)
			}
		}
	}
	slices.Sort(sizes["a.test"])
	slices.Sort(sizes["b.test"])
	if !slices.Equal(sizes["a.test"], []int{1, 2, 2}) || !slices.Equal(sizes["b.test"], []int{1, 2}) {
		t.Errorf("transactions per destination: %v", sizes)
	}
	for _, a := range addrs {
		if delivered[id+" "+a] != 1 {
			t.Errorf("%s delivered %d times", a, delivered[id+" "+a])
		}
	}
}

func TestConnectionLimits(t *testing.T) {
	c := &fakeCourier{delay: 2 * time.Millisecond}
	tb := newTestbed(t, queue.Options{NoSync: true}, Config{Courier: c, IdleTimeout: 50 * time.Millisecond,
		Planner: &fakePlanner{limits: func(string, string) shaping.Limits {
			return shaping.Limits{MaxConnections: 3, MaxMessagesPerConnection: 4}
		}}})
	s := tb.spool
	for i := range 60 {
		enqueue(t, s, nil, "x", fmt.Sprintf("u%d@big.test", i))
	}
	waitFor(t, "delivery", func() bool { return s.Stats().Messages == 0 })
	c.mu.Lock()
	maxOpen, maxSent, opens := c.maxOpen["big.test"], c.maxSent, c.opens
	c.mu.Unlock()
	if maxOpen > 3 {
		t.Errorf("%d connections open at once, limit 3", maxOpen)
	}
	if maxOpen < 2 {
		t.Errorf("only %d connection at a time for 60 queued messages", maxOpen)
	}
	if maxSent > 4 {
		t.Errorf("%d messages on one connection, limit 4", maxSent)
	}
	if opens < 15 {
		t.Errorf("%d connections opened for 60 messages at 4 per connection", opens)
	}
	waitFor(t, "idle connections closed", func() bool { return c.openConns() == 0 })
}

// The destination's retry policy comes from its plan: each retry waits
// RetryInterval doubled per attempt up to MaxRetryInterval (±20%), no
// attempt comes before its time, and the recipient expires past MaxAge.
// Real time, short intervals: the spool's tests step through the same
// schedule with a clock.
func TestBackoffAndExpiry(t *testing.T) {
	const iv, maxIv, maxAge = 20 * time.Millisecond, 80 * time.Millisecond, 600 * time.Millisecond
	c := &fakeCourier{decide: func(string, queue.Recipient) queue.Result {
		return queue.Result{Status: queue.Temporary, Code: 451, Enhanced: "4.4.1", Text: "busy", Remote: "mx.slow.test"}
	}}
	var ev events
	var mu sync.Mutex
	var hooked []queue.Failed
	tb := newTestbed(t, queue.Options{OnEvent: ev.add,
		OnFailure: func(msg *queue.Message, body []byte, failed []queue.Failed) error {
			mu.Lock()
			hooked = append(hooked, failed...)
			mu.Unlock()
			return nil
		}}, Config{Courier: c, Planner: &fakePlanner{limits: func(string, string) shaping.Limits {
		return shaping.Limits{RetryInterval: iv, MaxRetryInterval: maxIv, MaxAge: maxAge}
	}}})
	s := tb.spool
	enqueue(t, s, nil, "x", "u@slow.test")
	waitFor(t, "expiry", func() bool { return s.Stats().Messages == 0 })
	calls, _, _ := c.snapshot()
	deferred := ev.of(queue.EventDeferred)
	x := ev.of(queue.EventExpired)
	if len(x) != 1 {
		t.Fatalf("expired events: %+v", x)
	}
	if len(deferred) < 3 || len(calls) < len(deferred) || len(calls) > len(deferred)+1 {
		t.Fatalf("%d deferrals for %d attempts", len(deferred), len(calls))
	}
	for i, d := range deferred {
		attempt := i + 1
		if d.Attempt != attempt {
			t.Errorf("deferred event %d has attempt %d", attempt, d.Attempt)
		}
		base := min(iv<<(attempt-1), maxIv)
		if delay := d.NextRetry.Sub(d.Time); delay < base*8/10 || delay > base*12/10 || delay > maxIv {
			t.Errorf("attempt %d: retry after %v, want %v ±20%% and at most %v", attempt, delay, base, maxIv)
		}
		if d.Delay > maxAge {
			t.Errorf("attempt %d deferred %v after receipt, past MaxAge", attempt, d.Delay)
		}
		if attempt < len(calls) && calls[attempt].t.Before(d.NextRetry) {
			t.Errorf("attempt %d at %v, before its retry time %v", attempt+1, calls[attempt].t, d.NextRetry)
		}
	}
	// Expired when due past MaxAge, without another attempt, or at the
	// temporary failure of an attempt that ended past it.
	attempts := x[0].Attempt
	if attempts != len(calls) || x[0].Enhanced != "4.4.7" ||
		x[0].Text != fmt.Sprintf("4.4.7 message expired after %d attempts: 451 4.4.1 busy", attempts) || x[0].Delay <= maxAge {
		t.Errorf("expired event after %d attempts: %+v", len(calls), x)
	}
	if attempts == len(deferred) && x[0].Time.Before(deferred[len(deferred)-1].NextRetry) {
		t.Errorf("expired at %v, before the retry due at %v", x[0].Time, deferred[len(deferred)-1].NextRetry)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(hooked) != 1 || !hooked[0].Expired || hooked[0].Result.Enhanced != "4.4.7" || hooked[0].Recipient.Attempts != attempts {
		t.Errorf("OnFailure: %+v", hooked)
	}
}

func TestExpiredAtTemporaryFailure(t *testing.T) {
	clk := newClock()
	start := clk.Now()
	c := &fakeCourier{decide: func(string, queue.Recipient) queue.Result {
		clk.Set(start.Add(time.Hour + time.Second)) // the attempt took long
		return queue.Result{Status: queue.Temporary, Code: 451, Enhanced: "4.4.1", Text: "busy", Remote: "mx.slow.test"}
	}}
	var ev events
	tb := newTestbed(t, queue.Options{Now: clk.Now, OnEvent: ev.add}, Config{Courier: c,
		Planner: &fakePlanner{limits: func(string, string) shaping.Limits { return shaping.Limits{MaxAge: time.Hour} }}})
	s := tb.spool
	enqueue(t, s, nil, "x", "u@slow.test")
	waitFor(t, "expiry", func() bool { return s.Stats().Messages == 0 })
	x := ev.of(queue.EventExpired)
	if len(x) != 1 || x[0].Attempt != 1 || x[0].Code != 0 || x[0].Remote != "mx.slow.test" ||
		x[0].Text != "4.4.7 message expired after 1 attempts: 451 4.4.1 busy" {
		t.Errorf("expired events: %+v", x)
	}
	if n := len(ev.of(queue.EventDeferred)); n != 0 {
		t.Errorf("%d deferred events", n)
	}
}

func TestExpiredWhenDue(t *testing.T) {
	clk := newClock()
	c := &fakeCourier{}
	var ev events
	tb := newTestbed(t, queue.Options{Now: clk.Now, OnEvent: ev.add}, Config{Courier: c})
	s := tb.spool
	enqueue(t, s, &queue.Message{Received: clk.Now().Add(-shaping.BuiltinLimits.MaxAge - time.Second)}, "x", "u@old.test")
	waitFor(t, "expiry", func() bool { return s.Stats().Messages == 0 })
	if calls, _, opens := c.snapshot(); len(calls) != 0 || opens != 0 {
		t.Errorf("expired message was attempted: %d calls, %d opens", len(calls), opens)
	}
	x := ev.of(queue.EventExpired)
	if len(x) != 1 || x[0].Text != "4.4.7 message expired after 0 attempts" {
		t.Errorf("expired events: %+v", x)
	}
}

// A failing OnFailure keeps the records; the hook is retried after the
// destination's retry interval, without another delivery attempt.
func TestOnFailureErrorKeepsRecords(t *testing.T) {
	const iv = 50 * time.Millisecond
	c := &fakeCourier{decide: func(string, queue.Recipient) queue.Result {
		return queue.Result{Status: queue.Permanent, Code: 550, Enhanced: "5.1.1", Text: "no such user"}
	}}
	var ev events
	var mu sync.Mutex
	var hookTimes []time.Time
	retried := make(chan struct{}) // closed by the test to let the retried hook return
	tb := newTestbed(t, queue.Options{OnEvent: ev.add,
		OnFailure: func(msg *queue.Message, body []byte, failed []queue.Failed) error {
			mu.Lock()
			hookTimes = append(hookTimes, time.Now())
			n := len(hookTimes)
			mu.Unlock()
			if len(failed) != 2 || failed[0].Result.Code != 550 || string(body) != "dsn me" {
				t.Errorf("OnFailure call %d: %+v %q", n, failed, body)
			}
			if n == 1 {
				return errors.New("disk full")
			}
			<-retried
			return nil
		}}, Config{Courier: c, Planner: &fakePlanner{limits: func(string, string) shaping.Limits {
		return shaping.Limits{RetryInterval: iv}
	}}})
	s := tb.spool
	id := enqueue(t, s, nil, "dsn me", "a@gone.test", "b@gone.test")
	hooks := func() []time.Time {
		mu.Lock()
		defer mu.Unlock()
		return slices.Clone(hookTimes)
	}
	// The first hook's outcome is written once its lease is finished, or
	// by the time the hook is called again.
	waitFor(t, "first hook", func() bool { return len(hooks()) >= 1 && s.Stats().InFlight == 0 || len(hooks()) == 2 })
	_, rcpts, err := s.Show(id)
	if err != nil || len(rcpts) != 2 {
		t.Fatalf("records after failed hook: %+v %v", rcpts, err)
	}
	// The hook is retried when the records say, one retry interval after
	// the attempt.
	due := rcpts[0].NextAttempt
	if wait := due.Sub(rcpts[0].LastAttempt); wait < iv*8/10 || wait > iv*12/10 || rcpts[0].Attempts != 1 {
		t.Errorf("hook retry after %v, want %v ±20%%: %+v", wait, iv, rcpts[0])
	}
	waitFor(t, "the retried hook", func() bool { return len(hooks()) == 2 })
	if n := len(ev.of(queue.EventBounced)); n != 0 {
		t.Errorf("%d bounce events before the hook succeeded", n)
	}
	if st := s.Stats(); st.Recipients != 2 || st.Messages != 1 {
		t.Errorf("stats: %+v", st)
	}
	if h := hooks(); h[1].Before(due) {
		t.Errorf("hook retried at %v, before %v", h[1], due)
	}
	close(retried)
	waitFor(t, "records deleted", func() bool { return s.Stats().Messages == 0 })
	if calls, _, _ := c.snapshot(); len(calls) != 1 {
		t.Errorf("%d delivery attempts; the hook retry must not deliver again", len(calls))
	}
	if b := ev.of(queue.EventBounced); len(b) != 2 || b[0].Code != 550 {
		t.Errorf("bounce events: %+v", b)
	}
	if n := len(hooks()); n != 2 {
		t.Errorf("hook called %d times", n)
	}
	if keys := tb.keys(); len(keys) > 0 {
		t.Errorf("keys left: %v", keys)
	}
}

func TestOpenErrorDefersDestination(t *testing.T) {
	for _, permanent := range []bool{false, true} {
		t.Run(fmt.Sprint("permanent=", permanent), func(t *testing.T) {
			c := &fakeCourier{gate: make(chan struct{}), gateOpen: true, openErr: func(string) error {
				if permanent {
					return permanentError("no such domain")
				}
				return resultError(queue.Result{Status: queue.Temporary, Code: 421, Enhanced: "4.7.0", Text: "connection refused", Remote: "mx.down.test"})
			}}
			var ev events
			var mu sync.Mutex
			hooks := 0
			tb := newTestbed(t, queue.Options{OnEvent: ev.add,
				OnFailure: func(*queue.Message, []byte, []queue.Failed) error {
					mu.Lock()
					hooks++
					mu.Unlock()
					return nil
				}}, Config{Courier: c,
				Planner: &fakePlanner{limits: func(string, string) shaping.Limits { return shaping.Limits{MaxConnections: 1} }}})
			s := tb.spool
			for i := range 5 {
				enqueue(t, s, nil, "x", fmt.Sprintf("u%d@down.test", i))
			}
			// The first Open is waiting at the gate with four messages queued.
			waitFor(t, "queued", func() bool { return s.Stats().Ready == 4 })
			c.gate <- struct{}{}
			kind := queue.EventDeferred
			if permanent {
				kind = queue.EventBounced
			}
			waitFor(t, "failures", func() bool { return len(ev.of(kind)) == 5 })
			for _, e := range ev.of(kind) {
				if permanent && e.Text != "no such domain" || !permanent && (e.Text != "connection refused" || e.Code != 421 || e.Remote != "mx.down.test") || e.Attempt != 1 {
					t.Errorf("event: %+v", e)
				}
			}
			if _, _, opens := c.snapshot(); opens != 1 {
				t.Errorf("%d connection attempts, want 1", opens)
			}
			mu.Lock()
			if permanent && hooks != 5 || !permanent && hooks != 0 {
				t.Errorf("%d OnFailure calls", hooks)
			}
			mu.Unlock()
			close(c.gate)
		})
	}
}

func TestCourierPanicIsRecovered(t *testing.T) {
	c := &fakeCourier{panics: 1}
	var ev events
	tb := newTestbed(t, queue.Options{OnEvent: ev.add}, Config{Courier: c,
		Planner: &fakePlanner{limits: func(string, string) shaping.Limits { return shaping.Limits{RetryInterval: 10 * time.Millisecond} }}})
	s := tb.spool
	id := enqueue(t, s, nil, "x", "u@p.test")
	waitFor(t, "deferral", func() bool { return len(ev.of(queue.EventDeferred)) == 1 })
	if d := ev.of(queue.EventDeferred)[0]; !strings.Contains(d.Text, "panic") {
		t.Errorf("deferred: %+v", d)
	}
	waitFor(t, "delivery", func() bool { return s.Stats().Messages == 0 })
	if _, delivered, _ := c.snapshot(); delivered[id+" u@p.test"] != 1 {
		t.Errorf("not delivered after the panic")
	}
}
