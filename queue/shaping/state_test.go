package shaping

import (
	"sync"
	"testing"
	"time"

	"drover/testkit"
)

func newClock() *testkit.Clock { return testkit.NewClock(time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)) }

var base = Limits{
	MaxConnections:           20,
	MaxMessagesPerConnection: 100,
	MaxRecipientsPerMessage:  100,
	MaxMessageRate:           Rate{100, time.Second},
	MaxConnectionRate:        Rate{10, time.Minute},
	RetryInterval:            5 * time.Minute,
	MaxRetryInterval:         4 * time.Hour,
	MaxAge:                   120 * time.Hour,
	TLS:                      TLSOpportunistic,
}

func slowRule(name string, f float64, d time.Duration) *Rule {
	return &Rule{Name: name, Code: 421, Action: ActionSlow, Factor: f, Duration: d}
}

func TestSlowExpires(t *testing.T) {
	c := newClock()
	st := NewSiteState(c.Now)
	if got := st.Effective(base); got != base {
		t.Fatalf("normal Effective = %+v", got)
	}
	if s := st.Status(); s.Factor != 1 || s.Slowed() || s.Suspended() || s.String() != "normal" {
		t.Fatalf("normal Status = %+v %q", s, s)
	}
	st.Apply(slowRule("google-rate-limited", 0.5, 30*time.Minute))
	want := base
	want.MaxConnections = 10
	want.MaxMessageRate = Rate{50, time.Second}
	want.MaxConnectionRate = Rate{5, time.Minute}
	if got := st.Effective(base); got != want {
		t.Errorf("slowed Effective =\n %+v\nwant\n %+v", got, want)
	}
	s := st.Status()
	if s.Factor != 0.5 || !s.SlowUntil.Equal(c.Now().Add(30*time.Minute)) || s.SlowReason != "google-rate-limited" || s.Reason != "google-rate-limited" {
		t.Errorf("slowed Status = %+v", s)
	}
	if got, want := s.String(), "slowed x0.5 until 2026-03-01T12:30:00Z (google-rate-limited)"; got != want {
		t.Errorf("String = %q, want %q", got, want)
	}
	if sus, _ := st.Suspended(); sus {
		t.Error("slowed is suspended")
	}
	c.Advance(30*time.Minute - 1)
	if st.Factor() != 0.5 {
		t.Error("slowdown ended early")
	}
	c.Advance(1)
	if got := st.Effective(base); got != base || st.Factor() != 1 || st.Status().Slowed() {
		t.Errorf("slowdown did not end: %+v %+v", got, st.Status())
	}
	// A new slowdown after the end starts afresh, not compounded.
	st.Apply(slowRule("x", 0.5, time.Minute))
	if f := st.Factor(); f != 0.5 {
		t.Errorf("fresh slowdown factor %v", f)
	}
}

func TestSlowUnlimitedAndFloor(t *testing.T) {
	st := NewSiteState(newClock().Now)
	st.Apply(slowRule("x", 0.1, time.Hour))
	b := base
	b.MaxConnections = 5
	b.MaxMessageRate = Rate{}
	got := st.Effective(b)
	if got.MaxConnections != 1 || !got.MaxMessageRate.Unlimited() || got.MaxConnectionRate != (Rate{1, time.Minute}) {
		t.Errorf("Effective = %+v", got)
	}
}

