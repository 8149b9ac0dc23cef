package httpapi

import (
	"encoding/json"
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"drover/queue"
	"drover/queue/engine"
)

// opCall is a queue operation the test controls: it runs until the test
// sends its result (or panics when the result says so).
type opCall struct {
	op     string
	sel    queue.Selector
	dryRun bool
	report func(queue.Progress)
	result chan opResult
}

type opResult struct {
	n     int
	err   error
	panic bool
}

// ctrlQueue is a fake queue whose flush, bounce and delete hand
// themselves to the test on calls and wait for their result.
type ctrlQueue struct {
	calls     chan *opCall
	suspended chan string
}

func newCtrlQueue() *ctrlQueue {
	return &ctrlQueue{calls: make(chan *opCall, 16), suspended: make(chan string, 16)}
}

func (q *ctrlQueue) run(op string, sel queue.Selector, dryRun bool, report func(queue.Progress)) (int, error) {
	c := &opCall{op: op, sel: sel, dryRun: dryRun, report: report, result: make(chan opResult)}
	q.calls <- c
	r := <-c.result
	if r.panic {
		panic("index out of range")
	}
	return r.n, r.err
}

func (q *ctrlQueue) Summaries(string) ([]engine.Summary, error) { return nil, nil }
func (q *ctrlQueue) Show(string) (*queue.Message, []queue.Recipient, error) {
	return nil, nil, queue.ErrNotFound
}
func (q *ctrlQueue) Suspensions() []engine.Suspension { return nil }

func (q *ctrlQueue) Suspend(kind, name string, _ time.Time, _ string) (string, error) {
	q.suspended <- kind + " " + name
	return "", nil
}
func (q *ctrlQueue) Resume(string, string) error { return nil }
func (q *ctrlQueue) Hold(sel queue.Selector, report func(queue.Progress)) (int, error) {
	return q.run("hold", sel, false, report)
}
func (q *ctrlQueue) Release(sel queue.Selector, report func(queue.Progress)) (int, error) {
	return q.run("release", sel, false, report)
}
func (q *ctrlQueue) List(queue.ListOptions) (queue.ListPage, error) { return queue.ListPage{}, nil }
func (q *ctrlQueue) Body(string) ([]byte, error)                    { return nil, queue.ErrNotFound }
func (q *ctrlQueue) Flush(sel queue.Selector, report func(queue.Progress)) (int, error) {
	return q.run("flush", sel, false, report)
}
func (q *ctrlQueue) Bounce(sel queue.Selector, _ string, dryRun bool, report func(queue.Progress)) (int, error) {
	return q.run("bounce", sel, dryRun, report)
}
func (q *ctrlQueue) Delete(sel queue.Selector, dryRun bool, report func(queue.Progress)) (int, error) {
	return q.run("delete", sel, dryRun, report)
}

// recv takes the next value from ch, failing the test if none comes.
func recv[T any](t *testing.T, ch <-chan T) T {
	t.Helper()
	select {
	case v := <-ch:
		return v
	case <-time.After(10 * time.Second):
		t.Fatal("timed out")
		panic("unreachable")
	}
}

// jobOf decodes the job of an answer.
func jobOf(t *testing.T, body string) Job {
	t.Helper()
	var resp struct{ Job Job }
	if err := json.Unmarshal([]byte(body), &resp); err != nil || resp.Job.ID == "" {
		t.Fatalf("no job in %s (%v)", body, err)
	}
	return resp.Job
}

// waitJob waits for the job of an answer to finish, and returns it.
func waitJob(t *testing.T, h http.Handler, token, body string) Job {
	t.Helper()
	code, body := do(t, h, "GET", "/v1/jobs/"+jobOf(t, body).ID+"?wait=10s", token, "", "127.0.0.1:1")
	j := jobOf(t, body)
	if code != http.StatusOK || j.State == JobRunning {
		t.Fatalf("job still running: %d %s", code, body)
	}
	return j
}

const loopback = "127.0.0.1:5000"

