package queue

import (
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

// Flush makes deferred recipients due now, keeping their attempt counts.
func TestFlush(t *testing.T) {
	clk := newClock()
	var fail sync.Map // addr -> true while it must fail
	c := &fakeCourier{decide: func(dest string, r Recipient) Result {
		if _, ok := fail.Load(r.Addr); ok {
			return Result{Status: Temporary, Code: 451, Text: "later"}
		}
		return Result{Status: Delivered, Code: 250}
	}}
	var ev events
	s := openSpool(t, Options{Courier: c, Now: clk.Now, OnEvent: ev.add})
	fail.Store("a@one.test", true)
	fail.Store("b@two.test", true)
	enqueue(t, s, nil, "x", "a@one.test", "b@two.test")
	waitFor(t, "deferrals", func() bool { return len(ev.of(EventDeferred)) == 2 && s.Stats().InFlight == 0 })
	fail.Clear()

	if n, err := s.Flush(Selector{Domain: "ONE.test"}); n != 1 || err != nil {
		t.Fatalf("Flush: %d %v", n, err)
	}
	waitFor(t, "delivery of the flushed recipient", func() bool { return len(ev.of(EventDelivered)) == 1 })
	d := ev.of(EventDelivered)[0]
	if d.Recipient != "a@one.test" || d.Attempt != 2 {
		t.Errorf("delivered: %+v", d)
	}
	time.Sleep(20 * time.Millisecond)
	if st := s.Stats(); st.Recipients != 1 || st.Deferred != 1 {
		t.Errorf("stats: %+v", st)
	}
	if n, err := s.Flush(Selector{}); n != 1 || err != nil {
		t.Fatalf("Flush all: %d %v", n, err)
	}
	waitFor(t, "delivery", func() bool { return s.Stats().Messages == 0 })
	if n, err := s.Flush(Selector{}); n != 0 || err != nil {
		t.Errorf("Flush of an empty queue: %d %v", n, err)
	}
}

// setupControl queues, on a spool without a courier, messages of two
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
		sums, err := s.Summaries(tc.by)
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
	if _, err := s.Summaries("provider"); err == nil {
		t.Error("Summaries(provider) succeeded")
	}
}

