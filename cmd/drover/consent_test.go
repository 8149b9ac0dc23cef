package main

// The consent commands against the real admin API handler (httpapi)
// over a real policy on a fresh Pebble database, run in-process.

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
	"drover/testkit/testpolicy"
)

// newConsentServer is a server's admin API whose sender shop requires
// consent for its list news; gone@example.com bounced.
func newConsentServer(t *testing.T) (string, *policy.Policy) {
	t.Helper()
	now := func() time.Time { return hygieneTestNow }
	p := testpolicy.New(t, policy.Config{Now: now,
		Senders: map[string]policy.SenderRules{"shop": {ConsentRequired: []string{"news"}}}})
	if _, err := p.Add([]policy.Entry{{Address: "gone@example.com", Reason: policy.ConfirmedBounce}}); err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(httpapi.Handler(httpapi.Config{Gatherer: prometheus.NewRegistry(), AdminToken: "t0ken", Policy: p, Now: now}))
	t.Cleanup(srv.Close)
	return srv.URL, p
}

// mailable reports whether shop's marketing mail to its list news may go
// to addr.
func mailable(t *testing.T, p *policy.Policy, addr string) bool {
	t.Helper()
	d, err := p.Check("shop", "marketing", "news", addr)
	if err != nil {
		t.Fatal(err)
	}
	return !d.Suppressed
}

