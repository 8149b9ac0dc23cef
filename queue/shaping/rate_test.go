package shaping

import (
	"testing"
	"time"
)

func TestParseRate(t *testing.T) {
	tests := []struct {
		in     string
		want   Rate
		perSec float64
		str    string
	}{
		{"100/s", Rate{100, time.Second}, 100, "100/s"},
		{"3000/m", Rate{3000, time.Minute}, 50, "3000/m"},
		{"50000/h", Rate{50000, time.Hour}, 50000.0 / 3600, "50000/h"},
		{"20/10s", Rate{20, 10 * time.Second}, 2, "20/10s"},
		{" 5 / min ", Rate{5, time.Minute}, 5.0 / 60, "5/m"},
		{"1/second", Rate{1, time.Second}, 1, "1/s"},
		{"7/hour", Rate{7, time.Hour}, 7.0 / 3600, "7/h"},
		{"86400/d", Rate{86400, 24 * time.Hour}, 1, "86400/d"},
		{"10/2m", Rate{10, 2 * time.Minute}, 10.0 / 120, "10/2m"},
		{"10/1h30m", Rate{10, 90 * time.Minute}, 10.0 / 5400, "10/1h30m"},
		{"unlimited", Rate{}, 0, "unlimited"},
		{"0", Rate{}, 0, "unlimited"},
	}
	for _, tt := range tests {
		got, err := ParseRate(tt.in)
		if err != nil {
			t.Errorf("ParseRate(%q): %v", tt.in, err)
			continue
		}
		if got != tt.want {
			t.Errorf("ParseRate(%q) = %+v, want %+v", tt.in, got, tt.want)
		}
		if d := got.PerSecond() - tt.perSec; d > 1e-9 || d < -1e-9 {
			t.Errorf("ParseRate(%q).PerSecond() = %v, want %v", tt.in, got.PerSecond(), tt.perSec)
		}
		if got.String() != tt.str {
			t.Errorf("ParseRate(%q).String() = %q, want %q", tt.in, got.String(), tt.str)
		}
		if back, err := ParseRate(got.String()); err != nil || back != got {
			t.Errorf("round trip of %q: %+v, %v", tt.in, back, err)
		}
	}
	for _, bad := range []string{"", "100", "100/", "/s", "0/s", "-1/s", "1.5/s", "100/x", "100/-1s", "100/0s", "many/s", "100/s/s"} {
		if r, err := ParseRate(bad); err == nil {
			t.Errorf("ParseRate(%q) = %+v, want an error", bad, r)
		}
	}
}

func TestRateScaleAndInterval(t *testing.T) {
	tests := []struct {
		r        Rate
		f        float64
		want     Rate
		interval time.Duration // of want
	}{
		{Rate{100, time.Second}, 0.5, Rate{50, time.Second}, 20 * time.Millisecond},
		{Rate{100, time.Second}, 0.3, Rate{30, time.Second}, 33333334},
		{Rate{3, time.Second}, 0.5, Rate{3, 2 * time.Second}, 666666667},
		{Rate{1, time.Minute}, 0.25, Rate{1, 4 * time.Minute}, 4 * time.Minute},
		{Rate{}, 0.5, Rate{}, 0},
		{Rate{10, time.Second}, 1, Rate{10, time.Second}, 100 * time.Millisecond},
	}
	for _, tt := range tests {
		got := tt.r.Scale(tt.f)
		if got != tt.want {
			t.Errorf("%v.Scale(%v) = %+v, want %+v", tt.r, tt.f, got, tt.want)
		}
		if iv := got.Interval(); iv != tt.interval {
			t.Errorf("%v.Interval() = %v, want %v", got, iv, tt.interval)
		}
		if !tt.r.Unlimited() && tt.f < 1 {
			if want := tt.r.PerSecond() * tt.f; got.PerSecond() > want*(1+1e-12) {
				t.Errorf("%v.Scale(%v) = %v/s, more than %v/s", tt.r, tt.f, got.PerSecond(), want)
			}
		}
	}
}