// Known sites group their domains; others count under their own name.
func TestSummariesBySite(t *testing.T) {
	c := &mxCourier{siteOf: map[string]string{"a.test": "mx.test", "b.test": "mx.test"},
		reply: func(dest string, r Recipient) Result {
			return Result{Status: Temporary, Code: 451, Text: "busy " + dest}
		}}
	clk := newClock()
	dir := t.TempDir()
	s := openSpool(t, Options{Dir: dir, Courier: c, SiteOf: c.SiteOf, Now: clk.Now})
	enqueue(t, s, nil, "x", "u@a.test", "u@b.test", "v@b.test")
	waitFor(t, "attempts", func() bool { st := s.Stats(); return st.Deferred == 3 && st.InFlight == 0 })
	if err := s.Close(t.Context()); err != nil {
		t.Fatal(err)
	}
	clk.Set(clk.Now().Add(time.Second))
	s = openSpool(t, Options{Dir: dir, Courier: c, SiteOf: c.SiteOf, Now: clk.Now})
	enqueue(t, s, nil, "x", "w@b.test", "w@c.test")
	waitFor(t, "attempts", func() bool { st := s.Stats(); return st.Deferred == 5 && st.InFlight == 0 })
	keys := func(want string) []Summary {
		t.Helper()
		sums, err := s.Summaries("site")
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		for _, sm := range sums {
			got = append(got, fmt.Sprintf("%s:%d/%d", sm.Key, sm.Recipients, sm.Messages))
		}
		if g := strings.Join(got, " "); g != want {
			t.Errorf("Summaries(site) = %s, want %s", g, want)
		}
		return sums
	}
	// a.test was not attempted since the reopen: it is its own site.
	sums := keys("mx.test:3/2 a.test:1/1 c.test:1/1")
	if sm := sums[0]; sm.Site == nil || sm.Site.Domains != 1 || sm.LastError != "451 busy b.test" {
		t.Errorf("site summary: %+v %+v", sm, sm.Site)
	}
	clk.Set(clk.Now().Add(time.Second))
	enqueue(t, s, nil, "x", "x@a.test")
	waitFor(t, "attempts", func() bool { st := s.Stats(); return st.Deferred == 6 && st.InFlight == 0 })
	sums = keys("mx.test:5/3 c.test:1/1")
	if sm := sums[0]; sm.Site == nil || sm.Site.Name != "mx.test" || sm.Site.Domains != 2 || sm.Site.Factor != 1 ||
		sm.Site.MaxConnections != DefaultLimits.MaxConnections || sm.LastError != "451 busy a.test" {
		t.Errorf("site summary: %+v %+v", sm, sm.Site)
	}
	dsums, _ := s.Summaries("domain")
	if len(dsums) != 3 || dsums[0].Key != "b.test" || dsums[0].Site == nil || dsums[0].Site.Name != "mx.test" {
		t.Errorf("Summaries(domain): %+v", dsums)
	}

	if err := s.Close(t.Context()); err != nil {
		t.Fatal(err)
	}
	s = openSpool(t, Options{Dir: dir})
	keys("b.test:3/2 a.test:2/2 c.test:1/1")
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
	if _, err := s.Bounce(Selector{}, "x", false); err == nil {
		t.Error("Bounce with an empty selector succeeded")
	}
	sel := Selector{Domain: "b.test", Sender: "acme"}
	n, err := s.Bounce(sel, "list retired", true)
	if n != 6 || err != nil {
		t.Fatalf("dry run: %d %v", n, err)
	}
	if st := s.Stats(); st.Recipients != 18 || len(hooked) != 0 || len(ev.all) != 0 {
		t.Fatalf("dry run changed something: %+v", st)
	}
	n, err = s.Bounce(sel, "list retired", false)
	if n != 6 || err != nil {
		t.Fatalf("Bounce: %d %v", n, err)
	}
	if len(hooked) != 3 {
		t.Errorf("OnFailure for %d messages, want 3 (one per message)", len(hooked))
	}
	for id, fs := range hooked {
		if len(fs) != 2 || fs[0].Result.Status != Permanent || fs[0].Result.Enhanced != "5.0.0" ||
			fs[0].Result.Text != "bounced by operator: list retired" || fs[0].Result.Class != "soft" || fs[0].Expired {
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
	if n, _ := s.Bounce(sel, "again", false); n != 0 {
		t.Errorf("second Bounce: %d", n)
	}

	// A failing hook keeps the recipients.
	s2, _ := setupControl(t, Options{OnFailure: func(*Message, []byte, []Failed) error { return errors.New("disk full") }})
	if n, err := s2.Bounce(Selector{Campaign: "c1"}, "x", false); n != 0 || err == nil {
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
		dry, err := s.Delete(sel, true)
		if err != nil {
			t.Fatal(err)
		}
		before := s.Stats().Recipients
		n, err := s.Delete(sel, false)
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
	sums, _ := s.Summaries("domain")
	if len(sums) != 2 || sums[0].Key != "b.test" || sums[0].Recipients != 4 || sums[1].Recipients != 2 {
		t.Errorf("left: %+v", sums)
	}
	if n, _ := s.Delete(Selector{Domain: "a.test"}, false); n != 2 {
		t.Errorf("deleted %d", n)
	}
	if n, _ := s.Delete(Selector{Domain: "b.test"}, false); n != 4 {
		t.Errorf("deleted %d", n)
	}
	if st := s.Stats(); st != (Stats{}) {
		t.Errorf("stats: %+v", st)
	}
	if keys := spoolKeys(t, s); len(keys) > 0 {
		t.Errorf("keys left: %v", keys)
	}
}

// Bounce and Delete take recipients waiting in memory (here, for a
// suspended site) and skip those in flight.
func TestOperatorReadyAndInFlight(t *testing.T) {
	c := &fakeCourier{gate: make(chan struct{})}
	var ev events
	s := openSpool(t, Options{Courier: c, OnEvent: ev.add, Limits: func(Site, string) Limits { return Limits{MaxConnections: 1} }})
	enqueue(t, s, &Message{Campaign: "x"}, "x", "u0@g.test")
	waitFor(t, "one in flight", func() bool { return s.Stats().InFlight == 1 })
	for i := 1; i < 5; i++ {
		enqueue(t, s, &Message{Campaign: "x"}, "x", fmt.Sprintf("u%d@g.test", i))
	}
	if st := s.Stats(); st.Ready != 4 {
		t.Fatalf("stats: %+v", st)
	}
	if n, err := s.Delete(Selector{Campaign: "x"}, true); n != 4 || err != nil {
		t.Fatalf("dry run: %d %v", n, err)
	}
	if n, err := s.Delete(Selector{Campaign: "x"}, false); n != 4 || err != nil {
		t.Fatalf("Delete: %d %v", n, err)
	}
	if st := s.Stats(); st.Ready != 0 || st.InFlight != 1 || st.Recipients != 1 || st.Messages != 1 {
		t.Errorf("stats: %+v", st)
	}
	close(c.gate)
	waitFor(t, "delivery", func() bool { return s.Stats().Messages == 0 })
	if _, delivered, _ := c.snapshot(); len(delivered) != 1 {
		t.Errorf("delivered %v", delivered)
	}
	if keys := spoolKeys(t, s); len(keys) > 0 {
		t.Errorf("keys left: %v", keys)
	}
}

// OnDelay is called once per recipient queued longer than DelayNotice
// after a temporary failure, across a restart too.
func TestDelayNotice(t *testing.T) {
	dir := t.TempDir()
	clk := newClock()
	c := &fakeCourier{decide: func(string, Recipient) Result { return Result{Status: Temporary, Code: 451, Text: "busy"} }}
	var mu sync.Mutex
	var notified [][]string
	onDelay := func(msg *Message, rcpts []Recipient) error {
		mu.Lock()
		defer mu.Unlock()
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
	opts := Options{Dir: dir, Courier: c, Now: clk.Now, OnEvent: ev.add, DelayNotice: 10 * time.Minute, OnDelay: onDelay,
		Limits: func(Site, string) Limits {
			return Limits{RetryInterval: 4 * time.Minute, MaxRetryInterval: 4 * time.Minute}
		}}
	s := openSpool(t, opts)
	id := enqueue(t, s, nil, "x", "a@d.test", "b@d.test")
	retry := func(n int) {
		t.Helper()
		clk.Set(clk.Now().Add(5 * time.Minute))
		s.poke()
		waitFor(t, fmt.Sprintf("%d deferrals", n), func() bool { return len(ev.of(EventDeferred)) == n && s.Stats().InFlight == 0 })
	}
	waitFor(t, "first deferral", func() bool { return len(ev.of(EventDeferred)) == 2 && s.Stats().InFlight == 0 })
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
	if err := s.Close(t.Context()); err != nil {
		t.Fatal(err)
	}
	ev = events{}
	clk.Set(clk.Now().Add(5 * time.Minute))
	s = openSpool(t, opts)
	waitFor(t, "deferral after reopen", func() bool { return len(ev.of(EventDeferred)) == 2 && s.Stats().InFlight == 0 })
	retry(4)
	if got := calls(); len(got) != 1 {
		t.Errorf("OnDelay called again after a reopen: %v", got)
	}
}

// A failing OnDelay is retried at the next deferral.
func TestDelayNoticeRetried(t *testing.T) {
	clk := newClock()
	c := &fakeCourier{decide: func(string, Recipient) Result { return Result{Status: Temporary, Code: 451, Text: "busy"} }}
	var mu sync.Mutex
	calls := 0
	var ev events
	s := openSpool(t, Options{Courier: c, Now: clk.Now, OnEvent: ev.add, DelayNotice: time.Minute,
		OnDelay: func(*Message, []Recipient) error {
			mu.Lock()
			defer mu.Unlock()
			calls++
			if calls == 1 {
				return errors.New("no")
			}
			return nil
		}})
	enqueue(t, s, &Message{Received: clk.Now().Add(-2 * time.Minute)}, "x", "a@d.test")
	for n := 1; n <= 3; n++ {
		waitFor(t, "deferral", func() bool { return len(ev.of(EventDeferred)) == n && s.Stats().InFlight == 0 })
		clk.Set(clk.Now().Add(time.Hour))
		s.poke()
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

// Operator commands race deliveries, retries and the scheduler: every
// recipient ends exactly once (delivered, bounced or deleted), and nothing
// is left behind.
func TestControlUnderLoad(t *testing.T) {
	c := &fakeCourier{decide: func(dest string, r Recipient) Result {
		if r.Attempts < len(r.Addr)%3 {
			return Result{Status: Temporary, Code: 451, Text: "again"}
		}
		return Result{Status: Delivered}
	}}
	var ev events
	var hookMu sync.Mutex
	hooked := map[string]int{}
	s := openSpool(t, Options{Courier: c, NoSync: true, ReadyCapacity: 4, MaxInMemory: 16, OnEvent: ev.add,
		SiteOf: (&mxCourier{siteOf: map[string]string{"d0.test": "s.test", "d1.test": "s.test"}}).SiteOf,
		OnFailure: func(msg *Message, body []byte, failed []Failed) error {
			hookMu.Lock()
			defer hookMu.Unlock()
			for _, f := range failed {
				hooked[msg.ID+" "+f.Recipient.Addr]++
			}
			return nil
		},
		Limits: func(Site, string) Limits {
			return Limits{MaxConnections: 2, MaxRecipientsPerMessage: 2, RetryInterval: time.Millisecond, MaxRetryInterval: 3 * time.Millisecond}
		}})
	var wg sync.WaitGroup
	stop := make(chan struct{})
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
				_, err = s.Flush(Selector{})
			case 1:
				_, err = s.Delete(Selector{Campaign: "c3"}, false)
			case 2:
				_, err = s.Bounce(Selector{Campaign: "c2", Site: "s.test"}, "test", false)
			case 3:
				_, err = s.Summaries("site")
			}
			if err != nil {
				opMu.Lock()
				opErr = err
				opMu.Unlock()
			}
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
				enqueue(t, s, &Message{Campaign: fmt.Sprintf("c%d", i%4)}, "x", addrs...)
			}
		}()
	}
	pwg.Wait()
	time.Sleep(50 * time.Millisecond)
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
	waitFor(t, "the queue to drain and every recipient's end event", func() bool {
		return s.Stats().Messages == 0 &&
			len(ev.of(EventDelivered))+len(ev.of(EventBounced))+len(ev.of(EventDeleted)) >= total
	})
	_, delivered, _ := c.snapshot()
	ends := map[string][]EventKind{}
	ev.mu.Lock()
	all := slices.Clone(ev.all)
	ev.mu.Unlock()
	for _, e := range all {
		if e.Kind == EventDelivered || e.Kind == EventBounced || e.Kind == EventDeleted {
			ends[e.MsgID+" "+e.Recipient] = append(ends[e.MsgID+" "+e.Recipient], e.Kind)
			if e.Kind == EventBounced && (e.Campaign != "c2" || strings.Contains(e.Recipient, "@d2.test")) ||
				e.Kind == EventDeleted && e.Campaign != "c3" {
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
		if kinds[0] == EventDelivered && delivered[k] != 1 || kinds[0] != EventDelivered && delivered[k] != 0 {
			t.Errorf("%s: %v, delivered %d times", k, kinds, delivered[k])
		}
		if kinds[0] == EventBounced && hooked[k] != 1 {
			t.Errorf("%s bounced, OnFailure %d times", k, hooked[k])
		}
	}
	if st := s.Stats(); st != (Stats{}) {
		t.Errorf("stats: %+v", st)
	}
	if keys := spoolKeys(t, s); len(keys) > 0 {
		t.Errorf("keys left: %v", keys)
	}
	t.Logf("%d delivered, %d bounced, %d deleted", len(ev.of(EventDelivered)), len(ev.of(EventBounced)), len(ev.of(EventDeleted)))
}
