package shaping

import (
	"context"
	"math"
	"sync"
	"time"
)

// Limiter spaces events (messages, connections) to a rate. It is the
// virtual-scheduling form of a token bucket (GCRA) on integer nanoseconds,
// written here rather than taken from golang.org/x/time/rate because it
// must run on an injected clock for tests and be exact: with burst 1,
// consecutive reservations start at least Interval apart, so no window of
// any length W holds more than ceil(W/Interval) starts, and the Interval
// is rounded up, so a window of one period never holds more than the
// configured count. With burst b, up to b may start at once after an
// idle time, and b-1 more than that over any window.
//
// The zero Limiter is unlimited and uses time.Now. Safe for concurrent use.
type Limiter struct {
	mu        sync.Mutex
	now       func() time.Time
	interval  time.Duration // 0: unlimited
	tolerance time.Duration // (burst-1) * interval
	tat       time.Time     // theoretical arrival time of the next event
	last      time.Time     // start of the latest reservation
}

// NewLimiter returns an unlimited Limiter on clock now (nil: time.Now).
func NewLimiter(now func() time.Time) *Limiter {
	return &Limiter{now: now}
}

// SetRate sets the rate in events per second (0 or less: unlimited) and
// the burst (less than 1 is 1). Reservations already made keep their
// times; the next starts at least one new interval after the latest, and
// the burst refills from there. Setting the same rate again changes
// nothing, so callers may set it before every event.
func (l *Limiter) SetRate(perSecond float64, burst int) {
	var iv time.Duration
	if perSecond > 0 {
		iv = time.Duration(math.Ceil(float64(time.Second) / perSecond))
		if iv < 1 {
			iv = 1
		}
	}
	l.set(iv, burst)
}

// SetLimit sets the rate to r with burst 1 (exact: see Limiter). The zero
// Rate is unlimited.
func (l *Limiter) SetLimit(r Rate) { l.set(r.Interval(), 1) }

func (l *Limiter) set(iv time.Duration, burst int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	tol := time.Duration(max(burst, 1)-1) * iv
	if iv == l.interval && tol == l.tolerance {
		return
	}
	l.interval, l.tolerance = iv, tol
	if iv == 0 {
		l.tat = time.Time{}
		return
	}
	if !l.last.IsZero() {
		l.tat = l.last.Add(iv + tol)
	}
}

// Reserve takes the next slot and returns how long to wait before the
// event may start (0: now). The slot is taken even if the caller gives up
// waiting, which only errs on the slow side.
func (l *Limiter) Reserve() time.Duration {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.interval == 0 {
		return 0
	}
	now := time.Now
	if l.now != nil {
		now = l.now
	}
	t := now()
	if l.tat.Before(t) {
		l.tat = t
	}
	wait := max(l.tat.Add(-l.tolerance).Sub(t), 0)
	l.tat = l.tat.Add(l.interval)
	l.last = t.Add(wait)
	return wait
}

// Wait reserves a slot and sleeps (in real time) until it starts, or
// until ctx is done.
func (l *Limiter) Wait(ctx context.Context) error {
	d := l.Reserve()
	if d <= 0 {
		return ctx.Err()
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
