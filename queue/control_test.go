package queue

import (
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"
)

// Flush makes deferred recipients due now, keeping their attempt counts.
func TestFlush(t *testing.T) { synctest.Test(t, flush) }

func flush(t *testing.T) {
	var fail sync.Map // addr -> true while it must fail
	var ev events
	s := openSpool(t, Options{OnEvent: ev.add})
	startDispatcher(t, s, &dispatcher{decide: func(_ *Message, r Recipient) Result {
		if _, ok := fail.Load(r.Addr); ok {
			return Result{Status: Temporary, Code: 451, Text: "later"}
		}
		return Result{Status: Delivered, Code: 250}
	}})
	fail.Store("a@one.test", true)
	fail.Store("b@two.test", true)
	enqueue(t, s, nil, "x", "a@one.test", "b@two.test")
	synctest.Wait()
	if n, st := len(ev.of(EventDeferred)), s.Stats(); n != 2 || st.InFlight != 0 {
		t.Fatalf("%d deferrals, stats %+v", n, st)
	}
	fail.Clear()

	if n, err := s.Flush(Selector{Domain: "ONE.test"}, nil, nil); n != 1 || err != nil {
		t.Fatalf("Flush: %d %v", n, err)
	}
	synctest.Wait()
	if d := ev.of(EventDelivered); len(d) != 1 || d[0].Recipient != "a@one.test" || d[0].Attempt != 2 {
		t.Errorf("delivered: %+v", d)
	}
	if st := s.Stats(); st.Recipients != 1 || st.Deferred != 1 {
		t.Errorf("stats: %+v", st)
	}
	if n, err := s.Flush(Selector{}, nil, nil); n != 1 || err != nil {
		t.Fatalf("Flush all: %d %v", n, err)
	}
	synctest.Wait()
	if st := s.Stats(); st != (Stats{}) {
		t.Errorf("stats after delivery: %+v", st)
	}
	if n, err := s.Flush(Selector{}, nil, nil); n != 0 || err != nil {
		t.Errorf("Flush of an empty queue: %d %v", n, err)
	}
}

// setupControl queues, on a spool that delivers nothing, messages of two
// senders and campaigns to three domains.
func setupControl(t *testing.T, opts Options) (*Spool, []string) {
	s := openSpool(t, opts)
	var ids []string
	for i := range 6 {
		msg := &Message{Sender: []string{"acme", "beta"}[i%2], Campaign: fmt.Sprintf("c%d", i%3), ReturnPath: "r@acme.test"}
		ids = append(ids, enqueue(t, s, msg, fmt.Sprint("body ", i), fmt.Sprintf("u%d@a.test", i), fmt.Sprintf("u%d@b.test", i), fmt.Sprintf("v%d@b.test", i)))
	}
	return s, ids
}

func TestSummaries(t *testing.T) {
	s, _ := setupControl(t, Options{})
	for _, tc := range []struct {
		by   string
		want string
	}{
		{"domain", "b.test:12/6 a.test:6/6"},
		{"site", "b.test:12/6 a.test:6/6"},
		{"sender", "acme:9/3 beta:9/3"},
		{"campaign", "c0:6/2 c1:6/2 c2:6/2"},
	} {
		sums, err := s.Summaries(tc.by, nil)
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		for _, sm := range sums {
			got = append(got, fmt.Sprintf("%s:%d/%d", sm.Key, sm.Recipients, sm.Messages))
			if sm.Oldest.IsZero() {
				t.Errorf("%s %s: no oldest", tc.by, sm.Key)
			}
		}
		if g := strings.Join(got, " "); g != tc.want {
			t.Errorf("Summaries(%s) = %s, want %s", tc.by, g, tc.want)
		}
	}
	if _, err := s.Summaries("provider", nil); err == nil {
		t.Error("Summaries(provider) succeeded")
	}
}

