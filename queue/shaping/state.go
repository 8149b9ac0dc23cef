package shaping

import (
	"fmt"
	"math"
	"sync"
	"time"
)

// SlowSettle is how long a slowdown must have been in force before another
// slow reply compounds it (multiplies the factor). Replies that arrive
// sooner were mostly caused by traffic sent before the slowdown (in-flight
// transactions on many connections), so they only keep the lower factor.
const SlowSettle = time.Minute

// MinFactor is the lowest factor compounding can reach: a site is slowed,
// never starved (suspend is for that).
const MinFactor = 0.05

// SiteState is the adaptive-backoff state of one site: slowed by a factor
// until some time, suspended until some time, or normal. Expiry is lazy,
// computed against the clock on each call; no goroutine runs. Safe for
// concurrent use.
type SiteState struct {
	now func() time.Time

	mu            sync.Mutex
	factor        float64 // < 1 while slowed; meaningful only before slowUntil
	slowSince     time.Time
	slowUntil     time.Time
	slowReason    string
	suspendUntil  time.Time
	suspendReason string
}

// NewSiteState returns a normal state on clock now (nil: time.Now).
func NewSiteState(now func() time.Time) *SiteState {
	if now == nil {
		now = time.Now
	}
	return &SiteState{now: now}
}

// Status is a snapshot of a SiteState.
type Status struct {
	Factor         float64   // 1 when not slowed
	SlowUntil      time.Time // zero when not slowed
	SlowReason     string    // the rule (or caller) behind the slowdown
	SuspendedUntil time.Time // zero when not suspended
	SuspendReason  string
	Reason         string // the suspension's reason while suspended, else the slowdown's, else ""
}

// Slowed reports whether the site is slowed.
func (s Status) Slowed() bool { return !s.SlowUntil.IsZero() }

// Suspended reports whether the site is suspended.
func (s Status) Suspended() bool { return !s.SuspendedUntil.IsZero() }

// String describes the state for `drover queue ls` and logs:
// "normal", "slowed x0.5 until 2026-03-01T12:30:00Z (google-rate)",
// "suspended until ... (microsoft-blocklist); slowed ...".
func (s Status) String() string {
	out := ""
	if s.Suspended() {
		out = fmt.Sprintf("suspended until %s (%s)", s.SuspendedUntil.UTC().Format(time.RFC3339), s.SuspendReason)
	}
	if s.Slowed() {
		if out != "" {
			out += "; "
		}
		out += fmt.Sprintf("slowed x%g until %s (%s)", s.Factor, s.SlowUntil.UTC().Format(time.RFC3339), s.SlowReason)
	}
	if out == "" {
		return "normal"
	}
	return out
}

// Apply takes the action of a matched rule; nil, bounce and none rules
// change nothing.
//
// slow: the site is slowed by r.Factor until now+r.Duration. If it is
// already slowed, the end is the later of the two, and the factor is the
// lower of the two, except that once the current factor has been in force
// for SlowSettle a further slow reply compounds it (factor × r.Factor,
// not below MinFactor): throttling that goes on at the reduced rate means
// the rate is still too high.
//
// suspend: nothing is delivered until now+r.Duration (the later end wins).
func (st *SiteState) Apply(r *Rule) {
	if r == nil {
		return
	}
	switch r.Action {
	case ActionSlow:
		st.slow(r.Factor, r.Duration, r.Name)
	case ActionSuspend:
		st.Suspend(st.now().Add(r.Duration), r.Name)
	}
}

func (st *SiteState) slow(f float64, d time.Duration, reason string) {
	st.mu.Lock()
	defer st.mu.Unlock()
	now := st.now()
	until := now.Add(d)
	if !now.Before(st.slowUntil) { // not slowed: start afresh
		st.factor, st.slowSince, st.slowUntil, st.slowReason = f, now, until, reason
		return
	}
	switch {
	case now.Sub(st.slowSince) >= SlowSettle:
		st.factor = math.Max(MinFactor, st.factor*f)
		st.slowSince = now
	case f < st.factor:
		st.factor = f
		st.slowSince = now
	}
	if until.After(st.slowUntil) {
		st.slowUntil = until
	}
	st.slowReason = reason
}

// Suspend suspends the site until the given time, unless it is already
// suspended until later. Operators use it (drover queue suspend), as does
// Apply.
func (st *SiteState) Suspend(until time.Time, reason string) {
	st.mu.Lock()
	defer st.mu.Unlock()
	if until.After(st.suspendUntil) {
		st.suspendUntil, st.suspendReason = until, reason
	}
}

