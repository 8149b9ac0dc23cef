package queue

import (
	"cmp"
	"errors"
	"fmt"
	"math"
	"runtime/debug"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"drover/queue/shaping"
)

// site is the shared state of the destinations of one Site: connection
// slots, rate limiters, adaptive backoff and operator suspension. Every
// field but the limiters is guarded by Spool.mu.
type site struct {
	name string
	mx   []string
	base Limits // from Options.Limits(site, "")

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

	msgRate, connRate limiter
}

// hold is an operator suspension of a site or a domain.
type hold struct {
	Suspension
	timer *time.Timer // fires at Until, nil when indefinite
}

func holdKey(kind, name string) string { return kind + "\x00" + name }

// suspendedLocked reports whether the site delivers nothing for now.
func (st *site) suspendedLocked() bool { return st.hold != nil || !st.suspendUntil.IsZero() }

// heldLocked reports whether d may not deliver for now: its domain or its
// site is suspended.
func (s *Spool) heldLocked(d *dest) bool {
	return d.hold != nil || d.site != nil && d.site.suspendedLocked()
}

// siteLocked returns the site named name, creating it.
func (s *Spool) siteLocked(name string) *site {
	st := s.sites[name]
	if st == nil {
		st = &site{name: name, base: DefaultLimits, max: DefaultLimits.MaxConnections, factor: 1,
			dests: make(map[*dest]struct{}), hold: s.holds[holdKey("site", name)],
			state: shaping.NewSiteState(time.Now)}
		s.sites[name] = st
	}
	return st
}

// bindLocked makes st the site of d.
func (s *Spool) bindLocked(d *dest, st *site) {
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
		s.maybeReapSiteLocked(old)
	}
	d.site = st
	st.dests[d] = struct{}{}
}

// maybeReapSiteLocked forgets a site that has no destination, no
// connection and no adaptive state left, once its rate limiters would let
// the next event through at once (so that a new site of the same name
// cannot exceed the rates).
func (s *Spool) maybeReapSiteLocked(st *site) {
	if len(st.dests) != 0 || st.slots != 0 || st.factor != 1 || !st.suspendUntil.IsZero() || s.sites[st.name] != st {
		return
	}
	if wait := max(st.msgRate.freeIn(), st.connRate.freeIn()); wait > 0 {
		// No adaptive state, so the timer is free: look again then.
		if st.timer == nil {
			st.timer = time.AfterFunc(wait, func() { s.siteTimer(st) })
		} else {
			st.timer.Reset(wait)
		}
		return
	}
	delete(s.sites, st.name)
	if st.timer != nil {
		st.timer.Stop()
	}
}

// setSiteLimitsLocked takes new site-wide limits and applies them.
func (s *Spool) setSiteLimitsLocked(st *site, lim Limits) {
	st.base = lim
	s.recomputeLocked(st)
}

// recomputeLocked derives the effective limits of st from its base limits
// and its factor. A higher max lets waiting destinations in; with a lower
// one, idle connections close at once and busy ones after their message.
func (s *Spool) recomputeLocked(st *site) {
	f := st.factor
	m := st.base.MaxConnections
	if f < 1 {
		m = max(1, int(float64(m)*f))
	}
	st.max = m
	st.msgRate.setRate(st.base.MaxMessageRate * f)
	st.connRate.setRate(st.base.MaxConnectionRate * f)
	if st.slots-st.leaving > st.max {
		s.shedIdleLocked(st, st.slots-st.leaving-st.max, nil)
	}
	s.grantLocked(st)
}

// shedIdleLocked asks up to n idle workers with a connection to st, of
// its destinations but except, to close their connections now.
func (s *Spool) shedIdleLocked(st *site, n int, except *dest) {
	if st.nidle == 0 || n <= 0 {
		return
	}
	for d := range st.dests {
		if d == except {
			continue
		}
		for i := len(d.idle) - 1; i >= 0 && n > 0; i-- {
			if w := d.idle[i]; w.site == st {
				s.removeIdleLocked(d, w)
				s.shedLocked(w)
				n--
			}
		}
		if n == 0 || st.nidle == 0 {
			return
		}
	}
}

