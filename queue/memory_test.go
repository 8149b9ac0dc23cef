package queue

import (
	"bufio"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"drover/testkit"
)

// A backlog far larger than the ready queue stays on disk: memory holds at
// most ReadyCapacity waiting recipients (plus the ones in flight), and the
// scheduler refills the ready queue as deliveries drain it.
//
// Real time, not a synctest bubble: the backlog makes Pebble write
// sstables of many blocks, and Pebble's sstable writer keeps a channel in
// each task of a process-wide sync.Pool; a task made in a bubble and
// reused outside it (by the next test that writes such an sstable) is a
// fatal error that kills the test binary. Nothing signals what it waits
// for (leases at the gate, a refill), so it polls.
func TestBoundedMemory(t *testing.T) {
	const msgs, perMsg = 2000, 100 // 200,000 recipients
	dir := t.TempDir()
	s := openSpool(t, Options{Dir: dir, NoSync: true, ReadyCapacity: 100})
	gate := make(chan struct{})
	dp := startDispatcher(t, s, &dispatcher{gate: gate, workers: 2, perLease: 10})
	check := func() {
		t.Helper()
		st := s.Stats()
		s.mu.Lock()
		inMem := len(s.mem)
		s.mu.Unlock()
		if st.Ready > 100 || st.InFlight > 2*10 || inMem > 100+2*10 {
			t.Fatalf("memory not bounded: %+v, %d messages in memory", st, inMem)
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
	testkit.WaitFor(t, time.Minute, "two leases in flight", func() bool { return s.Stats().InFlight == 20 })
	check()
	if st := s.Stats(); st.Recipients != msgs*perMsg || st.Messages != msgs || st.Ready != 100 {
		t.Fatalf("stats: %+v", st)
	}

	// 30 leases of 10: three times the ready queue.
	for range 30 {
		gate <- struct{}{}
		check()
	}
	testkit.WaitFor(t, time.Minute, "300 deliveries", func() bool {
		delivered, _ := dp.snapshot()
		st := s.Stats()
		return len(delivered) == 300 && st.Recipients == msgs*perMsg-300 && st.InFlight == 20
	})
	delivered, _ := dp.snapshot()
	for k, n := range delivered {
		if n != 1 {
			t.Errorf("%s delivered %d times", k, n)
		}
	}
	testkit.WaitFor(t, time.Minute, "the ready queue refilled from disk", func() bool { return s.Stats().Ready >= 50 })
	check()

	// Leases given back unchanged go back to the queue as they were.
	dp.close()
	if err := s.Close(t.Context()); err != nil {
		t.Fatal(err)
	}
	s = openSpool(t, Options{Dir: dir})
	if st := s.Stats(); st.Recipients != msgs*perMsg-300 || st.Messages < msgs-3 || st.Deferred != 0 || st.Ready != 0 {
		t.Errorf("after reopening: %+v", st)
	}
}

// After kill -9, every acknowledged message is delivered, including the
// recipients that were in flight, at once (no lease to wait for).
//
// Real time, not a synctest bubble: the helper must hang until it is
// killed, and the records it leaves are due at real times, which a
// bubble's clock (starting in 2000) would not reach for years.
func TestCrashRestart(t *testing.T) {
	dir := t.TempDir()
	cmd := exec.Command(os.Args[0], "-test.run=^TestCrashHelper$")
	cmd.Env = append(os.Environ(), "QUEUE_CRASH_DIR="+dir)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var ids []string
	ready := false
	sc := bufio.NewScanner(out)
	for sc.Scan() {
		line := sc.Text()
		if id, ok := strings.CutPrefix(line, "id "); ok {
			ids = append(ids, id)
		}
		if line == "ready" {
			ready = true
			break
		}
	}
	cmd.Process.Kill()
	cmd.Wait()
	if !ready || len(ids) != 50 {
		t.Fatalf("helper acknowledged %d messages, ready=%v", len(ids), ready)
	}

	done := make(chan Event, 2*len(ids))
	s := openSpool(t, Options{Dir: dir, OnEvent: func(ev Event) { done <- ev }})
	dp := startDispatcher(t, s, &dispatcher{})
	timeout := time.After(20 * time.Second)
	for range 2 * len(ids) {
		select {
		case ev := <-done:
			if ev.Kind != EventDelivered {
				t.Fatalf("%s %s after restart", ev.Kind, ev.Recipient)
			}
		case <-timeout:
			t.Fatalf("timed out waiting for the deliveries after restart: %+v", s.Stats())
		}
	}
	if st := s.Stats(); st.Messages != 0 {
		t.Errorf("stats after the deliveries: %+v", st)
	}
	delivered, _ := dp.snapshot()
	for _, id := range ids {
		if delivered[id+" a@one.test"] != 1 || delivered[id+" b@two.test"] != 1 {
			t.Errorf("%s not delivered", id)
		}
	}
}

// TestCrashHelper is the process that TestCrashRestart kills.
func TestCrashHelper(t *testing.T) {
	dir := os.Getenv("QUEUE_CRASH_DIR")
	if dir == "" {
		t.Skip("helper process for TestCrashRestart")
	}
	s, err := Open(Options{Dir: dir, Logger: testLogger()})
	if err != nil {
		t.Fatal(err)
	}
	startDispatcher(t, s, &dispatcher{gate: make(chan struct{}), workers: 2}) // deliveries hang
	for range 50 {
		fmt.Printf("id %s\n", enqueue(t, s, nil, "x", "a@one.test", "b@two.test"))
	}
	testkit.WaitFor(t, 20*time.Second, "deliveries in flight", func() bool { return s.Stats().InFlight == 4 })
	fmt.Println("ready")
	time.Sleep(time.Minute) // killed here
}
