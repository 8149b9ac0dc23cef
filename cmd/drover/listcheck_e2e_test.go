package main

import (
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	"drover/mta/resolve/dnstest"
)

// listZone is the DNS the list check tests see.
const listZone = `
example.test.        IN MX 10 mx.example.test.
mx.example.test.     IN A 192.0.2.1
xn--bcher-kva.test.  IN MX 10 mx.example.test.
aonly.test.          IN A 192.0.2.2
nullmx.test.         IN MX 0 .
gmial.com.           IN MX 10 mx.example.test.
`

// listCheck runs drover list check in dir and returns its stdout and
// stderr.
func listCheck(t *testing.T, dir string, args ...string) (stdout, stderr string, err error) {
	t.Helper()
	cmd := exec.Command(droverBin, append([]string{"list", "check"}, args...)...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "DROVER_ADMIN_TOKEN=")
	var o, e strings.Builder
	cmd.Stdout, cmd.Stderr = &o, &e
	err = cmd.Run()
	return o.String(), e.String(), err
}

func readFile(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// A list exported from a spreadsheet (byte order mark, CRLF, quoted
// fields, a field over two lines) with an internationalised address, a
// duplicate in other case, a typo, a role account, a bad address, a null
// MX and a domain that does not exist: the clean file and the report,
// byte for byte, and the summary.
func TestListCheckCSV(t *testing.T) {
	srv := dnstest.Start(t, listZone)
	dir := t.TempDir()
	list := "\uFEFFName,Email,City\r\n" +
		"\"Doe, Jane\",jane@example.test,Paris\r\n" +
		"Jürgen,jürgen@bücher.test,\"Köln\"\r\n" +
		"JANE,Jane@Example.TEST,Lyon\r\n" +
		"Bob,bob@gmial.com,Berlin\r\n" +
		"Info,Info@example.test,Rome\r\n" +
		"Bad,not an address,Oslo\r\n" +
		"\"Quote \"\"Q\"\"\",q@aonly.test,\"Nice\"\r\n" +
		"Null,n@nullmx.test,Bern\r\n" +
		"Nx,x@nowhere.test,Riga\r\n" +
		"\"Multi\r\nLine\",m@example.test,Kiel\r\n"
	if err := os.WriteFile(filepath.Join(dir, "list.csv"), []byte(list), 0o600); err != nil {
		t.Fatal(err)
	}
	out, errOut, err := listCheck(t, dir, "list.csv", "--no-suppression-check", "--resolver", srv.Addr)
	if err != nil {
		t.Fatalf("drover list check: %v\n%s%s", err, out, errOut)
	}
	wantClean := "\uFEFFName,Email,City\r\n" +
		"\"Doe, Jane\",jane@example.test,Paris\r\n" +
		"Jürgen,jürgen@bücher.test,Köln\r\n" +
		"\"Quote \"\"Q\"\"\",q@aonly.test,Nice\r\n" +
		"\"Multi\r\nLine\",m@example.test,Kiel\r\n"
	if got := readFile(t, filepath.Join(dir, "list.clean.csv")); got != wantClean {
		t.Errorf("clean file:\n%q\nwant:\n%q", got, wantClean)
	}
	wantReport := `line,address,problem,detail,suggestion
4,Jane@Example.TEST,duplicate,duplicate of line 2,
5,bob@gmial.com,typo,the domain looks like a typo of gmail.com,bob@gmail.com
6,Info@example.test,role_account,role account (info),
7,not an address,invalid_syntax,no @ in address,
9,n@nullmx.test,null_mx,"the domain accepts no mail (null MX, RFC 7505)",
10,x@nowhere.test,no_mx,no such domain (NXDOMAIN),
`
	if got := readFile(t, filepath.Join(dir, "list.report.csv")); got != wantReport {
		t.Errorf("report:\n%s\nwant:\n%s", got, wantReport)
	}
	wantOut := `list.csv:
rows:            10 (header row, addresses in column 2)
valid:           4
invalid syntax:  1
duplicates:      1
no MX:           1
null MX:         1
unverified:      0
typos:           1
role accounts:   1
suppressed:      0 (not checked)
kept:            4
clean file:      list.clean.csv (4 rows)
report:          list.report.csv (6 findings)
`
	if out != wantOut || errOut != "" {
		t.Errorf("stdout:\n%s\nwant:\n%s\nstderr:\n%s", out, wantOut, errOut)
	}
	for _, f := range []string{"list.clean.csv", "list.report.csv"} {
		if st, err := os.Stat(filepath.Join(dir, f)); err != nil || st.Mode().Perm() != 0o600 {
			t.Errorf("%s: %v %v", f, st.Mode(), err)
		}
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 3 {
		t.Errorf("files left in the directory: %v", entries)
	}
}

// --json prints the summary in snake_case; --out and --report name the
// outputs; --keep-typos and --keep-roles keep those rows.
func TestListCheckJSONAndKeep(t *testing.T) {
	srv := dnstest.Start(t, listZone)
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "in.txt"), []byte("a@example.test\nb@gmial.com\nsales+x@example.test\nc@example.test\n"), 0o600)
	out, errOut, err := listCheck(t, dir, "in.txt", "--no-suppression-check", "--resolver", srv.Addr, "--json",
		"--keep-typos", "--keep-roles", "--out", "ok.csv", "--report", "why.csv", "--concurrency", "2")
	if err != nil {
		t.Fatalf("drover list check: %v\n%s%s", err, out, errOut)
	}
	var got map[string]any
	if err := json.Unmarshal([]byte(out), &got); err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	for k, v := range map[string]any{"file": "in.txt", "clean_file": "ok.csv", "report_file": "why.csv", "rows": 4.0, "valid": 2.0,
		"typos": 1.0, "role_accounts": 1.0, "kept": 4.0, "header": false, "address_column": 1.0, "domains": 2.0,
		"dns_checked": true, "suppression_checked": false, "invalid_syntax": 0.0, "no_mx": 0.0} {
		if got[k] != v {
			t.Errorf("%s: %v, want %v (%s)", k, got[k], v, out)
		}
	}
	if clean := readFile(t, filepath.Join(dir, "ok.csv")); clean != "a@example.test\nb@gmial.com\nsales+x@example.test\nc@example.test\n" {
		t.Errorf("clean file:\n%s", clean)
	}
	if report := readFile(t, filepath.Join(dir, "why.csv")); strings.Count(report, "\n") != 3 {
		t.Errorf("report:\n%s", report)
	}
}

