package mta

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"drover/queue"
	"drover/testkit"
)

// Every event written before Close is in the file, one JSON line each;
// writes after Close are ignored; concurrent writers are safe.
func TestMailLog(t *testing.T) {
	dir := t.TempDir()
	l, err := OpenMailLog(filepath.Join(dir, "logs", "mail.log"), 0, prometheus.NewRegistry(), slog.Default())
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	for w := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 500 {
				l.Write(queue.Event{Kind: queue.EventDelivered, MsgID: "m", Attempt: w*1000 + i})
			}
		}()
	}
	wg.Wait()
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	l.Write(queue.Event{Kind: queue.EventDelivered}) // after Close: ignored, no panic
	f, err := os.Open(filepath.Join(dir, "logs", "mail.log"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	n := 0
	for sc := bufio.NewScanner(f); sc.Scan(); n++ {
		var ev map[string]any
		if err := json.Unmarshal(sc.Bytes(), &ev); err != nil || ev["event"] != "delivered" {
			t.Fatalf("line %d: %q %v", n, sc.Text(), err)
		}
	}
	if n+int(l.dropped.Load()) != 2000 || n == 0 {
		t.Errorf("%d lines, %d dropped, want 2000 in all", n, l.dropped.Load())
	}

	if l, err := OpenMailLog("off", 0, prometheus.NewRegistry(), slog.Default()); err != nil || l != nil {
		t.Errorf("off: %v %v", l, err)
	}
}

// failingWriter fails its first `fail` writes, then keeps what it is given.
type failingWriter struct {
	fail  int
	calls int
	buf   bytes.Buffer
}

func (w *failingWriter) Write(p []byte) (int, error) {
	w.calls++
	if w.calls <= w.fail {
		return 0, errors.New("write mail.log: no space left on device")
	}
	return w.buf.Write(p)
}

// counterValue reads a counter from reg; -1 if it is not there.
func counterValue(t *testing.T, reg *prometheus.Registry, name string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == name {
			return mf.GetMetric()[0].GetCounter().GetValue()
		}
	}
	return -1
}

// Failed writes are counted, logged once and then as one line with their
// number (the clock does not move), and the log goes on with whole lines
// once the disk takes writes again.
func TestMailLogWriteErrors(t *testing.T) {
	reg := prometheus.NewRegistry()
	if _, err := OpenMailLog("off", 0, reg, slog.Default()); err != nil {
		t.Fatal(err)
	}
	if v := counterValue(t, reg, "drover_maillog_write_errors_total"); v != 0 {
		t.Fatalf("counter with the log off: %v, want 0", v)
	}

	reg = prometheus.NewRegistry()
	counter := prometheus.NewCounter(prometheus.CounterOpts{Name: "drover_maillog_write_errors_total", Help: "h"})
	reg.MustRegister(counter)
	var logs testkit.Buffer
	logger := slog.New(slog.NewTextHandler(&logs, nil))
	stopped := time.Unix(1_700_000_000, 0)
	out := &failingWriter{fail: 30}
	// A one-byte buffer: every event is a write of its own.
	l := newMailLog(out, nil, counter, logger, func() time.Time { return stopped }, 1)
	for i := range 50 {
		l.Write(queue.Event{Kind: queue.EventDelivered, MsgID: "m", Attempt: i})
	}
	if err := l.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if v := counterValue(t, reg, "drover_maillog_write_errors_total"); v != 30 {
		t.Errorf("write errors counted: %v, want 30", v)
	}

	var lines []string
	for _, line := range strings.Split(strings.TrimSpace(logs.String()), "\n") {
		if strings.Contains(line, "mail log: write failed") {
			lines = append(lines, line)
		}
	}
	if len(lines) != 2 || !strings.Contains(lines[0], "errors=1") || !strings.Contains(lines[0], "no space left") || !strings.Contains(lines[1], "errors=29") {
		t.Errorf("want the first error and then one line for the 29 others, got:\n%s", strings.Join(lines, "\n"))
	}

	n := 0
	last := -1
	for _, line := range strings.Split(out.buf.String(), "\n") {
		if line == "" {
			continue
		}
		var ev map[string]any
		if err := json.Unmarshal([]byte(line), &ev); err != nil {
			t.Errorf("line %q after the errors: %v", line, err)
			continue
		}
		n++
		last = int(ev["attempt"].(float64))
	}
	if n == 0 || last != 49 {
		t.Errorf("%d lines written after the disk recovered, last attempt %d; want the last event (49)", n, last)
	}
}