func TestSlowCompounding(t *testing.T) {
	c := newClock()
	st := NewSiteState(c.Now)
	r := slowRule("yahoo-deferred", 0.5, time.Hour)
	st.Apply(r)
	start := c.Now()
	// A burst of the same reply from connections already in flight: the
	// factor stays, the end moves.
	for i := 0; i < 50; i++ {
		c.Advance(time.Second)
		st.Apply(r)
	}
	if f := st.Factor(); f != 0.5 {
		t.Errorf("burst compounded to %v", f)
	}
	if s := st.Status(); !s.SlowUntil.Equal(start.Add(50*time.Second + time.Hour)) {
		t.Errorf("end %v", s.SlowUntil)
	}
	// A stronger rule within the settle time: the lower factor wins.
	st.Apply(slowRule("stronger", 0.25, time.Minute))
	if s := st.Status(); s.Factor != 0.25 || !s.SlowUntil.Equal(start.Add(50*time.Second+time.Hour)) || s.SlowReason != "stronger" {
		t.Errorf("lower factor: %+v", s)
	}
	// A weaker rule does not raise the factor.
	st.Apply(slowRule("weaker", 0.9, time.Minute))
	if f := st.Factor(); f != 0.25 {
		t.Errorf("weaker rule raised the factor to %v", f)
	}
	// Throttled again after the slowdown settled: compound.
	c.Advance(SlowSettle)
	st.Apply(r)
	if f := st.Factor(); f != 0.125 {
		t.Errorf("compounded factor %v, want 0.125", f)
	}
	// And not below MinFactor.
	for i := 0; i < 10; i++ {
		c.Advance(SlowSettle)
		st.Apply(r)
	}
	if f := st.Factor(); f != MinFactor {
		t.Errorf("factor %v, want MinFactor", f)
	}
	if got := st.Effective(base); got.MaxConnections != 1 || got.MaxMessageRate != (Rate{5, time.Second}) {
		t.Errorf("Effective at MinFactor %+v", got)
	}
	// Ends an hour after the last reply.
	c.Advance(time.Hour)
	if st.Status().Slowed() {
		t.Errorf("still slowed: %+v", st.Status())
	}
}

func TestSuspend(t *testing.T) {
	c := newClock()
	st := NewSiteState(c.Now)
	st.Apply(&Rule{Name: "microsoft-blocklist", Pattern: "S3150", Action: ActionSuspend, Duration: time.Hour})
	end := c.Now().Add(time.Hour)
	if sus, until := st.Suspended(); !sus || !until.Equal(end) {
		t.Errorf("Suspended = %v %v", sus, until)
	}
	// An earlier end does not shorten it; a later one extends it.
	st.Suspend(c.Now().Add(time.Minute), "operator")
	if s := st.Status(); !s.SuspendedUntil.Equal(end) || s.SuspendReason != "microsoft-blocklist" {
		t.Errorf("shortened: %+v", s)
	}
	st.Apply(slowRule("slow", 0.5, 2*time.Hour))
	s := st.Status()
	if s.Reason != "microsoft-blocklist" || s.SlowReason != "slow" || s.Factor != 0.5 {
		t.Errorf("suspended and slowed: %+v", s)
	}
	if got, want := s.String(), "suspended until 2026-03-01T13:00:00Z (microsoft-blocklist); slowed x0.5 until 2026-03-01T14:00:00Z (slow)"; got != want {
		t.Errorf("String = %q, want %q", got, want)
	}
	c.Advance(time.Hour)
	if sus, _ := st.Suspended(); sus {
		t.Error("suspension did not end")
	}
	if s := st.Status(); s.Suspended() || s.Reason != "slow" {
		t.Errorf("after the suspension: %+v", s)
	}
	st.Suspend(c.Now().Add(5*time.Hour), "operator")
	st.Resume()
	if s := st.Status(); s.Suspended() || s.Slowed() || s.Factor != 1 || s.Reason != "" {
		t.Errorf("after Resume: %+v", s)
	}
	// Bounce, none and nil rules leave the state alone.
	st.Apply(nil)
	st.Apply(&Rule{Name: "b", Code: 550, Action: ActionBounce})
	if s := st.Status(); s.Slowed() || s.Suspended() {
		t.Errorf("bounce changed the state: %+v", s)
	}
}

func TestSiteStateConcurrent(t *testing.T) {
	st := NewSiteState(nil)
	var wg sync.WaitGroup
	for i := 0; i < 8; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := 0; j < 200; j++ {
				st.Apply(slowRule("x", 0.5, time.Hour))
				st.Effective(base)
				st.Suspended()
				_ = st.Status().String()
			}
		}()
	}
	wg.Wait()
	if f := st.Factor(); f != 0.5 {
		t.Errorf("factor %v", f)
	}
}
