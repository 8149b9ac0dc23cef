package engine

import (
	"math"
	"runtime/debug"
	"slices"
	"sync/atomic"
	"time"

	"golang.org/x/time/rate"

	"drover/queue"
	"drover/queue/shaping"
)

// site is the shared state of the destinations of one site: connection
// slots, rate limiters, adaptive backoff and operator suspension. Every
// field but the limiters is guarded by Engine.mu.
type site struct {
	name string
	mx   []string
	base shaping.Limits // the plans' SiteLimits

	max     int // effective MaxConnections: base × factor, at least 1
	slots   int // connection slots held: connections open or being opened
	leaving int // slots of connections closing to get the site under max
	conns   int // open connections
	nidle   int // workers of its destinations idle with a connection open

	waiters []*dest // destinations waiting for a slot, FIFO
	dests   map[*dest]struct{}

	hold *hold // operator suspension, nil if none

	// Adaptive backoff: state decides (shaping.SiteState: how slow rules
	// combine, when actions end); the fields below are its snapshot, taken
	// when a rule applies and when timer fires at the end of an action. A
	// slow rule scales max and the rates by factor until slowUntil; a
	// suspend rule stops deliveries until suspendUntil.
	state                     *shaping.SiteState
	factor                    float64
	slowUntil, suspendUntil   time.Time
	slowReason, suspendReason string
	timer                     *time.Timer
	saved                     shaping.Saved // the state as last written to the store

	// msgRate spaces the transactions of the site, connRate the
	// connections it opens: token buckets of burst 1, so that any window
	// of length T holds at most 1 + rate×T of them.
	msgRate, connRate *limiter
}

// limiter is a rate limit of a site: a token bucket of burst one, and
// whether it is unlimited, read without a lock, so that an unlimited rate
// costs one atomic load per event.
type limiter struct {
	*rate.Limiter
	unlimited atomic.Bool
}

func newLimiter() *limiter {
	l := &limiter{Limiter: rate.NewLimiter(rate.Inf, 1)}
	l.unlimited.Store(true)
	return l
}

// set changes the limit (events per second, rate.Inf for none).
func (l *limiter) set(lim rate.Limit) {
	if lim != l.Limit() {
		l.SetLimit(lim)
	}
	l.unlimited.Store(lim == rate.Inf)
}

// SiteStatus is the live state of a site, kept in memory.
type SiteStatus struct {
	Name           string    `json:"name"`
	MX             []string  `json:"mx,omitempty"`
	Domains        int       `json:"domains"`                   // destinations known to belong to it
	Ready          int       `json:"ready"`                     // recipients in memory waiting for a connection
	Connections    int       `json:"connections"`               // open connections
	MaxConnections int       `json:"max_connections"`           // effective: configured × Factor, at least 1
	MessageRate    float64   `json:"message_rate,omitempty"`    // effective, per second; 0 = unlimited
	ConnectionRate float64   `json:"connection_rate,omitempty"` // effective, per second; 0 = unlimited
	Factor         float64   `json:"factor"`                    // 1, or the scale of a slow rule in force
	SlowUntil      time.Time `json:"slow_until,omitzero"`
	Suspended      bool      `json:"suspended,omitempty"`      // by a rule or by an operator
	SuspendedUntil time.Time `json:"suspended_until,omitzero"` // zero while suspended: until resumed
	Reason         string    `json:"reason,omitempty"`         // rule or operator reason of the state
}

// suspendedLocked reports whether the site delivers nothing for now.
func (st *site) suspendedLocked() bool { return st.hold != nil || !st.suspendUntil.IsZero() }

// heldLocked reports whether d may not deliver for now: its domain or its
// site is suspended.
func (e *Engine) heldLocked(d *dest) bool {
	return d.hold != nil || d.site != nil && d.site.suspendedLocked()
}

// siteLocked returns the site named name, creating it.
func (e *Engine) siteLocked(name string) *site {
	st := e.sites[name]
	if st == nil {
		st = &site{name: name, base: shaping.BuiltinLimits, max: shaping.BuiltinLimits.MaxConnections, factor: 1,
			dests: make(map[*dest]struct{}), hold: e.holds[holdKey("site", name)],
			state:   shaping.NewSiteState(time.Now),
			msgRate: newLimiter(), connRate: newLimiter()}
		e.sites[name] = st
	}
	return st
}