// shedDestIdleLocked asks every idle worker of d to close its connection.
func (s *Spool) shedDestIdleLocked(d *dest) {
	for len(d.idle) > 0 {
		w := d.idle[len(d.idle)-1]
		s.removeIdleLocked(d, w)
		s.shedLocked(w)
	}
}

// shedLocked wakes an idle worker (taken off its idle list) to close its
// connection.
func (s *Spool) shedLocked(w *worker) {
	w.shed = true
	select {
	case w.wake <- struct{}{}:
	default:
	}
}

// grabSlotLocked takes a connection slot of st for d, or queues d to be
// kicked when one is free.
func (s *Spool) grabSlotLocked(st *site, d *dest) bool {
	if st.slots < st.max && len(st.waiters) == 0 && !st.suspendedLocked() {
		st.slots++
		return true
	}
	if !d.waiting {
		d.waiting = true
		st.waiters = append(st.waiters, d)
	}
	// Connections idle at another destination of the site give way.
	s.shedIdleLocked(st, 1, d)
	return false
}

// releaseSlotLocked gives back a slot of st and hands free slots to the
// destinations waiting for one.
func (s *Spool) releaseSlotLocked(st *site, leaving bool) {
	st.slots--
	if leaving {
		st.leaving--
	}
	s.grantLocked(st)
	s.maybeReapSiteLocked(st)
}

// grantLocked starts a worker, holding a slot, for each waiting destination
// while the site has free slots.
func (s *Spool) grantLocked(st *site) {
	for st.slots < st.max && len(st.waiters) > 0 && !st.suspendedLocked() && !s.closing {
		d := st.waiters[0]
		st.waiters[0] = nil
		st.waiters = st.waiters[1:]
		d.waiting = false
		if d.site != st || d.reaped || d.nready == 0 || s.heldLocked(d) || d.workers >= d.limits.MaxConnections {
			continue
		}
		st.slots++
		s.startWorkerLocked(d, st)
	}
	if len(st.waiters) == 0 {
		st.waiters = nil
	}
}

// resumeLocked gets the destinations of st (or d alone) going again after
// a suspension ended.
func (s *Spool) resumeLocked(st *site, d *dest) {
	if st != nil {
		s.grantLocked(st)
		for d := range st.dests {
			if d.nready > 0 {
				s.kickLocked(d)
			}
		}
		return
	}
	if d != nil && d.nready > 0 {
		s.kickLocked(d)
	}
}

// The adaptive backoff.

// applyRule applies a slow or suspend rule that a reply of st matched.
func (s *Spool) applyRule(st *site, r *shaping.Rule, res Result) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closing || s.sites[st.name] != st {
		return
	}
	before := st.state.Status()
	st.state.Apply(r)
	after := st.state.Status()
	if r.Action == shaping.ActionSlow && (after.Factor != before.Factor || !before.Slowed()) {
		s.log.Info("queue: site slowed down", "site", st.name, "rule", r.Name, "action", r.Action,
			"factor", after.Factor, "until", after.SlowUntil, "reply", describe(res))
	}
	if after.Suspended() && !before.Suspended() {
		s.log.Info("queue: site suspended", "site", st.name, "rule", r.Name, "action", r.Action,
			"until", after.SuspendedUntil, "reply", describe(res))
	}
	s.syncStateLocked(st)
}

// syncStateLocked takes a new snapshot of st's adaptive state, applies it
// and sets the timer for the end of the next action.
func (s *Spool) syncStateLocked(st *site) {
	ss := st.state.Status()
	wasSuspended := st.suspendedLocked()
	factor := st.factor
	st.factor, st.slowUntil, st.slowReason = ss.Factor, ss.SlowUntil, ss.SlowReason
	st.suspendUntil, st.suspendReason = ss.SuspendedUntil, ss.SuspendReason
	if st.factor != factor {
		if st.factor == 1 {
			s.log.Info("queue: site back to normal speed", "site", st.name)
		}
		s.recomputeLocked(st)
	}
	switch suspended := st.suspendedLocked(); {
	case suspended && !wasSuspended:
		s.shedIdleLocked(st, st.nidle, nil)
	case !suspended && wasSuspended:
		s.log.Info("queue: site suspension over", "site", st.name)
		s.resumeLocked(st, nil)
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
		st.timer = time.AfterFunc(d, func() { s.siteTimer(st) })
	} else {
		st.timer.Reset(d)
	}
}

