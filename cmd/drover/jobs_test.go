package main

// The queue commands against the real admin API handler (httpapi) over a
// fake queue whose operations the test drives, run in-process.

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"drover/httpapi"
	"drover/queue"
	"drover/queue/engine"
)

// opCall is a flush, bounce or delete waiting for the test's result.
type opCall struct {
	op     string
	sel    queue.Selector
	report func(queue.Progress)
	result chan opResult
}

type opResult struct {
	n   int
	err error
}

// drivenQueue hands its operations to the test on calls.
type drivenQueue struct{ calls chan *opCall }

func (q *drivenQueue) run(op string, sel queue.Selector, report func(queue.Progress)) (int, error) {
	c := &opCall{op: op, sel: sel, report: report, result: make(chan opResult)}
	q.calls <- c
	r := <-c.result
	return r.n, r.err
}

func (q *drivenQueue) Summaries(string) ([]engine.Summary, error) { return nil, nil }
func (q *drivenQueue) Show(string) (*queue.Message, []queue.Recipient, error) {
	return nil, nil, queue.ErrNotFound
}
func (q *drivenQueue) Suspend(string, string, time.Time, string) (string, error) { return "", nil }
func (q *drivenQueue) Suspensions() []engine.Suspension                          { return nil }
func (q *drivenQueue) Resume(string, string) error                               { return nil }
func (q *drivenQueue) Hold(sel queue.Selector, report func(queue.Progress)) (int, error) {
	return q.run("hold", sel, report)
}
func (q *drivenQueue) Release(sel queue.Selector, report func(queue.Progress)) (int, error) {
	return q.run("release", sel, report)
}
func (q *drivenQueue) List(queue.ListOptions) (queue.ListPage, error) { return queue.ListPage{}, nil }
func (q *drivenQueue) Body(string) ([]byte, error)                    { return nil, queue.ErrNotFound }
func (q *drivenQueue) Flush(sel queue.Selector, report func(queue.Progress)) (int, error) {
	return q.run("flush", sel, report)
}
func (q *drivenQueue) Bounce(sel queue.Selector, _ string, _ bool, report func(queue.Progress)) (int, error) {
	return q.run("bounce", sel, report)
}
func (q *drivenQueue) Delete(sel queue.Selector, _ bool, report func(queue.Progress)) (int, error) {
	return q.run("delete", sel, report)
}

// watchedBuffer is a command's stderr that the test can wait on.
type watchedBuffer struct {
	mu      sync.Mutex
	buf     bytes.Buffer
	written chan struct{}
}

func newWatchedBuffer() *watchedBuffer { return &watchedBuffer{written: make(chan struct{}, 1)} }

func (b *watchedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	select {
	case b.written <- struct{}{}:
	default:
	}
	return b.buf.Write(p)
}

