package engine

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"runtime/debug"
	"slices"
	"strings"
	"sync"
	"time"

	"drover/queue"
	"drover/queue/shaping"
)

// Config configures an Engine. Spool, Planner and Courier are required.
type Config struct {
	Spool   *queue.Spool
	Planner Planner
	Courier Courier
	// Rules maps the remote replies of failed recipients (and of failed
	// connections) to adaptive-backoff actions; nil: none.
	Rules RuleMatcher
	// Store keeps operator suspensions and adaptive states across
	// restarts; nil: Spool.
	Store Store
	// KnownSites names the sites of the shaping configuration, for the
	// warning of Suspend; nil: only the sites the engine has seen.
	KnownSites SiteNames
	// IdleTimeout is how long an unused connection is kept open (default 2s).
	IdleTimeout time.Duration
	Logger      *slog.Logger // default slog.Default()
}

// Engine delivers what the spool hands out. Its methods are safe for
// concurrent use.
type Engine struct {
	cfg   Config
	spool *queue.Spool
	store Store
	log   *slog.Logger
	idle  time.Duration

	ctx    context.Context // cancelled when Close stops waiting for deliveries
	cancel context.CancelFunc
	stop   chan struct{} // closed when Close starts
	wg     sync.WaitGroup

	// pmu orders the writes to the store: it is taken before mu and held
	// across the write, which is made with mu released; neither the
	// spool (which calls Ready with its lock held) nor a holder of mu
	// takes it.
	pmu sync.Mutex

	mu      sync.Mutex
	closing bool
	dests   map[string]*dest
	sites   map[string]*site
	holds   map[string]*hold // operator suspensions by holdKey
}

// dest is the delivery state of one destination.
type dest struct {
	name string
	plan *Plan // the latest plan; nil until a worker made one
	site *site // nil until the first plan
	hold *hold // operator suspension of the domain, nil if none

	// pending: the spool may have recipients of dest ready; gen counts the
	// spool's signals, so that a worker that found nothing can tell a
	// signal that came meanwhile. queued: the spool has recipients of
	// dest (from its first Ready to Drained), so its site stays known.
	pending bool
	gen     uint64
	queued  bool

	workers int       // worker goroutines
	conns   int       // open connections
	idle    []*worker // workers waiting for work, with a connection
	waiting bool      // queued for a connection slot of its site
	reaped  bool      // forgotten by the engine
}

