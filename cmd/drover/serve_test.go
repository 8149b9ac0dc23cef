package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"net/smtp"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"

	"drover/testkit"
)

// The README's first command: `drover serve` with no file, on the embedded
// default (127.0.0.1:2525 and 127.0.0.1:8025, spool in ./drover-data), then
// `drover queue ls` in the same directory, which reads the admin token
// that serve wrote there.
func TestServeWithoutConfig(t *testing.T) {
	t.Setenv("DROVER_ADMIN_TOKEN", "")
	dir := t.TempDir()
	cmd, out := serveDefault(t, dir)
	defer cmd.Process.Kill()
	c, err := smtp.Dial("127.0.0.1:2525")
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Mail("app@example.com"); err != nil {
		t.Fatalf("loopback sender refused: %v", err)
	}
	c.Quit()
	ls := exec.Command(droverBin, "queue", "ls")
	ls.Dir = dir
	if out, err := ls.CombinedOutput(); err != nil || !strings.Contains(string(out), "RECIPIENTS") {
		t.Errorf("queue ls beside drover serve: %v\n%s", err, out)
	}
	cmd.Process.Signal(os.Interrupt)
	if err := cmd.Wait(); err != nil {
		t.Fatalf("exit: %v\n%s", err, out)
	}
	if _, err := os.Stat(filepath.Join(dir, "drover-data")); err != nil {
		t.Errorf("no spool directory: %v", err)
	}
}

// serveDefault starts `drover serve args...` in dir, on the default
// listeners (127.0.0.1:2525 and 127.0.0.1:8025), and waits until its
// /healthz answers 200. The caller stops it.
func serveDefault(t *testing.T, dir string, args ...string) (*exec.Cmd, *strings.Builder) {
	t.Helper()
	cmd := exec.Command(droverBin, append([]string{"serve"}, args...)...)
	cmd.Dir = dir
	out := &strings.Builder{}
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	testkit.WaitFor(t, 20*time.Second, "the default HTTP listener", func() bool {
		resp, err := http.Get("http://127.0.0.1:8025/healthz")
		if err == nil {
			resp.Body.Close()
		}
		return err == nil && resp.StatusCode == 200
	})
	return cmd, out
}

var queuedAs = regexp.MustCompile(`queued as ([A-Za-z0-9_-]+)`)