// Bounce fails the matching recipients through OnFailure, with bounced
// events; its dry run counts the same.
func TestOperatorBounce(t *testing.T) {
	var ev events
	var mu sync.Mutex
	hooked := map[string][]Failed{}
	var bodies []string
	s, ids := setupControl(t, Options{OnEvent: ev.add, OnFailure: func(msg *Message, body []byte, failed []Failed) error {
		mu.Lock()
		defer mu.Unlock()
		hooked[msg.ID] = append(hooked[msg.ID], failed...)
		bodies = append(bodies, string(body))
		return nil
	}})
	if _, err := s.Bounce(Selector{}, nil, "x", false, nil); err == nil {
		t.Error("Bounce with an empty selector succeeded")
	}
	sel := Selector{Domain: "b.test", Sender: "acme"}
	n, err := s.Bounce(sel, nil, "list retired", true, nil)
	if n != 6 || err != nil {
		t.Fatalf("dry run: %d %v", n, err)
	}
	if st := s.Stats(); st.Recipients != 18 || len(hooked) != 0 || len(ev.all) != 0 {
		t.Fatalf("dry run changed something: %+v", st)
	}
	n, err = s.Bounce(sel, nil, "list retired", false, nil)
	if n != 6 || err != nil {
		t.Fatalf("Bounce: %d %v", n, err)
	}
	if len(hooked) != 3 {
		t.Errorf("OnFailure for %d messages, want 3 (one per message)", len(hooked))
	}
	for id, fs := range hooked {
		if len(fs) != 2 || fs[0].Result.Status != Permanent || fs[0].Result.Enhanced != "5.0.0" ||
			fs[0].Result.Text != "bounced by operator: list retired" || fs[0].Result.Class != "" ||
			fs[0].Result.Reason != ReasonOperator || fs[0].Expired {
			t.Errorf("OnFailure for %s: %+v", id, fs)
		}
	}
	if !strings.HasPrefix(bodies[0], "body ") {
		t.Errorf("OnFailure body %q", bodies[0])
	}
	b := ev.of(EventBounced)
	if len(b) != 6 || b[0].Sender != "acme" || !strings.HasSuffix(b[0].Recipient, "@b.test") || b[0].Enhanced != "5.0.0" {
		t.Errorf("bounced events: %+v", b)
	}
	if st := s.Stats(); st.Recipients != 12 || st.Messages != 6 {
		t.Errorf("stats: %+v", st)
	}
	_, rcpts, err := s.Show(ids[0])
	if err != nil || len(rcpts) != 1 || rcpts[0].Addr != "u0@a.test" {
		t.Errorf("Show after bounce: %+v %v", rcpts, err)
	}
	if n, _ := s.Bounce(sel, nil, "again", false, nil); n != 0 {
		t.Errorf("second Bounce: %d", n)
	}

	// A failing hook keeps the recipients.
	s2, _ := setupControl(t, Options{OnFailure: func(*Message, []byte, []Failed) error { return errors.New("disk full") }})
	if n, err := s2.Bounce(Selector{Campaign: "c1"}, nil, "x", false, nil); n != 0 || err == nil {
		t.Errorf("Bounce with a failing hook: %d %v", n, err)
	}
	if st := s2.Stats(); st.Recipients != 18 {
		t.Errorf("stats after a failed bounce: %+v", st)
	}
}

