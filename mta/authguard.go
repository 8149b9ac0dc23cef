package mta

import (
	"net/netip"
	"sync"
	"time"
)

// AuthLimits bound password guessing over AUTH. A zero field takes its
// default.
type AuthLimits struct {
	// MaxFailuresPerSession failed (or refused) logins close the session
	// with 421 4.7.0. Default 3.
	MaxFailuresPerSession int
	// SlowAfter failures from one client address within Window delay the
	// reply to each further AUTH from it: Delay, doubling with every
	// failure, up to MaxDelay. Default 5.
	SlowAfter int
	// LockoutAfter failures from one client address within Window refuse
	// its AUTH (454 4.7.0, without checking the password) for Lockout.
	// Default 10.
	LockoutAfter int
	// Window is counted from an address's first failure; when it has
	// passed, the count starts over. Default 10 minutes.
	Window time.Duration
	// Lockout is how long an address stays refused. Default 15 minutes.
	Lockout time.Duration
	// Delay and MaxDelay: defaults 1 s and 8 s.
	Delay, MaxDelay time.Duration
	// MaxAddresses is the most client addresses tracked at once; past it
	// the one whose last failure is oldest is forgotten (locked-out ones
	// last). Default 10000.
	MaxAddresses int
}

func (l AuthLimits) withDefaults() AuthLimits {
	def := func(v *int, d int) {
		if *v <= 0 {
			*v = d
		}
	}
	defDur := func(v *time.Duration, d time.Duration) {
		if *v <= 0 {
			*v = d
		}
	}
	def(&l.MaxFailuresPerSession, 3)
	def(&l.SlowAfter, 5)
	def(&l.LockoutAfter, 10)
	def(&l.MaxAddresses, 10000)
	defDur(&l.Window, 10*time.Minute)
	defDur(&l.Lockout, 15*time.Minute)
	defDur(&l.Delay, time.Second)
	defDur(&l.MaxDelay, 8*time.Second)
	return l
}

// authGuard counts failed logins per client address (an IPv6 address by
// its /64, which one client usually holds whole) across all listeners.
// It is safe for concurrent use.
type authGuard struct {
	limits AuthLimits
	now    func() time.Time

	mu        sync.Mutex
	byAddr    map[string]*authRecord
	lastSweep time.Time
}

type authRecord struct {
	failures    int
	since       time.Time // first failure of the window
	last        time.Time // last failure
	lockedUntil time.Time // zero: not locked out
}

func newAuthGuard(limits AuthLimits, now func() time.Time) *authGuard {
	return &authGuard{limits: limits, now: now, byAddr: map[string]*authRecord{}}
}

// authKey is the address failures are counted under.
func authKey(ip string) string {
	a, err := netip.ParseAddr(ip)
	if err != nil {
		return ip
	}
	a = a.Unmap()
	if a.Is6() {
		p, _ := a.Prefix(64)
		return p.String()
	}
	return a.String()
}

// expired reports whether r no longer counts at now.
func (g *authGuard) expired(r *authRecord, now time.Time) bool {
	if !r.lockedUntil.IsZero() {
		return !now.Before(r.lockedUntil)
	}
	return now.Sub(r.since) >= g.limits.Window
}

// record returns ip's live record, or nil.
func (g *authGuard) record(key string, now time.Time) *authRecord {
	r := g.byAddr[key]
	if r != nil && g.expired(r, now) {
		delete(g.byAddr, key)
		return nil
	}
	return r
}

// admit says how to treat an AUTH from ip: refuse it until lockedUntil
// (when not zero), or else delay its reply by delay.
func (g *authGuard) admit(ip string) (delay time.Duration, lockedUntil time.Time) {
	now := g.now()
	g.mu.Lock()
	defer g.mu.Unlock()
	r := g.record(authKey(ip), now)
	switch {
	case r == nil:
		return 0, time.Time{}
	case !r.lockedUntil.IsZero():
		return 0, r.lockedUntil
	case r.failures < g.limits.SlowAfter:
		return 0, time.Time{}
	}
	delay = g.limits.Delay
	for i := g.limits.SlowAfter; i < r.failures && delay < g.limits.MaxDelay; i++ {
		delay *= 2
	}
	return min(delay, g.limits.MaxDelay), time.Time{}
}

// failed counts a failed login from ip. It returns the failures counted
// for ip in the window, and when this one locked ip out, until when.
func (g *authGuard) failed(ip string) (failures int, lockedUntil time.Time) {
	now := g.now()
	key := authKey(ip)
	g.mu.Lock()
	defer g.mu.Unlock()
	if now.Sub(g.lastSweep) >= g.limits.Window {
		g.sweep(now)
	}
	r := g.record(key, now)
	if r == nil {
		if len(g.byAddr) >= g.limits.MaxAddresses {
			g.sweep(now)
			g.evict()
		}
		r = &authRecord{since: now}
		g.byAddr[key] = r
	}
	r.failures++
	r.last = now
	if r.lockedUntil.IsZero() && r.failures >= g.limits.LockoutAfter {
		r.lockedUntil = now.Add(g.limits.Lockout)
		return r.failures, r.lockedUntil
	}
	return r.failures, time.Time{}
}

// succeeded forgets ip's failures.
func (g *authGuard) succeeded(ip string) {
	g.mu.Lock()
	delete(g.byAddr, authKey(ip))
	g.mu.Unlock()
}

// sweep forgets every expired record.
func (g *authGuard) sweep(now time.Time) {
	g.lastSweep = now
	for k, r := range g.byAddr {
		if g.expired(r, now) {
			delete(g.byAddr, k)
		}
	}
}

// evict makes room for one record while the map is full: it forgets the
// record whose last failure is oldest, sparing locked-out addresses while
// there are others.
func (g *authGuard) evict() {
	for len(g.byAddr) >= g.limits.MaxAddresses {
		var oldest string
		var or *authRecord
		for k, r := range g.byAddr {
			if or == nil || r.lockedUntil.IsZero() && !or.lockedUntil.IsZero() ||
				r.lockedUntil.IsZero() == or.lockedUntil.IsZero() && r.last.Before(or.last) {
				oldest, or = k, r
			}
		}
		delete(g.byAddr, oldest)
	}
}

// tracked is the number of addresses with a record (for tests).
func (g *authGuard) tracked() int {
	g.mu.Lock()
	defer g.mu.Unlock()
	return len(g.byAddr)
}