// A message with three recipients: one accepted, one deferred, one refused
// by the MX. The accepted one arrives without control headers; the
// refused one produces a bounce and a DSN to the sender; the deferred one
// stays queued with its error shown by `drover queue ls`.
func TestDeliveryOutcomes(t *testing.T) {
	mx := startMX(t)
	d := startDrover(t, t.TempDir(), fmt.Sprintf("shaping:\n  default:\n    retry_interval: 1h\n    max_retry_interval: 2h\nroutes:\n  \"*.test\": %q\n", mx.Addr))
	out := swaks(t, "--server", d.smtp, "--from", "news@sender.test",
		"--to", "ok@dest.test,defer@dest.test,refuse@dest.test",
		"--header", "X-Drover-Campaign: autumn", "--header", "X-Drover-Stream: marketing",
		"--header", "Subject: e2e", "--body", "hello\nbare-lf line\n.leading dot\n")
	m := queuedAs.FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("no queue id in swaks output:\n%s", out)
	}
	id := m[1]

	var msg, dsn *testkit.Transaction
	for _, r := range mx.Wait(t, 2, 20*time.Second) {
		r := r
		if r.From == "" {
			dsn = &r
		} else {
			msg = &r
		}
	}
	if msg == nil || dsn == nil {
		t.Fatalf("got %+v", mx.Transactions())
	}
	if len(msg.Rcpts) != 1 || msg.Rcpts[0] != "ok@dest.test" || msg.From != "news@sender.test" {
		t.Errorf("delivered envelope %q -> %q", msg.From, msg.Rcpts)
	}
	body := string(msg.Data)
	if strings.Contains(strings.ToLower(body), "x-drover") {
		t.Errorf("control header delivered:\n%s", body)
	}
	if !strings.Contains(body, "\r\n.leading dot\r\n") || !strings.Contains(body, "Subject: e2e") {
		t.Errorf("body not delivered intact:\n%q", body)
	}
	if msg.Helo != "drover.test" {
		t.Errorf("EHLO name %q, want the configured hostname", msg.Helo)
	}
	if len(dsn.Rcpts) != 1 || dsn.Rcpts[0] != "news@sender.test" {
		t.Errorf("DSN sent to %q", dsn.Rcpts)
	}
	for _, want := range []string{"multipart/report", "report-type=delivery-status", "Final-Recipient: rfc822; refuse@dest.test", "Action: failed", "Status: 5.1.1"} {
		if !strings.Contains(string(dsn.Data), want) {
			t.Errorf("DSN lacks %q:\n%s", want, dsn.Data)
		}
	}

	// The mail log has every event, with the campaign.
	testkit.WaitFor(t, 5*time.Second, "the mail log", func() bool {
		kinds := map[string]bool{}
		for _, ev := range d.mailLog() {
			kinds[ev["event"].(string)] = true
			if ev["dsn"] != nil {
				kinds["dsn"] = true
			}
		}
		return kinds["received"] && kinds["delivered"] && kinds["deferred"] && kinds["bounced"] && kinds["dsn"]
	})
	for _, ev := range d.mailLog() {
		if ev["id"] == id && ev["campaign"] != "autumn" {
			t.Errorf("event without campaign: %v", ev)
		}
		if ev["event"] == "bounced" && (ev["rcpt"] != "refuse@dest.test" || ev["class"] != "hard" || ev["reason"] != "userunknown") {
			t.Errorf("bounce event %v", ev)
		}
	}
	// The DSN's received line names the message it reports on.
	dsnLogged := false
	for _, ev := range d.mailLog() {
		if ev["event"] == "received" && ev["dsn"] == "failure" {
			dsnLogged = ev["original_id"] == id && ev["id"] != id
		}
	}
	if !dsnLogged {
		t.Errorf("no received line of the DSN naming %s: %v", id, d.mailLog())
	}

	// The deferred recipient is still queued, visible through the admin API.
	ls, err := d.cli("queue", "ls", "--by", "domain", "--config", d.cfgPath)
	if err != nil || !strings.Contains(ls, "dest.test") || !strings.Contains(ls, "mailbox busy") {
		t.Errorf("queue ls --by domain: %v\n%s", err, ls)
	}
	ls, err = d.cli("queue", "ls", "--config", d.cfgPath)
	if err != nil || !strings.Contains(ls, "route:"+mx.Addr) || !strings.Contains(ls, "conns") {
		t.Errorf("queue ls (by site): %v\n%s", err, ls)
	}
	show, err := d.cli("queue", "show", id, "--config", d.cfgPath)
	if err != nil || !strings.Contains(show, "defer@dest.test") || strings.Contains(show, "ok@dest.test") || !strings.Contains(show, "autumn") {
		t.Errorf("queue show: %v\n%s", err, show)
	}
	if out, err := d.cli("queue", "ls", "--config", d.cfgPath, "--token", "wrong"); err == nil {
		t.Errorf("queue ls with a wrong token worked:\n%s", out)
	}

	// Metrics pass promtool and count what happened.
	metrics := d.metrics(t)
	for _, want := range []string{"drover_messages_received_total 1", `drover_deliveries_total{result="delivered"} 2`, `drover_deliveries_total{result="bounced"} 1`, `drover_queue_recipients{state="deferred"} 1`,
		"drover_delivery_latency_seconds_count 2", "drover_smtp_sessions_total 1", "drover_queue_messages 1", "drover_queue_oldest_message_age_seconds ",
		`drover_bounces_total{class="hard",reason="userunknown"} 1`, `drover_dsn_generated_total{kind="failure"} 1`, `drover_dsn_generated_total{kind="delay"} 0`} {
		if !strings.Contains(metrics, want) {
			t.Errorf("metrics lack %q", want)
		}
	}
	promtool := testkit.Tool(t, "promtool")
	check := exec.Command(promtool, "check", "metrics")
	check.Stdin = strings.NewReader(metrics)
	if out, err := check.CombinedOutput(); err != nil {
		t.Errorf("promtool check metrics: %v\n%s", err, out)
	}
	d.stop()
}

