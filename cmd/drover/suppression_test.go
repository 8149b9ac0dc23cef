package main

// The suppression, hygiene and events commands against the real admin
// API handler (httpapi) over a real policy on a fresh Pebble database,
// run in-process.

import (
	"bytes"
	"context"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/spf13/cobra"

	"drover/httpapi"
	"drover/policy"
	"drover/testkit/testpolicy"
)

var hygieneTestNow = time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)

// newHygieneServer is a server's admin API with list hygiene: sender
// shop sunsets after 5 messages.
func newHygieneServer(t *testing.T) (string, *policy.Policy) {
	t.Helper()
	now := func() time.Time { return hygieneTestNow }
	p := testpolicy.New(t, policy.Config{Now: now, Senders: map[string]policy.SenderRules{"shop": {SunsetAfter: 5}}})
	srv := httptest.NewServer(httpapi.Handler(httpapi.Config{Gatherer: prometheus.NewRegistry(), AdminToken: "t0ken", Policy: p, Now: now}))
	t.Cleanup(srv.Close)
	return srv.URL, p
}

// adminRun runs an admin command (newCmd's, as main registers it) in
// process against srvURL, with stdin.
func adminRun(newCmd func() *cobra.Command, srvURL, stdin string, args ...string) (stdout, stderr string, err error) {
	cmd := newCmd()
	cmd.SilenceUsage, cmd.SilenceErrors = true, true // as main's root
	cmd.SetArgs(append(args, "--server", srvURL, "--token", "t0ken"))
	var out, errb bytes.Buffer
	cmd.SetOut(&out)
	cmd.SetErr(&errb)
	cmd.SetIn(strings.NewReader(stdin))
	err = cmd.ExecuteContext(context.Background())
	return out.String(), errb.String(), err
}

// mustRun runs a command that must succeed, and returns its stdout.
func mustRun(t *testing.T, newCmd func() *cobra.Command, srvURL string, args ...string) string {
	t.Helper()
	out, errOut, err := adminRun(newCmd, srvURL, "", args...)
	if err != nil {
		t.Fatalf("%v: %v\n%s%s", args, err, out, errOut)
	}
	return out
}

// mustFail runs a command that must fail with an error holding want.
func mustFail(t *testing.T, newCmd func() *cobra.Command, srvURL, want string, args ...string) string {
	t.Helper()
	out, _, err := adminRun(newCmd, srvURL, "", args...)
	if err == nil || !strings.Contains(err.Error(), want) {
		t.Errorf("%v: error %v, want one with %q\n%s", args, err, want, out)
	}
	return out
}

func wantLines(t *testing.T, what, out string, want ...string) {
	t.Helper()
	for _, w := range want {
		if !strings.Contains(out, w) {
			t.Errorf("%s lacks %q:\n%s", what, w, out)
		}
	}
}

// rows are the lines of a table after its header.
func rows(out string) []string {
	lines := strings.Split(strings.TrimRight(out, "\n"), "\n")
	if len(lines) == 0 || lines[0] == "" {
		return nil
	}
	return lines[1:]
}