// bindLocked makes st the site of d.
func (e *Engine) bindLocked(d *dest, st *site) {
	if d.site == st {
		return
	}
	if old := d.site; old != nil {
		if d.waiting {
			d.waiting = false
			if i := slices.Index(old.waiters, d); i >= 0 {
				old.waiters = slices.Delete(old.waiters, i, i+1)
			}
		}
		delete(old.dests, d)
		e.maybeReapSiteLocked(old)
	}
	d.site = st
	st.dests[d] = struct{}{}
}

// freeIn returns how long until l lets an event through.
func freeIn(l *limiter, now time.Time) time.Duration {
	lim := l.Limit()
	if lim == rate.Inf {
		return 0
	}
	tokens := l.TokensAt(now)
	if tokens >= 1 || lim <= 0 {
		return 0
	}
	return time.Duration(math.Ceil((1 - tokens) / float64(lim) * 1e9))
}

// maybeReapSiteLocked forgets a site that has no destination, no
// connection and no adaptive state left, once its rate limiters would let
// the next event through at once (so that a new site of the same name
// cannot exceed the rates).
func (e *Engine) maybeReapSiteLocked(st *site) {
	if len(st.dests) != 0 || st.slots != 0 || st.factor != 1 || !st.suspendUntil.IsZero() || e.sites[st.name] != st {
		return
	}
	now := time.Now()
	if wait := max(freeIn(st.msgRate, now), freeIn(st.connRate, now)); wait > 0 {
		// No adaptive state, so the timer is free: look again then.
		if st.timer == nil {
			st.timer = time.AfterFunc(wait, func() { e.siteTimer(st) })
		} else {
			st.timer.Reset(wait)
		}
		return
	}
	delete(e.sites, st.name)
	if st.timer != nil {
		st.timer.Stop()
	}
}

// setSiteLimitsLocked takes new site-wide limits and applies them.
func (e *Engine) setSiteLimitsLocked(st *site, lim shaping.Limits) {
	st.base = lim
	e.recomputeLocked(st)
}

// limitOf is the limiter setting of a rate scaled by f.
func limitOf(r shaping.Rate, f float64) rate.Limit {
	ps := r.PerSecond() * f
	if ps <= 0 || math.IsInf(ps, 0) || math.IsNaN(ps) {
		return rate.Inf
	}
	return rate.Limit(ps)
}

// recomputeLocked derives the effective limits of st from its base limits
// and its factor. A higher max lets waiting destinations in; with a lower
// one, idle connections close at once and busy ones after their message.
func (e *Engine) recomputeLocked(st *site) {
	f := st.factor
	m := st.base.MaxConnections
	if f < 1 {
		m = max(1, int(float64(m)*f))
	}
	st.max = m
	st.msgRate.set(limitOf(st.base.MaxMessageRate, f))
	st.connRate.set(limitOf(st.base.MaxConnectionRate, f))
	if st.slots-st.leaving > st.max {
		e.shedIdleLocked(st, st.slots-st.leaving-st.max, nil)
	}
	e.grantLocked(st)
}

// shedIdleLocked asks up to n idle workers with a connection to st, of
// its destinations but except, to close their connections now.
func (e *Engine) shedIdleLocked(st *site, n int, except *dest) {
	if st.nidle == 0 || n <= 0 {
		return
	}
	for d := range st.dests {
		if d == except {
			continue
		}
		for i := len(d.idle) - 1; i >= 0 && n > 0; i-- {
			if w := d.idle[i]; w.site == st {
				e.removeIdleLocked(d, w)
				e.shedLocked(w)
				n--
			}
		}
		if n == 0 || st.nidle == 0 {
			return
		}
	}
}

// shedDestIdleLocked asks every idle worker of d to close its connection.
func (e *Engine) shedDestIdleLocked(d *dest) {
	for len(d.idle) > 0 {
		w := d.idle[len(d.idle)-1]
		e.removeIdleLocked(d, w)
		e.shedLocked(w)
	}
}