// The throttle logs the first error at once, then one line per interval
// with the number of errors since the last line.
func TestErrorThrottle(t *testing.T) {
	var logs testkit.Buffer
	now := time.Unix(1_700_000_000, 0)
	th := errorThrottle{log: slog.New(slog.NewTextHandler(&logs, nil)), now: func() time.Time { return now }, interval: 10 * time.Second}
	count := func() int { return strings.Count(logs.String(), "mail log: write failed") }
	err := errors.New("disk error")
	th.record(err)
	if count() != 1 {
		t.Fatalf("first error not logged at once:\n%s", logs.String())
	}
	for range 100 {
		now = now.Add(10 * time.Millisecond)
		th.record(err)
	}
	th.tick()
	if count() != 1 {
		t.Fatalf("a storm within the interval logged more than once:\n%s", logs.String())
	}
	now = now.Add(9 * time.Second)
	th.tick()
	if count() != 2 || !strings.Contains(logs.String(), "errors=100") {
		t.Fatalf("after the interval, want one line for 100 errors:\n%s", logs.String())
	}
	th.tick()
	now = now.Add(time.Minute)
	th.tick()
	if count() != 2 {
		t.Errorf("a line logged with nothing new:\n%s", logs.String())
	}
	th.record(err)
	if count() != 3 || !strings.HasSuffix(strings.TrimSpace(logs.String()), "errors=1") {
		t.Errorf("an error after a quiet interval is logged at once:\n%s", logs.String())
	}
}

// The mail log is rotated at the first write of a new UTC day, to
// mail.log.YYYY-MM-DD, and the rotated files older than the retention
// are removed then; other files beside it stay.
func TestMailLogRotationAndRetention(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "mail.log")
	for _, name := range []string{"mail.log.2026-11-01", "mail.log.2026-11-20.gz", "mail.log.2026-11-25", "mail.log.bak"} {
		os.WriteFile(filepath.Join(dir, name), []byte("{}\n"), 0o640)
	}
	clock := testkit.NewClock(time.Date(2026, 12, 1, 23, 59, 0, 0, time.UTC))
	l, err := openMailLog(path, 10*24*time.Hour, prometheus.NewRegistry(), slog.New(slog.DiscardHandler), clock.Now)
	if err != nil {
		t.Fatal(err)
	}
	write := func(id string) {
		l.Write(queue.Event{Kind: queue.EventReceived, MsgID: id})
	}
	write("day1")
	// The log's goroutine writes; Close is the barrier. The file is the
	// day's: its time says so when the log opens it again the next day.
	l.Close()
	os.Chtimes(path, clock.Now(), clock.Now())
	clock.Advance(2 * time.Minute) // 2026-12-02 00:01
	l, err = openMailLog(path, 10*24*time.Hour, prometheus.NewRegistry(), slog.New(slog.DiscardHandler), clock.Now)
	if err != nil {
		t.Fatal(err)
	}
	write("day2")
	l.Close()
	day1, _ := os.ReadFile(path + ".2026-12-01")
	day2, _ := os.ReadFile(path)
	if !strings.Contains(string(day1), `"id":"day1"`) || strings.Contains(string(day1), "day2") || !strings.Contains(string(day2), `"id":"day2"`) {
		t.Errorf("rotation: day 1 %q, day 2 %q", day1, day2)
	}
	left, _ := filepath.Glob(filepath.Join(dir, "mail.log*"))
	want := []string{"mail.log", "mail.log.2026-11-25", "mail.log.2026-12-01", "mail.log.bak"}
	var got []string
	for _, f := range left {
		got = append(got, filepath.Base(f))
	}
	if strings.Join(got, ",") != strings.Join(want, ",") {
		t.Errorf("files %v, want %v (older than 10 days removed)", got, want)
	}
}

// Redact replaces an address, in any case, in the mail log and its
// rotated files, and the log goes on writing to its file.
func TestMailLogRedact(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "mail.log")
	os.WriteFile(path+".2026-11-30", []byte(`{"event":"delivered","rcpt":"Ann@Example.com"}`+"\n"), 0o640)
	l, err := openMailLog(path, 0, prometheus.NewRegistry(), slog.New(slog.DiscardHandler), time.Now)
	if err != nil {
		t.Fatal(err)
	}
	l.Write(queue.Event{Kind: queue.EventBounced, MsgID: "m1", Recipient: "ann@example.com", Text: "550 5.1.1 <ANN@EXAMPLE.COM>: no such user"})
	l.Write(queue.Event{Kind: queue.EventDelivered, MsgID: "m2", Recipient: "bob@example.com"})
	if err := l.Redact("ann@example.com", "erased:1234"); err != nil {
		t.Fatal(err)
	}
	l.Write(queue.Event{Kind: queue.EventDelivered, MsgID: "m3", Recipient: "carl@example.com"})
	l.Close()
	for _, f := range []string{path, path + ".2026-11-30"} {
		b, _ := os.ReadFile(f)
		if strings.Contains(strings.ToLower(string(b)), "ann@example.com") || !strings.Contains(string(b), "erased:1234") {
			t.Errorf("%s after the redaction:\n%s", filepath.Base(f), b)
		}
	}
	if b, _ := os.ReadFile(path); !strings.Contains(string(b), `"id":"m2"`) || !strings.Contains(string(b), `"id":"m3"`) {
		t.Errorf("lines lost:\n%s", b)
	}
}
