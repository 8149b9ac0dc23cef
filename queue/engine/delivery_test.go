package engine

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"drover/queue"
	"drover/queue/shaping"
)

// Every recipient is delivered once, with its message's body and return
// path, at once, and nothing is left behind.
func TestEnqueueDeliver(t *testing.T) { synctest.Test(t, enqueueDeliver) }

func enqueueDeliver(t *testing.T) {
	c := &fakeCourier{}
	var ev events
	tb := newTestbed(t, queue.Options{OnEvent: ev.add}, Config{Courier: c})
	s := tb.spool
	start := time.Now()
	var ids []string
	for i := range 20 {
		ids = append(ids, enqueue(t, s, nil, fmt.Sprintf("body %d", i), "a@x.test", "b@x.test", "C@Y.Test"))
	}
	tb.wait("all delivered", func() bool { return len(ev.of(queue.EventDelivered)) == 60 })

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
		// No time passes in the bubble: nothing waits on the way.
		if e.Attempt != 1 || e.Code != 250 || e.Sender != "acme" || e.ReturnPath != "bounces@acme.test" || e.Delay != 0 || !e.Time.Equal(start) || e.Size == 0 {
			t.Errorf("delivered event: %+v", e)
		}
	}
	if keys := tb.keys(); len(keys) > 0 {
		t.Errorf("keys left after delivery: %v", keys)
	}
}

// One transaction carries recipients that end differently: delivered,
// deferred with its retry time, bounced through OnFailure.
func TestPerRecipientResults(t *testing.T) { synctest.Test(t, perRecipientResults) }

