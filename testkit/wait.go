package testkit

import (
	"bytes"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"
)

// WaitFor checks cond until it holds, and fails the test when timeout
// passes first. It is for events a test can only look at, such as a port
// that starts listening, a file that grows or the output of a command;
// where something signals the event (MX.Wait, Buffer.WaitFor), wait on
// that instead.
func WaitFor(t testing.TB, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for !cond() {
		select {
		case <-tick.C:
		case <-deadline.C:
			if cond() {
				return
			}
			t.Fatalf("timed out after %v waiting for %s", timeout, what)
		}
	}
}

// Signal wakes every goroutine waiting for a change of something: a test
// waits with Await, whoever changes the thing calls Broadcast. The zero
// value is ready; it is safe for concurrent use.
type Signal struct {
	mu sync.Mutex
	ch chan struct{}
}

// Changed returns a channel that is closed at the next Broadcast.
func (s *Signal) Changed() <-chan struct{} {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ch == nil {
		s.ch = make(chan struct{})
	}
	return s.ch
}

// Broadcast wakes those waiting.
func (s *Signal) Broadcast() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ch != nil {
		close(s.ch)
		s.ch = nil
	}
}

// Await returns true once cond holds, false when timeout passes first.
// cond is checked at once and after every Broadcast.
func (s *Signal) Await(timeout time.Duration, cond func() bool) bool {
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	for {
		ch := s.Changed()
		if cond() {
			return true
		}
		select {
		case <-ch:
		case <-deadline.C:
			return cond()
		}
	}
}

// Buffer collects output written by other goroutines or by a process
// (a logger's or a command's destination), and lets a test wait for a
// line to appear. The zero value is ready; it is safe for concurrent use.
type Buffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
	sig Signal
}

func (b *Buffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	n, err := b.buf.Write(p)
	b.mu.Unlock()
	b.sig.Broadcast()
	return n, err
}

// String returns everything written so far.
func (b *Buffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// WaitFor waits until the output contains substr, and fails the test when
// timeout passes first.
func (b *Buffer) WaitFor(t testing.TB, timeout time.Duration, substr string) {
	t.Helper()
	if !b.sig.Await(timeout, func() bool { return strings.Contains(b.String(), substr) }) {
		t.Fatalf("timed out after %v waiting for %q in the output:\n%s", timeout, substr, b.String())
	}
}

// Tool returns the path of a peer program the test runs (swaks, Postfix's
// smtp-sink, promtool, ...), looked up in PATH and then in /usr/sbin. When
// it is missing the test is skipped, unless the CI environment variable
// is set: there the tools are installed, and a missing one fails the test.
func Tool(t testing.TB, name string) string {
	t.Helper()
	path, err := exec.LookPath(name)
	if err != nil {
		path, err = exec.LookPath("/usr/sbin/" + name)
	}
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("%s is not installed; it is required when CI is set", name)
		}
		t.Skipf("%s is not installed", name)
	}
	return path
}
