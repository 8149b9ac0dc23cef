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
	"testing/synctest"
	"time"

	"drover/testkit"
)

// defaultRetry is the retry policy of the test dispatcher when a test
// gives none: the built-in shaping defaults.
var defaultRetry = Retry{Interval: 5 * time.Minute, MaxInterval: 4 * time.Hour, MaxAge: 120 * time.Hour}

// dispatcher is a tiny delivery engine for the spool's own tests: it takes
// what the spool hands out and finishes it through the same calls as the
// real engine (Take, Todo, Body, Finish), deciding each recipient's result
// itself, without connections, sites or limits.
type dispatcher struct {
	s        *Spool
	retry    Retry                                  // zero: defaultRetry
	workers  int                                    // goroutines per destination (default 1)
	perLease int                                    // recipients per lease (0: the whole group)
	decide   func(msg *Message, r Recipient) Result // nil: delivered
	// gate, if set, must yield a token for each lease; closing it lets
	// everything through. Leases waiting at the gate are released
	// unchanged when the dispatcher stops.
	gate chan struct{}

	stop     chan struct{}
	stopOnce sync.Once
	wg       sync.WaitGroup

	mu        sync.Mutex
	stopped   bool
	gen       map[string]uint64 // Ready signals per destination
	running   map[string]int    // goroutines per destination
	delivered map[string]int    // "id addr" -> deliveries
	attempts  int               // leases with recipients attempted
}

// startDispatcher starts d on s, and stops it at the end of the test
// (before the spool is closed).
func startDispatcher(t testing.TB, s *Spool, d *dispatcher) *dispatcher {
	t.Helper()
	d.s = s
	if d.retry == (Retry{}) {
		d.retry = defaultRetry
	}
	d.workers = max(d.workers, 1)
	d.stop = make(chan struct{})
	d.gen, d.running, d.delivered = map[string]uint64{}, map[string]int{}, map[string]int{}
	s.Start(d)
	t.Cleanup(d.close)
	return d
}

// Ready implements Dispatcher.
func (d *dispatcher) Ready(dest string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.stopped {
		return
	}
	d.gen[dest]++
	if d.running[dest] < d.workers {
		d.running[dest]++
		d.wg.Add(1)
		go d.run(dest)
	}
}

// Drained implements Dispatcher.
func (d *dispatcher) Drained(dest string) {}

// run takes and handles the leases of dest until none is left and no
// signal came meanwhile.
func (d *dispatcher) run(dest string) {
	defer d.wg.Done()
	for {
		d.mu.Lock()
		gen, stopped := d.gen[dest], d.stopped
		d.mu.Unlock()
		var l *Lease
		if !stopped {
			l, _ = d.s.Take(dest, func(*Message) int { return d.perLease })
		}
		if l != nil {
			d.handle(l)
			continue
		}
		d.mu.Lock()
		if d.stopped || d.gen[dest] == gen {
			d.running[dest]--
			d.mu.Unlock()
			return
		}
		d.mu.Unlock()
	}
}

func (d *dispatcher) handle(l *Lease) {
	outs := make([]Outcome, len(l.Rcpts))
	if d.gate != nil {
		select {
		case <-d.gate:
		case <-d.stop:
			for i := range outs {
				outs[i].Release = true
			}
			d.s.Finish(l, outs, d.retry)
			return
		}
	}
	todo := l.Todo(d.s.now(), d.retry.MaxAge)
	if len(todo) > 0 {
		if _, err := l.Body(); err != nil {
			panic(fmt.Sprintf("body of %s: %v", l.Msg.ID, err))
		}
	}
	d.mu.Lock()
	if len(todo) > 0 {
		d.attempts++
	}
	d.mu.Unlock()
	for _, i := range todo {
		r := l.Rcpts[i]
		res := Result{Status: Delivered, Code: 250, Text: "ok"}
		if d.decide != nil {
			res = d.decide(l.Msg, r)
		}
		outs[i] = Outcome{Result: res, Tried: true}
		if res.Status == Delivered {
			d.mu.Lock()
			d.delivered[l.Msg.ID+" "+r.Addr]++
			d.mu.Unlock()
		}
	}
	d.s.Finish(l, outs, d.retry)
}

// close stops taking, releases the leases waiting at the gate and waits
// for the goroutines.
func (d *dispatcher) close() {
	d.stopOnce.Do(func() {
		d.mu.Lock()
		d.stopped = true
		d.mu.Unlock()
		close(d.stop)
	})
	d.wg.Wait()
}

// snapshot returns the deliveries so far and the number of leases attempted.
func (d *dispatcher) snapshot() (delivered map[string]int, attempts int) {
	d.mu.Lock()
	defer d.mu.Unlock()
	delivered = make(map[string]int, len(d.delivered))
	for k, v := range d.delivered {
		delivered[k] = v
	}
	return delivered, d.attempts
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

// newClock is the tests' settable clock, at a fixed start.
func newClock() *testkit.Clock { return testkit.NewClock(time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)) }

func testLogger() *slog.Logger {
	if testing.Verbose() {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	}
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}

// openSpool opens a spool in a temporary directory (unless opts.Dir is
// set) and closes it at the end of the test.
//
// A test on fake time calls it inside its synctest bubble, and keeps the
// spool small: a backlog that makes Pebble write sstables of more than one
// block leaves channels of the bubble in Pebble's process-wide pool of
// writer tasks, fatal to the next test that writes one (TestBoundedMemory
// runs in real time for that).
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

// settle wakes the scheduler, after the test moved its clock, and waits
// (in a synctest bubble) until the scheduler and the dispatcher have done
// all they can under it: what was due is delivered or rescheduled.
func (s *Spool) settle() {
	s.mu.Lock()
	s.wakeLocked()
	s.mu.Unlock()
	synctest.Wait()
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