// An admin suppresses addresses, lists and shows them, and lifts them:
// an unsubscribe only with --force.
func TestSuppressionCommands(t *testing.T) {
	srv, _ := newHygieneServer(t)
	sup := newSuppressionCmd

	out := mustRun(t, sup, srv, "add", "a@example.com", "B@Example.com", "--sender", "shop", "--reason", "unsubscribed")
	wantLines(t, "add", out, "suppressed a@example.com: unsubscribed (sender shop)", "suppressed b@example.com: unsubscribed (sender shop)", "2 added, 0 already suppressed")
	out = mustRun(t, sup, srv, "add", "a@example.com", "--sender", "shop", "--reason", "unsubscribed")
	wantLines(t, "add again", out, "0 added, 1 already suppressed")
	out = mustRun(t, sup, srv, "add", "x@example.com", "--json")
	var added struct {
		Added   int
		Entries []policy.Entry
	}
	if err := json.Unmarshal([]byte(out), &added); err != nil || added.Added != 1 || added.Entries[0].Kind != policy.Global || added.Entries[0].Reason != policy.Manual {
		t.Errorf("add --json: %s %v", out, err)
	}
	mustFail(t, sup, srv, `entry 2 ("not-an-address")`, "add", "c@example.com", "not-an-address")
	mustFail(t, sup, srv, "a list entry names a sender and a list", "add", "c@example.com", "--list", "news")
	mustFail(t, sup, srv, "c@example.com is not suppressed", "show", "c@example.com")

	out = mustRun(t, sup, srv, "ls")
	if r := rows(out); len(r) != 3 || !strings.HasPrefix(out, "ADDRESS ") || !strings.HasPrefix(r[0], "a@example.com ") ||
		!strings.Contains(r[0], "unsubscribed") || !strings.Contains(r[2], "global") {
		t.Errorf("ls:\n%s", out)
	}
	if r := rows(mustRun(t, sup, srv, "ls", "--sender", "shop")); len(r) != 2 {
		t.Errorf("ls --sender shop: %q", r)
	}
	out, errOut, err := adminRun(sup, srv, "", "ls", "--limit", "1")
	if r := rows(out); err != nil || len(r) != 1 || !strings.Contains(errOut, "more: drover suppression ls --from b@example.com") {
		t.Errorf("ls --limit 1: %v\n%s%s", err, out, errOut)
	}
	if r := rows(mustRun(t, sup, srv, "ls", "--limit", "1", "--from", "b@example.com")); len(r) != 1 || !strings.HasPrefix(r[0], "b@example.com") {
		t.Errorf("ls --from: %q", r)
	}
	out, errOut, err = adminRun(sup, srv, "", "ls", "--limit", "1", "--all")
	if r := rows(out); err != nil || len(r) != 3 || errOut != "" {
		t.Errorf("ls --all: %v\n%s%s", err, out, errOut)
	}
	out = mustRun(t, sup, srv, "ls", "--json", "--reason", "manual")
	var e policy.Entry
	if err := json.Unmarshal([]byte(out), &e); err != nil || e.Address != "x@example.com" {
		t.Errorf("ls --json: %s %v", out, err)
	}
	mustFail(t, sup, srv, "reason", "ls", "--reason", "tired")

	out = mustRun(t, sup, srv, "show", "A@example.com")
	if r := rows(out); len(r) != 1 || !strings.Contains(r[0], "shop") || !strings.Contains(r[0], "admin") {
		t.Errorf("show:\n%s", out)
	}
	out = mustRun(t, sup, srv, "show", "a@example.com", "--json")
	if !strings.Contains(out, `"address":"a@example.com"`) {
		t.Errorf("show --json: %s", out)
	}

	mustFail(t, sup, srv, policy.ErrNeedsForce.Error()+" (add --force", "remove", "a@example.com")
	if r := rows(mustRun(t, sup, srv, "show", "a@example.com")); len(r) != 1 {
		t.Errorf("a refused removal removed: %q", r)
	}
	out = mustRun(t, sup, srv, "remove", "a@example.com", "--sender", "shop", "--force")
	wantLines(t, "remove --force", out, "removed a@example.com: unsubscribed (sender shop)")
	out = mustRun(t, sup, srv, "remove", "x@example.com", "--json")
	if !strings.Contains(out, `"reason":"manual"`) {
		t.Errorf("remove --json: %s", out)
	}
	mustFail(t, sup, srv, "no suppression of x@example.com matches", "remove", "x@example.com")
	mustFail(t, sup, srv, "planet", "remove", "b@example.com", "--scope", "planet")
}