// shedLocked wakes an idle worker (taken off its idle list) to close its
// connection.
func (e *Engine) shedLocked(w *worker) {
	w.shed = true
	select {
	case w.wake <- struct{}{}:
	default:
	}
}

// grabSlotLocked takes a connection slot of st for d, or queues d to be
// kicked when one is free.
func (e *Engine) grabSlotLocked(st *site, d *dest) bool {
	if st.slots < st.max && len(st.waiters) == 0 && !st.suspendedLocked() {
		st.slots++
		return true
	}
	if !d.waiting {
		d.waiting = true
		st.waiters = append(st.waiters, d)
	}
	// Connections idle at another destination of the site give way.
	e.shedIdleLocked(st, 1, d)
	return false
}

// releaseSlotLocked gives back a slot of st and hands free slots to the
// destinations waiting for one.
func (e *Engine) releaseSlotLocked(st *site, leaving bool) {
	st.slots--
	if leaving {
		st.leaving--
	}
	e.grantLocked(st)
	e.maybeReapSiteLocked(st)
}

// grantLocked starts a worker, holding a slot, for each waiting destination
// while the site has free slots.
func (e *Engine) grantLocked(st *site) {
	for st.slots < st.max && len(st.waiters) > 0 && !st.suspendedLocked() && !e.closing {
		d := st.waiters[0]
		st.waiters[0] = nil
		st.waiters = st.waiters[1:]
		d.waiting = false
		if d.site != st || d.reaped || !d.pending || e.heldLocked(d) || d.workers >= d.limits().MaxConnections {
			continue
		}
		st.slots++
		e.startWorkerLocked(d, st)
	}
	if len(st.waiters) == 0 {
		st.waiters = nil
	}
}

// resumeLocked gets the destinations of st (or d alone) going again after
// a suspension ended.
func (e *Engine) resumeLocked(st *site, d *dest) {
	if st != nil {
		e.grantLocked(st)
		for d := range st.dests {
			if d.pending {
				e.kickLocked(d)
			}
		}
		return
	}
	if d != nil && d.pending {
		e.kickLocked(d)
	}
}

// The adaptive backoff.

// applyRule applies a slow or suspend rule that a reply of st matched.
func (e *Engine) applyRule(st *site, r *shaping.Rule, res queue.Result) {
	e.pmu.Lock()
	defer e.pmu.Unlock()
	e.mu.Lock()
	if e.closing || e.sites[st.name] != st {
		e.mu.Unlock()
		return
	}
	before := st.state.Status()
	st.state.Apply(r)
	after := st.state.Status()
	if r.Action == shaping.ActionSlow && (after.Factor != before.Factor || !before.Slowed()) {
		e.log.Info("engine: site slowed down", "site", st.name, "rule", r.Name, "action", r.Action,
			"factor", after.Factor, "until", after.SlowUntil, "reply", res.Describe())
	}
	if after.Suspended() && !before.Suspended() {
		e.log.Info("engine: site suspended", "site", st.name, "rule", r.Name, "action", r.Action,
			"until", after.SuspendedUntil, "reply", res.Describe())
	}
	e.syncStateLocked(st)
	op := e.adaptiveOpLocked(st)
	e.mu.Unlock()
	e.doStore(op)
}

// syncStateLocked takes a new snapshot of st's adaptive state, applies it
// and sets the timer for the end of the next action.
func (e *Engine) syncStateLocked(st *site) {
	ss := st.state.Status()
	wasSuspended := st.suspendedLocked()
	factor := st.factor
	st.factor, st.slowUntil, st.slowReason = ss.Factor, ss.SlowUntil, ss.SlowReason
	st.suspendUntil, st.suspendReason = ss.SuspendedUntil, ss.SuspendReason
	if st.factor != factor {
		if st.factor == 1 {
			e.log.Info("engine: site back to normal speed", "site", st.name)
		}
		e.recomputeLocked(st)
	}
	switch suspended := st.suspendedLocked(); {
	case suspended && !wasSuspended:
		e.shedIdleLocked(st, st.nidle, nil)
	case !suspended && wasSuspended:
		e.log.Info("engine: site suspension over", "site", st.name)
		e.resumeLocked(st, nil)
	}
	var next time.Time
	for _, t := range []time.Time{st.slowUntil, st.suspendUntil} {
		if !t.IsZero() && (next.IsZero() || t.Before(next)) {
			next = t
		}
	}
	if next.IsZero() {
		return
	}
	d := max(time.Until(next), 0)
	if st.timer == nil {
		st.timer = time.AfterFunc(d, func() { e.siteTimer(st) })
	} else {
		st.timer.Reset(d)
	}
}

