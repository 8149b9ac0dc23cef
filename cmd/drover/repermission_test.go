package main

// The re-permission commands against the real admin API handler
// (httpapi) over a real policy on a controlled clock, run in-process.

import (
	"encoding/json"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"drover/httpapi"
	"drover/policy"
	"drover/testkit"
	"drover/testkit/testpolicy"
)

// newRepermissionServer is a server's admin API whose sender shop
// requires consent for its list news, on a controlled clock.
func newRepermissionServer(t *testing.T) (string, *policy.Policy, *testkit.Clock) {
	t.Helper()
	clock := testkit.NewClock(hygieneTestNow)
	p := testpolicy.New(t, policy.Config{Now: clock.Now,
		Senders: map[string]policy.SenderRules{"shop": {ConsentRequired: []string{"news"}}}})
	srv := httptest.NewServer(httpapi.Handler(httpapi.Config{Gatherer: prometheus.NewRegistry(), AdminToken: "t0ken", Policy: p, Now: clock.Now}))
	t.Cleanup(srv.Close)
	return srv.URL, p, clock
}

// An admin starts a campaign as the issue spells it (a second is
// refused), follows who re-confirmed with consent ls and repermission
// status, and runs the deadline: the address that did not re-confirm
// lapses and is refused, the one that did is not.
func TestRepermissionCommands(t *testing.T) {
	srv, p, clock := newRepermissionServer(t)
	cons := newConsentCmd
	textFile := filepath.Join(t.TempDir(), "consent.txt")
	os.WriteFile(textFile, []byte("Yes, send me the Spring News.\n"), 0o600)
	target := []string{"--sender", "shop", "--list", "news"}
	args := func(extra ...string) []string { return append(append([]string{}, extra...), target...) }
	for _, a := range []string{"ann@example.com", "bob@example.com", "cat@example.com"} {
		mustRun(t, cons, srv, args("record", a, "--text-file", textFile, "--time", "2026-11-30T09:00:00Z")...)
	}

	mustFail(t, cons, srv, "--deadline is required", args("repermission")...)
	mustFail(t, cons, srv, "--list is required", "repermission", "--sender", "shop", "--deadline", "30d")
	out := mustRun(t, cons, srv, args("repermission", "--deadline", "30d")...)
	wantLines(t, "start", out, "started: re-permission of list news of sender shop: 3 confirmed consent(s) to confirm again by 2026-12-31T10:00:00Z")
	mustFail(t, cons, srv, "refused: ", args("repermission", "start", "--deadline", "7d")...)
	mustFail(t, cons, srv, "a re-permission campaign of the list is running", args("repermission", "start", "--deadline", "7d")...)

	clock.Advance(24 * time.Hour)
	mustRun(t, cons, srv, args("record", "bob@example.com", "--text-file", textFile, "--source", "opt-in link",
		"--time", clock.Now().Format(time.RFC3339))...)
	mustRun(t, cons, srv, args("record", "cat@example.com", "--status", "pending", "--text-file", textFile,
		"--time", clock.Now().Format(time.RFC3339))...)
	if r := rows(mustRun(t, cons, srv, args("ls", "--status", "pending")...)); len(r) != 2 ||
		!strings.HasPrefix(r[0], "ann@example.com") || !strings.Contains(r[0], "pending (re-permission)") ||
		!strings.HasPrefix(r[1], "cat@example.com") || strings.Contains(r[1], "re-permission") {
		t.Errorf("ls --status pending while it runs: %q", r)
	}
	if r := rows(mustRun(t, cons, srv, args("ls", "--status", "confirmed")...)); len(r) != 1 || !strings.HasPrefix(r[0], "bob@example.com") {
		t.Errorf("ls --status confirmed while it runs: %q", r)
	}
	out = mustRun(t, cons, srv, args("ls", "--status", "pending", "--json")...)
	if first, _, _ := strings.Cut(out, "\n"); !strings.Contains(first, `"repermission":"pending"`) || !strings.Contains(first, `"status":"pending"`) {
		t.Errorf("ls --json while it runs: %s", out)
	}
	if !mailable(t, p, "ann@example.com") {
		t.Error("mail to a confirmed address stops while the campaign runs")
	}
	out = mustRun(t, cons, srv, args("repermission", "status")...)
	if r := rows(out); len(r) != 1 || !strings.Contains(r[0], "running") || strings.Join(strings.Fields(r[0])[5:], " ") != "- 3 1 1 0" {
		t.Errorf("status while it runs:\n%s", out)
	}
	wantLines(t, "run early", mustRun(t, cons, srv, "repermission", "run"), "no re-permission campaign is past its deadline")

	clock.Advance(30 * 24 * time.Hour)
	out = mustRun(t, cons, srv, "repermission", "run")
	wantLines(t, "run", out, "ended: re-permission of list news of sender shop: 1 re-confirmed, 1 lapsed (of 3 confirmed at the start)")
	if mailable(t, p, "ann@example.com") || !mailable(t, p, "bob@example.com") || mailable(t, p, "cat@example.com") {
		t.Error("after the deadline, the check is not: ann refused, bob accepted, cat refused")
	}
	if r := rows(mustRun(t, cons, srv, args("ls", "--status", "lapsed")...)); len(r) != 1 || !strings.HasPrefix(r[0], "ann@example.com") ||
		!strings.Contains(r[0], "repermission:2026-12-01T10:00:00Z") {
		t.Errorf("ls --status lapsed after the deadline: %q", r)
	}
	if r := rows(mustRun(t, cons, srv, args("ls", "--status", "pending")...)); len(r) != 1 || !strings.HasPrefix(r[0], "cat@example.com") {
		t.Errorf("ls --status pending after the deadline: %q", r)
	}
	out = mustRun(t, cons, srv, "repermission", "show", "--sender", "shop", "--json")
	var resp struct{ Repermissions []policy.Repermission }
	if err := json.Unmarshal([]byte(out), &resp); err != nil || len(resp.Repermissions) != 1 || resp.Repermissions[0].State != policy.RepermissionEnded ||
		resp.Repermissions[0].Lapsed != 1 || resp.Repermissions[0].Reconfirmed != 1 || !resp.Repermissions[0].Ended.Equal(clock.Now()) {
		t.Errorf("show --json after the deadline: %s %v", out, err)
	}
	wantLines(t, "status of another list", mustRun(t, cons, srv, "repermission", "status", "--sender", "shop", "--list", "offers"),
		"no re-permission campaign of list offers of sender shop")
	mustFail(t, cons, srv, "--sender is required", "repermission", "status")
	mustFail(t, cons, srv, "unknown command", "repermission", "begin")
	out = mustRun(t, cons, srv, args("repermission", "start", "--deadline", "2027-02-01T00:00:00Z", "--json")...)
	var r policy.Repermission
	if err := json.Unmarshal([]byte(out), &r); err != nil || r.State != policy.RepermissionRunning || r.Confirmed != 1 {
		t.Errorf("a second campaign after the first ended: %s %v", out, err)
	}
}