func TestSubmissionRefusalsWithSwaks(t *testing.T) {
	dir := t.TempDir()
	mx := startMX(t)
	strict := freePort(t)
	d := startDrover(t, dir, fmt.Sprintf(`limits:
  max_message_size: 20KB
  max_recipients: 2
senders:
  default:
    from_domains: [sender.test]
  other:
    from_domains: ["*"]
routes:
  "*": %q
`, mx.Addr))
	// A second listener without a loopback sender: nobody may relay.
	cfg, _ := os.ReadFile(d.cfgPath)
	cfg = []byte(strings.Replace(string(cfg), "listeners:\n", fmt.Sprintf("listeners:\n  - {address: %q, mode: starttls}\n", strict), 1))
	os.WriteFile(d.cfgPath, cfg, 0o600)
	d.stop()
	d.start()

	cases := []struct {
		name string
		args []string
		want string
	}{
		{"open relay attempt", []string{"--server", strict, "--from", "a@sender.test", "--to", "x@dest.test"}, "530 5.7.0"},
		{"foreign envelope domain", []string{"--server", d.smtp, "--from", "ceo@bank.example", "--to", "x@dest.test"}, "550 5.7.1"},
		{"foreign From header", []string{"--server", d.smtp, "--from", "a@sender.test", "--h-From", "ceo@bank.example", "--to", "x@dest.test"}, "550 5.7.1"},
		{"oversize", []string{"--server", d.smtp, "--from", "a@sender.test", "--to", "x@dest.test", "--body", strings.Repeat("0123456789abcdef\n", 2000)}, "552 5.3.4"},
		{"too many recipients", []string{"--server", d.smtp, "--from", "a@sender.test", "--to", "x@dest.test,y@dest.test,z@dest.test"}, "452 4.5.3"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if out := swaks(t, tc.args...); !strings.Contains(out, "<** "+tc.want) && !strings.Contains(out, "<~* "+tc.want) {
				t.Errorf("swaks output lacks %q:\n%s", tc.want, out)
			}
		})
	}
	// No sender has a login: AUTH is not offered (TestAuthGuessingWithSwaks
	// tries passwords).
	out := swaks(t, "--server", strict, "--from", "a@sender.test", "--to", "x@dest.test", "--auth", "PLAIN", "--auth-user", "nobody", "--auth-password", "x", "-tls")
	if !strings.Contains(out, "Host did not advertise authentication") {
		t.Errorf("AUTH offered without logins:\n%s", out)
	}
	// Only the first two recipients of the too-many case were accepted:
	// once that message is delivered and the spool is empty, the MX has
	// everything Drover queued.
	mx.Wait(t, 1, 10*time.Second)
	testkit.WaitFor(t, 10*time.Second, "an empty spool", func() bool { return strings.Contains(d.metrics(t), "\ndrover_queue_messages 0\n") })
	for _, m := range mx.Transactions() {
		if m.From != "a@sender.test" || strings.Join(m.Rcpts, ",") != "x@dest.test,y@dest.test" {
			t.Errorf("refused mail was delivered: %q -> %q", m.From, m.Rcpts)
		}
	}
}

// SIGTERM: acknowledged mail survives a clean stop and is delivered after
// the restart.
func TestSIGTERMKeepsQueuedMail(t *testing.T) {
	dir := t.TempDir()
	dead := freePort(t) // nothing listens: every delivery defers
	d := startDrover(t, dir, fmt.Sprintf("shaping:\n  default:\n    retry_interval: 1s\n    max_retry_interval: 1s\nroutes:\n  \"*\": %q\n", dead))
	const n = 20
	for i := 0; i < n; i++ {
		if err := smtp.SendMail(d.smtp, nil, "a@sender.test", []string{fmt.Sprintf("r%d@dest.test", i)},
			[]byte(fmt.Sprintf("From: a@sender.test\r\nSubject: %d\r\n\r\nbody\r\n", i))); err != nil {
			t.Fatal(err)
		}
	}
	d.stop()
	mx := startMX(t)
	cfg, _ := os.ReadFile(d.cfgPath)
	os.WriteFile(d.cfgPath, []byte(strings.Replace(string(cfg), dead, mx.Addr, 1)), 0o600)
	d.start()
	mx.Wait(t, n, 30*time.Second)
	d.stop()
}

