package queue

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
	"sync"
	"testing"
	"time"
)

// fakeCourier records deliveries and answers per recipient on cue.
type fakeCourier struct {
	decide  func(dest string, r Recipient) Result // nil: deliver everything
	openErr func(dest string) error               // nil: Open succeeds
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
	dest  string
	id    string
	addrs []string
	body  string
}

type fakeConn struct {
	c    *fakeCourier
	dest string
	sent int
}

type permanentError struct{ error }

func (permanentError) Permanent() bool { return true }

// resultError carries the result to record, as the mta courier's errors do.
type resultError struct{ r Result }

func (e resultError) Error() string  { return "courier: " + e.r.Text }
func (e resultError) Result() Result { return e.r }

func (c *fakeCourier) Open(ctx context.Context, dest string, lim Limits) (Conn, error) {
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

func (fc *fakeConn) Deliver(ctx context.Context, msg *Message, rcpts []Recipient, body []byte) ([]Result, error) {
	c := fc.c
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
	cl := call{dest: fc.dest, id: msg.ID, body: string(body)}
	res := make([]Result, len(rcpts))
	for i, r := range rcpts {
		cl.addrs = append(cl.addrs, r.Addr)
		if r.Domain != fc.dest {
			panic(fmt.Sprintf("recipient %s delivered to %s", r.Addr, fc.dest))
		}
		res[i] = Result{Status: Delivered, Code: 250, Text: "ok"}
		if c.decide != nil {
			res[i] = c.decide(fc.dest, r)
		}
		if res[i].Status == Delivered {
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

// events records the event stream.
type events struct {
	mu  sync.Mutex
	all []Event
}

func (e *events) add(ev Event) {
	e.mu.Lock()
	e.all = append(e.all, ev)
	e.mu.Unlock()
}

func (e *events) of(kind EventKind) []Event {
	e.mu.Lock()
	defer e.mu.Unlock()
	var out []Event
	for _, ev := range e.all {
		if ev.Kind == kind {
			out = append(out, ev)
		}
	}
	return out
}

// clock is a settable clock.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func newClock() *clock { return &clock{t: time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)} }

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Set(t time.Time) {
	c.mu.Lock()
	c.t = t
	c.mu.Unlock()
}

func testLogger() *slog.Logger {
	if testing.Verbose() {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	}
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}

// openSpool opens a spool in a temporary directory (unless opts.Dir is
// set) and closes it at the end of the test.
func openSpool(t testing.TB, opts Options) *Spool {
	t.Helper()
	if opts.Dir == "" {
		opts.Dir = t.TempDir()
	}
	if opts.Logger == nil {
		opts.Logger = testLogger()
	}
	s, err := Open(opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := s.Close(ctx); err != nil && !errors.Is(err, ErrClosed) {
			t.Errorf("close: %v", err)
		}
	})
	return s
}

// poke wakes the scheduler, after the test moved its clock.
func (s *Spool) poke() {
	s.mu.Lock()
	s.wakeLocked()
	s.mu.Unlock()
}

// waitFor polls cond until it holds, failing the test after a generous
// deadline (this is not a speed test).
func waitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

func enqueue(t testing.TB, s *Spool, msg *Message, body string, addrs ...string) string {
	t.Helper()
	rcpts := make([]NewRecipient, len(addrs))
	for i, a := range addrs {
		rcpts[i] = NewRecipient{Addr: a}
	}
	if msg == nil {
		msg = &Message{Sender: "acme", ReturnPath: "bounces@acme.test"}
	}
	id, err := s.Enqueue(msg, rcpts, []byte(body))
	if err != nil {
		t.Fatal(err)
	}
	return id
}

// spoolKeys returns the keys the queue has in the database.
func spoolKeys(t testing.TB, s *Spool) []string {
	t.Helper()
	it, err := s.db.NewIter(nil)
	if err != nil {
		t.Fatal(err)
	}
	defer it.Close()
	var keys []string
	for valid := it.First(); valid; valid = it.Next() {
		if strings.HasPrefix(string(it.Key()), "q") {
			keys = append(keys, fmt.Sprintf("%q", it.Key()))
		}
	}
	return keys
}