// A flush answers at once with a running job, which shows its progress
// while the spool works (suspend still answering meanwhile), then the
// count once done; a bounce that fails ends failed, with its error and
// the count of what it did.
func TestJobLifecycle(t *testing.T) {
	q := newCtrlQueue()
	h := Handler(Config{Gatherer: prometheus.NewRegistry(), Queue: q, AdminToken: testToken})

	code, body := do(t, h, "POST", "/v1/queue/flush", testToken, `{"domain":"big.example"}`, loopback)
	if code != http.StatusAccepted {
		t.Fatalf("flush: %d %s", code, body)
	}
	started := jobOf(t, body)
	if started.Op != "flush" || started.State != JobRunning || started.Selector.Domain != "big.example" || started.Started.IsZero() || !started.Finished.IsZero() {
		t.Errorf("started job %+v", started)
	}
	call := recv(t, q.calls)
	if call.op != "flush" || call.sel.Domain != "big.example" {
		t.Fatalf("queue called for %s %+v", call.op, call.sel)
	}
	call.report(queue.Progress{Total: 1_000_000, Scanned: 256_000, Affected: 1200})

	code, body = do(t, h, "GET", "/v1/jobs/"+started.ID, testToken, "", loopback)
	if j := jobOf(t, body); code != 200 || j.State != JobRunning || j.Total != 1_000_000 || j.Scanned != 256_000 || j.Affected != 1200 {
		t.Errorf("running job: %d %s", code, body)
	}
	if !strings.Contains(body, `"scanned": 256000`) || !strings.Contains(body, `"dry_run": false`) {
		t.Errorf("job JSON is not snake_case: %s", body)
	}
	// Suspend is not held up by the flush.
	if code, body := do(t, h, "POST", "/v1/queue/suspend", testToken, `{"domain":"big.example","for":"1h"}`, loopback); code != 200 {
		t.Errorf("suspend during a flush: %d %s", code, body)
	}
	if got := recv(t, q.suspended); got != "domain big.example" {
		t.Errorf("suspended %q", got)
	}

	call.result <- opResult{n: 3400}
	done := waitJob(t, h, testToken, body)
	if done.State != JobDone || done.Affected != 3400 || done.Error != "" || done.Finished.Before(done.Started) {
		t.Errorf("finished job %+v", done)
	}

	code, body = do(t, h, "POST", "/v1/queue/bounce", testToken, `{"campaign":"spring","dry_run":false}`, loopback)
	if code != http.StatusAccepted {
		t.Fatalf("bounce: %d %s", code, body)
	}
	bounce := jobOf(t, body)
	recv(t, q.calls).result <- opResult{n: 7, err: errors.New("queue: bounce m1: OnFailure: disk full")}
	failed := waitJob(t, h, testToken, body)
	if failed.State != JobFailed || failed.Affected != 7 || !strings.Contains(failed.Error, "disk full") || failed.Reason != "bounced by operator" {
		t.Errorf("failed job %+v", failed)
	}

	code, body = do(t, h, "GET", "/v1/jobs", testToken, "", loopback)
	var list struct{ Jobs []Job }
	if err := json.Unmarshal([]byte(body), &list); code != 200 || err != nil {
		t.Fatalf("list: %d %s", code, body)
	}
	if len(list.Jobs) != 2 || list.Jobs[0].ID != bounce.ID || list.Jobs[1].ID != started.ID || list.Jobs[1].State != JobDone {
		t.Errorf("list (newest first): %s", body)
	}

	if code, body := do(t, h, "GET", "/v1/jobs/nope", testToken, "", loopback); code != 404 || !strings.Contains(body, "no such job") {
		t.Errorf("unknown job: %d %s", code, body)
	}
	if code, body := do(t, h, "GET", "/v1/jobs/"+started.ID+"?wait=soon", testToken, "", loopback); code != 400 {
		t.Errorf("bad wait: %d %s", code, body)
	}
	if code, _ := do(t, h, "GET", "/v1/jobs", "", "", "192.0.2.1:5000"); code != 401 {
		t.Errorf("jobs without a token: %d", code)
	}
}

// Bad input gets 400 at once and starts nothing.
func TestJobBadInput(t *testing.T) {
	q := newCtrlQueue()
	h := Handler(Config{Gatherer: prometheus.NewRegistry(), Queue: q, AdminToken: testToken})
	for _, c := range []struct{ op, body, want string }{
		{"bounce", `{}`, "at least one of"},
		{"delete", `{"dry_run":true}`, "at least one of"},
		{"delete", `{"sendr":"shop"}`, "unknown field"},
		{"flush", `{"dry_run":true}`, "no dry run"},
		{"flush", `not json`, "request body"},
	} {
		if code, body := do(t, h, "POST", "/v1/queue/"+c.op, testToken, c.body, loopback); code != 400 || !strings.Contains(body, c.want) {
			t.Errorf("%s %s: %d %s, want 400 with %q", c.op, c.body, code, body, c.want)
		}
	}
	if _, body := do(t, h, "GET", "/v1/jobs", testToken, "", loopback); !strings.Contains(body, `"jobs": []`) {
		t.Errorf("jobs after bad input: %s", body)
	}
	if len(q.calls) != 0 {
		t.Errorf("%d operations started on bad input", len(q.calls))
	}
}

