package policy

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"drover/testkit"
)

// clockPolicy is a policy on a controlled clock whose sender shop
// requires consent for its list news.
func clockPolicy(t *testing.T) (*Policy, *testkit.Clock) {
	t.Helper()
	clock := testkit.NewClock(t0)
	p, _ := newPolicy(t, func(c *Config) {
		c.Now = clock.Now
		c.Senders = map[string]SenderRules{"shop": {ConsentRequired: []string{"news"}}}
	})
	return p, clock
}

// listed is "address status repermission" for each latest record of
// shop's news that ListConsent gives for status.
func listed(t *testing.T, p *Policy, status ConsentStatus) []string {
	t.Helper()
	cs, next, err := p.ListConsent("shop", "news", status, "", 100)
	if err != nil || next != "" {
		t.Fatalf("ListConsent %q: %v, next %q", status, err, next)
	}
	var out []string
	for _, c := range cs {
		out = append(out, strings.TrimSpace(fmt.Sprintf("%s %s %s", c.Address, c.Status, c.Repermission)))
	}
	return out
}

func wantListed(t *testing.T, p *Policy, status ConsentStatus, want ...string) {
	t.Helper()
	if got := listed(t, p, status); !slices.Equal(got, want) {
		t.Errorf("ListConsent %q:\n got %q\nwant %q", status, got, want)
	}
}