// Resume returns the site to normal at once: no slowdown, no suspension.
func (st *SiteState) Resume() {
	st.mu.Lock()
	defer st.mu.Unlock()
	st.factor, st.slowSince, st.slowUntil, st.slowReason = 0, time.Time{}, time.Time{}, ""
	st.suspendUntil, st.suspendReason = time.Time{}, ""
}

// Suspended reports whether the site is suspended now, and until when.
func (st *SiteState) Suspended() (bool, time.Time) {
	st.mu.Lock()
	defer st.mu.Unlock()
	if st.now().Before(st.suspendUntil) {
		return true, st.suspendUntil
	}
	return false, time.Time{}
}

// Factor returns the current slow factor, 1 when not slowed.
func (st *SiteState) Factor() float64 {
	st.mu.Lock()
	defer st.mu.Unlock()
	return st.factorLocked(st.now())
}

func (st *SiteState) factorLocked(now time.Time) float64 {
	if now.Before(st.slowUntil) {
		return st.factor
	}
	return 1
}

// Effective returns base as the current slowdown leaves it: MaxConnections
// is scaled by the factor (rounded down, at least 1), and the message and
// connection rates are scaled by it. An unlimited rate stays unlimited: a
// site without a configured rate is slowed through its connections alone
// (there is no measured rate to scale, and inventing one would be a guess).
// Suspension is not reflected here: see Suspended.
func (st *SiteState) Effective(base Limits) Limits {
	f := st.Factor()
	if f >= 1 {
		return base
	}
	base.MaxConnections = max(1, int(math.Floor(float64(base.MaxConnections)*f)))
	base.MaxMessageRate = base.MaxMessageRate.Scale(f)
	base.MaxConnectionRate = base.MaxConnectionRate.Scale(f)
	return base
}

// Status returns a snapshot of the state; expired actions show as absent.
func (st *SiteState) Status() Status {
	st.mu.Lock()
	defer st.mu.Unlock()
	now := st.now()
	s := Status{Factor: 1}
	if now.Before(st.slowUntil) {
		s.Factor, s.SlowUntil, s.SlowReason = st.factor, st.slowUntil, st.slowReason
		s.Reason = st.slowReason
	}
	if now.Before(st.suspendUntil) {
		s.SuspendedUntil, s.SuspendReason = st.suspendUntil, st.suspendReason
		s.Reason = st.suspendReason
	}
	return s
}

// Saved is the whole of a SiteState, for keeping it across restarts:
// Save takes it, Restore puts it back. Zero times are actions not in
// force.
type Saved struct {
	Factor        float64
	SlowSince     time.Time
	SlowUntil     time.Time
	SlowReason    string
	SuspendUntil  time.Time
	SuspendReason string
}

// Normal reports whether s holds no action.
func (s Saved) Normal() bool { return s.SlowUntil.IsZero() && s.SuspendUntil.IsZero() }

// Save returns the actions in force; those already over are left out.
func (st *SiteState) Save() Saved {
	st.mu.Lock()
	defer st.mu.Unlock()
	now := st.now()
	var s Saved
	if now.Before(st.slowUntil) {
		s.Factor, s.SlowSince, s.SlowUntil, s.SlowReason = st.factor, st.slowSince, st.slowUntil, st.slowReason
	}
	if now.Before(st.suspendUntil) {
		s.SuspendUntil, s.SuspendReason = st.suspendUntil, st.suspendReason
	}
	return s
}

// Restore replaces the state with s (as Save took it, perhaps in another
// process): actions whose end has passed are over at once, the others end
// at their time, and a slowdown compounds as if it had never stopped.
func (st *SiteState) Restore(s Saved) {
	st.mu.Lock()
	defer st.mu.Unlock()
	st.factor, st.slowSince, st.slowUntil, st.slowReason = s.Factor, s.SlowSince, s.SlowUntil, s.SlowReason
	st.suspendUntil, st.suspendReason = s.SuspendUntil, s.SuspendReason
	if !(s.Factor > 0 && s.Factor < 1) { // a corrupt or absent factor: not slowed
		st.factor, st.slowSince, st.slowUntil, st.slowReason = 0, time.Time{}, time.Time{}, ""
	}
}