// The suppression check asks the running server's admin API, with its
// token, in one batch; what it names suppressed is left out.
func TestListCheckSuppression(t *testing.T) {
	srv := dnstest.Start(t, listZone)
	var mu sync.Mutex
	var asked []string
	api := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != "POST" || r.URL.Path != "/v1/suppressions/check" || r.Header.Get("Authorization") != "Bearer s3cret" ||
			r.Header.Get("Content-Type") != "application/json" {
			http.Error(w, `{"error":"unexpected request"}`, http.StatusBadRequest)
			return
		}
		var req struct {
			Addresses []string `json:"addresses"`
		}
		json.NewDecoder(r.Body).Decode(&req)
		mu.Lock()
		asked = append(asked, req.Addresses...)
		mu.Unlock()
		io.WriteString(w, `{"suppressed":{"gone@example.test":"Recipient complained about mail of sender default"}}`)
	}))
	defer api.Close()
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "l.csv"), []byte("email\nkeep@example.test\nGone@example.test\ngone@Example.test\nbad\n"), 0o600)
	out, errOut, err := listCheck(t, dir, "l.csv", "--resolver", srv.Addr, "--server", api.URL, "--token", "s3cret")
	if err != nil {
		t.Fatalf("drover list check: %v\n%s%s", err, out, errOut)
	}
	if !slices.Equal(asked, []string{"keep@example.test", "Gone@example.test"}) {
		t.Errorf("asked about %q", asked)
	}
	if clean := readFile(t, filepath.Join(dir, "l.clean.csv")); clean != "email\nkeep@example.test\n" {
		t.Errorf("clean file:\n%s", clean)
	}
	if report := readFile(t, filepath.Join(dir, "l.report.csv")); !strings.Contains(report, "3,Gone@example.test,suppressed,Recipient complained about mail of sender default,\n") {
		t.Errorf("report:\n%s", report)
	}
	if !strings.Contains(out, "suppressed:      1\n") {
		t.Errorf("stdout:\n%s", out)
	}
}

