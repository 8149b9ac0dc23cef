package main

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"drover/testkit"
)

// The suppression list through the real binary's CLI and admin API: an
// entry added by hand refuses the next RCPT with the reason in words; a
// file with a malformed line imports nothing and names the line (all of
// it with --skip-invalid); an import cut half-way commits nothing;
// lifting an unsubscribe needs --force and is an event; export gives back
// what was imported; an open reported through drover events send ends a
// run of hard bounces; drover hygiene report counts a campaign; drover
// list check finds the suppressed address through the server.
func TestSuppressionCLIEndToEnd(t *testing.T) {
	dir := t.TempDir()
	mx := hygieneMX(t)
	d := startDrover(t, dir, fmt.Sprintf(`senders:
  default:
    from_domains: [shop.test]
    dsn: false
routes:
  "*.test": %q
`, mx.Addr))
	cli := func(args ...string) (string, error) {
		return d.cli(append(args, "--config", d.cfgPath)...)
	}
	mustCLI := func(args ...string) string {
		t.Helper()
		out, err := cli(args...)
		if err != nil {
			t.Fatalf("drover %s: %v\n%s", strings.Join(args, " "), err, out)
		}
		return out
	}
	c := dialSMTP(t, d.smtp)

	mustCLI("suppression", "add", "Ann@Dest.test", "--sender", "default", "--list", "spring-news", "--reason", "unsubscribed")
	if r := c.rcptReply(" X-DROVER-LIST=spring-news", "ann@dest.test"); r != "550 5.7.1 Recipient unsubscribed from list spring-news" {
		t.Errorf("RCPT of an added entry: %q", r)
	}
	if out := mustCLI("suppression", "show", "ann@dest.test"); !strings.Contains(out, "spring-news") || !strings.Contains(out, "unsubscribed") {
		t.Errorf("show:\n%s", out)
	}

	// An import with a malformed line commits nothing and names the line.
	file := filepath.Join(dir, "old-list.csv")
	os.WriteFile(file, []byte("address,reason\nb1@dest.test,manual\nnot an address,manual\nb2@dest.test,complaint\n"), 0o600)
	out, err := cli("suppression", "import", file, "--sender", "default")
	if err == nil || !strings.Contains(out, "line 3") || !strings.Contains(out, "nothing imported") {
		t.Fatalf("import with a bad line: %v\n%s", err, out)
	}
	if r := c.rcptReply("", "b1@dest.test"); !strings.HasPrefix(r, "250") {
		t.Errorf("a refused import left b1@ suppressed: %q", r)
	}
	out = mustCLI("suppression", "import", file, "--sender", "default", "--skip-invalid")
	if !strings.Contains(out, "added 2") {
		t.Errorf("import --skip-invalid:\n%s", out)
	}
	if r := c.rcptReply(" X-DROVER-STREAM=transactional", "b2@dest.test"); r != "550 5.7.1 Recipient complained about mail of sender default" {
		t.Errorf("RCPT of an imported complaint: %q", r)
	}

	// An import cut half-way (the connection drops) commits nothing; the
	// same request whole imports.
	rawImport := func(body string, missing int) string {
		conn, err := net.Dial("tcp", d.http)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		fmt.Fprintf(conn, "POST /v1/suppressions/import?format=csv HTTP/1.1\r\nHost: %s\r\nAuthorization: Bearer t0ken\r\n"+
			"Content-Type: text/csv\r\nContent-Length: %d\r\nConnection: close\r\n\r\n%s", d.http, len(body)+missing, body)
		if missing > 0 {
			conn.(*net.TCPConn).CloseWrite()
		}
		resp, _ := io.ReadAll(conn)
		return string(resp)
	}
	if resp := rawImport("address\nwhole@dest.test\n", 0); !strings.Contains(resp, `"added": 1,`) {
		t.Fatalf("whole import:\n%s", resp)
	}
	if resp := rawImport("address\ncut1@dest.test\ncut2@dest.test\n", 1000); strings.Contains(resp, "200 OK") {
		t.Errorf("a cut import was answered 200:\n%s", resp)
	}
	if out := mustCLI("suppression", "ls", "--all"); strings.Contains(out, "cut1@") || !strings.Contains(out, "whole@") {
		t.Errorf("after the cut import:\n%s", out)
	}

	// Lifting an unsubscribe needs --force, and is an event.
	if out, err := cli("suppression", "remove", "ann@dest.test"); err == nil || !strings.Contains(out, "force") {
		t.Errorf("remove without --force: %v\n%s", err, out)
	}
	mustCLI("suppression", "remove", "ann@dest.test", "--force")
	if r := c.rcptReply(" X-DROVER-LIST=spring-news", "ann@dest.test"); !strings.HasPrefix(r, "250") {
		t.Errorf("RCPT after the removal: %q", r)
	}
	d.event(t, "suppression-removed", map[string]any{"rcpt": "ann@dest.test", "reason": "unsubscribed"})

	// Export gives the entries back as JSON lines.
	exported := filepath.Join(dir, "export.jsonl")
	mustCLI("suppression", "export", "--format", "jsonl", "--out", exported)
	data, _ := os.ReadFile(exported)
	if n := strings.Count(string(data), "\n"); n != 3 || !strings.Contains(string(data), `"address":"b1@dest.test"`) {
		t.Errorf("export:\n%s", data)
	}

	// An open ends a run of hard bounces.
	for i := 1; i <= 2; i++ {
		c.send("news@shop.test", "", []string{"moved2@dest.test"}, marketing("moved2@dest.test", fmt.Sprint("h", i)))
		d.event(t, "bounced", map[string]any{"rcpt": "moved2@dest.test", "campaign": fmt.Sprint("h", i)})
	}
	events := filepath.Join(dir, "events.jsonl")
	os.WriteFile(events, []byte(`{"event":"opened","sender":"default","rcpt":"moved2@dest.test","campaign":"h2"}`+"\n"), 0o600)
	if out := mustCLI("events", "send", events); !strings.Contains(out, "1") {
		t.Errorf("events send:\n%s", out)
	}
	d.event(t, "engaged", map[string]any{"rcpt": "moved2@dest.test", "reason": "opened"})
	c.send("news@shop.test", "", []string{"moved2@dest.test"}, marketing("moved2@dest.test", "h3"))
	d.event(t, "bounced", map[string]any{"rcpt": "moved2@dest.test", "campaign": "h3"})
	if r := c.rcptReply("", "moved2@dest.test"); !strings.HasPrefix(r, "250") {
		t.Errorf("an open did not end the run: %q", r)
	}

	// The report counts the campaign.
	for range 2 {
		c.send("news@shop.test", "", []string{"reader@dest.test"}, marketing("reader@dest.test", "h3"))
	}
	d.event(t, "delivered", map[string]any{"rcpt": "reader@dest.test", "campaign": "h3"})
	var last string
	defer func() {
		if t.Failed() {
			t.Logf("last report:\n%s", last)
		}
	}()
	testkit.WaitFor(t, 20*time.Second, "the report of h3", func() bool {
		out, _ := cli("hygiene", "report", "--sender", "default", "--campaign", "h3", "--json")
		last = out
		return strings.Contains(out, `"delivered":2`) && strings.Contains(out, `"hard_bounces":1`) && strings.Contains(out, `"flagged":true`)
	})
	if out := mustCLI("hygiene", "report", "--sender", "default"); !strings.Contains(out, "h3") || !strings.Contains(out, "FLAG") {
		t.Errorf("report:\n%s", out)
	}

	// list check asks the server.
	list := filepath.Join(dir, "new.csv")
	os.WriteFile(list, []byte("email\nb2@dest.test\nfresh@dest.test\n"), 0o600)
	out, err = cli("list", "check", list, "--resolver", "127.0.0.1:9", "--sender", "default")
	if err != nil {
		t.Fatalf("list check: %v\n%s", err, out)
	}
	report, _ := os.ReadFile(filepath.Join(dir, "new.report.csv"))
	if !strings.Contains(string(report), "2,b2@dest.test,suppressed,Recipient complained about mail of sender default") {
		t.Errorf("list check report:\n%s", report)
	}
	clean, _ := os.ReadFile(filepath.Join(dir, "new.clean.csv"))
	if sc := bufio.NewScanner(strings.NewReader(string(clean))); strings.Contains(string(clean), "b2@") || !sc.Scan() {
		t.Errorf("clean file:\n%s", clean)
	}
	c.cmd("QUIT")
	d.stop()
}
