package main

import (
	"encoding/csv"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"drover/policy"
)

// observeCampaigns gives shop's policy two campaigns: spring (97
// delivered, a hard and two soft bounces: 3 %, flagged) and fall (five
// messages to quiet@, who never engages, and a complaint).
func observeCampaigns(p *policy.Policy) {
	out := func(kind, addr, campaign, class string) {
		p.Observe(policy.Outcome{Kind: kind, Time: hygieneTestNow, Sender: "shop", Address: addr, Stream: "marketing",
			Campaign: campaign, Class: class, Reason: "other"})
	}
	for i := 0; i < 97; i++ {
		out(policy.KindDelivered, fmt.Sprintf("r%d@example.com", i), "spring", "")
	}
	out(policy.KindBounced, "b1@example.com", "spring", "hard")
	out(policy.KindBounced, "b2@example.com", "spring", "soft")
	out(policy.KindBounced, "b3@example.com", "spring", "soft")
	for i := 0; i < 5; i++ {
		out(policy.KindDelivered, "quiet@example.com", "fall", "")
	}
	out(policy.KindComplained, "r1@example.com", "fall", "")
	p.Sync()
}

// The report shows each campaign's outcomes and bounce rate, flags the
// one above 2 %, counts the non-engagers, and --export writes the
// addresses to remove.
func TestHygieneReportCommand(t *testing.T) {
	srv, p := newHygieneServer(t)
	observeCampaigns(p)
	hyg := newHygieneCmd

	out := mustRun(t, hyg, srv, "report", "--sender", "shop", "--since", "30d")
	lines := strings.Split(out, "\n")
	if !strings.Contains(lines[0], "CAMPAIGN") || !strings.Contains(lines[0], "BOUNCE RATE") || !strings.Contains(lines[0], "UNSUBSCRIBES") {
		t.Errorf("report header:\n%s", out)
	}
	field := func(name string) []string {
		for _, l := range lines {
			if f := strings.Fields(l); len(f) > 0 && f[0] == name {
				return f
			}
		}
		t.Fatalf("report has no row %s:\n%s", name, out)
		return nil
	}
	if f := strings.Join(field("spring"), " "); f != "spring 97 1 2 0 0 0 3.00 % FLAG" {
		t.Errorf("spring row %q:\n%s", f, out)
	}
	if f := strings.Join(field("fall"), " "); f != "fall 5 0 0 0 1 0 0.00 %" {
		t.Errorf("fall row %q:\n%s", f, out)
	}
	if f := field("(total)"); f[1] != "102" {
		t.Errorf("total row %q", f)
	}
	wantLines(t, "report", out, "non-engagers of sender shop (of 98 recipients with a record)")
	if f := strings.Join(field("5"), " "); f != "5 messages 1" {
		t.Errorf("non-engagers for 5 %q:\n%s", f, out)
	}
	if f := strings.Join(field("30"), " "); f != "30 messages 0" {
		t.Errorf("non-engagers for 30 %q:\n%s", f, out)
	}

	out = mustRun(t, hyg, srv, "report", "--sender", "shop", "--campaign", "spring", "--json")
	var rep policy.Report
	if err := json.Unmarshal([]byte(out), &rep); err != nil || len(rep.Campaigns) != 1 || !rep.Campaigns[0].Flagged || rep.Total.HardBounces != 1 {
		t.Errorf("report --json: %s %v", out, err)
	}

	file := filepath.Join(t.TempDir(), "remove.csv")
	_, errOut, err := adminRun(hyg, srv, "", "report", "--sender", "shop", "--export", file, "--inactive", "5")
	data, _ := os.ReadFile(file)
	recs, cerr := csv.NewReader(strings.NewReader(string(data))).ReadAll()
	if err != nil || cerr != nil || len(recs) != 3 || strings.Join(recs[0], ",") != "address,reason,scope,list" || !strings.Contains(errOut, "wrote "+file) {
		t.Fatalf("report --export: %v %v %s\n%s", err, cerr, errOut, data)
	}
	got := map[string]string{}
	for _, r := range recs[1:] {
		got[r[0]] = r[1]
	}
	if got["quiet@example.com"] != "inactive" || got["r1@example.com"] != "complaint" {
		t.Errorf("to remove: %v", got)
	}

	mustFail(t, hyg, srv, "--sender is required", "report")
	mustFail(t, hyg, srv, "since=", "report", "--sender", "shop", "--since", "last week")
	mustFail(t, hyg, srv, "--inactive", "report", "--sender", "shop", "--inactive", "-1")
}

// Engagement sent from a file (or stdin) lifts a sunset; a malformed
// line applies none, naming its line.
func TestEventsSendCommand(t *testing.T) {
	srv, p := newHygieneServer(t)
	observeCampaigns(p) // quiet@ is sunset: 5 messages without engagement
	sup := newSuppressionCmd
	wantLines(t, "sunset", mustRun(t, sup, srv, "show", "quiet@example.com"), "inactive", "sunset:5")

	file := filepath.Join(t.TempDir(), "events.jsonl")
	os.WriteFile(file, []byte(`{"event":"opened","time":"2026-12-01T11:00:00Z","sender":"shop","rcpt":"quiet@example.com","campaign":"fall"}`+"\n"+
		`{"event":"clicked","sender":"shop","rcpt":"r5@example.com"}`+"\n"), 0o600)

	_, _, err := adminRun(newEventsCmd, srv, `{"event":"opened","sender":"shop","rcpt":"quiet@example.com"}`+"\n"+`{"event":"read","sender":"shop","rcpt":"quiet@example.com"}`, "send", "-")
	if err == nil || !strings.Contains(err.Error(), "line 2") || !strings.Contains(err.Error(), "none applied") {
		t.Errorf("events send - with a bad line: %v", err)
	}
	wantLines(t, "after a refused send", mustRun(t, sup, srv, "show", "quiet@example.com"), "inactive")

	out := mustRun(t, newEventsCmd, srv, "send", file)
	wantLines(t, "events send", out, "2 events accepted")
	mustFail(t, sup, srv, "quiet@example.com is not suppressed", "show", "quiet@example.com")

	out, _, err = adminRun(newEventsCmd, srv, `{"event":"opened","sender":"shop","rcpt":"r6@example.com"}`, "send", "-", "--json")
	if err != nil || strings.TrimSpace(out) != `{"accepted":1}` {
		t.Errorf("events send -: %v %s", err, out)
	}
	mustFail(t, newEventsCmd, srv, "no such file", "send", filepath.Join(t.TempDir(), "missing.jsonl"))
}