// At most maxRunningJobs run or wait at once; a finished one makes room.
func TestJobLimit(t *testing.T) {
	q := newCtrlQueue()
	h := Handler(Config{Gatherer: prometheus.NewRegistry(), Queue: q, AdminToken: testToken})
	var calls []*opCall
	t.Cleanup(func() {
		for _, c := range calls {
			c.result <- opResult{}
		}
	})
	for range maxRunningJobs {
		if code, body := do(t, h, "POST", "/v1/queue/delete", testToken, `{"domain":"x.example","dry_run":true}`, loopback); code != http.StatusAccepted {
			t.Fatalf("delete: %d %s", code, body)
		}
		calls = append(calls, recv(t, q.calls))
	}
	if code, body := do(t, h, "POST", "/v1/queue/delete", testToken, `{"domain":"x.example","dry_run":true}`, loopback); code != http.StatusTooManyRequests || !strings.Contains(body, "already running") {
		t.Fatalf("one job too many: %d %s", code, body)
	}
	calls[0].result <- opResult{n: 1}
	calls = calls[1:]
	_, body := do(t, h, "GET", "/v1/jobs", testToken, "", loopback)
	var list struct{ Jobs []Job }
	json.Unmarshal([]byte(body), &list)
	waitJob(t, h, testToken, `{"job":{"id":"`+list.Jobs[len(list.Jobs)-1].ID+`"}}`)
	code, body := do(t, h, "POST", "/v1/queue/delete", testToken, `{"domain":"x.example","dry_run":true}`, loopback)
	if code != http.StatusAccepted {
		t.Fatalf("after one finished: %d %s", code, body)
	}
	calls = append(calls, recv(t, q.calls))
}

// A panic in an operation fails its job; the server goes on.
func TestJobPanic(t *testing.T) {
	q := newCtrlQueue()
	h := Handler(Config{Gatherer: prometheus.NewRegistry(), Queue: q, AdminToken: testToken})
	_, body := do(t, h, "POST", "/v1/queue/flush", testToken, `{}`, loopback)
	recv(t, q.calls).result <- opResult{panic: true}
	if j := waitJob(t, h, testToken, body); j.State != JobFailed || !strings.Contains(j.Error, "panic: index out of range") {
		t.Errorf("job after a panic: %+v", j)
	}
}

// Finished jobs are forgotten after keepFor, and beyond keep of them, the
// oldest first; a running job stays however old.
func TestJobsForgotten(t *testing.T) {
	now := time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)
	js := newJobs(func() time.Time { return now })
	js.keep = 2
	quick := func(func(queue.Progress)) (int, error) { return 1, nil }
	var ids []string
	for range 3 {
		j, err := js.start(Job{Op: "flush"}, quick)
		if err != nil {
			t.Fatal(err)
		}
		<-js.lookup(j.ID).done
		ids = append(ids, j.ID)
		now = now.Add(time.Minute)
	}
	got := js.list()
	if len(got) != 2 || got[0].ID != ids[2] || got[1].ID != ids[1] {
		t.Errorf("after 3 jobs, keeping 2: %+v", got)
	}
	if _, ok := js.get(ids[0], 0, nil); ok {
		t.Errorf("the oldest finished job is still known")
	}

	release := make(chan struct{})
	defer close(release)
	running, _ := js.start(Job{Op: "delete"}, func(func(queue.Progress)) (int, error) { <-release; return 0, nil })
	now = now.Add(keepJobsFor + time.Second)
	got = js.list()
	if len(got) != 1 || got[0].ID != running.ID || got[0].State != JobRunning {
		t.Errorf("after an hour: %+v, want only the running job", got)
	}
}

// lookup returns a job by id, for tests.
func (js *jobs) lookup(id string) *job {
	js.mu.Lock()
	defer js.mu.Unlock()
	return js.byID[id]
}