// siteTimer ends the adaptive actions of st that are over.
func (e *Engine) siteTimer(st *site) {
	defer func() {
		if r := recover(); r != nil {
			e.log.Error("engine: panic in site timer", "site", st.name, "panic", r, "stack", string(debug.Stack()))
		}
	}()
	e.pmu.Lock()
	defer e.pmu.Unlock()
	e.mu.Lock()
	if e.closing || e.sites[st.name] != st {
		e.mu.Unlock()
		return
	}
	e.syncStateLocked(st)
	op := e.adaptiveOpLocked(st)
	e.maybeReapSiteLocked(st)
	e.mu.Unlock()
	e.doStore(op)
}

// matchRule asks Config.Rules about a failed result with a remote reply.
func (e *Engine) matchRule(res queue.Result) (r *shaping.Rule) {
	defer func() {
		if p := recover(); p != nil {
			e.log.Error("engine: panic in Rules.Match", "panic", p)
			r = nil
		}
	}()
	return e.cfg.Rules.Match(res.Code, res.Enhanced, res.Text)
}

// adapt applies the rules matched by the results of one attempt at st:
// slow and suspend act on the site (once per rule and attempt), bounce turns
// the result into a permanent failure.
func (e *Engine) adapt(st *site, results []queue.Result) {
	if e.cfg.Rules == nil {
		return
	}
	var seen []*shaping.Rule
	for i := range results {
		res := &results[i]
		if res.Status == queue.Delivered || res.Code == 0 { // no remote reply
			continue
		}
		r := e.matchRule(*res)
		if r == nil {
			continue
		}
		switch r.Action {
		case shaping.ActionBounce:
			if res.Status != queue.Permanent {
				e.log.Info("engine: bouncing on a rule", "site", st.name, "rule", r.Name, "action", r.Action, "reply", res.Describe())
				res.Status = queue.Permanent
			}
		case shaping.ActionSlow, shaping.ActionSuspend:
			// Once per rule and attempt: the recipients of one
			// transaction often share the reply.
			if slices.Contains(seen, r) {
				continue
			}
			seen = append(seen, r)
			e.applyRule(st, r, *res)
		}
	}
}

// statusLocked describes st but for Ready, which the caller counts with
// Spool.Waiting(dests...) once the engine's lock is released.
func (e *Engine) statusLocked(st *site) (ss SiteStatus, dests []string) {
	ss = SiteStatus{
		Name: st.name, MX: slices.Clone(st.mx), Domains: len(st.dests), Connections: st.conns,
		MaxConnections: st.max, Factor: st.factor, SlowUntil: st.slowUntil,
		MessageRate: rateOf(st.msgRate), ConnectionRate: rateOf(st.connRate),
	}
	if ss.Factor < 1 {
		ss.Reason = st.slowReason
	}
	for d := range st.dests {
		dests = append(dests, d.name)
	}
	if !st.suspendUntil.IsZero() {
		ss.Suspended, ss.SuspendedUntil, ss.Reason = true, st.suspendUntil, st.suspendReason
	}
	if h := st.hold; h != nil {
		ss.Suspended = true
		if h.Until.IsZero() || ss.SuspendedUntil.IsZero() && ss.Reason == "" || h.Until.After(ss.SuspendedUntil) {
			ss.SuspendedUntil, ss.Reason = h.Until, h.Reason
		}
	}
	return ss, dests
}

func rateOf(l *limiter) float64 {
	if lim := l.Limit(); lim != rate.Inf {
		return float64(lim)
	}
	return 0
}