// Delete removes the matching recipients silently, and the messages (with
// their bodies) whose last recipient goes; its dry run counts the same.
func TestOperatorDelete(t *testing.T) {
	var ev events
	hooks := 0
	s, ids := setupControl(t, Options{OnEvent: ev.add, OnFailure: func(*Message, []byte, []Failed) error { hooks++; return nil }})
	for _, sel := range []Selector{{Campaign: "c0"}, {Sender: "beta", Domain: "a.test"}, {Site: "b.test", Sender: "acme"}} {
		dry, err := s.Delete(sel, nil, true, nil)
		if err != nil {
			t.Fatal(err)
		}
		before := s.Stats().Recipients
		n, err := s.Delete(sel, nil, false, nil)
		if err != nil || n != dry || n == 0 {
			t.Errorf("Delete(%+v): %d %v, dry run said %d", sel, n, err, dry)
		}
		if after := s.Stats().Recipients; after != before-n {
			t.Errorf("Delete(%+v): %d recipients left of %d, %d deleted", sel, after, before, n)
		}
	}
	// c0: messages 0 and 3 (6 recipients); beta on a.test: 1 and 5 (3 is
	// gone); acme on b.test: messages 2 and 4 (4).
	if n := len(ev.of(EventDeleted)); n != 6+2+4 {
		t.Errorf("%d deleted events", n)
	}
	if e := ev.of(EventDeleted)[0]; e.MsgID != ids[0] || e.Recipient == "" || e.Campaign != "c0" {
		t.Errorf("deleted event: %+v", e)
	}
	if hooks != 0 {
		t.Error("Delete called OnFailure")
	}
	for _, i := range []int{0, 3} {
		if _, err := s.Body(ids[i]); !errors.Is(err, ErrNotFound) {
			t.Errorf("body of deleted message %d: %v", i, err)
		}
	}
	sums, _ := s.Summaries("domain", nil)
	if len(sums) != 2 || sums[0].Key != "b.test" || sums[0].Recipients != 4 || sums[1].Recipients != 2 {
		t.Errorf("left: %+v", sums)
	}
	if n, _ := s.Delete(Selector{Domain: "a.test"}, nil, false, nil); n != 2 {
		t.Errorf("deleted %d", n)
	}
	if n, _ := s.Delete(Selector{Domain: "b.test"}, nil, false, nil); n != 4 {
		t.Errorf("deleted %d", n)
	}
	if st := s.Stats(); st != (Stats{}) {
		t.Errorf("stats: %+v", st)
	}
	if keys := spoolKeys(t, s); len(keys) > 0 {
		t.Errorf("keys left: %v", keys)
	}
}

// OnDelay is called once per recipient queued longer than DelayNotice
// after a temporary failure, across a restart too.
//
// The spool runs on a testkit clock that the test moves 5 minutes at a
// time, past both recipients' jittered retries, so that they are retried
// (and noticed) together; the synctest bubble lets settle wait until
// everything due under the clock is done.
func TestDelayNotice(t *testing.T) { synctest.Test(t, delayNotice) }

func delayNotice(t *testing.T) {
	dir := t.TempDir()
	clk := newClock()
	busy := func(*Message, Recipient) Result { return Result{Status: Temporary, Code: 451, Text: "busy"} }
	var mu sync.Mutex
	var notified [][]string
	onDelay := func(msg *Message, header []byte, rcpts []Recipient, until time.Time) error {
		mu.Lock()
		defer mu.Unlock()
		if string(header) != "Subject: x\r\n\r\n" {
			t.Errorf("OnDelay header %q, want the message's", header)
		}
		if want := msg.Received.Add(defaultRetry.MaxAge); !until.Equal(want) {
			t.Errorf("OnDelay until %v, want the expiry %v", until, want)
		}
		var addrs []string
		for _, r := range rcpts {
			addrs = append(addrs, r.Addr)
			if r.Attempts == 0 || r.LastError == "" {
				t.Errorf("OnDelay recipient: %+v", r)
			}
		}
		slices.Sort(addrs)
		notified = append(notified, addrs)
		return nil
	}
	calls := func() [][]string {
		mu.Lock()
		defer mu.Unlock()
		return slices.Clone(notified)
	}
	var ev events
	opts := Options{Dir: dir, Now: clk.Now, OnEvent: ev.add, DelayNotice: 10 * time.Minute, OnDelay: onDelay}
	retryPolicy := Retry{Interval: 4 * time.Minute, MaxInterval: 4 * time.Minute, MaxAge: defaultRetry.MaxAge}
	s := openSpool(t, opts)
	dp := startDispatcher(t, s, &dispatcher{retry: retryPolicy, decide: busy})
	id := enqueue(t, s, nil, "Subject: x\r\n\r\nbody\r\n", "a@d.test", "b@d.test")
	deferrals := func(n int) {
		t.Helper()
		if got, st := len(ev.of(EventDeferred)), s.Stats(); got != n || st.InFlight != 0 {
			t.Fatalf("%d deferrals, stats %+v; want %d", got, st, n)
		}
	}
	retry := func(n int) {
		t.Helper()
		clk.Set(clk.Now().Add(5 * time.Minute))
		s.settle()
		deferrals(n)
	}
	synctest.Wait()
	deferrals(2)
	retry(4) // 5 minutes
	if n := len(calls()); n != 0 {
		t.Fatalf("OnDelay called before DelayNotice")
	}
	retry(6) // 10 minutes
	if got := calls(); len(got) != 1 || !slices.Equal(got[0], []string{"a@d.test", "b@d.test"}) {
		t.Fatalf("OnDelay calls: %v", got)
	}
	_, rcpts, _ := s.Show(id)
	if len(rcpts) != 2 || !rcpts[0].DelayNotified || !rcpts[1].DelayNotified {
		t.Errorf("recipients: %+v", rcpts)
	}
	retry(8)
	dp.close()
	if err := s.Close(t.Context()); err != nil {
		t.Fatal(err)
	}
	ev = events{}
	clk.Set(clk.Now().Add(5 * time.Minute))
	s = openSpool(t, opts)
	startDispatcher(t, s, &dispatcher{retry: retryPolicy, decide: busy})
	synctest.Wait()
	deferrals(2)
	retry(4)
	if got := calls(); len(got) != 1 {
		t.Errorf("OnDelay called again after a reopen: %v", got)
	}
}