func (b *watchedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// waitFor waits until the buffer holds want.
func (b *watchedBuffer) waitFor(t *testing.T, want string) {
	t.Helper()
	timeout := time.After(10 * time.Second)
	for !strings.Contains(b.String(), want) {
		select {
		case <-b.written:
		case <-timeout:
			t.Fatalf("stderr never showed %q:\n%s", want, b.String())
		}
	}
}

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

// cliRun is a `drover queue ...` command running in-process.
type cliRun struct {
	stdout bytes.Buffer // read once done returned
	stderr *watchedBuffer
	done   chan error
}

func startCLI(srvURL string, args ...string) *cliRun {
	r := &cliRun{stderr: newWatchedBuffer(), done: make(chan error, 1)}
	cmd := newQueueCmd()
	cmd.SilenceUsage, cmd.SilenceErrors = true, true // as main's root
	cmd.SetArgs(append(args, "--server", srvURL, "--token", "t0ken"))
	cmd.SetOut(&r.stdout)
	cmd.SetErr(r.stderr)
	go func() { r.done <- cmd.ExecuteContext(context.Background()) }()
	return r
}

func runCLI(t *testing.T, srvURL string, args ...string) string {
	t.Helper()
	r := startCLI(srvURL, args...)
	if err := recv(t, r.done); err != nil {
		t.Fatalf("queue %v: %v", args, err)
	}
	return r.stdout.String()
}

// fastFollow makes followJob ask every few milliseconds and give up at
// the first failed request, for the test.
func fastFollow(t *testing.T) {
	saved := jobFollow
	jobFollow = followTiming{wait: 5 * time.Millisecond, retries: 1}
	t.Cleanup(func() { jobFollow = saved })
}

// `drover queue flush` on a big queue answers with the job, shows its
// progress while the spool works, and prints the count once it is done,
// as it always did; `drover queue jobs` then lists it. A failed job is an
// error naming it.
func TestQueueFlushFollowsJob(t *testing.T) {
	fastFollow(t)
	q := &drivenQueue{calls: make(chan *opCall, 4)}
	srv := httptest.NewServer(httpapi.Handler(httpapi.Config{Gatherer: prometheus.NewRegistry(), Queue: q, AdminToken: "t0ken"}))
	defer srv.Close()

	run := startCLI(srv.URL, "flush", "--domain", "big.example")
	call := recv(t, q.calls)
	if call.op != "flush" || call.sel.Domain != "big.example" {
		t.Fatalf("server ran %s %+v", call.op, call.sel)
	}
	call.report(queue.Progress{Total: 1_000_000, Scanned: 300_000, Affected: 4000})
	run.stderr.waitFor(t, "300000 of about 1000000 recipients scanned (30%), 4000 affected")
	call.result <- opResult{n: 12_345}
	if err := recv(t, run.done); err != nil {
		t.Fatalf("flush: %v\n%s", err, run.stderr)
	}
	if got := run.stdout.String(); got != "flush: 12345 recipients affected\n" {
		t.Errorf("flush printed %q", got)
	}

	table := runCLI(t, srv.URL, "jobs")
	lines := strings.Split(strings.TrimSpace(table), "\n")
	if len(lines) != 2 || !strings.HasPrefix(lines[0], "ID ") {
		t.Fatalf("queue jobs:\n%s", table)
	}
	for _, want := range []string{"flush", "domain=big.example", "done", "300000/1000000", "12345"} {
		if !strings.Contains(lines[1], want) {
			t.Errorf("queue jobs row lacks %q:\n%s", want, table)
		}
	}
	var jobs []httpapi.Job
	if err := json.Unmarshal([]byte(runCLI(t, srv.URL, "jobs", "--json")), &jobs); err != nil || len(jobs) != 1 || jobs[0].State != httpapi.JobDone || jobs[0].Affected != 12_345 {
		t.Fatalf("queue jobs --json: %+v, %v", jobs, err)
	}
	var one httpapi.Job
	if err := json.Unmarshal([]byte(runCLI(t, srv.URL, "jobs", jobs[0].ID, "--json")), &one); err != nil || one.ID != jobs[0].ID {
		t.Errorf("queue jobs ID --json: %+v, %v", one, err)
	}

	run = startCLI(srv.URL, "bounce", "--campaign", "spring")
	recv(t, q.calls).result <- opResult{n: 2, err: errors.New("queue: bounce m1: OnFailure: disk full")}
	err := recv(t, run.done)
	var pe *pendingError
	if err == nil || errors.As(err, &pe) || !strings.Contains(err.Error(), "failed after 2 recipients affected") || !strings.Contains(err.Error(), "disk full") {
		t.Errorf("failed bounce: %v", err)
	}
}

// A follow that loses the server names the job and says it may still be
// running: it never reports a failure.
func TestQueueFollowLosesServer(t *testing.T) {
	fastFollow(t)
	q := &drivenQueue{calls: make(chan *opCall, 4)}
	api := httpapi.Handler(httpapi.Config{Gatherer: prometheus.NewRegistry(), Queue: q, AdminToken: "t0ken"})
	polled := make(chan struct{}, 1)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.HasPrefix(r.URL.Path, "/v1/jobs/") {
			select {
			case polled <- struct{}{}:
			default:
			}
		}
		api.ServeHTTP(w, r)
	}))

	run := startCLI(srv.URL, "delete", "--domain", "gone.example", "--dry-run")
	call := recv(t, q.calls)
	defer func() { call.result <- opResult{} }()
	recv(t, polled) // the job was started and is being followed
	srv.CloseClientConnections()
	srv.Close()
	err := recv(t, run.done)
	var pe *pendingError
	if !errors.As(err, &pe) {
		t.Fatalf("follow without a server: %v, want a pending outcome", err)
	}
	if msg := err.Error(); !strings.Contains(msg, "may still be running") || !strings.Contains(msg, "drover queue jobs ") || strings.Contains(msg, "failed") {
		t.Errorf("follow without a server says %q", msg)
	}
	if run.stdout.Len() != 0 {
		t.Errorf("printed a result: %q", run.stdout.String())
	}
}