// New returns an engine; Start gets it going.
func New(cfg Config) (*Engine, error) {
	if cfg.Spool == nil || cfg.Planner == nil || cfg.Courier == nil {
		return nil, errors.New("engine: Spool, Planner and Courier are required")
	}
	if cfg.IdleTimeout <= 0 {
		cfg.IdleTimeout = 2 * time.Second
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Store == nil {
		cfg.Store = cfg.Spool
	}
	e := &Engine{
		cfg: cfg, spool: cfg.Spool, store: cfg.Store, log: cfg.Logger, idle: cfg.IdleTimeout,
		stop:  make(chan struct{}),
		dests: make(map[string]*dest), sites: make(map[string]*site), holds: make(map[string]*hold),
	}
	e.ctx, e.cancel = context.WithCancel(context.Background())
	if err := e.load(); err != nil {
		e.stopTimers()
		e.cancel()
		return nil, fmt.Errorf("engine: load suspensions: %w", err)
	}
	return e, nil
}

// Start starts delivery: the spool's scheduler tells the engine of due
// recipients from now on. The suspensions and adaptive states saved by the
// previous run are in force already (New loaded them).
func (e *Engine) Start() { e.spool.Start(e) }

// Ready implements queue.Dispatcher. It is called with the spool's lock
// held, and takes only the engine's: the engine never holds its lock
// while it calls the spool.
func (e *Engine) Ready(name string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.closing {
		return
	}
	d := e.destLocked(name)
	d.pending = true
	d.queued = true
	d.gen++
	e.kickLocked(d)
}

// Drained implements queue.Dispatcher: the spool has nothing of name
// queued any more, so the destination may be forgotten. Like Ready, it is
// called with the spool's lock held.
func (e *Engine) Drained(name string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if d := e.dests[name]; d != nil {
		d.queued = false
		e.maybeReapLocked(d)
	}
}

// destLocked returns the destination named name, creating it.
func (e *Engine) destLocked(name string) *dest {
	d := e.dests[name]
	if d == nil {
		d = &dest{name: name}
		if len(e.holds) > 0 {
			d.hold = e.holds[holdKey("domain", name)]
		}
		e.dests[name] = d
	}
	return d
}

// maybeReapLocked forgets a destination with nothing going on and nothing
// queued.
func (e *Engine) maybeReapLocked(d *dest) {
	if d.workers == 0 && !d.pending && !d.queued && e.dests[d.name] == d {
		delete(e.dests, d.name)
		d.reaped = true
		if st := d.site; st != nil {
			delete(st.dests, d)
			e.maybeReapSiteLocked(st)
		}
	}
}

// limits returns the destination's limits: its plan's, or the defaults
// before the first.
func (d *dest) limits() shaping.Limits {
	if d.plan == nil {
		return shaping.BuiltinLimits
	}
	return d.plan.Limits
}

// Close stops delivery: no new transaction starts, those in flight finish
// (cancelled when ctx expires), connections close. It waits for the
// workers in any case: a Courier must honour context cancellation. Close
// the engine before the spool.
func (e *Engine) Close(ctx context.Context) error {
	e.pmu.Lock() // let a write to the store under way end first
	e.mu.Lock()
	if e.closing {
		e.mu.Unlock()
		e.pmu.Unlock()
		return errors.New("engine: closed")
	}
	e.closing = true
	e.stopTimersLocked()
	e.mu.Unlock()
	e.pmu.Unlock()
	close(e.stop)
	done := make(chan struct{})
	go func() {
		e.wg.Wait()
		close(done)
	}()
	var err error
	select {
	case <-done:
	case <-ctx.Done():
		e.mu.Lock()
		n := 0
		for _, d := range e.dests {
			n += d.workers
		}
		e.mu.Unlock()
		err = &InterruptedError{Workers: n, Err: ctx.Err()}
		e.cancel()
		<-done
	}
	e.cancel()
	return err
}

func (e *Engine) stopTimers() {
	e.mu.Lock()
	e.stopTimersLocked()
	e.mu.Unlock()
}

func (e *Engine) stopTimersLocked() {
	for _, st := range e.sites {
		if st.timer != nil {
			st.timer.Stop()
		}
	}
	for _, h := range e.holds {
		if h.timer != nil {
			h.timer.Stop()
		}
	}
}

// InterruptedError is Close's error when ctx ended before the deliveries
// under way did: they were cancelled, and their recipients stay queued,
// unchanged, for the next start. Nothing is lost.
type InterruptedError struct {
	Workers int   // delivery workers that were still running
	Err     error // ctx.Err()
}

func (e *InterruptedError) Error() string {
	return fmt.Sprintf("engine: close: %d deliveries interrupted (their recipients stay queued): %v", e.Workers, e.Err)
}

func (e *InterruptedError) Unwrap() error { return e.Err }

// Reconfigure refreshes the plan of every destination and site in memory
// (Planner.Refresh) and applies the new limits at once: rates change for
// the next transaction, a higher MaxConnections lets waiting destinations
// in, and with a lower one idle connections close now and busy ones after
// their current message. Call it after the planner's configuration
// changed (a reload); Rules is asked per reply and needs nothing more.
func (e *Engine) Reconfigure() {
	type req struct {
		d    *dest
		plan *Plan
	}
	e.mu.Lock()
	reqs := make([]req, 0, len(e.dests))
	for _, d := range e.dests {
		if d.plan != nil {
			reqs = append(reqs, req{d: d, plan: d.plan})
		}
	}
	e.mu.Unlock()
	for i := range reqs {
		reqs[i].plan = e.refresh(reqs[i].d.name, reqs[i].plan)
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	for _, r := range reqs {
		if r.d.reaped {
			continue
		}
		r.d.plan = r.plan
		if st := r.d.site; st != nil && st.name == r.plan.Site {
			e.setSiteLimitsLocked(st, r.plan.SiteLimits)
		}
	}
	for _, r := range reqs {
		if r.d.pending && !e.closing && !r.d.reaped {
			e.kickLocked(r.d)
		}
	}
}

// refresh calls Planner.Refresh, keeping p on a panic.
func (e *Engine) refresh(name string, p *Plan) (out *Plan) {
	defer func() {
		if r := recover(); r != nil {
			e.log.Error("engine: panic in Planner.Refresh", "dest", name, "panic", r, "stack", string(debug.Stack()))
			out = p
		}
	}()
	if np := e.cfg.Planner.Refresh(name, p); np != nil {
		return np
	}
	return p
}

// plan asks the planner for the plan of d. On an error, d keeps the plan
// it had (or gets one of its own, with the default limits), and the error
// is returned to fail the connection attempt.
func (e *Engine) plan(d *dest) (*Plan, error) {
	var p *Plan
	var err error
	func() {
		defer func() {
			if r := recover(); r != nil {
				e.log.Error("engine: panic in Planner.Plan", "dest", d.name, "panic", r, "stack", string(debug.Stack()))
				err = fmt.Errorf("local error: panic in planner: %v", r)
			}
		}()
		p, err = e.cfg.Planner.Plan(e.ctx, d.name)
	}()
	if err == nil && (p == nil || p.Site == "") {
		err = errors.New("local error: planner returned no site")
	}
	if err == nil {
		return p, nil
	}
	e.mu.Lock()
	p = d.plan
	e.mu.Unlock()
	if p == nil {
		p = &Plan{Site: d.name, SiteLimits: shaping.BuiltinLimits, Limits: shaping.BuiltinLimits}
	}
	return p, err
}

// Sites returns the state of every site the engine knows: those with
// destinations attempted since it started, and those still under an
// adaptive state. It reads memory only, for metrics.
func (e *Engine) Sites() []SiteStatus {
	e.mu.Lock()
	out := make([]SiteStatus, 0, len(e.sites))
	dests := make([][]string, 0, len(e.sites))
	for _, st := range e.sites {
		ss, ds := e.statusLocked(st)
		out, dests = append(out, ss), append(dests, ds)
	}
	e.mu.Unlock()
	for i := range out {
		out[i].Ready = e.spool.Waiting(dests[i]...)
	}
	slices.SortFunc(out, func(a, b SiteStatus) int { return strings.Compare(a.Name, b.Name) })
	return out
}
