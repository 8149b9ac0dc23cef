package engine

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cockroachdb/pebble"

	"drover/mta/smtperr"
	"drover/queue"
	"drover/queue/shaping"
	"drover/testkit"
)

// fakePlanner plans every destination at once, without DNS: its site is
// the one siteOf names (the destination itself when missing), its MX the
// host "mx.<site>", and its limits are limits(site, dest) for the
// destination and limits(site, "") for the site as a whole, with zero
// fields taken from shaping.BuiltinLimits (nil limits: the built-in ones).
// Refresh recomputes the limits, as after a reload.
type fakePlanner struct {
	siteOf map[string]string
	limits func(site, dest string) shaping.Limits

	mu    sync.Mutex
	plans map[string]int // Plan calls per destination
}

func (p *fakePlanner) site(dest string) string {
	if s, ok := p.siteOf[dest]; ok {
		return s
	}
	return dest
}

func (p *fakePlanner) limitsOf(site, dest string) shaping.Limits {
	l := shaping.BuiltinLimits
	if p.limits == nil {
		return l
	}
	c := p.limits(site, dest)
	for _, f := range []struct{ dst, src *int }{
		{&l.MaxConnections, &c.MaxConnections},
		{&l.MaxMessagesPerConnection, &c.MaxMessagesPerConnection},
		{&l.MaxRecipientsPerMessage, &c.MaxRecipientsPerMessage},
	} {
		if *f.src > 0 {
			*f.dst = *f.src
		}
	}
	for _, f := range []struct{ dst, src *time.Duration }{
		{&l.RetryInterval, &c.RetryInterval},
		{&l.MaxRetryInterval, &c.MaxRetryInterval},
		{&l.MaxAge, &c.MaxAge},
	} {
		if *f.src > 0 {
			*f.dst = *f.src
		}
	}
	if !c.MaxMessageRate.Unlimited() {
		l.MaxMessageRate = c.MaxMessageRate
	}
	if !c.MaxConnectionRate.Unlimited() {
		l.MaxConnectionRate = c.MaxConnectionRate
	}
	l.TLS, l.Pool = c.TLS, c.Pool
	return l
}

func (p *fakePlanner) Plan(ctx context.Context, dest string) (*Plan, error) {
	p.mu.Lock()
	if p.plans == nil {
		p.plans = map[string]int{}
	}
	p.plans[dest]++
	p.mu.Unlock()
	site := p.site(dest)
	return &Plan{Site: site, MX: []string{"mx." + site}, SiteLimits: p.limitsOf(site, ""), Limits: p.limitsOf(site, dest)}, nil
}

func (p *fakePlanner) Refresh(dest string, old *Plan) *Plan {
	np := *old
	np.SiteLimits, np.Limits = p.limitsOf(np.Site, ""), p.limitsOf(np.Site, dest)
	return &np
}

// perSecond is a rate of n events per second.
func perSecond(n int) shaping.Rate { return shaping.Rate{Count: n, Per: time.Second} }

// fakeCourier records deliveries and answers per recipient on cue.
type fakeCourier struct {
	decide  func(dest string, r queue.Recipient) queue.Result // nil: deliver everything
	openErr func(dest string) error                           // nil: Open succeeds
	// gate, if set, must yield a token for each Deliver (and each Open
	// when gateOpen is set); closing it lets everything through.
	gate     chan struct{}
	gateOpen bool
	delay    time.Duration
	panics   int // Deliver panics this many times first

	mu        sync.Mutex
	opens     int
	open      map[string]int // open connections per destination
	maxOpen   map[string]int
	calls     []call
	delivered map[string]int // "id addr" -> deliveries
	maxSent   int            // most messages sent on one connection
}

type call struct {
	t     time.Time // when Deliver was called
	dest  string
	id    string
	from  string
	addrs []string
	body  string
}

type fakeConn struct {
	c    *fakeCourier
	dest string
	sent int
}

// permanentError is a permanent open failure without a reply (as a
// destination that does not exist).
func permanentError(msg string) error { return smtperr.Permanent(0, "5.1.2", msg) }

// resultError is an open failure carrying the reply to record, as the
// mta courier's errors do.
func resultError(r queue.Result) error {
	return &smtperr.Error{Code: r.Code, Enhanced: r.Enhanced, Message: r.Text, Remote: r.Remote, Permanent: r.Status == queue.Permanent}
}

