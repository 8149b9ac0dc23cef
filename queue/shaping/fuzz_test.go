package shaping

import (
	"strings"
	"testing"
)

// naiveMatch is Match without the prefilter: every pattern is run.
func (s *Shaper) naiveMatch(code int, enhanced, text string) *Rule {
	if code == 0 || enhanced == "" {
		c, e, rest := leadingCodes(text)
		if code == 0 && c != 0 {
			code = c
		}
		if enhanced == "" && e != "" {
			enhanced = e
		}
		if c != 0 || e != "" {
			text = rest
		}
	}
	for i := range s.rules {
		c := &s.rules[i]
		if c.matchesCodes(code, enhanced) && (c.re == nil || c.re.MatchString(text)) {
			if c.rule.Action == ActionNone {
				return nil
			}
			return c.rule
		}
	}
	return nil
}

// FuzzMatch checks that Match never panics and that its prefilter never
// changes the result, on the sample rules and on operator rules made to
// stress it (Unicode case folding, alternations, anchors).
func FuzzMatch(f *testing.F) {
	for _, r := range replies {
		f.Add(r.code, r.enhanced, r.text)
	}
	f.Add(421, "", "TOO MANY CONNECTIONS")
	f.Add(421, "", "too many \u212Aonnections") // Kelvin sign folds to k
	f.Add(0, "", "421-4.7.28 x")
	f.Add(451, "4.7.1", "ſtop") // long s folds to s
	cfg := sampleConfig()
	cfg.Rules = []Rule{
		{Name: "kelvin", Pattern: `\bkonnections\b`, Action: ActionSlow, Factor: 0.5, Duration: 1},
		{Name: "stop", Pattern: `^stop|halt$`, Action: ActionSuspend, Duration: 1},
		{Name: "alt", Pattern: `(abc|xyz)+[0-9]{2,}`, Action: ActionNone},
		{Name: "unicode", Pattern: `größe`, Action: ActionBounce},
	}
	s, err := New(cfg)
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, code int, enhanced, text string) {
		got, want := s.Match(code, enhanced, text), s.naiveMatch(code, enhanced, text)
		if got != want {
			t.Errorf("Match(%d, %q, %q) = %q, without prefilter %q", code, enhanced, text, ruleName(got), ruleName(want))
		}
	})
}

func FuzzParseRate(f *testing.F) {
	for _, s := range []string{"100/s", "3000/m", "20/10s", "unlimited", "1/1h30m", "9/d", "x/y"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		r, err := ParseRate(s)
		if err != nil {
			return
		}
		back, err := ParseRate(r.String())
		if err != nil || back.PerSecond() != r.PerSecond() {
			t.Errorf("%q -> %v -> %v, %v", s, r, back, err)
		}
		if !r.Unlimited() && r.Interval() <= 0 && !strings.Contains(s, "ns") {
			t.Errorf("%q: interval %v", s, r.Interval())
		}
	})
}
