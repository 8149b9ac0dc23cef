package httpapi

import (
	"cmp"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"runtime/debug"
	"slices"
	"sync"
	"time"

	"drover/queue"
)

// Job states.
const (
	JobRunning = "running"
	JobDone    = "done"
	JobFailed  = "failed"
)

// Job is a queue operation (flush, bounce, delete) started by the admin
// API, as GET /v1/jobs shows it.
type Job struct {
	ID       string         `json:"id"`
	Op       string         `json:"op"` // flush, bounce or delete
	Selector queue.Selector `json:"selector"`
	Reason   string         `json:"reason,omitempty"` // bounce
	DryRun   bool           `json:"dry_run"`
	State    string         `json:"state"` // running, done or failed
	// Total is the number of recipients queued when the operation
	// started; 0 while it waits for another one to finish.
	Total    int       `json:"total"`
	Scanned  int       `json:"scanned"`  // recipient records read so far
	Affected int       `json:"affected"` // recipients changed (counted, for a dry run)
	Error    string    `json:"error,omitempty"`
	Started  time.Time `json:"started"`
	Finished time.Time `json:"finished,omitzero"`
}

// Bounds of the job registry.
const (
	// maxRunningJobs: operations run one at a time in the spool; the ones
	// started meanwhile wait their turn, up to this many in all.
	maxRunningJobs = 8
	// Finished jobs are kept for keepJobsFor, at most keepJobs of them
	// (the oldest are forgotten first).
	keepJobs    = 64
	keepJobsFor = time.Hour
	// maxJobWait caps GET /v1/jobs/{id}?wait=.
	maxJobWait = 30 * time.Second
)

var errTooManyJobs = fmt.Errorf("%d queue operations are already running or waiting; let one finish (drover queue jobs)", maxRunningJobs)

// jobs is the registry of the queue operations the API started. It lives
// in memory: jobs end, and are forgotten, with the process.
type jobs struct {
	now        func() time.Time
	maxRunning int
	keep       int
	keepFor    time.Duration

	mu      sync.Mutex
	byID    map[string]*job
	seq     int
	running int
}

type job struct {
	seq  int           // start order
	done chan struct{} // closed when the operation returned
	info Job           // guarded by jobs.mu
}

func newJobs(now func() time.Time) *jobs {
	return &jobs{now: now, maxRunning: maxRunningJobs, keep: keepJobs, keepFor: keepJobsFor, byID: make(map[string]*job)}
}

// start registers a job and runs op in a goroutine of its own, which
// recovers a panic as a failure. It returns the job as started, or
// errTooManyJobs.
func (js *jobs) start(info Job, op func(report func(queue.Progress)) (int, error)) (Job, error) {
	js.mu.Lock()
	js.pruneLocked()
	if js.running >= js.maxRunning {
		js.mu.Unlock()
		return Job{}, errTooManyJobs
	}
	var id [6]byte
	rand.Read(id[:])
	info.ID = hex.EncodeToString(id[:])
	info.State = JobRunning
	info.Started = js.now()
	js.seq++
	j := &job{seq: js.seq, done: make(chan struct{}), info: info}
	js.byID[info.ID] = j
	js.running++
	js.mu.Unlock()

	report := func(p queue.Progress) {
		js.mu.Lock()
		j.info.Total, j.info.Scanned, j.info.Affected = p.Total, p.Scanned, p.Affected
		js.mu.Unlock()
	}
	go func() {
		var n int
		var err error
		defer func() {
			if v := recover(); v != nil {
				err = fmt.Errorf("panic: %v", v)
				slog.Error("httpapi: queue operation panicked", "job", info.ID, "op", info.Op, "panic", v, "stack", string(debug.Stack()))
			}
			js.finish(j, n, err)
		}()
		n, err = op(report)
	}()
	return info, nil
}

func (js *jobs) finish(j *job, n int, err error) {
	js.mu.Lock()
	defer js.mu.Unlock()
	j.info.Affected = n
	j.info.State = JobDone
	if err != nil {
		j.info.State, j.info.Error = JobFailed, err.Error()
	}
	j.info.Finished = js.now()
	js.running--
	js.pruneLocked()
	close(j.done)
}

// pruneLocked forgets the jobs finished more than keepFor ago, then the
// oldest finished ones beyond keep.
func (js *jobs) pruneLocked() {
	now := js.now()
	var finished []*job
	for id, j := range js.byID {
		if j.info.State == JobRunning {
			continue
		}
		if now.Sub(j.info.Finished) > js.keepFor {
			delete(js.byID, id)
			continue
		}
		finished = append(finished, j)
	}
	if len(finished) <= js.keep {
		return
	}
	slices.SortFunc(finished, func(a, b *job) int {
		return cmp.Or(a.info.Finished.Compare(b.info.Finished), cmp.Compare(a.seq, b.seq))
	})
	for _, j := range finished[:len(finished)-js.keep] {
		delete(js.byID, j.info.ID)
	}
}

// list returns the jobs known, newest first.
func (js *jobs) list() []Job {
	js.mu.Lock()
	defer js.mu.Unlock()
	js.pruneLocked()
	all := make([]*job, 0, len(js.byID))
	for _, j := range js.byID {
		all = append(all, j)
	}
	slices.SortFunc(all, func(a, b *job) int { return cmp.Compare(b.seq, a.seq) })
	out := make([]Job, len(all))
	for i, j := range all {
		out[i] = j.info
	}
	return out
}

// get returns a job, after waiting up to wait for it to finish (or for
// cancel); false if it is not known.
func (js *jobs) get(id string, wait time.Duration, cancel <-chan struct{}) (Job, bool) {
	js.mu.Lock()
	js.pruneLocked()
	j := js.byID[id]
	js.mu.Unlock()
	if j == nil {
		return Job{}, false
	}
	if wait > 0 {
		t := time.NewTimer(wait)
		select {
		case <-j.done:
		case <-t.C:
		case <-cancel:
		}
		t.Stop()
	}
	js.mu.Lock()
	defer js.mu.Unlock()
	return j.info, true
}

// startJob answers a queue operation's request: 202 with the job started,
// 429 when too many are running.
func (js *jobs) startJob(w http.ResponseWriter, info Job, op func(report func(queue.Progress)) (int, error)) {
	j, err := js.start(info, op)
	if err != nil {
		w.Header().Set("Retry-After", "10")
		writeError(w, http.StatusTooManyRequests, err)
		return
	}
	w.Header().Set("Location", "/v1/jobs/"+j.ID)
	writeJSONStatus(w, http.StatusAccepted, map[string]any{"job": j})
}

// register adds the jobs' endpoints to the admin mux.
func (js *jobs) register(admin *http.ServeMux) {
	admin.HandleFunc("GET /v1/jobs", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, map[string]any{"jobs": js.list()})
	})
	admin.HandleFunc("GET /v1/jobs/{id}", func(w http.ResponseWriter, r *http.Request) {
		var wait time.Duration
		if s := r.URL.Query().Get("wait"); s != "" {
			d, err := time.ParseDuration(s)
			if err != nil || d < 0 {
				writeError(w, http.StatusBadRequest, fmt.Errorf("wait=%q: not a duration (e.g. 2s)", s))
				return
			}
			wait = min(d, maxJobWait)
		}
		j, ok := js.get(r.PathValue("id"), wait, r.Context().Done())
		if !ok {
			writeError(w, http.StatusNotFound, errors.New("no such job (finished jobs are forgotten after an hour, and at a restart)"))
			return
		}
		writeJSON(w, map[string]any{"job": j})
	})
}