// SIGTERM while a delivery outlasts the drain: drover interrupts it, says
// so, exits 0, and the recipient is delivered after the restart.
func TestSIGTERMInterruptsLongDelivery(t *testing.T) {
	dir := t.TempDir()
	hang := make(chan struct{})
	inData := make(chan struct{}, 1)
	slow := testkit.StartMX(t, testkit.MXOptions{Answer: func(c testkit.Command) error {
		if c.Verb == "DATA" {
			select {
			case inData <- struct{}{}:
			default:
			}
			<-hang
		}
		return testkit.Cues(c)
	}})
	t.Cleanup(func() { close(hang) })
	d := startDrover(t, dir, fmt.Sprintf("queue:\n  drain_timeout: 1s\nshaping:\n  default:\n    retry_interval: 1s\n    max_retry_interval: 1s\nroutes:\n  \"*\": %q\n", slow.Addr))
	if err := smtp.SendMail(d.smtp, nil, "a@sender.test", []string{"r@dest.test"},
		[]byte("From: a@sender.test\r\nSubject: slow\r\n\r\nbody\r\n")); err != nil {
		t.Fatal(err)
	}
	select {
	case <-inData:
	case <-time.After(30 * time.Second):
		t.Fatal("the delivery did not reach DATA")
	}
	d.stop() // fails on a non-zero exit
	if !strings.Contains(d.out.String(), "interrupted") {
		t.Errorf("the log does not say the delivery was interrupted:\n%s", d.out.String())
	}
	mx := startMX(t)
	cfg, _ := os.ReadFile(d.cfgPath)
	os.WriteFile(d.cfgPath, []byte(strings.Replace(string(cfg), slow.Addr, mx.Addr, 1)), 0o600)
	d.start()
	mx.Wait(t, 1, 30*time.Second)
	d.stop()
}

// kill -9 under load: every message that got a 250 is delivered after the
// restart. smtp-source loads Drover; Postfix's smtp-sink counts at the far
// end.
func TestKill9LosesNothingAcknowledged(t *testing.T) {
	source := testkit.Tool(t, "smtp-source")
	dir := t.TempDir()
	sinkAddr, dump := testkit.StartSmtpSink(t, true)
	d := startDrover(t, dir, fmt.Sprintf("shaping:\n  default:\n    retry_interval: 1s\n    max_retry_interval: 2s\nroutes:\n  \"*\": %q\n", sinkAddr))

	// Our own acknowledged-set client: 10 sessions, each recording the
	// recipients that got a 250 to DATA, until the kill.
	const sessions, perSession = 10, 400
	acked := make(chan string, sessions*perSession)
	stop := make(chan struct{})
	done := make(chan struct{})
	for s := 0; s < sessions; s++ {
		go func(s int) {
			defer func() { done <- struct{}{} }()
			c, err := smtp.Dial(d.smtp)
			if err != nil {
				return
			}
			defer c.Close()
			for i := 0; i < perSession; i++ {
				select {
				case <-stop:
					return
				default:
				}
				rcpt := fmt.Sprintf("s%dm%d@dest.example", s, i)
				if c.Mail("load@sender.example") != nil || c.Rcpt(rcpt) != nil {
					return
				}
				w, err := c.Data()
				if err != nil {
					return
				}
				fmt.Fprintf(w, "From: load@sender.example\r\nSubject: %s\r\n\r\n%s\r\n", rcpt, strings.Repeat("x", 2000))
				if w.Close() != nil {
					return
				}
				acked <- rcpt
			}
		}(s)
	}
	// smtp-source adds concurrent load from a real client meanwhile.
	src := exec.Command(source, "-s", "10", "-m", "2000", "-l", "5000", "-f", "src@sender.example", "-t", "src@dest.example", d.smtp)
	src.Start()
	testkit.WaitFor(t, 60*time.Second, "load to build up", func() bool { return len(acked) >= sessions*perSession/3 })
	d.kill()
	close(stop)
	for s := 0; s < sessions; s++ {
		<-done
	}
	src.Process.Kill()
	src.Wait()
	close(acked)
	want := map[string]bool{}
	for r := range acked {
		want[r] = true
	}

	d.start()
	testkit.WaitFor(t, 120*time.Second, "every acknowledged message at the sink", func() bool {
		got := sinkRecipients(dump)
		for r := range want {
			if got[r] == 0 {
				return false
			}
		}
		return true
	})
	got := sinkRecipients(dump)
	dups := 0
	for r := range want {
		dups += got[r] - 1
	}
	t.Logf("acknowledged %d, duplicates %d (deliveries in flight at the kill)", len(want), dups)
	if dups > sessions*10 {
		t.Errorf("%d duplicates: more than the deliveries in flight", dups)
	}
	d.stop()
}