func perRecipientResults(t *testing.T) {
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
	tb := newTestbed(t, queue.Options{OnEvent: ev.add,
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
	now := time.Now()
	id := enqueue(t, s, nil, "hello", "ok@d.test", "later@d.test", "bad@d.test")
	// The outcomes' events are emitted one after another once the
	// recipients are done: wait for the last of them too.
	tb.wait("outcomes", func() bool {
		return s.Stats().InFlight == 0 && len(ev.of(queue.EventDeferred)) == 1 && len(ev.of(queue.EventBounced)) == 1
	})

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
	if !d.Time.Equal(now) {
		t.Errorf("deferred at %v, enqueued at %v: the attempt waited", d.Time, now)
	}
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
//
// Real time, not a synctest bubble: there, the millisecond retries would
// come due only when every goroutine is blocked, so they would never race
// with the deliveries and enqueues in flight.
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
	tb.wait("delivery", func() bool { return s.Stats().Messages == 0 })
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

// Recipients go in transactions per destination, domains compared
// without case, of at most MaxRecipientsPerMessage.
func TestGroupingAndSplit(t *testing.T) { synctest.Test(t, groupingAndSplit) }

func groupingAndSplit(t *testing.T) {
	c := &fakeCourier{}
	tb := newTestbed(t, queue.Options{}, Config{Courier: c,
		Planner: &fakePlanner{limits: func(string, string) shaping.Limits { return shaping.Limits{MaxRecipientsPerMessage: 2} }}})
	s := tb.spool
	addrs := []string{"1@a.test", "1@b.test", "2@a.test", "3@a.test", "2@b.test", "4@A.test", "5@a.test", "3@b.test"}
	id := enqueue(t, s, nil, "x", addrs...)
	tb.wait("delivery", func() bool { return s.Stats().Messages == 0 })
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

// A destination's connections respect MaxConnections and
// MaxMessagesPerConnection, are all kept busy while there is work, and
// close once idle for IdleTimeout.
func TestConnectionLimits(t *testing.T) { synctest.Test(t, connectionLimits) }

func connectionLimits(t *testing.T) {
	const delay, idle = 2 * time.Millisecond, 50 * time.Millisecond
	c := &fakeCourier{delay: delay}
	tb := newTestbed(t, queue.Options{NoSync: true}, Config{Courier: c, IdleTimeout: idle,
		Planner: &fakePlanner{limits: func(string, string) shaping.Limits {
			return shaping.Limits{MaxConnections: 3, MaxMessagesPerConnection: 4}
		}}})
	s := tb.spool
	start := time.Now()
	for i := range 60 {
		enqueue(t, s, nil, "x", fmt.Sprintf("u%d@big.test", i))
	}
	tb.wait("delivery", func() bool { return s.Stats().Messages == 0 })
	// 60 messages of 2ms over 3 connections never idle: 40ms.
	if took := time.Since(start); took != 60/3*delay {
		t.Errorf("60 messages delivered in %v over 3 connections, want %v", took, 60/3*delay)
	}
	done := time.Now()
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
	tb.wait("idle connections closed", func() bool { return c.openConns() == 0 })
	if after := time.Since(done); after > idle {
		t.Errorf("connections closed %v after the last delivery, idle timeout %v", after, idle)
	}
}

// The destination's retry policy comes from its plan: each retry waits
// RetryInterval doubled per attempt up to MaxRetryInterval (±20%), comes
// exactly when due, and the recipient expires when due past MaxAge,
// without another attempt.
func TestBackoffAndExpiry(t *testing.T) { synctest.Test(t, backoffAndExpiry) }

func backoffAndExpiry(t *testing.T) {
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
	start := time.Now()
	enqueue(t, s, nil, "x", "u@slow.test")
	tb.wait("expiry", func() bool { return len(ev.of(queue.EventExpired)) == 1 })
	calls, _, _ := c.snapshot()
	deferred := ev.of(queue.EventDeferred)
	x := ev.of(queue.EventExpired)
	if len(deferred) < 3 || len(calls) != len(deferred) {
		t.Fatalf("%d deferrals for %d attempts", len(deferred), len(calls))
	}
	if !calls[0].t.Equal(start) {
		t.Errorf("first attempt at +%v, want at once", calls[0].t.Sub(start))
	}
	for i, d := range deferred {
		attempt := i + 1
		if d.Attempt != attempt {
			t.Errorf("deferred event %d has attempt %d", attempt, d.Attempt)
		}
		if !d.Time.Equal(calls[i].t) || d.Delay != d.Time.Sub(start) {
			t.Errorf("attempt %d at +%v deferred at +%v, delay %v", attempt, calls[i].t.Sub(start), d.Time.Sub(start), d.Delay)
		}
		base := min(iv<<(attempt-1), maxIv)
		// The retry after MaxAge is moved up to it (the expiry).
		capped := d.NextRetry.Equal(start.Add(maxAge + time.Nanosecond))
		if delay := d.NextRetry.Sub(d.Time); !capped && delay < base*8/10 || delay > base*12/10 || delay > maxIv {
			t.Errorf("attempt %d: retry after %v, want %v ±20%% and at most %v", attempt, delay, base, maxIv)
		}
		if d.Delay > maxAge {
			t.Errorf("attempt %d deferred %v after receipt, past MaxAge", attempt, d.Delay)
		}
		// Retried when due: not before, and not later either.
		if attempt < len(calls) && !calls[attempt].t.Equal(d.NextRetry) {
			t.Errorf("attempt %d at +%v, its retry was due at +%v", attempt+1, calls[attempt].t.Sub(start), d.NextRetry.Sub(start))
		}
	}
	// Expired when due past MaxAge, without another attempt.
	attempts := x[0].Attempt
	last := deferred[len(deferred)-1]
	if attempts != len(calls) || x[0].Enhanced != "4.4.7" ||
		x[0].Text != fmt.Sprintf("4.4.7 message expired after %d attempts: 451 4.4.1 busy", attempts) || x[0].Delay != maxAge+time.Nanosecond {
		t.Errorf("expired event after %d attempts: %+v", len(calls), x)
	}
	if !x[0].Time.Equal(last.NextRetry) || x[0].Delay != last.NextRetry.Sub(start) {
		t.Errorf("expired at +%v (delay %v), when the retry was due at +%v", x[0].Time.Sub(start), x[0].Delay, last.NextRetry.Sub(start))
	}
	mu.Lock()
	defer mu.Unlock()
	if len(hooked) != 1 || !hooked[0].Expired || hooked[0].Result.Enhanced != "4.4.7" || hooked[0].Recipient.Attempts != attempts {
		t.Errorf("OnFailure: %+v", hooked)
	}
}

// An attempt that ends past MaxAge with a temporary failure expires the
// recipient at once, with the attempt's reply.
func TestExpiredAtTemporaryFailure(t *testing.T) { synctest.Test(t, expiredAtTemporaryFailure) }

func expiredAtTemporaryFailure(t *testing.T) {
	const took = time.Hour + time.Second // the attempt took long
	c := &fakeCourier{delay: took, decide: func(string, queue.Recipient) queue.Result {
		return queue.Result{Status: queue.Temporary, Code: 451, Enhanced: "4.4.1", Text: "busy", Remote: "mx.slow.test"}
	}}
	var ev events
	tb := newTestbed(t, queue.Options{OnEvent: ev.add}, Config{Courier: c,
		Planner: &fakePlanner{limits: func(string, string) shaping.Limits { return shaping.Limits{MaxAge: time.Hour} }}})
	s := tb.spool
	start := time.Now()
	enqueue(t, s, nil, "x", "u@slow.test")
	tb.waitWithin(2*took, "expiry", func() bool { return len(ev.of(queue.EventExpired)) == 1 })
	x := ev.of(queue.EventExpired)
	if len(x) != 1 || x[0].Attempt != 1 || x[0].Code != 0 || x[0].Remote != "mx.slow.test" ||
		x[0].Text != "4.4.7 message expired after 1 attempts: 451 4.4.1 busy" {
		t.Errorf("expired events: %+v", x)
	}
	if x[0].Delay != took || !x[0].Time.Equal(start.Add(took)) {
		t.Errorf("expired at +%v, delay %v; the attempt ended at +%v", x[0].Time.Sub(start), x[0].Delay, took)
	}
	if n := len(ev.of(queue.EventDeferred)); n != 0 {
		t.Errorf("%d deferred events", n)
	}
}

// A recipient due past MaxAge expires without an attempt.
func TestExpiredWhenDue(t *testing.T) { synctest.Test(t, expiredWhenDue) }

func expiredWhenDue(t *testing.T) {
	c := &fakeCourier{}
	var ev events
	tb := newTestbed(t, queue.Options{OnEvent: ev.add}, Config{Courier: c})
	s := tb.spool
	age := shaping.BuiltinLimits.MaxAge + time.Second
	enqueue(t, s, &queue.Message{Received: time.Now().Add(-age)}, "x", "u@old.test")
	tb.wait("expiry", func() bool { return len(ev.of(queue.EventExpired)) == 1 })
	if calls, _, opens := c.snapshot(); len(calls) != 0 || opens != 0 {
		t.Errorf("expired message was attempted: %d calls, %d opens", len(calls), opens)
	}
	x := ev.of(queue.EventExpired)
	if len(x) != 1 || x[0].Text != "4.4.7 message expired after 0 attempts" || x[0].Delay != age {
		t.Errorf("expired events: %+v", x)
	}
	if st := s.Stats(); st != (queue.Stats{}) {
		t.Errorf("stats after expiry: %+v", st)
	}
}

// A failing OnFailure keeps the records; the hook is retried after the
// destination's retry interval, exactly when due, without another
// delivery attempt.
func TestOnFailureErrorKeepsRecords(t *testing.T) { synctest.Test(t, onFailureErrorKeepsRecords) }

func onFailureErrorKeepsRecords(t *testing.T) {
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
	start := time.Now()
	id := enqueue(t, s, nil, "dsn me", "a@gone.test", "b@gone.test")
	hooks := func() []time.Time {
		mu.Lock()
		defer mu.Unlock()
		return slices.Clone(hookTimes)
	}
	// The first hook is called at once and its outcome written.
	synctest.Wait()
	if h := hooks(); len(h) != 1 || !h[0].Equal(start) || s.Stats().InFlight != 0 {
		t.Fatalf("first hook: called at %v (enqueued at %v), stats %+v", h, start, s.Stats())
	}
	_, rcpts, err := s.Show(id)
	if err != nil || len(rcpts) != 2 {
		t.Fatalf("records after failed hook: %+v %v", rcpts, err)
	}
	// The hook is retried when the records say, one retry interval after
	// the attempt.
	due := rcpts[0].NextAttempt
	if wait := due.Sub(rcpts[0].LastAttempt); wait < iv*8/10 || wait > iv*12/10 || rcpts[0].Attempts != 1 || !rcpts[0].LastAttempt.Equal(start) {
		t.Errorf("hook retry after %v, want %v ±20%%: %+v", wait, iv, rcpts[0])
	}
	time.Sleep(time.Until(due) - time.Nanosecond)
	synctest.Wait()
	if n := len(hooks()); n != 1 {
		t.Fatalf("hook called %d times a nanosecond before its retry was due", n)
	}
	time.Sleep(time.Nanosecond)
	synctest.Wait() // the retried hook waits for the test
	if h := hooks(); len(h) != 2 || !h[1].Equal(due) {
		t.Fatalf("hook calls at %v, the retry was due at %v", h, due)
	}
	if n := len(ev.of(queue.EventBounced)); n != 0 {
		t.Errorf("%d bounce events before the hook succeeded", n)
	}
	if st := s.Stats(); st.Recipients != 2 || st.Messages != 1 {
		t.Errorf("stats: %+v", st)
	}
	close(retried)
	tb.wait("bounce events", func() bool { return len(ev.of(queue.EventBounced)) == 2 })
	if st := s.Stats(); st.Messages != 0 {
		t.Errorf("records left after the bounce events: %+v", st)
	}
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

// A destination that cannot be reached fails the recipients waiting for
// it with the one connection attempt's error: deferred, or bounced when
// the error is permanent.
func TestOpenErrorDefersDestination(t *testing.T) {
	for _, permanent := range []bool{false, true} {
		t.Run(fmt.Sprint("permanent=", permanent), func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) { openErrorDefersDestination(t, permanent) })
		})
	}
}

func openErrorDefersDestination(t *testing.T, permanent bool) {
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
	synctest.Wait()
	if st := s.Stats(); st.Ready != 4 || st.InFlight != 1 {
		t.Fatalf("stats with the first Open at the gate: %+v", st)
	}
	c.gate <- struct{}{}
	kind := queue.EventDeferred
	if permanent {
		kind = queue.EventBounced
	}
	tb.wait("failures", func() bool { return len(ev.of(kind)) == 5 })
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
}

// A panic in the courier defers the recipients; they are delivered at
// their retry.
func TestCourierPanicIsRecovered(t *testing.T) { synctest.Test(t, courierPanicIsRecovered) }

func courierPanicIsRecovered(t *testing.T) {
	c := &fakeCourier{panics: 1}
	var ev events
	tb := newTestbed(t, queue.Options{OnEvent: ev.add}, Config{Courier: c,
		Planner: &fakePlanner{limits: func(string, string) shaping.Limits { return shaping.Limits{RetryInterval: 10 * time.Millisecond} }}})
	s := tb.spool
	id := enqueue(t, s, nil, "x", "u@p.test")
	tb.wait("deferral", func() bool { return len(ev.of(queue.EventDeferred)) == 1 })
	d := ev.of(queue.EventDeferred)[0]
	if !strings.Contains(d.Text, "panic") {
		t.Errorf("deferred: %+v", d)
	}
	tb.wait("delivery", func() bool { return s.Stats().Messages == 0 })
	calls, delivered, _ := c.snapshot()
	if delivered[id+" u@p.test"] != 1 {
		t.Errorf("not delivered after the panic")
	}
	if len(calls) != 1 || !calls[0].t.Equal(d.NextRetry) {
		t.Errorf("delivered at %v, the retry was due at %v", calls, d.NextRetry)
	}
}