// An admin records consent with its proof, confirms a double opt-in,
// shows a history, withdraws, and lists a list's records.
func TestConsentCommands(t *testing.T) {
	srv, p := newConsentServer(t)
	cons := newConsentCmd
	dir := t.TempDir()
	textFile := filepath.Join(dir, "consent.txt")
	os.WriteFile(textFile, []byte("Yes, send me the Spring News.\nI can unsubscribe at any time.\n"), 0o600)
	at := "2026-11-30T09:00:00Z"
	target := []string{"--sender", "shop", "--list", "news"}
	args := func(extra ...string) []string { return append(append([]string{}, extra...), target...) }

	mustFail(t, cons, srv, "--text-file is required", args("record", "ann@example.com")...)
	mustFail(t, cons, srv, "--list is required", "record", "ann@example.com", "--sender", "shop", "--text-file", textFile)
	mustFail(t, cons, srv, "--sender is required", "ls", "--list", "news")
	if mailable(t, p, "ann@example.com") {
		t.Fatal("mail goes without consent")
	}

	record := args("record", "Ann@Example.com", "--text-file", textFile, "--time", at, "--ip", "192.0.2.7",
		"--user-agent", "Mozilla/5.0", "--source", "https://shop.example/signup", "--purpose", "newsletter", "--purpose", "offers")
	out := mustRun(t, cons, srv, record...)
	wantLines(t, "record", out, "recorded: record 1 of ann@example.com for list news of sender shop: confirmed (api), text sha256 "+
		policy.TextHash("Yes, send me the Spring News.\nI can unsubscribe at any time."))
	out = mustRun(t, cons, srv, record...)
	wantLines(t, "record again", out, "already recorded, unchanged: record 1")
	if !mailable(t, p, "ann@example.com") {
		t.Error("a confirmed consent does not let mail through")
	}

	// A double opt-in: the sign-up, then its confirmation.
	out = mustRun(t, cons, srv, args("record", "bob@example.com", "--status", "pending", "--text-file", textFile, "--time", at,
		"--source", "https://shop.example/signup")...)
	wantLines(t, "pending", out, "record 1 of bob@example.com for list news of sender shop: pending (double-opt-in)")
	if mailable(t, p, "bob@example.com") {
		t.Error("a pending sign-up lets mail through")
	}
	out = mustRun(t, cons, srv, args("record", "bob@example.com", "--method", "double-opt-in", "--ip", "198.51.100.4", "--json")...)
	var rec struct {
		Consent  policy.Consent
		Recorded bool
	}
	if err := json.Unmarshal([]byte(out), &rec); err != nil || !rec.Recorded || rec.Consent.Seq != 2 || rec.Consent.Confirmation == nil ||
		rec.Consent.Confirmation.IP != "198.51.100.4" || rec.Consent.Proof.Source != "https://shop.example/signup" {
		t.Errorf("confirm --json: %s %v", out, err)
	}
	if !mailable(t, p, "bob@example.com") {
		t.Error("a confirmed double opt-in does not let mail through")
	}
	mustFail(t, cons, srv, "needs its proof", args("record", "carol@example.com", "--method", "double-opt-in")...)
	mustFail(t, cons, srv, "refused: gone@example.com: Recipient address is suppressed for all senders",
		args("record", "gone@example.com", "--text-file", textFile)...)
	mustFail(t, cons, srv, "no consent is recorded for gone@example.com", "show", "gone@example.com")

	out = mustRun(t, cons, srv, "show", "bob@example.com", "--sender", "shop")
	if r := rows(out); len(r) < 2 || !strings.HasPrefix(out, "SENDER ") || !strings.Contains(r[0], "pending") ||
		!strings.Contains(r[1], "confirmed") || !strings.Contains(r[1], "198.51.100.4") ||
		!strings.Contains(out, "\n  Yes, send me the Spring News.\n  I can unsubscribe at any time.\n") {
		t.Errorf("show:\n%s", out)
	}
	mustFail(t, cons, srv, "give --sender too", "show", "bob@example.com", "--list", "news")

	out = mustRun(t, cons, srv, args("withdraw", "ann@example.com", "--source", "phone call")...)
	wantLines(t, "withdraw", out, "withdrawn: record 2 of ann@example.com for list news of sender shop")
	out = mustRun(t, cons, srv, args("withdraw", "ann@example.com")...)
	wantLines(t, "withdraw again", out, "had ended already (withdrawn, record 2)")
	if mailable(t, p, "ann@example.com") {
		t.Error("a withdrawn consent lets mail through")
	}
	mustFail(t, cons, srv, "no consent is recorded", args("withdraw", "nobody@example.com")...)
	out = mustRun(t, cons, srv, "show", "ann@example.com")
	if r := rows(out); !strings.Contains(r[0], "confirmed") || !strings.Contains(r[1], "withdrawn") || !strings.Contains(r[1], "phone call") {
		t.Errorf("show after the withdrawal:\n%s", out)
	}

	out = mustRun(t, cons, srv, args("ls")...)
	if r := rows(out); len(r) != 2 || !strings.HasPrefix(r[0], "ann@example.com") || !strings.Contains(r[0], "withdrawn") ||
		!strings.HasPrefix(r[1], "bob@example.com") || !strings.Contains(r[1], "confirmed") {
		t.Errorf("ls:\n%s", out)
	}
	if r := rows(mustRun(t, cons, srv, args("ls", "--status", "confirmed")...)); len(r) != 1 || !strings.HasPrefix(r[0], "bob@") {
		t.Errorf("ls --status confirmed: %q", r)
	}
	out, errOut, err := adminRun(cons, srv, "", args("ls", "--limit", "1")...)
	if r := rows(out); err != nil || len(r) != 1 || !strings.Contains(errOut, "more: drover consent ls --from bob@example.com") {
		t.Errorf("ls --limit 1: %v\n%s%s", err, out, errOut)
	}
	out = mustRun(t, cons, srv, args("ls", "--status", "withdrawn", "--json")...)
	var c policy.Consent
	if err := json.Unmarshal([]byte(out), &c); err != nil || c.Address != "ann@example.com" || c.Ended == nil {
		t.Errorf("ls --json: %s %v", out, err)
	}
	mustFail(t, cons, srv, "status=", args("ls", "--status", "happy")...)
}