// sinkRecipients counts the recipients in smtp-sink's -D dump.
func sinkRecipients(path string) map[string]int {
	got := map[string]int{}
	f, err := os.Open(path)
	if err != nil {
		return got
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), "X-Rcpt-Args: <"); ok {
			if i := strings.IndexByte(rest, '>'); i > 0 {
				got[rest[:i]]++
			}
		}
	}
	return got
}

func TestConfigCheck(t *testing.T) {
	dir := t.TempDir()
	good := filepath.Join("..", "..", "configs", "drover.example.yaml")
	if out, err := exec.Command(droverBin, "config", "check", good).CombinedOutput(); err != nil {
		t.Errorf("example config: %v\n%s", err, out)
	}
	bad := filepath.Join(dir, "bad.yaml")
	os.WriteFile(bad, []byte("hostname: x.test\nqueue:\n  max_age: 5d\n  retry_intervl: 1m\n"), 0o600)
	out, err := exec.Command(droverBin, "config", "check", bad).CombinedOutput()
	if err == nil || !strings.Contains(string(out), "line 4: queue.retry_intervl: unknown key") {
		t.Errorf("bad config: %v\n%s", err, out)
	}
	bad2 := filepath.Join(dir, "bad2.yaml")
	os.WriteFile(bad2, []byte("listeners: [{address: 127.0.0.1:2525, mode: plain}]\nsenders:\n  s:\n    from_domains: [a.test]\n    dkim:\n      - {domain: a.test, selector: x, key_file: /nonexistent.pem}\n"), 0o600)
	out, err = exec.Command(droverBin, "config", "check", bad2).CombinedOutput()
	if err == nil || !strings.Contains(string(out), "line 6: senders.s.dkim[0].key_file") {
		t.Errorf("missing DKIM key: %v\n%s", err, out)
	}
	bad3 := filepath.Join(dir, "bad3.yaml")
	os.WriteFile(bad3, []byte("shaping:\n  domains:\n    a.test: {pool: nope}\n"), 0o600)
	out, err = exec.Command(droverBin, "config", "check", bad3).CombinedOutput()
	if err == nil || !strings.Contains(string(out), `line 3: shaping.domains.a.test.pool: no pool named "nope"`) {
		t.Errorf("unknown pool: %v\n%s", err, out)
	}

	// What serve would refuse: a port out of range, a placeholder hash.
	bad5 := filepath.Join(dir, "bad5.yaml")
	os.WriteFile(bad5, []byte("listeners: [{address: 127.0.0.1:99999, mode: plain}]\nsenders:\n  s:\n    login: s\n    password_hash: \"$2a$10$...\"\n    from_domains: [a.test]\n"), 0o600)
	out, err = exec.Command(droverBin, "config", "check", bad5).CombinedOutput()
	if err == nil || !strings.Contains(string(out), "listeners[0].address") || !strings.Contains(string(out), "senders.s.password_hash") {
		t.Errorf("port 99999 and placeholder hash: %v\n%s", err, out)
	}

	// serve refuses the same file with the same errors, each naming the
	// file, the key and its line.
	bad4 := filepath.Join(dir, "bad4.yaml")
	os.WriteFile(bad4, []byte("routes:\n  \"a..test\": h\nshaping:\n  default:\n    max_message_rate: fast\n  rules:\n    - {name: x, code: 250, action: none}\n"), 0o600)
	check, err := exec.Command(droverBin, "config", "check", bad4).CombinedOutput()
	if err == nil {
		t.Fatalf("config check: no error\n%s", check)
	}
	serve := exec.Command(droverBin, "serve", "-c", bad4)
	serve.Dir = dir
	served, err := serve.CombinedOutput()
	if err == nil {
		t.Fatalf("serve: no error\n%s", served)
	}
	if !bytes.Equal(check, served) {
		t.Errorf("config check says\n%s\nserve says\n%s", check, served)
	}
	for _, want := range []string{
		bad4 + ": line 2: routes.a..test: pattern: not a domain\n",
		"\nline 5: shaping.default.max_message_rate: rate \"fast\"",
		"\nline 7: shaping.rules[0].code: 250 is not a 4xx or 5xx reply code\n",
	} {
		if !strings.Contains(string(check), want) {
			t.Errorf("config check says\n%s\nwant %q", check, want)
		}
	}
}