// siteTimer ends the adaptive actions of st that are over.
func (s *Spool) siteTimer(st *site) {
	defer func() {
		if r := recover(); r != nil {
			s.log.Error("queue: panic in site timer", "site", st.name, "panic", r, "stack", string(debug.Stack()))
		}
	}()
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closing || s.sites[st.name] != st {
		return
	}
	s.syncStateLocked(st)
	s.maybeReapSiteLocked(st)
}

// matchRule asks Options.Rules about a failed result with a remote reply.
func (s *Spool) matchRule(res Result) (r *shaping.Rule) {
	if s.opts.Rules == nil || res.Status == Delivered || res.Code == 0 {
		return nil
	}
	defer func() {
		if p := recover(); p != nil {
			s.log.Error("queue: panic in Rules.Match", "panic", p)
			r = nil
		}
	}()
	return s.opts.Rules.Match(res.Code, res.Enhanced, res.Text)
}

// adapt applies the rules matched by the results of one attempt at st:
// slow and suspend act on the site (once per rule and attempt), bounce turns
// the result into a permanent failure.
func (s *Spool) adapt(st *site, results []Result) {
	if s.opts.Rules == nil {
		return
	}
	var seen []*shaping.Rule
	for i := range results {
		res := &results[i]
		if res.Status == Delivered || res.Code == 0 { // no remote reply
			continue
		}
		r := s.matchRule(*res)
		if r == nil {
			continue
		}
		switch r.Action {
		case shaping.ActionBounce:
			if res.Status != Permanent {
				s.log.Info("queue: bouncing on a rule", "site", siteName(st), "rule", r.Name, "action", r.Action, "reply", describe(*res))
				res.Status = Permanent
			}
		case shaping.ActionSlow, shaping.ActionSuspend:
			// Once per rule and attempt: the recipients of one
			// transaction often share the reply.
			if st == nil || slices.Contains(seen, r) {
				continue
			}
			seen = append(seen, r)
			s.applyRule(st, r, *res)
		}
	}
}

func siteName(st *site) string {
	if st == nil {
		return ""
	}
	return st.name
}