// A file with invalid lines imports nothing and says which lines; with
// --skip-invalid the rest goes in. What export writes, import reads
// back.
func TestSuppressionImportExport(t *testing.T) {
	srv, _ := newHygieneServer(t)
	sup := newSuppressionCmd
	dir := t.TempDir()
	list := filepath.Join(dir, "list.csv")
	os.WriteFile(list, []byte("email,reason\none@example.com,\nnot an address,\ntwo@example.com,hard-bounce\nthree@example.com,tired\n"), 0o600)

	out := mustFail(t, sup, srv, "2 invalid line(s), nothing imported", "import", list)
	wantLines(t, "refused import", out, "read 4, added 0, duplicates 0, invalid 2: nothing imported", "line 3: ", "line 5: unknown reason")
	if r := rows(mustRun(t, sup, srv, "ls")); len(r) != 0 {
		t.Errorf("a refused import committed: %q", r)
	}
	out = mustRun(t, sup, srv, "import", list, "--skip-invalid", "--sender", "shop")
	wantLines(t, "import --skip-invalid", out, "read 4, added 2, duplicates 0, invalid 2: committed", "line 3: ")
	out = mustRun(t, sup, srv, "show", "two@example.com")
	wantLines(t, "imported entry", out, "import:list.csv", "hard-bounce", "shop")

	news := filepath.Join(dir, "news.jsonl")
	os.WriteFile(news, []byte(`{"address":"four@example.com"}`+"\n"+`{"address":"five@example.com","reason":"complaint","scope":"sender"}`+"\n"), 0o600)
	// five@ names the scope sender, yet takes the list of --list: invalid.
	out, _, err := adminRun(sup, srv, "", "import", news, "--sender", "shop", "--list", "news", "--reason", "unsubscribed", "--json")
	var res policy.ImportResult
	if jerr := json.Unmarshal([]byte(out), &res); err == nil || jerr != nil || res.Committed || len(res.Invalid) != 1 || res.Invalid[0].Line != 2 {
		t.Errorf("import jsonl --json: %v %s %v", err, out, jerr)
	}
	out = mustRun(t, sup, srv, "import", news, "--sender", "shop", "--list", "news", "--reason", "unsubscribed", "--skip-invalid")
	wantLines(t, "import jsonl", out, "added 1", "line 2: a sender entry names a sender and no list")
	stdinOut, _, err := adminRun(sup, srv, "address,sender\nsix@example.com,shop\n", "import", "-", "--format", "csv")
	if err != nil || !strings.Contains(stdinOut, "added 1") {
		t.Errorf("import -: %v %s", err, stdinOut)
	}
	bad := filepath.Join(dir, "bad.csv")
	os.WriteFile(bad, []byte("address\n"+strings.Repeat("nobody\n", 25)), 0o600)
	out = mustFail(t, sup, srv, "25 invalid line(s)", "import", bad)
	if !strings.Contains(out, "line 21: ") || strings.Contains(out, "line 22: ") || !strings.Contains(out, "and 5 more invalid lines") {
		t.Errorf("import of 25 invalid lines:\n%s", out)
	}
	mustFail(t, sup, srv, "give --format", "import", filepath.Join(dir, "list.txt"))
	mustFail(t, sup, srv, "give --format", "import", "-")
	mustFail(t, sup, srv, "no such file", "import", filepath.Join(dir, "missing.csv"))

	exported := mustRun(t, sup, srv, "export")
	recs, err := csv.NewReader(strings.NewReader(exported)).ReadAll()
	if err != nil || len(recs) != 5 || strings.Join(recs[0], ",") != "address,scope,sender,list,reason,source,time" {
		t.Fatalf("export: %q %v", recs, err)
	}
	if out := mustRun(t, sup, srv, "export", "--sender", "shop", "--list", "news"); strings.Count(out, "\n") != 2 || !strings.Contains(out, "four@example.com") {
		t.Errorf("export of shop's news:\n%s", out)
	}
	file := filepath.Join(dir, "out.jsonl")
	_, errOut, err := adminRun(sup, srv, "", "export", "--format", "jsonl", "--out", file)
	data, _ := os.ReadFile(file)
	if err != nil || strings.Count(string(data), "\n") != 4 || !strings.Contains(errOut, "wrote "+file) {
		t.Fatalf("export --out: %v %s\n%s", err, errOut, data)
	}
	if fi, _ := os.Stat(file); fi.Mode().Perm() != 0o600 {
		t.Errorf("export file mode %v", fi.Mode())
	}
	mustFail(t, sup, srv, "unknown format", "export", "--format", "xml")

	// Round trip, onto another server.
	srv2, _ := newHygieneServer(t)
	out = mustRun(t, sup, srv2, "import", file)
	wantLines(t, "import of the export", out, "read 4, added 4")
	if again := mustRun(t, sup, srv2, "export"); again != exported {
		t.Errorf("round trip:\n%s\nthen\n%s", exported, again)
	}
}

// A big file goes to the server as a stream, in one commit.
func TestSuppressionImportBig(t *testing.T) {
	if testing.Short() {
		t.Skip("big import")
	}
	srv, _ := newHygieneServer(t)
	const n = 200_000
	var b bytes.Buffer
	b.WriteString("address\n")
	for i := 0; i < n; i++ {
		fmt.Fprintf(&b, "r%d@example.com\n", i)
	}
	file := filepath.Join(t.TempDir(), "big.csv")
	os.WriteFile(file, b.Bytes(), 0o600)
	out := mustRun(t, newSuppressionCmd, srv, "import", file)
	wantLines(t, "big import", out, fmt.Sprintf("read %d, added %d, duplicates 0, invalid 0: committed", n, n))
}