// A file with an invalid line imports nothing and names the line; what
// export writes, import reads back onto another server.
func TestConsentImportExport(t *testing.T) {
	srv, p := newConsentServer(t)
	cons := newConsentCmd
	dir := t.TempDir()
	list := filepath.Join(dir, "old.csv")
	good := "email,status,method,time,ip,source,text,purposes,confirmation_time\n" +
		"one@example.com,confirmed,single-opt-in,2026-11-01T10:00:00Z,192.0.2.1,https://old.example/form,\"Send me the news,\nweekly.\",newsletter,\n" +
		"two@example.com,pending,double-opt-in,2026-11-02T10:00:00Z,,https://old.example/form,Send me the news.,,\n" +
		"two@example.com,confirmed,double-opt-in,2026-11-02T10:00:00Z,,https://old.example/form,Send me the news.,,2026-11-02T11:00:00Z\n"
	os.WriteFile(list, []byte(good+"three@example.com,confirmed,,2026-11-03T10:00:00Z,,,,,\ngone@example.com,confirmed,,2026-11-03T10:00:00Z,,,Yes,,\n"), 0o600)

	out := mustFail(t, cons, srv, "2 invalid line(s), nothing imported", "import", list, "--sender", "shop", "--list", "news")
	wantLines(t, "refused import", out, "read 5, added 0, duplicates 0, invalid 2: nothing imported", "line 6: a consent record needs its proof",
		"line 7: gone@example.com: Recipient address is suppressed")
	if r := rows(mustRun(t, cons, srv, "ls", "--sender", "shop", "--list", "news")); len(r) != 0 {
		t.Errorf("a refused import committed: %q", r)
	}
	mustFail(t, cons, srv, "--list is required", "import", list, "--sender", "shop")
	out = mustRun(t, cons, srv, "import", list, "--sender", "shop", "--list", "news", "--skip-invalid")
	wantLines(t, "import --skip-invalid", out, "read 5, added 3, duplicates 0, invalid 2: committed")
	if !mailable(t, p, "one@example.com") || !mailable(t, p, "two@example.com") || mailable(t, p, "three@example.com") {
		t.Error("the imported consent is not what the check finds")
	}
	out = mustRun(t, cons, srv, "show", "one@example.com", "--sender", "shop", "--list", "news")
	wantLines(t, "imported record", out, "https://old.example/form", "  Send me the news,\n  weekly.")
	os.WriteFile(list, []byte(good), 0o600)
	out = mustRun(t, cons, srv, "import", list, "--sender", "shop", "--list", "news")
	wantLines(t, "import again", out, "read 3, added 0, duplicates 3")

	exported := mustRun(t, cons, srv, "export", "--sender", "shop", "--list", "news")
	if n := strings.Count(exported, "\n"); !strings.HasPrefix(exported, "sender,list,address,status,method,time,") || n != 5 {
		t.Errorf("export (%d lines):\n%s", n, exported)
	}
	file := filepath.Join(dir, "out.jsonl")
	_, errOut, err := adminRun(cons, srv, "", "export", "--sender", "shop", "--format", "jsonl", "--out", file)
	data, _ := os.ReadFile(file)
	if err != nil || strings.Count(string(data), "\n") != 3 || !strings.Contains(errOut, "wrote "+file) {
		t.Fatalf("export --out: %v %s\n%s", err, errOut, data)
	}
	if fi, _ := os.Stat(file); fi.Mode().Perm() != 0o600 {
		t.Errorf("export file mode %v", fi.Mode())
	}
	mustFail(t, cons, srv, "--sender is required", "export")

	srv2, p2 := newConsentServer(t)
	out = mustRun(t, cons, srv2, "import", file, "--sender", "shop", "--list", "news")
	wantLines(t, "import of the export", out, "read 3, added 3")
	if again := mustRun(t, cons, srv2, "export", "--sender", "shop", "--list", "news"); again != exported {
		t.Errorf("round trip:\n%s\nthen\n%s", exported, again)
	}
	if !mailable(t, p2, "two@example.com") {
		t.Error("the copied consent is not found")
	}
}
