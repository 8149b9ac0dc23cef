package httpapi

import (
	"encoding/json"
	"errors"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"drover/testkit"
)

type healthReport struct {
	Status string            `json:"status"`
	Checks map[string]string `json:"checks"`
}

func getHealth(t *testing.T, h http.Handler) (int, healthReport) {
	t.Helper()
	code, body := do(t, h, "GET", "/healthz", "", "", "192.0.2.1:1")
	var rep healthReport
	if err := json.Unmarshal([]byte(body), &rep); err != nil {
		t.Fatalf("body %q: %v", body, err)
	}
	return code, rep
}

// /healthz names every check; one failing check makes it 503 with that
// check's error; draining makes it 503 "draining"; a cached check runs
// once per its duration, however often it is asked.
func TestHealthz(t *testing.T) {
	clk := testkit.NewClock(time.Unix(1_700_000_000, 0))
	var spoolErr, smtpErr atomic.Pointer[error]
	var spoolRuns atomic.Int32
	var draining atomic.Bool
	errOf := func(p *atomic.Pointer[error]) error {
		if e := p.Load(); e != nil {
			return *e
		}
		return nil
	}
	h := Handler(Config{
		Gatherer: prometheus.NewRegistry(),
		Queue:    &fakeQueue{},
		Now:      clk.Now,
		Draining: draining.Load,
		Checks: []Check{
			{Name: "spool", Cache: time.Second, Run: func() error { spoolRuns.Add(1); return errOf(&spoolErr) }},
			{Name: "smtp_submission", Run: func() error { return errOf(&smtpErr) }},
		},
	})

	code, rep := getHealth(t, h)
	if code != 200 || rep.Status != "ok" || len(rep.Checks) != 3 ||
		rep.Checks["spool"] != "ok" || rep.Checks["smtp_submission"] != "ok" || rep.Checks["draining"] != "ok" {
		t.Errorf("healthy: %d %+v", code, rep)
	}

	// The spool fails, but its last answer is reused for a second.
	e := errors.New("queue: spool closed")
	spoolErr.Store(&e)
	for range 5 {
		if code, rep := getHealth(t, h); code != 200 || rep.Checks["spool"] != "ok" {
			t.Errorf("within the cache: %d %+v", code, rep)
		}
	}
	if n := spoolRuns.Load(); n != 1 {
		t.Errorf("spool check ran %d times within its cache duration, want 1", n)
	}
	clk.Advance(time.Second)
	code, rep = getHealth(t, h)
	if code != 503 || rep.Status != "fail" || rep.Checks["spool"] != "queue: spool closed" || rep.Checks["smtp_submission"] != "ok" {
		t.Errorf("spool failing: %d %+v", code, rep)
	}
	if n := spoolRuns.Load(); n != 2 {
		t.Errorf("spool check ran %d times, want 2", n)
	}

	// An uncached check is asked every time.
	spoolErr.Store(nil)
	clk.Advance(time.Second)
	e2 := errors.New("listener 127.0.0.1:2525 stopped: accept: too many open files")
	smtpErr.Store(&e2)
	code, rep = getHealth(t, h)
	if code != 503 || rep.Checks["spool"] != "ok" || rep.Checks["smtp_submission"] != e2.Error() {
		t.Errorf("smtp failing: %d %+v", code, rep)
	}
	smtpErr.Store(nil)

	draining.Store(true)
	code, rep = getHealth(t, h)
	if code != 503 || rep.Status != "draining" || rep.Checks["draining"] != "draining" || rep.Checks["spool"] != "ok" {
		t.Errorf("draining: %d %+v", code, rep)
	}
}

// Concurrent requests share one run of a cached check: none starts its
// own while one is under way or its answer is fresh.
func TestHealthzCacheSharedByConcurrentRequests(t *testing.T) {
	clk := testkit.NewClock(time.Unix(1_700_000_000, 0))
	release := make(chan struct{})
	started := make(chan struct{}, 10)
	var runs atomic.Int32
	h := Handler(Config{Gatherer: prometheus.NewRegistry(), Queue: &fakeQueue{}, Now: clk.Now,
		Checks: []Check{{Name: "spool", Cache: time.Second, Run: func() error {
			runs.Add(1)
			started <- struct{}{}
			<-release
			return nil
		}}}})
	var wg sync.WaitGroup
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if code, _ := do(t, h, "GET", "/healthz", "", "", "192.0.2.1:1"); code != 200 {
				t.Errorf("code %d", code)
			}
		}()
	}
	<-started // one run under way
	close(release)
	wg.Wait()
	if n := runs.Load(); n != 1 {
		t.Errorf("%d runs for concurrent requests, want 1", n)
	}
}

// Without checks /healthz answers ok.
func TestHealthzWithoutChecks(t *testing.T) {
	h := Handler(Config{Gatherer: prometheus.NewRegistry(), Queue: &fakeQueue{}})
	if code, rep := getHealth(t, h); code != 200 || rep.Status != "ok" || len(rep.Checks) != 0 {
		t.Errorf("%d %+v", code, rep)
	}
}