// statusLocked describes st.
func (s *Spool) statusLocked(st *site) SiteStatus {
	ss := SiteStatus{
		Name: st.name, MX: slices.Clone(st.mx), Domains: len(st.dests), Connections: st.conns,
		MaxConnections: st.max, Factor: st.factor, SlowUntil: st.slowUntil,
		MessageRate: st.msgRate.rate(), ConnectionRate: st.connRate.rate(),
	}
	if ss.Factor < 1 {
		ss.Reason = st.slowReason
	}
	for d := range st.dests {
		ss.Ready += d.nready
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
	return ss
}

// Sites returns the state of every site the spool knows: those with
// destinations queued that have been attempted since it opened, and those
// still under an adaptive state. It reads memory only, for metrics.
func (s *Spool) Sites() []SiteStatus {
	s.mu.Lock()
	out := make([]SiteStatus, 0, len(s.sites))
	for _, st := range s.sites {
		out = append(out, s.statusLocked(st))
	}
	s.mu.Unlock()
	slices.SortFunc(out, func(a, b SiteStatus) int { return cmp.Compare(a.Name, b.Name) })
	return out
}

// Operator suspensions.

// Suspend stops deliveries to a site (kind "site": every domain of it) or
// to a domain (kind "domain") until until (zero: until Resume), with a
// reason shown by Sites, Summaries and Suspensions. Connections close
// after their current message; recipients stay queued, without attempts
// counted. A second Suspend replaces the first. Suspensions are kept in
// memory only: they end when the process stops.
func (s *Spool) Suspend(kind, name string, until time.Time, reason string) error {
	if kind != "site" && kind != "domain" {
		return fmt.Errorf("queue: suspend: kind %q is not site or domain", kind)
	}
	if kind == "domain" {
		name = strings.ToLower(name)
	}
	if name == "" {
		return errors.New("queue: suspend: no name")
	}
	if !until.IsZero() && !until.After(time.Now()) {
		return fmt.Errorf("queue: suspend: %v is not in the future", until)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closing {
		return ErrClosed
	}
	key := holdKey(kind, name)
	if old := s.holds[key]; old != nil && old.timer != nil {
		old.timer.Stop()
	}
	h := &hold{Suspension: Suspension{Kind: kind, Name: name, Until: until, Reason: reason}}
	s.holds[key] = h
	if !until.IsZero() {
		h.timer = time.AfterFunc(time.Until(until), func() { s.holdTimer(h) })
	}
	switch kind {
	case "site":
		if st := s.sites[name]; st != nil {
			st.hold = h
			s.shedIdleLocked(st, st.nidle, nil)
		}
	case "domain":
		if d := s.dests[name]; d != nil {
			d.hold = h
			s.shedDestIdleLocked(d)
		}
	}
	s.log.Info("queue: suspended by operator", "kind", kind, "name", name, "until", until, "reason", reason)
	return nil
}

// Resume ends an operator suspension of a site or a domain; for a site,
// it also ends the adaptive backoff in force (slowdown and suspension). It
// is not an error to resume what is not suspended.
func (s *Spool) Resume(kind, name string) error {
	if kind != "site" && kind != "domain" {
		return fmt.Errorf("queue: resume: kind %q is not site or domain", kind)
	}
	if kind == "domain" {
		name = strings.ToLower(name)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if h := s.holds[holdKey(kind, name)]; h != nil {
		s.endHoldLocked(h)
		s.log.Info("queue: resumed by operator", "kind", kind, "name", name)
	}
	if st := s.sites[name]; kind == "site" && st != nil && (st.factor < 1 || !st.suspendUntil.IsZero()) {
		st.state.Resume()
		s.syncStateLocked(st)
		s.log.Info("queue: adaptive backoff ended by operator", "site", name)
	}
	return nil
}

func (s *Spool) holdTimer(h *hold) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.holds[holdKey(h.Kind, h.Name)] == h {
		s.endHoldLocked(h)
		s.log.Info("queue: operator suspension over", "kind", h.Kind, "name", h.Name)
	}
}

func (s *Spool) endHoldLocked(h *hold) {
	delete(s.holds, holdKey(h.Kind, h.Name))
	if h.timer != nil {
		h.timer.Stop()
	}
	if s.closing {
		return
	}
	switch h.Kind {
	case "site":
		if st := s.sites[h.Name]; st != nil && st.hold == h {
			st.hold = nil
			if !st.suspendedLocked() {
				s.resumeLocked(st, nil)
			}
		}
	case "domain":
		if d := s.dests[h.Name]; d != nil && d.hold == h {
			d.hold = nil
			if !s.heldLocked(d) {
				s.resumeLocked(nil, d)
			}
		}
	}
}

// Suspensions returns the operator suspensions in force.
func (s *Spool) Suspensions() []Suspension {
	s.mu.Lock()
	out := make([]Suspension, 0, len(s.holds))
	for _, h := range s.holds {
		out = append(out, h.Suspension)
	}
	s.mu.Unlock()
	slices.SortFunc(out, func(a, b Suspension) int {
		return cmp.Or(cmp.Compare(a.Kind, b.Kind), cmp.Compare(a.Name, b.Name))
	})
	return out
}

// Reconfigure asks Options.Limits again for every site and destination in
// memory and applies the answers at once: rates change for the next
// message, a higher MaxConnections lets waiting destinations in, and with
// a lower one idle connections close now and busy ones after their current
// message. Call it after the functions behind Options.Limits and
// Options.Rules changed (a configuration reload); Rules is asked per reply
// and needs nothing more.
func (s *Spool) Reconfigure() {
	type siteReq struct {
		st   *site
		site Site
		lim  Limits
	}
	type destReq struct {
		d   *dest
		lim Limits
	}
	s.mu.Lock()
	sites := make([]siteReq, 0, len(s.sites))
	for _, st := range s.sites {
		sites = append(sites, siteReq{st: st, site: Site{Name: st.name, MX: slices.Clone(st.mx)}})
	}
	dests := make([]destReq, 0, len(s.dests))
	siteOf := make(map[*dest]Site, len(s.dests))
	for _, d := range s.dests {
		if d.site != nil {
			dests = append(dests, destReq{d: d})
			siteOf[d] = Site{Name: d.site.name, MX: slices.Clone(d.site.mx)}
		}
	}
	s.mu.Unlock()
	for i := range sites {
		sites[i].lim = s.limitsFor(sites[i].site, "")
	}
	for i := range dests {
		dests[i].lim = s.limitsFor(siteOf[dests[i].d], dests[i].d.name)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, r := range dests {
		r.d.limits = r.lim
	}
	for _, r := range sites {
		s.setSiteLimitsLocked(r.st, r.lim)
	}
	for _, r := range dests {
		if r.d.nready > 0 && !s.closing {
			s.kickLocked(r.d)
		}
	}
}

// siteOf finds the site of d from Options.SiteOf: on an error, the site
// it had, else the site named like the domain.
func (s *Spool) siteOf(d *dest) Site {
	if s.opts.SiteOf == nil {
		return Site{Name: d.name}
	}
	s.mu.Lock()
	cur := d.site
	var cached Site
	if cur != nil {
		cached = Site{Name: cur.name, MX: cur.mx}
	}
	s.mu.Unlock()
	var site Site
	var err error
	func() {
		defer func() {
			if r := recover(); r != nil {
				s.log.Error("queue: panic in SiteOf", "dest", d.name, "panic", r, "stack", string(debug.Stack()))
				err = fmt.Errorf("panic: %v", r)
			}
		}()
		site, err = s.opts.SiteOf(s.ctx, d.name)
	}()
	if err == nil && site.Name == "" {
		err = errors.New("empty site name")
	}
	if err != nil {
		if s.ctx.Err() == nil {
			s.log.Debug("queue: finding the site", "dest", d.name, "err", err)
		}
		if cur != nil {
			return cached
		}
		return Site{Name: d.name}
	}
	return site
}

// limiter spaces the events of a site at least 1/rate apart (a burst of
// one), so that any window of length T holds at most 1 + rate×T of them.
// Reservations are handed out in order; an unlimited limiter costs one
// atomic load.
type limiter struct {
	interval atomic.Int64 // nanoseconds between events; 0 = unlimited
	mu       sync.Mutex
	last     int64 // monotonic time of the latest reservation; 0 = none
}

var monoStart = time.Now()

func monotime() int64 { return int64(time.Since(monoStart)) + 1 }

func (l *limiter) setRate(perSecond float64) {
	if perSecond <= 0 || math.IsInf(perSecond, 0) || math.IsNaN(perSecond) {
		l.interval.Store(0)
		return
	}
	l.interval.Store(max(int64(math.Ceil(1e9/perSecond)), 1))
}

func (l *limiter) rate() float64 {
	iv := l.interval.Load()
	if iv == 0 {
		return 0
	}
	return 1e9 / float64(iv)
}

// reserve takes the next event time and returns how long to wait for it.
func (l *limiter) reserve() time.Duration {
	iv := l.interval.Load()
	if iv == 0 {
		return 0
	}
	now := monotime()
	l.mu.Lock()
	t := now
	if l.last != 0 {
		t = max(now, l.last+iv)
	}
	l.last = t
	l.mu.Unlock()
	return time.Duration(t - now)
}

// freeIn returns how long until the limiter lets an event through.
func (l *limiter) freeIn() time.Duration {
	iv := l.interval.Load()
	if iv == 0 {
		return 0
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.last == 0 {
		return 0
	}
	return time.Duration(max(l.last+iv-monotime(), 0))
}

// wait sleeps for d unless the spool stops first; it reports whether it
// slept the whole time.
func (s *Spool) wait(d time.Duration) bool {
	if d <= 0 {
		return true
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-s.stop:
		return false
	case <-s.ctx.Done():
		return false
	}
}