// The errors say what is wrong, and leave no output behind.
func TestListCheckErrors(t *testing.T) {
	srv := dnstest.Start(t, listZone)
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "empty.csv"), nil, 0o600)
	os.WriteFile(filepath.Join(dir, "blank.csv"), []byte("\uFEFF\r\n\r\n"), 0o600)
	os.WriteFile(filepath.Join(dir, "header.csv"), []byte("email,name\n"), 0o600)
	os.WriteFile(filepath.Join(dir, "ok.csv"), []byte("a@example.test\n"), 0o600)
	os.WriteFile(filepath.Join(dir, "afile"), nil, 0o600)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closed := "http://" + l.Addr().String()
	l.Close()
	noSupp := []string{"--no-suppression-check", "--resolver", srv.Addr}
	tests := []struct {
		args []string
		want string
	}{
		{append([]string{"missing.csv"}, noSupp...), "drover: cannot read the list: open missing.csv: no such file or directory\n"},
		{append([]string{"empty.csv"}, noSupp...), "drover: empty.csv is empty\n"},
		{append([]string{"blank.csv"}, noSupp...), "drover: blank.csv has no rows\n"},
		{append([]string{"header.csv"}, noSupp...), "drover: header.csv has a header row but no rows\n"},
		{append([]string{"ok.csv", "--out", "afile/clean.csv"}, noSupp...), "drover: cannot write the clean file afile/clean.csv: not a directory\n"},
		{append([]string{"ok.csv", "--report", "nodir/r.csv"}, noSupp...), "drover: cannot write the report nodir/r.csv: no such file or directory\n"},
		{append([]string{"ok.csv", "--out", "ok.csv"}, noSupp...), "drover: --out ok.csv is the list itself\n"},
		{append([]string{"ok.csv", "--concurrency", "0"}, noSupp...), "drover: --concurrency 0: at least 1\n"},
		{[]string{"ok.csv", "--resolver", srv.Addr, "--server", closed, "--token", "x"},
			"--no-suppression-check to check the list without the suppression list\n"},
		{[]string{"ok.csv", "--resolver", srv.Addr, "--config", "drover.yaml"},
			"no admin token"},
	}
	os.WriteFile(filepath.Join(dir, "drover.yaml"), []byte("data_dir: "+filepath.Join(dir, "nodata")+"\n"), 0o600)
	for _, tt := range tests {
		out, errOut, err := listCheck(t, dir, tt.args...)
		if err == nil || !strings.Contains(errOut, tt.want) || !strings.Contains(errOut, "drover: ") {
			t.Errorf("drover list check %q: %v\nstdout: %s\nstderr: %s\nwant: %s", tt.args, err, out, errOut, tt.want)
		}
	}
	for _, name := range []string{"ok.clean.csv", "ok.report.csv", "empty.clean.csv", "header.clean.csv"} {
		if _, err := os.Stat(filepath.Join(dir, name)); err == nil {
			t.Errorf("%s left behind", name)
		}
	}
	entries, _ := os.ReadDir(dir)
	for _, e := range entries {
		if strings.Contains(e.Name(), ".tmp-") {
			t.Errorf("temporary file %s left behind", e.Name())
		}
	}
	// The server's absence is named with the way around it.
	_, errOut, _ := listCheck(t, dir, "ok.csv", "--resolver", srv.Addr, "--server", closed, "--token", "x")
	if !strings.Contains(errOut, "is not reachable") || !strings.Contains(errOut, closed) {
		t.Errorf("stderr: %s", errOut)
	}
}
