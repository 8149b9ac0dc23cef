package queue

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

func TestEnqueueDeliver(t *testing.T) {
	c := &fakeCourier{}
	var ev events
	s := openSpool(t, Options{Courier: c, OnEvent: ev.add})
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
		if _, err := s.Body(id); !errors.Is(err, ErrNotFound) {
			t.Errorf("Body(%s) after delivery: %v", id, err)
		}
		if _, _, err := s.Show(id); !errors.Is(err, ErrNotFound) {
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
	}
	if keys := spoolKeys(t, s); len(keys) > 0 {
		t.Errorf("keys left after delivery: %v", keys)
	}
	if st := s.Stats(); st != (Stats{}) {
		t.Errorf("stats after delivery: %+v", st)
	}
	dl := ev.of(EventDelivered)
	if len(dl) != 60 {
		t.Fatalf("%d delivered events, want 60", len(dl))
	}
	for _, e := range dl {
		if e.Attempt != 1 || e.Code != 250 || e.Sender != "acme" || e.ReturnPath != "bounces@acme.test" || e.Delay < 0 || e.Size == 0 {
			t.Errorf("delivered event: %+v", e)
		}
	}
}

func TestEnqueueRejects(t *testing.T) {
	s := openSpool(t, Options{})
	for _, rcpts := range [][]NewRecipient{nil, {{Addr: "nodomain"}}, {{Addr: "a@"}}, {{Addr: "a@b\x00c"}}} {
		if _, err := s.Enqueue(&Message{}, rcpts, nil); err == nil {
			t.Errorf("Enqueue(%q) succeeded", rcpts)
		}
	}
	if _, err := s.Enqueue(nil, []NewRecipient{{Addr: "a@b"}}, nil); err == nil {
		t.Error("Enqueue(nil message) succeeded")
	}
}

func TestPerRecipientResults(t *testing.T) {
	clk := newClock()
	c := &fakeCourier{decide: func(dest string, r Recipient) Result {
		switch {
		case strings.HasPrefix(r.Addr, "later"):
			return Result{Status: Temporary, Code: 451, Enhanced: "4.2.0", Text: "4.2.0 try later", Remote: "mx.d.test"}
		case strings.HasPrefix(r.Addr, "bad"):
			return Result{Status: Permanent, Code: 550, Enhanced: "5.1.1", Text: "5.1.1 no such user", Class: "hard", Reason: "userunknown"}
		}
		return Result{Status: Delivered, Code: 250}
	}}
	var ev events
	var mu sync.Mutex
	var hooked [][]Failed
	var s *Spool
	s = openSpool(t, Options{Courier: c, Now: clk.Now, OnEvent: ev.add,
		OnFailure: func(msg *Message, body []byte, failed []Failed) error {
			// Called before the records go: they must still be there.
			_, rcpts, err := s.Show(msg.ID)
			if err != nil || !slices.ContainsFunc(rcpts, func(r Recipient) bool { return r.Addr == "bad@d.test" }) {
				t.Errorf("OnFailure: records already gone: %v %v", rcpts, err)
			}
			if string(body) != "hello" {
				t.Errorf("OnFailure body %q", body)
			}
			mu.Lock()
			hooked = append(hooked, failed)
			mu.Unlock()
			return nil
		}})
	id := enqueue(t, s, nil, "hello", "ok@d.test", "later@d.test", "bad@d.test")
	waitFor(t, "outcomes", func() bool { return s.Stats().InFlight == 0 && len(ev.of(EventDeferred)) == 1 })

	calls, _, _ := c.snapshot()
	if len(calls) != 1 || len(calls[0].addrs) != 3 {
		t.Fatalf("want one delivery with 3 recipients, got %+v", calls)
	}
	if n := len(ev.of(EventDelivered)); n != 1 {
		t.Errorf("%d delivered events", n)
	}
	b := ev.of(EventBounced)
	if len(b) != 1 || b[0].Recipient != "bad@d.test" || b[0].Code != 550 || b[0].Class != "hard" || b[0].Reason != "userunknown" {
		t.Errorf("bounced events: %+v", b)
	}
	d := ev.of(EventDeferred)[0]
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

	msg, rcpts, err := s.Show(id)
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
	ds, err := s.Summaries("domain")
	if err != nil || len(ds) != 1 || ds[0].Key != "d.test" || ds[0].Recipients != 1 || !ds[0].Oldest.Equal(now) || ds[0].LastError != "451 4.2.0 try later" {
		t.Errorf("Summaries: %+v %v", ds, err)
	}
}