// A campaign: three addresses confirmed before it; ann does nothing,
// bob re-confirms through an opt-in link, cat signs up again for a
// double opt-in she does not confirm, and eve's old consent is imported
// during it. Mail keeps going to the confirmed while it runs; the
// lists show who re-confirmed; at the deadline ann and eve lapse and
// are refused, bob is accepted, cat stays pending.
func TestRepermission(t *testing.T) {
	p, clock := clockPolicy(t)
	for _, a := range []string{"ann@example.com", "bob@example.com", "cat@example.com"} {
		mustRecord(t, p, signup(a))
	}
	clock.Advance(time.Hour)
	start := clock.Now()
	r, err := p.StartRepermission(RepermissionStart{Sender: "shop", List: "news", Within: 30 * 24 * time.Hour})
	if err != nil || r.State != RepermissionRunning || !r.Started.Equal(start) || !r.Deadline.Equal(start.Add(30*24*time.Hour)) ||
		r.Confirmed != 3 || r.Pending != 3 {
		t.Fatalf("start: %+v %v", r, err)
	}
	if _, err := p.StartRepermission(RepermissionStart{Sender: "shop", List: "news", Within: time.Hour}); !errors.Is(err, ErrRepermissionRunning) {
		t.Errorf("a second campaign while one runs: %v", err)
	}

	clock.Advance(24 * time.Hour)
	fresh := signup("bob@example.com")
	fresh.Time, fresh.Source, fresh.IP = clock.Now(), "opt-in link", "198.51.100.9"
	mustRecord(t, p, fresh)
	mustRecord(t, p, ConsentInput{Sender: "shop", List: "news", Address: "cat@example.com", Status: ConsentPending,
		Method: DoubleOptIn, Time: clock.Now(), Source: "https://shop.example/signup", Text: signupText})
	old := signup("eve@example.com")
	old.Method = MethodImport
	mustRecord(t, p, old) // recorded now, given before the start

	for addr, want := range map[string]bool{"ann@example.com": true, "bob@example.com": true, "cat@example.com": false, "eve@example.com": true} {
		if d := mustCheck(t, p, "shop", "marketing", "news", addr); d.Suppressed == want {
			t.Errorf("while it runs, %s: refused %v, want %v", addr, d.Suppressed, !want)
		}
	}
	wantListed(t, p, ConsentConfirmed, "bob@example.com confirmed reconfirmed")
	wantListed(t, p, ConsentPending, "ann@example.com pending pending", "cat@example.com pending", "eve@example.com pending pending")
	wantListed(t, p, "", "ann@example.com pending pending", "bob@example.com confirmed reconfirmed", "cat@example.com pending",
		"eve@example.com pending pending")
	if cs, next, _ := p.ListConsent("shop", "news", ConsentPending, "", 1); len(cs) != 1 || next != "cat@example.com" {
		t.Errorf("a page of one pending: %+v, next %q", cs, next)
	}
	rs, err := p.Repermissions("shop", "news")
	if err != nil || len(rs) != 1 || rs[0].State != RepermissionRunning || rs[0].Confirmed != 3 || rs[0].Reconfirmed != 1 || rs[0].Pending != 2 {
		t.Errorf("while it runs: %+v %v", rs, err)
	}
	if ended, err := p.RunRepermissionDeadlines(); err != nil || len(ended) != 0 {
		t.Errorf("a run before the deadline ended %+v %v", ended, err)
	}

	clock.Set(r.Deadline)
	ended, err := p.RunRepermissionDeadlines()
	if err != nil || len(ended) != 1 || ended[0].State != RepermissionEnded || !ended[0].Ended.Equal(r.Deadline) ||
		ended[0].Reconfirmed != 1 || ended[0].Lapsed != 2 || ended[0].Confirmed != 3 {
		t.Fatalf("the deadline run: %+v %v", ended, err)
	}
	for addr, want := range map[string]bool{"ann@example.com": false, "bob@example.com": true, "cat@example.com": false, "eve@example.com": false} {
		if d := mustCheck(t, p, "shop", "marketing", "news", addr); d.Suppressed == want {
			t.Errorf("after the deadline, %s: refused %v, want %v", addr, d.Suppressed, !want)
		}
	}
	if d := mustCheck(t, p, "shop", "marketing", "news", "ann@example.com"); d.Entry.Reason != NoConsent || d.Consent != ConsentLapsed {
		t.Errorf("ann's refusal: %+v", d)
	}
	if d := mustCheck(t, p, "shop", "transactional", "news", "ann@example.com"); d.Suppressed {
		t.Errorf("a lapsed consent refuses a receipt: %+v", d)
	}
	hs := history(t, p, "ann@example.com")
	if len(hs) != 2 || hs[1].Status != ConsentLapsed || hs[1].Ended == nil || hs[1].Ended.Source != "repermission:2026-12-01T11:00:00Z" ||
		!hs[1].Ended.Time.Equal(r.Deadline) || hs[1].Proof.ConsentAct != hs[0].Proof.ConsentAct || hs[1].Method != SingleOptIn {
		t.Errorf("ann's history: %+v", hs)
	}
	wantListed(t, p, ConsentConfirmed, "bob@example.com confirmed")
	wantListed(t, p, ConsentPending, "cat@example.com pending")
	wantListed(t, p, ConsentLapsed, "ann@example.com lapsed lapsed", "eve@example.com lapsed lapsed")

	rs, err = p.Repermissions("shop", Any)
	if err != nil || len(rs) != 1 || rs[0] != ended[0] {
		t.Errorf("ended: %+v %v, want %+v", rs, err, ended[0])
	}
	if again, err := p.RunRepermissionDeadlines(); err != nil || len(again) != 0 {
		t.Errorf("a second run ended %+v %v", again, err)
	}
	if n := len(history(t, p, "ann@example.com")); n != 2 {
		t.Errorf("ann has %d records after a second run", n)
	}
	clock.Advance(time.Minute)
	if r, err := p.StartRepermission(RepermissionStart{Sender: "shop", List: "news", Deadline: clock.Now().Add(time.Hour)}); err != nil || r.Confirmed != 1 {
		t.Errorf("a campaign after the first ended: %+v %v", r, err)
	}
	if rs, _ := p.Repermissions("shop", "news"); len(rs) != 2 || rs[0].State != RepermissionEnded || rs[1].State != RepermissionRunning {
		t.Errorf("two campaigns: %+v", rs)
	}
}

