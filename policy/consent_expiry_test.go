package policy

import (
	"testing"
	"time"

	"drover/testkit"
)

// A sign-up never confirmed is deleted after PendingTTL, one confirmed is
// kept; the history of a withdrawn consent is deleted after
// ProofRetention, a live one never.
func TestExpireConsents(t *testing.T) {
	clock := testkit.NewClock(t0)
	p, _ := newPolicy(t, func(c *Config) {
		c.Now, c.PendingTTL, c.ProofRetention = clock.Now, 7*24*time.Hour, 30*24*time.Hour
	})
	sign := func(addr string, status ConsentStatus) {
		t.Helper()
		in := ConsentInput{Sender: "shop", List: "news", Address: addr, Status: status, Time: clock.Now(), Source: "form", Text: "Yes."}
		if status == ConsentPending {
			in.Method = DoubleOptIn
		}
		if _, _, err := p.RecordConsent(in); err != nil {
			t.Fatal(err)
		}
	}
	sign("pending@example.com", ConsentPending)
	sign("confirmed@example.com", ConsentPending)
	sign("withdrawn@example.com", ConsentConfirmed)
	sign("kept@example.com", ConsentConfirmed)
	if _, _, err := p.RecordConsent(ConsentInput{Sender: "shop", List: "news", Address: "confirmed@example.com", Status: ConsentConfirmed,
		Method: DoubleOptIn, Confirmation: &ConsentAct{Time: clock.Now(), Source: "page"}}); err != nil {
		t.Fatal(err)
	}
	if _, _, err := p.WithdrawConsent("shop", "news", "withdrawn@example.com", ConsentAct{Time: clock.Now(), Source: "manage page"}); err != nil {
		t.Fatal(err)
	}
	history := func(addr string) int {
		h, _ := p.ConsentHistory(addr, "shop", "news")
		return len(h)
	}
	clock.Advance(6 * 24 * time.Hour)
	if n, m, err := p.ExpireConsents(); err != nil || n+m != 0 {
		t.Fatalf("before the TTL: %d %d %v", n, m, err)
	}
	clock.Advance(2 * 24 * time.Hour)
	if n, m, err := p.ExpireConsents(); err != nil || n != 1 || m != 0 {
		t.Fatalf("after the TTL: %d %d %v", n, m, err)
	}
	if history("pending@example.com") != 0 || history("confirmed@example.com") != 2 {
		t.Errorf("after the TTL: pending %d, confirmed %d", history("pending@example.com"), history("confirmed@example.com"))
	}
	clock.Advance(30 * 24 * time.Hour)
	if n, m, err := p.ExpireConsents(); err != nil || n != 0 || m != 1 {
		t.Fatalf("after the retention: %d %d %v", n, m, err)
	}
	if history("withdrawn@example.com") != 0 || history("kept@example.com") != 1 || history("confirmed@example.com") != 2 {
		t.Errorf("after the retention: withdrawn %d, kept %d", history("withdrawn@example.com"), history("kept@example.com"))
	}
}
