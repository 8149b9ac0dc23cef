package queue

import (
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"
)

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

// An ID from NewID, chosen before Enqueue (to name it in the Received
// field), is the one the message is stored under; given twice, or not an
// ID, it is refused and the stored message is untouched, also after a
// reopen, when the message is on disk and not in memory.
func TestEnqueueWithNewID(t *testing.T) {
	dir := t.TempDir()
	s := openSpool(t, Options{Dir: dir})
	id := s.NewID()
	if !validID(id) || id == s.NewID() {
		t.Fatalf("NewID %q", id)
	}
	got, err := s.Enqueue(&Message{ID: id, Sender: "first"}, []NewRecipient{{Addr: "a@one.test"}}, []byte("first"))
	if err != nil || got != id {
		t.Fatalf("Enqueue with its NewID: %q, %v, want %q", got, err, id)
	}
	if _, err := s.Enqueue(&Message{ID: id, Sender: "second"}, []NewRecipient{{Addr: "b@two.test"}}, []byte("second")); err == nil {
		t.Error("the same ID enqueued twice")
	}
	if _, err := s.Enqueue(&Message{ID: "not an id"}, []NewRecipient{{Addr: "b@two.test"}}, nil); err == nil {
		t.Error("a malformed ID enqueued")
	}
	if err := s.Close(t.Context()); err != nil {
		t.Fatal(err)
	}
	s = openSpool(t, Options{Dir: dir})
	if _, err := s.Enqueue(&Message{ID: id, Sender: "third"}, []NewRecipient{{Addr: "c@two.test"}}, []byte("third")); err == nil {
		t.Error("the ID of a stored message enqueued again after a reopen")
	}
	msg, rcpts, err := s.Show(id)
	if err != nil || msg.Sender != "first" || len(rcpts) != 1 || rcpts[0].Addr != "a@one.test" {
		t.Errorf("stored message %+v %+v %v, want the first", msg, rcpts, err)
	}
	if body, err := s.Body(id); err != nil || string(body) != "first" {
		t.Errorf("stored body %q %v, want the first", body, err)
	}
	if st := s.Stats(); st.Messages != 1 || st.Recipients != 1 {
		t.Errorf("stats %+v, want one message", st)
	}
}

// The retry schedule of a temporary failure: backoff doubled per attempt
// up to the cap, with jitter; retried when due, by the scheduler's own
// timer, and not a nanosecond before; expiry when due past MaxAge, without
// another attempt. The dispatcher stands for the engine, which passes the
// destination's Retry through.
func TestBackoffAndExpiry(t *testing.T) { synctest.Test(t, backoffAndExpiry) }