// A campaign's list is its own: other lists and senders neither show
// it nor lapse; bad starts are refused.
func TestRepermissionScope(t *testing.T) {
	p, clock := clockPolicy(t)
	mustRecord(t, p, signup("ann@example.com"))
	offers := signup("ann@example.com")
	offers.List = "offers"
	mustRecord(t, p, offers)
	noList := signup("ann@example.com")
	noList.List = ""
	mustRecord(t, p, noList)
	for _, c := range []struct {
		in   RepermissionStart
		want string
	}{
		{RepermissionStart{Sender: "shop", List: "news"}, "needs its deadline"},
		{RepermissionStart{Sender: "shop", List: "news", Deadline: t0}, "not after now"},
		{RepermissionStart{Sender: "shop", List: "news", Within: -time.Hour}, "not after now"},
		{RepermissionStart{Sender: "shop", List: "news", Within: 400 * 24 * time.Hour}, "more than a year"},
		{RepermissionStart{Sender: "shop", List: "news", Within: time.Hour, Deadline: t0.Add(time.Hour)}, "not both"},
		{RepermissionStart{Sender: "shop", List: "a b", Within: time.Hour}, "is not a list name"},
		{RepermissionStart{Sender: Any, List: "news", Within: time.Hour}, "is not a sender's name"},
	} {
		var ie *InvalidConsentError
		if _, err := p.StartRepermission(c.in); !errors.As(err, &ie) || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%+v: %v, want %q", c.in, err, c.want)
		}
	}
	clock.Advance(time.Minute)
	if _, err := p.StartRepermission(RepermissionStart{Sender: "shop", List: "", Within: time.Hour}); err != nil {
		t.Fatal(err)
	}
	if cs, _, _ := p.ListConsent("shop", "news", ConsentConfirmed, "", 10); len(cs) != 1 || cs[0].Repermission != "" {
		t.Errorf("another list's campaign shows on news: %+v", cs)
	}
	if cs, _, _ := p.ListConsent("shop", "", ConsentPending, "", 10); len(cs) != 1 || cs[0].Repermission != RepermissionPending {
		t.Errorf("the mail that names no list: %+v", cs)
	}
	clock.Advance(time.Hour)
	if ended, err := p.RunRepermissionDeadlines(); err != nil || len(ended) != 1 || ended[0].Lapsed != 1 {
		t.Fatalf("deadline: %+v %v", ended, err)
	}
	for _, l := range []string{"news", "offers"} {
		if hs, _ := p.ConsentHistory("ann@example.com", "shop", l); len(hs) != 1 || hs[0].Status != ConsentConfirmed {
			t.Errorf("list %s: %+v", l, hs)
		}
	}
	if rs, err := p.Repermissions("shop", Any); err != nil || len(rs) != 1 || rs[0].List != "" {
		t.Errorf("the sender's campaigns: %+v %v", rs, err)
	}
	if rs, err := p.Repermissions("shop", "news"); err != nil || len(rs) != 0 {
		t.Errorf("news's campaigns: %+v %v", rs, err)
	}
}

// A list larger than a batch lapses whole; a re-confirmation in the
// middle of it is kept.
func TestRepermissionBatches(t *testing.T) {
	p, clock := clockPolicy(t)
	var csv strings.Builder
	csv.WriteString("address,status,method,time,source,text\n")
	n := 2*lapseBatch + 17
	for i := range n {
		fmt.Fprintf(&csv, "a%04d@example.com,confirmed,import,2026-11-01T10:00:00Z,old.csv,Send me the news.\n", i)
	}
	res, err := p.ImportConsent(strings.NewReader(csv.String()), ConsentImportOptions{Format: CSV, Sender: "shop", List: "news"})
	if err != nil || res.Added != n {
		t.Fatalf("import: %+v %v", res, err)
	}
	r, err := p.StartRepermission(RepermissionStart{Sender: "shop", List: "news", Within: 24 * time.Hour})
	if err != nil || r.Confirmed != n {
		t.Fatalf("start: %+v %v", r, err)
	}
	clock.Advance(time.Hour)
	again := signup("a1500@example.com")
	again.Time = clock.Now()
	mustRecord(t, p, again)
	clock.Advance(24 * time.Hour)
	ended, err := p.RunRepermissionDeadlines()
	if err != nil || len(ended) != 1 || ended[0].Lapsed != n-1 || ended[0].Reconfirmed != 1 {
		t.Fatalf("deadline: %+v %v", ended, err)
	}
	if cs, _, _ := p.ListConsent("shop", "news", ConsentConfirmed, "", 10); len(cs) != 1 || cs[0].Address != "a1500@example.com" {
		t.Errorf("confirmed after the deadline: %+v", cs)
	}
}

// A campaign whose deadline passed while the node was down ends when
// the policy starts, without a call.
func TestRepermissionDeadlineAtStart(t *testing.T) {
	p, clock := clockPolicy(t)
	mustRecord(t, p, signup("ann@example.com"))
	r, err := p.StartRepermission(RepermissionStart{Sender: "shop", List: "news", Within: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	clock.Set(r.Deadline.Add(time.Minute))
	p2, err := New(Config{Store: p.cfg.Store, Now: clock.Now}) // the node, started again
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(p2.Close)
	p2.bg.Wait() // the run it started
	rs, err := p2.Repermissions("shop", "news")
	if err != nil || len(rs) != 1 || rs[0].State != RepermissionEnded || rs[0].Lapsed != 1 {
		t.Errorf("after a restart past the deadline: %+v %v", rs, err)
	}
}
