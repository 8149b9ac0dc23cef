package shaping

import (
	"context"
	"slices"
	"sync"
	"testing"
	"time"
)

// maxInWindow returns the most events in any half-open window [t, t+w).
func maxInWindow(starts []time.Time, w time.Duration) int {
	slices.SortFunc(starts, func(a, b time.Time) int { return a.Compare(b) })
	best, j := 0, 0
	for i := range starts {
		for !starts[i].Before(starts[j].Add(w)) {
			j++
		}
		best = max(best, i-j+1)
	}
	return best
}

// TestLimiterExact sends at full speed through a Limiter on a simulated
// clock: a sender that reserves, waits as told and starts.
func TestLimiterExact(t *testing.T) {
	for _, r := range []Rate{{100, time.Second}, {3000, time.Minute}, {20, 10 * time.Second}, {7, time.Second}, {1, 3 * time.Second}} {
		c := newClock()
		l := NewLimiter(c.Now)
		l.SetLimit(r)
		var starts []time.Time
		for i := 0; i < 5*r.Count; i++ {
			c.Advance(l.Reserve())
			starts = append(starts, c.Now())
		}
		if got := maxInWindow(starts, r.Per); got > r.Count {
			t.Errorf("%v: %d events in one period", r, got)
		}
		for _, w := range []time.Duration{r.Per / 3, r.Per / 2, 2 * r.Per} {
			if got, limit := maxInWindow(starts, w), int((w+r.Interval()-1)/r.Interval()); got > limit {
				t.Errorf("%v: %d events in %v, more than %d", r, got, w, limit)
			}
		}
		// And it is not slower than asked: 5 periods hold 5*Count events.
		if span := starts[len(starts)-1].Sub(starts[0]); span >= 5*r.Per {
			t.Errorf("%v: %d events took %v", r, len(starts), span)
		}
	}
}

// TestLimiterConcurrent has many goroutines reserve at once, as the
// delivery workers of a site do: their start times still keep the rate.
// The clock moves between rounds only, so that each start time is exactly
// the clock plus the wait.
func TestLimiterConcurrent(t *testing.T) {
	c := newClock()
	l := NewLimiter(c.Now)
	l.SetRate(50, 1)
	var mu sync.Mutex
	var starts []time.Time
	for round := 0; round < 5; round++ {
		var wg sync.WaitGroup
		for g := 0; g < 8; g++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := 0; i < 10; i++ {
					d := l.Reserve()
					mu.Lock()
					starts = append(starts, c.Now().Add(d))
					mu.Unlock()
				}
			}()
		}
		wg.Wait()
		c.Advance(700 * time.Millisecond)
	}
	if got := maxInWindow(starts, time.Second); got > 50 {
		t.Errorf("%d starts in one second at 50/s", got)
	}
	if got := maxInWindow(starts, 20*time.Millisecond); got > 1 {
		t.Errorf("%d starts in 20ms at 50/s", got)
	}
}

func TestLimiterBurstAndChanges(t *testing.T) {
	c := newClock()
	l := NewLimiter(c.Now)
	if d := l.Reserve(); d != 0 {
		t.Errorf("unlimited Reserve = %v", d)
	}
	l.SetRate(10, 3) // 100ms apart, 3 at once
	var got []time.Duration
	for i := 0; i < 5; i++ {
		got = append(got, l.Reserve())
	}
	want := []time.Duration{0, 0, 0, 100 * time.Millisecond, 200 * time.Millisecond}
	if !slices.Equal(got, want) {
		t.Errorf("burst 3: %v, want %v", got, want)
	}
	// Idle: the burst is back, no more.
	c.Advance(10 * time.Second)
	got = got[:0]
	for i := 0; i < 4; i++ {
		got = append(got, l.Reserve())
	}
	if want := []time.Duration{0, 0, 0, 100 * time.Millisecond}; !slices.Equal(got, want) {
		t.Errorf("after idle: %v, want %v", got, want)
	}
	// Slower: the next reservation starts one new interval after the
	// latest one (which starts at +100ms), then they are spaced at the new
	// rate.
	l.SetRate(1, 1)
	l.SetRate(1, 1) // the same again: no change
	if d := l.Reserve(); d != 1100*time.Millisecond {
		t.Errorf("after SetRate(1): %v", d)
	}
	if d := l.Reserve(); d != 2100*time.Millisecond {
		t.Errorf("second after SetRate(1): %v", d)
	}
	// Faster again, burst 2: one new interval after the latest, and the
	// burst refills from there.
	c.Advance(2100 * time.Millisecond)
	l.SetRate(10, 2)
	if d := l.Reserve(); d != 100*time.Millisecond {
		t.Errorf("after SetRate(10, 2): %v", d)
	}
	c.Advance(time.Second)
	if d1, d2, d3 := l.Reserve(), l.Reserve(), l.Reserve(); d1 != 0 || d2 != 0 || d3 != 100*time.Millisecond {
		t.Errorf("burst 2 after idle: %v %v %v", d1, d2, d3)
	}
	l.SetLimit(Rate{})
	if d := l.Reserve(); d != 0 {
		t.Errorf("unlimited again: %v", d)
	}
}

func TestLimiterWait(t *testing.T) {
	var l Limiter // zero value: unlimited, real clock
	if err := l.Wait(context.Background()); err != nil {
		t.Fatal(err)
	}
	l.SetRate(1000, 1)
	start := time.Now()
	for i := 0; i < 20; i++ {
		if err := l.Wait(context.Background()); err != nil {
			t.Fatal(err)
		}
	}
	if el := time.Since(start); el < 19*time.Millisecond {
		t.Errorf("20 waits at 1000/s took %v", el)
	}
	l.SetRate(0.001, 1)
	l.Reserve()
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := l.Wait(ctx); err != context.Canceled {
		t.Errorf("Wait on a canceled context: %v", err)
	}
}