func backoffAndExpiry(t *testing.T) {
	start := time.Now()
	var ev events
	var mu sync.Mutex
	var hooked []Failed
	s := openSpool(t, Options{OnEvent: ev.add,
		OnFailure: func(msg *Message, body []byte, failed []Failed) error {
			mu.Lock()
			hooked = append(hooked, failed...)
			mu.Unlock()
			return nil
		}})
	startDispatcher(t, s, &dispatcher{
		retry: Retry{Interval: time.Minute, MaxInterval: 4 * time.Minute, MaxAge: 20 * time.Minute},
		decide: func(*Message, Recipient) Result {
			return Result{Status: Temporary, Code: 451, Enhanced: "4.4.1", Text: "busy", Remote: "mx.slow.test"}
		}})
	enqueue(t, s, nil, "x", "u@slow.test")
	attempts := 0
	var due time.Time // of the last deferral
	for {
		attempts++
		synctest.Wait()
		if n := len(ev.of(EventDeferred)) + len(ev.of(EventExpired)); n != attempts || s.Stats().InFlight != 0 {
			t.Fatalf("attempt %d at +%v: %d outcomes, stats %+v", attempts, time.Since(start), n, s.Stats())
		}
		if len(ev.of(EventExpired)) > 0 {
			break
		}
		d := ev.of(EventDeferred)[attempts-1]
		if d.Attempt != attempts {
			t.Fatalf("deferred event %d has attempt %d", attempts, d.Attempt)
		}
		if !d.Time.Equal(time.Now()) || attempts > 1 && !d.Time.Equal(due) {
			t.Errorf("attempt %d deferred at +%v, it was due at +%v", attempts, d.Time.Sub(start), due.Sub(start))
		}
		base := min(time.Minute<<(attempts-1), 4*time.Minute)
		delay := d.NextRetry.Sub(time.Now())
		// The retry after the max age is moved up to it (the expiry).
		capped := d.NextRetry.Equal(start.Add(20*time.Minute + time.Nanosecond))
		if !capped && delay < base*8/10 || delay > base*12/10 || delay > 4*time.Minute {
			t.Errorf("attempt %d: retry after %v, want %v ±20%% and at most 4m", attempts, delay, base)
		}
		if st := s.Stats(); st.Deferred != 1 || st.Recipients != 1 {
			t.Errorf("stats while deferred: %+v", st)
		}
		// Not due a nanosecond before its time; the scheduler wakes at it.
		due = d.NextRetry
		time.Sleep(time.Until(due) - time.Nanosecond)
		synctest.Wait()
		if n, st := len(ev.of(EventDeferred)), s.Stats(); n != attempts || st.Ready+st.InFlight != 0 {
			t.Fatalf("retried before due: %d deferrals, %+v", n, st)
		}
		time.Sleep(time.Nanosecond)
		if attempts > 20 {
			t.Fatal("never expired")
		}
	}
	// The recipient was tried at about 0, 1, 3, 7, 11, 15, 19 minutes (±20%)
	// and expired just past 20 minutes, without another attempt.
	attempts--
	if attempts < 6 || attempts > 9 {
		t.Errorf("expired after %d attempts", attempts)
	}
	x := ev.of(EventExpired)
	if len(x) != 1 || x[0].Attempt != attempts || x[0].Enhanced != "4.4.7" ||
		x[0].Text != fmt.Sprintf("4.4.7 message expired after %d attempts: 451 4.4.1 busy", attempts) ||
		x[0].Delay != time.Since(start) || x[0].Delay <= 20*time.Minute || !x[0].Time.Equal(due) {
		t.Errorf("expired event: %+v; due at +%v", x, due.Sub(start))
	}
	if st := s.Stats(); st.Messages != 0 {
		t.Errorf("records left after expiry: %+v", st)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(hooked) != 1 || !hooked[0].Expired || hooked[0].Result.Enhanced != "4.4.7" || hooked[0].Recipient.Attempts != attempts {
		t.Errorf("OnFailure: %+v", hooked)
	}
}

func TestBackoffJitter(t *testing.T) {
	retry := Retry{Interval: time.Minute, MaxInterval: time.Hour}
	seen := map[time.Duration]bool{}
	for attempts := 1; attempts <= 12; attempts++ {
		base := min(time.Minute<<(attempts-1), time.Hour)
		for range 200 {
			d := backoff(attempts, retry)
			seen[d] = true
			if d < base*8/10 || d > base*12/10 || d > time.Hour {
				t.Fatalf("backoff(%d) = %v, base %v", attempts, d, base)
			}
		}
	}
	if len(seen) < 2000 {
		t.Errorf("only %d distinct delays: jitter missing or truncated", len(seen))
	}
	if d := backoff(100, retry); d > time.Hour || d < 48*time.Minute {
		t.Errorf("backoff(100) = %v", d)
	}
}

// A failing OnFailure keeps the records; the hook is retried after the
// retry interval, exactly when due, without another delivery attempt
// (Todo leaves those recipients out).
func TestOnFailureErrorKeepsRecords(t *testing.T) { synctest.Test(t, onFailureErrorKeepsRecords) }

func onFailureErrorKeepsRecords(t *testing.T) {
	start := time.Now()
	var ev events
	var mu sync.Mutex
	var hooks int
	s := openSpool(t, Options{OnEvent: ev.add,
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
	dp := startDispatcher(t, s, &dispatcher{decide: func(*Message, Recipient) Result {
		return Result{Status: Permanent, Code: 550, Enhanced: "5.1.1", Text: "no such user"}
	}})
	id := enqueue(t, s, nil, "dsn me", "a@gone.test", "b@gone.test")
	hookCalls := func() int {
		mu.Lock()
		defer mu.Unlock()
		return hooks
	}
	synctest.Wait()
	if n, st := hookCalls(), s.Stats(); n != 1 || st.InFlight != 0 {
		t.Fatalf("first hook: %d calls, stats %+v", n, st)
	}
	_, rcpts, err := s.Show(id)
	if err != nil || len(rcpts) != 2 {
		t.Fatalf("records after failed hook: %+v %v", rcpts, err)
	}
	due := rcpts[0].NextAttempt
	if wait := due.Sub(start); wait < 4*time.Minute || wait > 6*time.Minute || !rcpts[1].NextAttempt.Equal(due) {
		t.Errorf("hook retry due after %v, want the retry interval of 5m ±20%%: %+v", wait, rcpts)
	}
	if n := len(ev.of(EventBounced)); n != 0 {
		t.Errorf("%d bounce events before the hook succeeded", n)
	}
	if st := s.Stats(); st.Recipients != 2 || st.Messages != 1 {
		t.Errorf("stats: %+v", st)
	}

	time.Sleep(time.Until(due) - time.Nanosecond)
	synctest.Wait()
	if hookCalls() != 1 {
		t.Fatal("hook retried before the retry interval")
	}
	time.Sleep(time.Nanosecond)
	synctest.Wait()
	if st := s.Stats(); st.Messages != 0 {
		t.Errorf("records left when the retried hook was due: %+v", st)
	}
	if hookCalls() != 2 {
		t.Errorf("hook called %d times", hookCalls())
	}
	if _, attempts := dp.snapshot(); attempts != 1 {
		t.Errorf("%d delivery attempts; the hook retry must not deliver again", attempts)
	}
	if b := ev.of(EventBounced); len(b) != 2 || b[0].Code != 550 {
		t.Errorf("bounce events: %+v", b)
	}
	if keys := spoolKeys(t, s); len(keys) > 0 {
		t.Errorf("keys left: %v", keys)
	}
}

// What a spool holds survives a close: stats, summaries, bodies, and the
// delivery of everything after the reopen.
func TestReopen(t *testing.T) { synctest.Test(t, reopen) }

func reopen(t *testing.T) {
	dir := t.TempDir()
	s := openSpool(t, Options{Dir: dir})
	var ids []string
	first := time.Now()
	for i := range 10 {
		ids = append(ids, enqueue(t, s, nil, fmt.Sprint(i), "a@one.test", "b@two.test"))
		time.Sleep(time.Second)
	}
	want := Stats{Messages: 10, Recipients: 20, Scheduled: 20, Oldest: first}
	if st := s.Stats(); st != want {
		t.Errorf("stats: %+v, want %+v", st, want)
	}
	if err := s.Close(t.Context()); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Enqueue(&Message{}, []NewRecipient{{Addr: "a@b"}}, nil); !errors.Is(err, ErrClosed) {
		t.Errorf("Enqueue after Close: %v", err)
	}

	s = openSpool(t, Options{Dir: dir})
	if st := s.Stats(); !st.Oldest.Equal(first) || st.Messages != 10 || st.Recipients != 20 || st.Scheduled != 20 {
		t.Errorf("stats after reopen: %+v", st)
	}
	ds, err := s.Summaries("domain", nil)
	if err != nil || len(ds) != 2 || ds[0].Key != "one.test" || ds[0].Recipients != 10 || !ds[0].Oldest.Equal(first) {
		t.Errorf("Summaries: %+v %v", ds, err)
	}
	if body, err := s.Body(ids[3]); err != nil || string(body) != "3" {
		t.Errorf("Body: %q %v", body, err)
	}
	if err := s.Close(t.Context()); err != nil {
		t.Fatal(err)
	}

	s = openSpool(t, Options{Dir: dir})
	dp := startDispatcher(t, s, &dispatcher{})
	synctest.Wait()
	if st := s.Stats(); st.Messages != 0 {
		t.Errorf("stats after delivery: %+v", st)
	}
	delivered, _ := dp.snapshot()
	for _, id := range ids {
		if delivered[id+" a@one.test"] != 1 || delivered[id+" b@two.test"] != 1 {
			t.Errorf("%s not delivered once", id)
		}
	}
	if keys := spoolKeys(t, s); len(keys) > 0 {
		t.Errorf("keys left after delivery: %v", keys)
	}
}

// Stats.Oldest is the receipt time of the oldest message queued.
func TestStatsOldest(t *testing.T) { synctest.Test(t, statsOldest) }

func statsOldest(t *testing.T) {
	s := openSpool(t, Options{})
	gate := make(chan struct{})
	startDispatcher(t, s, &dispatcher{gate: gate})
	t0 := time.Now()
	enqueue(t, s, nil, "x", "a@o.test")
	time.Sleep(time.Minute)
	enqueue(t, s, nil, "x", "b@o.test")
	time.Sleep(time.Minute)
	enqueue(t, s, nil, "x", "c@o.test")
	if st := s.Stats(); !st.Oldest.Equal(t0) {
		t.Errorf("Oldest %v, want %v", st.Oldest, t0)
	}
	gate <- struct{}{}
	synctest.Wait()
	if st := s.Stats(); st.Messages != 2 || !st.Oldest.Equal(t0.Add(time.Minute)) {
		t.Errorf("after delivering the first: %+v, want Oldest %v", st, t0.Add(time.Minute))
	}
	close(gate)
	synctest.Wait()
	if st := s.Stats(); st.Messages != 0 || !st.Oldest.IsZero() {
		t.Errorf("stats of an empty queue: %+v", st)
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
func TestOrphanRecipientRemoved(t *testing.T) { synctest.Test(t, orphanRecipientRemoved) }

func orphanRecipientRemoved(t *testing.T) {
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
	s = openSpool(t, Options{Dir: dir})
	dp := startDispatcher(t, s, &dispatcher{})
	synctest.Wait()
	if st := s.Stats(); st.Recipients != 0 || st.InFlight != 0 {
		t.Errorf("stats after delivery: %+v", st)
	}
	delivered, _ := dp.snapshot()
	if len(delivered) != 1 || delivered[keep+" b@o.test"] != 1 {
		t.Errorf("delivered: %v", delivered)
	}
	if keys := spoolKeys(t, s); len(keys) > 0 {
		t.Errorf("keys left: %v", keys)
	}
}

// EnqueueAll stores all its messages or none: a message that cannot be
// queued (an ID given twice in the batch, a bad recipient) leaves nothing
// of the others, in memory or on disk.
func TestEnqueueAllIsAllOrNothing(t *testing.T) {
	dir := t.TempDir()
	s := openSpool(t, Options{Dir: dir})
	id := s.NewID()
	for name, bad := range map[string]Submission{
		"same id":       {Msg: &Message{ID: id}, Rcpts: []NewRecipient{{Addr: "b@two.test"}}, Body: []byte("b")},
		"bad recipient": {Msg: &Message{}, Rcpts: []NewRecipient{{Addr: "nodomain"}}, Body: []byte("b")},
	} {
		err := s.EnqueueAll([]Submission{{Msg: &Message{ID: id}, Rcpts: []NewRecipient{{Addr: "a@one.test"}}, Body: []byte("a")}, bad})
		if err == nil {
			t.Fatalf("%s: EnqueueAll succeeded", name)
		}
		if st := s.Stats(); st.Messages != 0 || st.Recipients != 0 {
			t.Fatalf("%s: %+v queued after a failed EnqueueAll", name, st)
		}
	}
	subs := []Submission{
		{Msg: &Message{ID: id}, Rcpts: []NewRecipient{{Addr: "a@one.test"}}, Body: []byte("a")},
		{Msg: &Message{}, Rcpts: []NewRecipient{{Addr: "b@two.test"}}, Body: []byte("b")},
	}
	if err := s.EnqueueAll(subs); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(t.Context()); err != nil {
		t.Fatal(err)
	}
	s = openSpool(t, Options{Dir: dir})
	for _, sub := range subs {
		if body, err := s.Body(sub.Msg.ID); err != nil || string(body) != string(sub.Body) {
			t.Errorf("%s: body %q %v", sub.Msg.ID, body, err)
		}
	}
	if st := s.Stats(); st.Messages != 2 {
		t.Errorf("%+v after reopen", st)
	}
}