// Many producers, small ready queues, and retries that come back within
// milliseconds: the scheduler's loads race with enqueues, deliveries and
// reschedules, and still every recipient is delivered exactly once.
func TestNoDuplicateDeliveries(t *testing.T) {
	c := &fakeCourier{decide: func(dest string, r Recipient) Result {
		if r.Attempts < len(r.Addr)%3 {
			return Result{Status: Temporary, Code: 451, Text: "again"}
		}
		return Result{Status: Delivered}
	}}
	s := openSpool(t, Options{Courier: c, NoSync: true, ReadyCapacity: 3, MaxInMemory: 8,
		Limits: func(Site, string) Limits {
			return Limits{MaxConnections: 2, MaxRecipientsPerMessage: 2, RetryInterval: time.Millisecond, MaxRetryInterval: 3 * time.Millisecond}
		}})
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
	if st := s.Stats(); st != (Stats{}) {
		t.Errorf("stats: %+v", st)
	}
	if keys := spoolKeys(t, s); len(keys) > 0 {
		t.Errorf("keys left: %v", keys)
	}
}

func TestGroupingAndSplit(t *testing.T) {
	c := &fakeCourier{}
	s := openSpool(t, Options{Courier: c, Limits: func(Site, string) Limits { return Limits{MaxRecipientsPerMessage: 2} }})
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
	s := openSpool(t, Options{Courier: c, NoSync: true, IdleTimeout: 50 * time.Millisecond,
		Limits: func(Site, string) Limits { return Limits{MaxConnections: 3, MaxMessagesPerConnection: 4} }})
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

func TestBackoffAndExpiry(t *testing.T) {
	clk := newClock()
	start := clk.Now()
	c := &fakeCourier{decide: func(string, Recipient) Result {
		return Result{Status: Temporary, Code: 451, Enhanced: "4.4.1", Text: "busy", Remote: "mx.slow.test"}
	}}
	var ev events
	var mu sync.Mutex
	var hooked []Failed
	lim := Limits{RetryInterval: time.Minute, MaxRetryInterval: 4 * time.Minute, MaxAge: 20 * time.Minute}
	s := openSpool(t, Options{Courier: c, Now: clk.Now, OnEvent: ev.add, Limits: func(Site, string) Limits { return lim },
		OnFailure: func(msg *Message, body []byte, failed []Failed) error {
			mu.Lock()
			hooked = append(hooked, failed...)
			mu.Unlock()
			return nil
		}})
	enqueue(t, s, nil, "x", "u@slow.test")
	attempts := 0
	for len(ev.of(EventExpired)) == 0 {
		attempts++
		waitFor(t, fmt.Sprintf("attempt %d", attempts), func() bool {
			return len(ev.of(EventDeferred))+len(ev.of(EventExpired)) == attempts && s.Stats().InFlight == 0
		})
		if len(ev.of(EventExpired)) > 0 {
			break
		}
		d := ev.of(EventDeferred)[attempts-1]
		if d.Attempt != attempts {
			t.Fatalf("deferred event %d has attempt %d", attempts, d.Attempt)
		}
		base := min(time.Minute<<(attempts-1), 4*time.Minute)
		delay := d.NextRetry.Sub(clk.Now())
		if delay < base*8/10 || delay > base*12/10 || delay > 4*time.Minute {
			t.Errorf("attempt %d: retry after %v, want %v ±20%% and at most 4m", attempts, delay, base)
		}
		if st := s.Stats(); st.Deferred != 1 || st.Recipients != 1 {
			t.Errorf("stats while deferred: %+v", st)
		}
		// Not due before its time.
		clk.Set(d.NextRetry.Add(-time.Second))
		s.poke()
		time.Sleep(20 * time.Millisecond)
		if n := len(ev.of(EventDeferred)); n != attempts {
			t.Fatalf("retried before due")
		}
		clk.Set(d.NextRetry)
		s.poke()
		if attempts > 20 {
			t.Fatal("never expired")
		}
	}
	// The recipient was tried at about 0, 1, 3, 7, 11, 15, 19 minutes (±20%)
	// and expired when next due, past 20 minutes, without another attempt.
	attempts--
	if attempts < 6 || attempts > 9 {
		t.Errorf("expired after %d attempts", attempts)
	}
	x := ev.of(EventExpired)
	if len(x) != 1 || x[0].Attempt != attempts || x[0].Enhanced != "4.4.7" ||
		x[0].Text != fmt.Sprintf("4.4.7 message expired after %d attempts: 451 4.4.1 busy", attempts) ||
		x[0].Delay != clk.Now().Sub(start) || x[0].Delay <= 20*time.Minute {
		t.Errorf("expired event: %+v", x)
	}
	waitFor(t, "records deleted", func() bool { return s.Stats().Messages == 0 })
	mu.Lock()
	defer mu.Unlock()
	if len(hooked) != 1 || !hooked[0].Expired || hooked[0].Result.Enhanced != "4.4.7" || hooked[0].Recipient.Attempts != attempts {
		t.Errorf("OnFailure: %+v", hooked)
	}
}

func TestExpiredAtTemporaryFailure(t *testing.T) {
	clk := newClock()
	start := clk.Now()
	c := &fakeCourier{decide: func(string, Recipient) Result {
		clk.Set(start.Add(time.Hour + time.Second)) // the attempt took long
		return Result{Status: Temporary, Code: 451, Enhanced: "4.4.1", Text: "busy", Remote: "mx.slow.test"}
	}}
	var ev events
	s := openSpool(t, Options{Courier: c, Now: clk.Now, OnEvent: ev.add, Limits: func(Site, string) Limits { return Limits{MaxAge: time.Hour} }})
	enqueue(t, s, nil, "x", "u@slow.test")
	waitFor(t, "expiry", func() bool { return s.Stats().Messages == 0 })
	x := ev.of(EventExpired)
	if len(x) != 1 || x[0].Attempt != 1 || x[0].Code != 0 || x[0].Remote != "mx.slow.test" ||
		x[0].Text != "4.4.7 message expired after 1 attempts: 451 4.4.1 busy" {
		t.Errorf("expired events: %+v", x)
	}
	if n := len(ev.of(EventDeferred)); n != 0 {
		t.Errorf("%d deferred events", n)
	}
}

func TestBackoffJitter(t *testing.T) {
	lim := Limits{RetryInterval: time.Minute, MaxRetryInterval: time.Hour}
	seen := map[time.Duration]bool{}
	for attempts := 1; attempts <= 12; attempts++ {
		base := min(time.Minute<<(attempts-1), time.Hour)
		for range 200 {
			d := backoff(attempts, lim)
			seen[d] = true
			if d < base*8/10 || d > base*12/10 || d > time.Hour {
				t.Fatalf("backoff(%d) = %v, base %v", attempts, d, base)
			}
		}
	}
	if len(seen) < 2000 {
		t.Errorf("only %d distinct delays: jitter missing or truncated", len(seen))
	}
	if d := backoff(100, lim); d > time.Hour || d < 48*time.Minute {
		t.Errorf("backoff(100) = %v", d)
	}
}

func TestExpiredWhenDue(t *testing.T) {
	clk := newClock()
	c := &fakeCourier{}
	var ev events
	s := openSpool(t, Options{Courier: c, Now: clk.Now, OnEvent: ev.add})
	enqueue(t, s, &Message{Received: clk.Now().Add(-DefaultLimits.MaxAge - time.Second)}, "x", "u@old.test")
	waitFor(t, "expiry", func() bool { return s.Stats().Messages == 0 })
	if calls, _, opens := c.snapshot(); len(calls) != 0 || opens != 0 {
		t.Errorf("expired message was attempted: %d calls, %d opens", len(calls), opens)
	}
	x := ev.of(EventExpired)
	if len(x) != 1 || x[0].Text != "4.4.7 message expired after 0 attempts" {
		t.Errorf("expired events: %+v", x)
	}
}

func TestOnFailureErrorKeepsRecords(t *testing.T) {
	clk := newClock()
	c := &fakeCourier{decide: func(string, Recipient) Result {
		return Result{Status: Permanent, Code: 550, Enhanced: "5.1.1", Text: "no such user"}
	}}
	var ev events
	var mu sync.Mutex
	var hooks int
	s := openSpool(t, Options{Courier: c, Now: clk.Now, OnEvent: ev.add,
		OnFailure: func(msg *Message, body []byte, failed []Failed) error {
			mu.Lock()
			defer mu.Unlock()
			hooks++
			if len(failed) != 2 || failed[0].Result.Code != 550 || string(body) != "dsn me" {
				t.Errorf("OnFailure call %d: %+v %q", hooks, failed, body)
			}
			if hooks == 1 {
				return errors.New("disk full")
			}
			return nil
		}})
	id := enqueue(t, s, nil, "dsn me", "a@gone.test", "b@gone.test")
	hookCalls := func() int {
		mu.Lock()
		defer mu.Unlock()
		return hooks
	}
	waitFor(t, "first hook", func() bool { return hookCalls() == 1 && s.Stats().InFlight == 0 })
	_, rcpts, err := s.Show(id)
	if err != nil || len(rcpts) != 2 {
		t.Fatalf("records after failed hook: %+v %v", rcpts, err)
	}
	if n := len(ev.of(EventBounced)); n != 0 {
		t.Errorf("%d bounce events before the hook succeeded", n)
	}
	if st := s.Stats(); st.Recipients != 2 || st.Messages != 1 {
		t.Errorf("stats: %+v", st)
	}

	clk.Set(clk.Now().Add(2 * time.Minute))
	s.poke()
	time.Sleep(20 * time.Millisecond)
	if hookCalls() != 1 {
		t.Fatal("hook retried before the retry interval")
	}
	clk.Set(clk.Now().Add(5 * time.Minute))
	s.poke()
	waitFor(t, "records deleted", func() bool { return s.Stats().Messages == 0 })
	if hookCalls() != 2 {
		t.Errorf("hook called %d times", hookCalls())
	}
	if calls, _, _ := c.snapshot(); len(calls) != 1 {
		t.Errorf("%d delivery attempts; the hook retry must not deliver again", len(calls))
	}
	if b := ev.of(EventBounced); len(b) != 2 || b[0].Code != 550 {
		t.Errorf("bounce events: %+v", b)
	}
	if keys := spoolKeys(t, s); len(keys) > 0 {
		t.Errorf("keys left: %v", keys)
	}
}

func TestOpenErrorDefersDestination(t *testing.T) {
	for _, permanent := range []bool{false, true} {
		t.Run(fmt.Sprint("permanent=", permanent), func(t *testing.T) {
			c := &fakeCourier{gate: make(chan struct{}), gateOpen: true, openErr: func(string) error {
				if permanent {
					return permanentError{errors.New("no such domain")}
				}
				return resultError{Result{Status: Temporary, Code: 421, Enhanced: "4.7.0", Text: "connection refused", Remote: "mx.down.test"}}
			}}
			var ev events
			var mu sync.Mutex
			hooks := 0
			s := openSpool(t, Options{Courier: c, OnEvent: ev.add, Limits: func(Site, string) Limits { return Limits{MaxConnections: 1} },
				OnFailure: func(*Message, []byte, []Failed) error {
					mu.Lock()
					hooks++
					mu.Unlock()
					return nil
				}})
			for i := range 5 {
				enqueue(t, s, nil, "x", fmt.Sprintf("u%d@down.test", i))
			}
			// The first Open is waiting at the gate with four messages queued.
			waitFor(t, "queued", func() bool { return s.Stats().Ready == 4 })
			c.gate <- struct{}{}
			kind := EventDeferred
			if permanent {
				kind = EventBounced
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
	clk := newClock()
	c := &fakeCourier{panics: 1}
	var ev events
	s := openSpool(t, Options{Courier: c, Now: clk.Now, OnEvent: ev.add})
	id := enqueue(t, s, nil, "x", "u@p.test")
	waitFor(t, "deferral", func() bool { return len(ev.of(EventDeferred)) == 1 })
	if d := ev.of(EventDeferred)[0]; !strings.Contains(d.Text, "panic") {
		t.Errorf("deferred: %+v", d)
	}
	clk.Set(clk.Now().Add(10 * time.Minute))
	s.poke()
	waitFor(t, "delivery", func() bool { return s.Stats().Messages == 0 })
	if _, delivered, _ := c.snapshot(); delivered[id+" u@p.test"] != 1 {
		t.Errorf("not delivered after the panic")
	}
}

func TestReopen(t *testing.T) {
	dir := t.TempDir()
	clk := newClock()
	s := openSpool(t, Options{Dir: dir, Now: clk.Now})
	var ids []string
	first := clk.Now()
	for i := range 10 {
		ids = append(ids, enqueue(t, s, nil, fmt.Sprint(i), "a@one.test", "b@two.test"))
		clk.Set(clk.Now().Add(time.Second))
	}
	want := Stats{Messages: 10, Recipients: 20, Oldest: first}
	if st := s.Stats(); st != want {
		t.Errorf("stats: %+v, want %+v", st, want)
	}
	if err := s.Close(t.Context()); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Enqueue(&Message{}, []NewRecipient{{Addr: "a@b"}}, nil); !errors.Is(err, ErrClosed) {
		t.Errorf("Enqueue after Close: %v", err)
	}

	s = openSpool(t, Options{Dir: dir, Now: clk.Now})
	if st := s.Stats(); !st.Oldest.Equal(first) || st.Messages != 10 || st.Recipients != 20 {
		t.Errorf("stats after reopen: %+v", st)
	}
	ds, err := s.Summaries("domain")
	if err != nil || len(ds) != 2 || ds[0].Key != "one.test" || ds[0].Recipients != 10 || !ds[0].Oldest.Equal(first) {
		t.Errorf("Summaries: %+v %v", ds, err)
	}
	if body, err := s.Body(ids[3]); err != nil || string(body) != "3" {
		t.Errorf("Body: %q %v", body, err)
	}
	if err := s.Close(t.Context()); err != nil {
		t.Fatal(err)
	}

	c := &fakeCourier{}
	s = openSpool(t, Options{Dir: dir, Courier: c, Now: clk.Now})
	waitFor(t, "delivery after reopen", func() bool { return s.Stats().Messages == 0 })
	_, delivered, _ := c.snapshot()
	for _, id := range ids {
		if delivered[id+" a@one.test"] != 1 || delivered[id+" b@two.test"] != 1 {
			t.Errorf("%s not delivered once", id)
		}
	}
}

func TestStatsOldest(t *testing.T) {
	clk := newClock()
	c := &fakeCourier{gate: make(chan struct{})}
	s := openSpool(t, Options{Courier: c, Now: clk.Now, Limits: func(Site, string) Limits { return Limits{MaxConnections: 1} }})
	t0 := clk.Now()
	enqueue(t, s, nil, "x", "a@o.test")
	clk.Set(t0.Add(time.Minute))
	enqueue(t, s, nil, "x", "b@o.test")
	clk.Set(t0.Add(2 * time.Minute))
	enqueue(t, s, nil, "x", "c@o.test")
	if st := s.Stats(); !st.Oldest.Equal(t0) {
		t.Errorf("Oldest %v, want %v", st.Oldest, t0)
	}
	c.gate <- struct{}{}
	waitFor(t, "first delivery", func() bool { return s.Stats().Messages == 2 })
	if st := s.Stats(); !st.Oldest.Equal(t0.Add(time.Minute)) {
		t.Errorf("Oldest after delivering the first: %v", st.Oldest)
	}
	close(c.gate)
	waitFor(t, "all delivered", func() bool { return s.Stats().Messages == 0 })
	if st := s.Stats(); !st.Oldest.IsZero() {
		t.Errorf("Oldest of an empty queue: %v", st.Oldest)
	}
}

func TestIDs(t *testing.T) {
	now := time.Now()
	seen := map[string]bool{}
	prevMax := ""
	counter := ^uint32(0) - 500 // wraps during the test
	for ms := range 100 {
		lo, hi := "", ""
		for range 100 {
			counter++
			id := newID(now.Add(time.Duration(ms)*time.Millisecond), counter)
			if !validID(id) || strings.Trim(id, "0123456789abcdefghjkmnpqrstvwxyz") != "" {
				t.Fatalf("bad id %q", id)
			}
			if seen[id] {
				t.Fatalf("duplicate id %q", id)
			}
			seen[id] = true
			if lo == "" || id < lo {
				lo = id
			}
			hi = max(hi, id)
		}
		if lo <= prevMax {
			t.Fatalf("id %q of a later millisecond sorts before %q", lo, prevMax)
		}
		prevMax = hi
	}
	if validID("0123456789abcdeu") || validID("short") {
		t.Error("validID accepts bad IDs")
	}
}

func TestRecordRoundTrip(t *testing.T) {
	now := time.Unix(1700000000, 123456789)
	msgs := []*Message{
		{ID: "0123456789abcdef"},
		{ID: "0123456789abcdef", Sender: "acme", ReturnPath: "b+x@acme.test", EnvID: "e1", Ret: "HDRS", WantDSN: true,
			Stream: "marketing", Campaign: "spring", List: "news", Flow: "welcome", ClientAddr: "192.0.2.1", Received: now, Size: 10240},
	}
	for _, m := range msgs {
		got, err := decodeMessage(m.ID, appendMessage(nil, m))
		if err != nil || !got.Received.Equal(m.Received) {
			t.Fatalf("message round trip: %+v -> %+v %v", m, got, err)
		}
		want := *m
		got.Received, want.Received = time.Time{}, time.Time{}
		if *got != want {
			t.Errorf("message round trip: %+v -> %+v", m, got)
		}
	}
	r := Recipient{Index: 7, Addr: "U@x.test", Domain: "x.test", Notify: "FAILURE", ORCPT: "rfc822;u@x.test",
		Attempts: 3, NextAttempt: now, LastAttempt: now.Add(-time.Hour), LastError: "451 busy"}
	for _, f := range []*failure{nil, {Result: Result{Status: Permanent, Code: 550, Enhanced: "5.1.1", Text: "t", Remote: "mx", Class: "hard", Reason: "userunknown"}}, {Expired: true}} {
		got, gf, err := decodeRecipient(7, appendRecipient(nil, &r, f))
		if err != nil || got.Addr != r.Addr || got.Domain != r.Domain || got.Notify != r.Notify || got.ORCPT != r.ORCPT ||
			got.Attempts != 3 || !got.NextAttempt.Equal(now) || !got.LastAttempt.Equal(r.LastAttempt) || got.LastError != r.LastError ||
			(f == nil) != (gf == nil) || f != nil && *gf != *f {
			t.Errorf("recipient round trip with %+v: %+v %+v %v", f, got, gf, err)
		}
	}
	if _, err := decodeMessage("x", []byte{9}); err == nil {
		t.Error("decoded a record of an unknown version")
	}
	if _, _, err := decodeRecipient(0, appendRecipient(nil, &r, nil)[:10]); err == nil {
		t.Error("decoded a truncated record")
	}
}

func TestSchedKey(t *testing.T) {
	k := appendSchedKey(nil, "a.test", 42, "0123456789abcdef", 3)
	e, ok := parseSchedKey(k)
	if !ok || string(e.dest) != "a.test" || e.due != 42 || string(e.id) != "0123456789abcdef" || e.idx != 3 {
		t.Errorf("parse %q: %+v %v", k, e, ok)
	}
	lo, hi := destRange("a.test")
	if string(k) < string(lo) || string(k) >= string(hi) {
		t.Error("key outside its destination's range")
	}
	other := appendSchedKey(nil, "a.test.au", 1, "0123456789abcdef", 0)
	if string(other) >= string(lo) && string(other) < string(hi) {
		t.Error("a.test.au inside a.test's range")
	}
}

// A recipient whose message record is gone (left behind by a failed
// write) is removed when the scheduler meets it, not delivered.
func TestOrphanRecipientRemoved(t *testing.T) {
	dir := t.TempDir()
	s := openSpool(t, Options{Dir: dir})
	id := enqueue(t, s, nil, "x", "a@o.test")
	keep := enqueue(t, s, nil, "y", "b@o.test")
	if err := s.db.Delete(msgKey(id), nil); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(t.Context()); err != nil {
		t.Fatal(err)
	}
	c := &fakeCourier{}
	s = openSpool(t, Options{Dir: dir, Courier: c})
	waitFor(t, "delivery", func() bool { st := s.Stats(); return st.Recipients == 0 && st.InFlight == 0 })
	_, delivered, _ := c.snapshot()
	if len(delivered) != 1 || delivered[keep+" b@o.test"] != 1 {
		t.Errorf("delivered: %v", delivered)
	}
	if keys := spoolKeys(t, s); len(keys) > 0 {
		t.Errorf("keys left: %v", keys)
	}
}