func (c *fakeCourier) Open(ctx context.Context, dest string, plan *Plan, pool string) (Conn, error) {
	if c.gate != nil && c.gateOpen {
		select {
		case <-c.gate:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.opens++
	if c.openErr != nil {
		if err := c.openErr(dest); err != nil {
			return nil, err
		}
	}
	if c.open == nil {
		c.open, c.maxOpen = map[string]int{}, map[string]int{}
	}
	c.open[dest]++
	c.maxOpen[dest] = max(c.maxOpen[dest], c.open[dest])
	return &fakeConn{c: c, dest: dest}, nil
}

func (fc *fakeConn) Deliver(ctx context.Context, msg *queue.Message, from string, rcpts []queue.Recipient, body []byte) ([]queue.Result, error) {
	c := fc.c
	start := time.Now()
	if c.gate != nil && !c.gateOpen {
		select {
		case <-c.gate:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	if c.delay > 0 {
		time.Sleep(c.delay)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.panics > 0 {
		c.panics--
		panic("courier bug")
	}
	fc.sent++
	c.maxSent = max(c.maxSent, fc.sent)
	cl := call{t: start, dest: fc.dest, id: msg.ID, from: from, body: string(body)}
	res := make([]queue.Result, len(rcpts))
	for i, r := range rcpts {
		cl.addrs = append(cl.addrs, r.Addr)
		if r.Domain != fc.dest {
			panic(fmt.Sprintf("recipient %s delivered to %s", r.Addr, fc.dest))
		}
		res[i] = queue.Result{Status: queue.Delivered, Code: 250, Text: "ok"}
		if c.decide != nil {
			res[i] = c.decide(fc.dest, r)
		}
		if res[i].Status == queue.Delivered {
			if c.delivered == nil {
				c.delivered = map[string]int{}
			}
			c.delivered[msg.ID+" "+r.Addr]++
		}
	}
	c.calls = append(c.calls, cl)
	return res, nil
}

func (fc *fakeConn) Close() error {
	fc.c.mu.Lock()
	defer fc.c.mu.Unlock()
	fc.c.open[fc.dest]--
	return nil
}

func (c *fakeCourier) snapshot() (calls []call, delivered map[string]int, opens int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	delivered = map[string]int{}
	for k, v := range c.delivered {
		delivered[k] = v
	}
	return append([]call(nil), c.calls...), delivered, c.opens
}

func (c *fakeCourier) openConns() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := 0
	for _, v := range c.open {
		n += v
	}
	return n
}

// mxCourier is a fake MX farm: it records, per site (as the plan names
// it), the parallel sessions and the time of every Open and Deliver.
type mxCourier struct {
	delay time.Duration // per Deliver
	// reply decides each recipient's result; nil: delivered.
	reply func(dest string, r queue.Recipient) queue.Result

	mu       sync.Mutex
	open     map[string]int // open sessions per site
	maxOpen  map[string]int
	opens    map[string][]openRec
	delivers map[string][]deliverRec
	perConn  int // most messages on one connection
	lims     []openArgs
	done     map[string]int // "id addr" -> deliveries
}

type openRec struct {
	t    time.Time
	open int // sessions of the site open, this one included
}

type deliverRec struct {
	t    time.Time
	dest string
}

// openArgs is what Open was given: the destination's limits and the pool.
type openArgs struct {
	lim  shaping.Limits
	pool string
}

func (c *mxCourier) Open(ctx context.Context, dest string, plan *Plan, pool string) (Conn, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.open == nil {
		c.open, c.maxOpen, c.opens, c.delivers, c.done = map[string]int{}, map[string]int{}, map[string][]openRec{}, map[string][]deliverRec{}, map[string]int{}
	}
	s := plan.Site
	c.open[s]++
	c.maxOpen[s] = max(c.maxOpen[s], c.open[s])
	c.opens[s] = append(c.opens[s], openRec{time.Now(), c.open[s]})
	c.lims = append(c.lims, openArgs{plan.Limits, pool})
	return &mxConn{c: c, dest: dest, site: s}, nil
}

type mxConn struct {
	c      *mxCourier
	dest   string
	site   string
	sent   int
	closed bool
}

func (mc *mxConn) Deliver(ctx context.Context, msg *queue.Message, from string, rcpts []queue.Recipient, body []byte) ([]queue.Result, error) {
	c := mc.c
	c.mu.Lock()
	if mc.closed {
		panic("deliver on a closed connection")
	}
	c.delivers[mc.site] = append(c.delivers[mc.site], deliverRec{time.Now(), mc.dest})
	mc.sent++
	c.perConn = max(c.perConn, mc.sent)
	c.mu.Unlock()
	if c.delay > 0 {
		time.Sleep(c.delay)
	}
	res := make([]queue.Result, len(rcpts))
	c.mu.Lock()
	defer c.mu.Unlock()
	for i, r := range rcpts {
		res[i] = queue.Result{Status: queue.Delivered, Code: 250}
		if c.reply != nil {
			res[i] = c.reply(mc.dest, r)
		}
		if res[i].Status == queue.Delivered {
			c.done[msg.ID+" "+r.Addr]++
		}
	}
	return res, nil
}

func (mc *mxConn) Close() error {
	mc.c.mu.Lock()
	defer mc.c.mu.Unlock()
	mc.closed = true
	mc.c.open[mc.site]--
	return nil
}

func (c *mxCourier) stats(site string) (maxOpen int, opens []openRec, delivers []deliverRec) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.maxOpen[site], slices.Clone(c.opens[site]), slices.Clone(c.delivers[site])
}

func (c *mxCourier) openNow(site string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.open[site]
}

// events records the event stream.
type events struct {
	mu  sync.Mutex
	all []queue.Event
}

func (e *events) add(ev queue.Event) {
	e.mu.Lock()
	e.all = append(e.all, ev)
	e.mu.Unlock()
}

func (e *events) of(kind queue.EventKind) []queue.Event {
	e.mu.Lock()
	defer e.mu.Unlock()
	var out []queue.Event
	for _, ev := range e.all {
		if ev.Kind == kind {
			out = append(out, ev)
		}
	}
	return out
}

func testLogger() *slog.Logger {
	if testing.Verbose() {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	}
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}

// testbed is a spool and an engine delivering from it.
type testbed struct {
	t       testing.TB
	dir     string
	spool   *queue.Spool
	eng     *Engine
	changes *testkit.Signal
	closed  bool
}

// newTestbed opens a spool in a temporary directory (unless opts.Dir is
// set), starts an engine on it (with a fakePlanner unless cfg has a
// Planner), and closes both, the engine first, at the end of the test.
// Every event, every return of a hook (OnFailure, OnDelay) and every call
// of the courier wakes wait, except in a benchmark, which measures the
// engine alone.
//
// A test on fake time calls it inside its synctest bubble, and keeps the
// spool small: a backlog that makes Pebble write sstables of more than one
// block leaves channels of the bubble in Pebble's process-wide pool of
// writer tasks, fatal to the next test that writes one (TestBoundedMemory
// runs in real time for that).
func newTestbed(t testing.TB, opts queue.Options, cfg Config) *testbed {
	t.Helper()
	if opts.Dir == "" {
		opts.Dir = t.TempDir()
	}
	if opts.Logger == nil {
		opts.Logger = testLogger()
	}
	if cfg.Planner == nil {
		cfg.Planner = &fakePlanner{}
	}
	if cfg.Logger == nil {
		cfg.Logger = opts.Logger
	}
	ch := &testkit.Signal{}
	if _, bench := t.(*testing.B); !bench {
		watch(ch, &opts)
		cfg.Courier = notifyingCourier{cfg.Courier, ch}
	}
	s, err := queue.Open(opts)
	if err != nil {
		t.Fatal(err)
	}
	cfg.Spool = s
	e, err := New(cfg)
	if err != nil {
		s.Close(context.Background())
		t.Fatal(err)
	}
	e.Start()
	tb := &testbed{t: t, dir: opts.Dir, spool: s, eng: e, changes: ch}
	t.Cleanup(tb.close)
	return tb
}

// close closes the engine and then the spool; it may be called again.
func (tb *testbed) close() {
	tb.t.Helper()
	if tb.closed {
		return
	}
	tb.closed = true
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := tb.eng.Close(ctx); err != nil {
		tb.t.Errorf("engine close: %v", err)
	}
	if err := tb.spool.Close(ctx); err != nil && !errors.Is(err, queue.ErrClosed) {
		tb.t.Errorf("spool close: %v", err)
	}
}

// keys closes the testbed and returns the keys the queue left in its
// database (those that start with 'q').
func (tb *testbed) keys() []string {
	tb.t.Helper()
	tb.close()
	db, err := pebble.Open(tb.dir, &pebble.Options{ReadOnly: true, Logger: quietPebble{}})
	if err != nil {
		tb.t.Fatal(err)
	}
	defer db.Close()
	it, err := db.NewIter(&pebble.IterOptions{LowerBound: []byte("q"), UpperBound: []byte("r")})
	if err != nil {
		tb.t.Fatal(err)
	}
	defer it.Close()
	var keys []string
	for valid := it.First(); valid; valid = it.Next() {
		keys = append(keys, fmt.Sprintf("%q", it.Key()))
	}
	return keys
}

type quietPebble struct{}

func (quietPebble) Infof(string, ...any) {}
func (quietPebble) Fatalf(format string, args ...any) {
	panic(fmt.Sprintf(format, args...))
}

func (tb *testbed) stats() queue.Stats { return tb.spool.Stats() }

// patience is how long wait waits for its condition: fake time in a
// synctest bubble, where waiting costs nothing, and a generous bound on
// the few tests that run in real time.
const patience = time.Minute

// wait waits until cond holds, failing the test after patience.
func (tb *testbed) wait(what string, cond func() bool) {
	tb.t.Helper()
	tb.waitWithin(patience, what, cond)
}

// waitWithin waits until cond holds, failing the test when d passes
// first. cond is checked at once and again after every change the
// testbed sees (an event, a hook that returned, a courier call): it is for
// what follows one of those. A state the engine reaches without one (a
// plan made, a timer that fired) is checked after synctest.Wait instead.
func (tb *testbed) waitWithin(d time.Duration, what string, cond func() bool) {
	tb.t.Helper()
	if !tb.changes.Await(d, cond) {
		tb.t.Fatalf("waited %v for %s; stats %+v", d, what, tb.spool.Stats())
	}
}

// watch makes the events and hooks of opts signal c.
func watch(c *testkit.Signal, opts *queue.Options) {
	onEvent, onFailure, onDelay := opts.OnEvent, opts.OnFailure, opts.OnDelay
	opts.OnEvent = func(ev queue.Event) {
		defer c.Broadcast()
		if onEvent != nil {
			onEvent(ev)
		}
	}
	if onFailure != nil {
		opts.OnFailure = func(msg *queue.Message, body []byte, f []queue.Failed) error {
			defer c.Broadcast()
			return onFailure(msg, body, f)
		}
	}
	if onDelay != nil {
		opts.OnDelay = func(msg *queue.Message, header []byte, rcpts []queue.Recipient, until time.Time) error {
			defer c.Broadcast()
			return onDelay(msg, header, rcpts, until)
		}
	}
}

// notifyingCourier signals changes when a call of its courier, or of the
// connections it opened, starts and when it returns.
type notifyingCourier struct {
	c       Courier
	changes *testkit.Signal
}

func (n notifyingCourier) Open(ctx context.Context, dest string, plan *Plan, pool string) (Conn, error) {
	n.changes.Broadcast()
	defer n.changes.Broadcast()
	c, err := n.c.Open(ctx, dest, plan, pool)
	if c == nil {
		return nil, err
	}
	return notifyingConn{c, n.changes}, err
}

type notifyingConn struct {
	c       Conn
	changes *testkit.Signal
}

func (n notifyingConn) Deliver(ctx context.Context, msg *queue.Message, from string, rcpts []queue.Recipient, body []byte) ([]queue.Result, error) {
	n.changes.Broadcast()
	defer n.changes.Broadcast()
	return n.c.Deliver(ctx, msg, from, rcpts, body)
}

func (n notifyingConn) Close() error {
	defer n.changes.Broadcast()
	return n.c.Close()
}

func enqueue(t testing.TB, s *queue.Spool, msg *queue.Message, body string, addrs ...string) string {
	t.Helper()
	rcpts := make([]queue.NewRecipient, len(addrs))
	for i, a := range addrs {
		rcpts[i] = queue.NewRecipient{Addr: a}
	}
	if msg == nil {
		msg = &queue.Message{Sender: "acme", ReturnPath: "bounces@acme.test"}
	}
	id, err := s.Enqueue(msg, rcpts, []byte(body))
	if err != nil {
		t.Fatal(err)
	}
	return id
}

// siteStatus returns the state of the site name, if the engine knows it.
func siteStatus(e *Engine, name string) (SiteStatus, bool) {
	for _, st := range e.Sites() {
		if st.Name == name {
			return st, true
		}
	}
	return SiteStatus{}, false
}

// summaryKeys renders summaries as "key:recipients/messages ...".
func summaryKeys(sums []Summary) string {
	var got []string
	for _, sm := range sums {
		got = append(got, fmt.Sprintf("%s:%d/%d", sm.Key, sm.Recipients, sm.Messages))
	}
	return strings.Join(got, " ")
}
