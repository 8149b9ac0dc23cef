package shaping

import (
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"
)

// Rate is a number of events per period: "100/s", "3000/m", "50000/h",
// "20/10s". The zero Rate is unlimited.
type Rate struct {
	Count int           // events per Per; 0 = unlimited
	Per   time.Duration // period; 0 = unlimited
}

// Unlimited reports whether r sets no limit.
func (r Rate) Unlimited() bool { return r.Count <= 0 || r.Per <= 0 }

// PerSecond returns the rate in events per second, 0 when unlimited.
func (r Rate) PerSecond() float64 {
	if r.Unlimited() {
		return 0
	}
	return float64(r.Count) / r.Per.Seconds()
}

// Interval returns the least time between two events at this rate,
// rounded up to the nanosecond (so the rate is never exceeded), 0 when
// unlimited.
func (r Rate) Interval() time.Duration {
	if r.Unlimited() {
		return 0
	}
	n := time.Duration(r.Count)
	iv := r.Per / n
	if r.Per%n != 0 {
		iv++
	}
	return iv
}

// Scale returns r multiplied by f (0 < f <= 1): the count when the product
// is a whole number ("100/s" × 0.5 = "50/s"), the period otherwise
// ("100/s" × 0.3 = "100/3.333333334s", period rounded up). An unlimited
// rate stays unlimited.
func (r Rate) Scale(f float64) Rate {
	if r.Unlimited() || f >= 1 || f <= 0 {
		return r
	}
	c := float64(r.Count) * f
	if rc := math.Round(c); rc >= 1 && math.Abs(c-rc) < 1e-9*c {
		return Rate{Count: int(rc), Per: r.Per}
	}
	per := math.Ceil(float64(r.Per) / f)
	if per >= math.MaxInt64 {
		return Rate{Count: r.Count, Per: math.MaxInt64}
	}
	return Rate{Count: r.Count, Per: time.Duration(per)}
}

// String formats r as ParseRate reads it: "100/s", "20/10s", "unlimited".
func (r Rate) String() string {
	if r.Unlimited() {
		return "unlimited"
	}
	var unit string
	switch r.Per {
	case time.Second:
		unit = "s"
	case time.Minute:
		unit = "m"
	case time.Hour:
		unit = "h"
	case 24 * time.Hour:
		unit = "d"
	default:
		unit = r.Per.String()
		// "2m0s" -> "2m", "1h30m0s" -> "1h30m".
		if strings.HasSuffix(unit, "m0s") {
			unit = strings.TrimSuffix(unit, "0s")
		}
		if strings.HasSuffix(unit, "h0m") {
			unit = strings.TrimSuffix(unit, "0m")
		}
	}
	return strconv.Itoa(r.Count) + "/" + unit
}

// ParseRate reads "COUNT/PERIOD": COUNT a positive integer, PERIOD one of
// s, sec, second, m, min, minute, h, hour, d, day, or a Go duration such
// as "10s" or "1m30s". "unlimited" and "0" give the zero (unlimited) Rate.
func ParseRate(s string) (Rate, error) {
	t := strings.TrimSpace(s)
	if t == "unlimited" || t == "0" {
		return Rate{}, nil
	}
	num, per, ok := strings.Cut(t, "/")
	if !ok {
		return Rate{}, fmt.Errorf("rate %q: want COUNT/PERIOD such as 100/s, 3000/m, 20/10s, or unlimited", s)
	}
	n, err := strconv.Atoi(strings.TrimSpace(num))
	if err != nil || n < 1 {
		return Rate{}, fmt.Errorf("rate %q: count %q is not a positive integer", s, strings.TrimSpace(num))
	}
	per = strings.TrimSpace(per)
	var d time.Duration
	switch per {
	case "s", "sec", "second":
		d = time.Second
	case "m", "min", "minute":
		d = time.Minute
	case "h", "hr", "hour":
		d = time.Hour
	case "d", "day":
		d = 24 * time.Hour
	default:
		d, err = time.ParseDuration(per)
		if err != nil || d <= 0 {
			return Rate{}, fmt.Errorf("rate %q: period %q is not s, m, h, d or a positive duration", s, per)
		}
	}
	return Rate{Count: n, Per: d}, nil
}
