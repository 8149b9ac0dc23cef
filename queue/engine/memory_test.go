package engine

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"testing/synctest"
	"time"

	"drover/queue"
	"drover/queue/shaping"
	"drover/testkit"
)

// A backlog far larger than the ready queue stays on disk while it is
// delivered: memory holds at most ReadyCapacity waiting recipients, plus
// the transactions in flight, and the scheduler refills the ready queue
// as deliveries drain it. (The spool's own test also bounds the messages
// it holds in memory.)
//
// Real time, not a synctest bubble: the backlog makes Pebble write
// sstables of many blocks, and Pebble's sstable writer keeps a channel in
// each task of a process-wide sync.Pool; a task made in a bubble and
// reused outside it (by the next test that writes such an sstable) is a
// fatal error that kills the test binary.
func TestBoundedMemory(t *testing.T) {
	const msgs, perMsg = 2000, 100 // 200,000 recipients
	dir := t.TempDir()
	c := &fakeCourier{gate: make(chan struct{})}
	tb := newTestbed(t, queue.Options{Dir: dir, NoSync: true, ReadyCapacity: 100}, Config{Courier: c,
		Planner: &fakePlanner{limits: func(string, string) shaping.Limits {
			return shaping.Limits{MaxConnections: 2, MaxRecipientsPerMessage: 10}
		}}})
	s := tb.spool
	check := func() {
		t.Helper()
		if st := s.Stats(); st.Ready > 100 || st.InFlight > 2*10 {
			t.Fatalf("memory not bounded: %+v", st)
		}
	}
	addrs := make([]string, perMsg)
	for i := range msgs {
		for j := range addrs {
			addrs[j] = fmt.Sprintf("u%d.%d@big.test", i, j)
		}
		enqueue(t, s, nil, "body", addrs...)
		if i%100 == 0 {
			check()
		}
	}
	tb.wait("two transactions at the gate", func() bool { return s.Stats().InFlight == 20 })
	check()
	if st := s.Stats(); st.Recipients != msgs*perMsg || st.Messages != msgs || st.Ready != 100 {
		t.Fatalf("stats: %+v", st)
	}

	// 30 transactions of 10: three times the ready queue.
	for range 30 {
		c.gate <- struct{}{}
		check()
	}
	tb.wait("300 deliveries", func() bool {
		_, delivered, _ := c.snapshot()
		st := s.Stats()
		return len(delivered) == 300 && st.Recipients == msgs*perMsg-300 && st.InFlight == 20
	})
	_, delivered, _ := c.snapshot()
	for k, n := range delivered {
		if n != 1 {
			t.Errorf("%s delivered %d times", k, n)
		}
	}
	// The scheduler refills the ready queue without an event to wait on.
	testkit.WaitFor(t, patience, "the ready queue refilled from disk", func() bool { return s.Stats().Ready >= 50 })
	check()

	// Closing the engine gives up on the hanging deliveries when its
	// context expires; they go back to the queue unchanged, and the spool
	// then closes, though the context has expired (serve closes both with
	// one), since no lease is left.
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	tb.closed = true
	if err := tb.eng.Close(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("engine Close with hanging deliveries: %v", err)
	}
	if err := s.Close(ctx); err != nil {
		t.Errorf("spool Close after the engine: %v", err)
	}
	s, err := queue.Open(queue.Options{Dir: dir, Logger: testLogger()})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close(context.Background())
	if st := s.Stats(); st.Recipients != msgs*perMsg-300 || st.Messages < msgs-3 || st.Deferred != 0 || st.Ready != 0 {
		t.Errorf("after reopening: %+v", st)
	}
}

// Over many destinations, MaxInMemory bounds what is in memory, and the
// scheduler still gets to every destination.
func TestBoundedMemoryManyDestinations(t *testing.T) { synctest.Test(t, boundedMemoryManyDestinations) }

func boundedMemoryManyDestinations(t *testing.T) {
	c := &fakeCourier{gate: make(chan struct{})}
	tb := newTestbed(t, queue.Options{NoSync: true, ReadyCapacity: 10, MaxInMemory: 50}, Config{Courier: c})
	s := tb.spool
	for i := range 300 {
		enqueue(t, s, nil, "x", fmt.Sprintf("a@d%d.test", i), fmt.Sprintf("b@d%d.test", i))
		if st := s.Stats(); st.Ready+st.InFlight > 50 {
			t.Fatalf("memory not bounded: %+v", st)
		}
	}
	close(c.gate)
	tb.wait("delivery", func() bool { return s.Stats().Messages == 0 })
	if _, delivered, _ := c.snapshot(); len(delivered) != 600 {
		t.Errorf("%d deliveries, want 600", len(delivered))
	}
}