// A failing OnDelay is retried at the next deferral.
func TestDelayNoticeRetried(t *testing.T) { synctest.Test(t, delayNoticeRetried) }

func delayNoticeRetried(t *testing.T) {
	var mu sync.Mutex
	calls := 0
	var ev events
	s := openSpool(t, Options{OnEvent: ev.add, DelayNotice: time.Minute,
		OnDelay: func(*Message, []byte, []Recipient, time.Time) error {
			mu.Lock()
			defer mu.Unlock()
			calls++
			if calls == 1 {
				return errors.New("no")
			}
			return nil
		}})
	startDispatcher(t, s, &dispatcher{decide: func(*Message, Recipient) Result {
		return Result{Status: Temporary, Code: 451, Text: "busy"}
	}})
	enqueue(t, s, &Message{Received: time.Now().Add(-2 * time.Minute)}, "x", "a@d.test")
	for n := 1; n <= 3; n++ {
		synctest.Wait()
		d := ev.of(EventDeferred)
		if st := s.Stats(); len(d) != n || st.InFlight != 0 {
			t.Fatalf("%d deferrals, stats %+v; want %d", len(d), st, n)
		}
		if n < 3 {
			time.Sleep(time.Until(d[n-1].NextRetry)) // the scheduler wakes by itself
		}
	}
	mu.Lock()
	defer mu.Unlock()
	if calls != 2 {
		t.Errorf("OnDelay called %d times, want 2", calls)
	}
}

// Recipient records of version 1 (before DelayNotified) are still read.
func TestRecipientRecordV1(t *testing.T) {
	now := time.Unix(1700000000, 0)
	b := []byte{1}
	b = binary.AppendUvarint(b, 2)
	b = appendTime(b, now)
	b = appendTime(b, now.Add(-time.Minute))
	for _, s := range []string{"u@x.test", "x.test", "DELAY", "", "451 busy"} {
		b = appendString(b, s)
	}
	b = append(b, 0)
	r, f, err := decodeRecipient(3, b)
	if err != nil || f != nil || r.Addr != "u@x.test" || r.Notify != "DELAY" || r.Attempts != 2 || r.DelayNotified || !r.NextAttempt.Equal(now) {
		t.Errorf("v1 record: %+v %+v %v", r, f, err)
	}
	r.DelayNotified = true
	got, _, err := decodeRecipient(3, appendRecipient(nil, &r, nil))
	if err != nil || !got.DelayNotified {
		t.Errorf("v2 round trip: %+v %v", got, err)
	}
}