// `drover passwd` prints a bcrypt hash of the password read on stdin.
func TestPasswd(t *testing.T) {
	cmd := exec.Command(droverBin, "passwd")
	cmd.Stdin = strings.NewReader("s3cret\n")
	out, err := cmd.Output()
	if err != nil {
		t.Fatal(err)
	}
	if err := bcrypt.CompareHashAndPassword(bytes.TrimSpace(out), []byte("s3cret")); err != nil {
		t.Errorf("hash %q: %v", out, err)
	}
	cmd = exec.Command(droverBin, "passwd")
	cmd.Stdin = strings.NewReader("\n")
	if out, err := cmd.CombinedOutput(); err == nil || !strings.Contains(string(out), "empty password") {
		t.Errorf("empty password: %v %s", err, out)
	}
}

// `drover bounce classify` prints the score contract's JSON line per
// recipient, takes an mbox "From " line and CRLF, and prints nothing for a
// message that is no bounce.
func TestBounceClassifyCommand(t *testing.T) {
	raw, err := os.ReadFile("../../bounce/testdata/corpus/emails/lhost-postfix-02.eml")
	if err != nil {
		t.Fatal(err)
	}
	crlf := bytes.ReplaceAll(bytes.ReplaceAll(raw, []byte("\r\n"), []byte("\n")), []byte("\n"), []byte("\r\n"))
	for name, in := range map[string][]byte{"LF": raw, "CRLF": crlf} {
		cmd := exec.Command(droverBin, "bounce", "classify")
		cmd.Stdin = bytes.NewReader(in)
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		lines := bytes.Split(bytes.TrimSpace(out), []byte("\n"))
		if len(lines) != 2 {
			t.Fatalf("%s: %d lines, want one per recipient (2):\n%s", name, len(lines), out)
		}
		var got map[string]any
		if err := json.Unmarshal(lines[0], &got); err != nil {
			t.Fatalf("%s: %q: %v", name, out, err)
		}
		if got["recipient"] != "filtered@example.co.jp" || got["reason"] != "userunknown" || got["class"] != "hard" || got["status"] != "5.2.1" || got["category"] != "bad-mailbox" {
			t.Errorf("%s: %v", name, got)
		}
	}
	cmd := exec.Command(droverBin, "bounce", "classify")
	cmd.Stdin = strings.NewReader("From: a@b.example\r\nSubject: hello\r\n\r\njust mail\r\n")
	if out, err := cmd.Output(); err != nil || len(bytes.TrimSpace(out)) != 0 {
		t.Errorf("not a bounce: %v %q", err, out)
	}
	// A file named on the command line, as a person types it; the keys are
	// snake_case.
	out, err := exec.Command(droverBin, "bounce", "classify", "../../bounce/testdata/corpus/emails/lhost-postfix-02.eml").Output()
	if err != nil || bytes.Count(out, []byte("\n")) != 2 || !bytes.Contains(out, []byte(`"reply_code":`)) {
		t.Errorf("bounce classify FILE: %v\n%s", err, out)
	}
	if out, err := exec.Command(droverBin, "bounce", "classify", "/nonexistent.eml").CombinedOutput(); err == nil || !strings.Contains(string(out), "/nonexistent.eml") {
		t.Errorf("bounce classify of a missing file: %v %s", err, out)
	}
}

// drover version names the build: the source revision when the binary was
// built in a git checkout, and the Go version.
func TestVersion(t *testing.T) {
	out, err := exec.Command(droverBin, "version").CombinedOutput()
	if err != nil || !strings.HasPrefix(string(out), "drover ") || !strings.Contains(string(out), "go1.") {
		t.Fatalf("drover version: %v\n%s", err, out)
	}
	out, err = exec.Command(droverBin, "version", "--json").Output()
	var v struct{ Version, Revision, Go string }
	if err != nil || json.Unmarshal(out, &v) != nil || v.Version == "" || !strings.HasPrefix(v.Go, "go1.") {
		t.Fatalf("drover version --json: %v\n%s", err, out)
	}
	if _, err := exec.Command("git", "rev-parse", "HEAD").Output(); err == nil && v.Revision == "" {
		t.Errorf("built in a git checkout, but version names no revision: %s", out)
	}
}
