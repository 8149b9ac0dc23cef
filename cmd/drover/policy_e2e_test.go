package main

import (
	"fmt"
	"net"
	"net/textproto"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-smtp"

	"drover/mta/resolve/dnstest"
	"drover/testkit"
)

// smtpTalk is an SMTP client that says what it is told, MAIL parameters
// included, and returns each reply as "CODE TEXT".
type smtpTalk struct {
	t *testing.T
	c *textproto.Conn
}

func dialSMTP(t *testing.T, addr string) *smtpTalk {
	t.Helper()
	conn, err := net.DialTimeout("tcp", addr, 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	conn.SetDeadline(time.Now().Add(60 * time.Second))
	s := &smtpTalk{t: t, c: textproto.NewConn(conn)}
	t.Cleanup(func() { s.c.Close() })
	s.reply()
	s.cmd("EHLO app.test")
	return s
}

func (s *smtpTalk) reply() string {
	s.t.Helper()
	code, msg, err := s.c.ReadResponse(0)
	if err != nil && code == 0 {
		s.t.Fatal(err)
	}
	return fmt.Sprintf("%d %s", code, strings.ReplaceAll(msg, "\n", " "))
}

func (s *smtpTalk) cmd(format string, args ...any) string {
	s.t.Helper()
	if err := s.c.PrintfLine(format, args...); err != nil {
		s.t.Fatal(err)
	}
	return s.reply()
}

// send makes one transaction: MAIL with params, the recipients, and the
// message when one was accepted; it returns the RCPT replies and DATA's.
func (s *smtpTalk) send(from, params string, rcpts []string, msg string) ([]string, string) {
	s.t.Helper()
	if r := s.cmd("MAIL FROM:<%s>%s", from, params); !strings.HasPrefix(r, "250") {
		s.t.Fatalf("MAIL: %s", r)
	}
	var replies []string
	ok := false
	for _, r := range rcpts {
		rep := s.cmd("RCPT TO:<%s>", r)
		replies = append(replies, rep)
		ok = ok || strings.HasPrefix(rep, "250")
	}
	if !ok {
		s.cmd("RSET")
		return replies, ""
	}
	if r := s.cmd("DATA"); !strings.HasPrefix(r, "354") {
		s.t.Fatalf("DATA: %s", r)
	}
	w := s.c.DotWriter()
	w.Write([]byte(strings.ReplaceAll(msg, "\r\n", "\n")))
	w.Close()
	return replies, s.reply()
}

// rcptReply is the reply to RCPT for addr in a transaction with params,
// which it then resets.
func (s *smtpTalk) rcptReply(params, addr string) string {
	s.t.Helper()
	s.cmd("MAIL FROM:<news@shop.test>%s", params)
	r := s.cmd("RCPT TO:<%s>", addr)
	s.cmd("RSET")
	return r
}

func marketing(to, campaign string) string {
	return "From: news@shop.test\r\nTo: " + to + "\r\nSubject: news\r\nX-Drover-Campaign: " + campaign + "\r\n\r\nSpring is here.\r\n"
}

// event waits for a mail log line of kind whose fields include want.
func (d *drover) event(t *testing.T, kind string, want map[string]any) map[string]any {
	t.Helper()
	var found []map[string]any
	testkit.WaitFor(t, 20*time.Second, fmt.Sprintf("a %s event %v", kind, want), func() bool {
		found = d.events(kind, want)
		return len(found) > 0
	})
	return found[0]
}

// events are the mail log lines of kind whose fields include want.
func (d *drover) events(kind string, want map[string]any) []map[string]any {
	var out []map[string]any
	for _, ev := range d.mailLog() {
		match := ev["event"] == kind
		for k, v := range want {
			match = match && ev[k] == v
		}
		if match {
			out = append(out, ev)
		}
	}
	return out
}

var (
	linkRE   = regexp.MustCompile(`List-Unsubscribe: <(http://[^>]+)>,\s*<mailto:([^?>]+)\?subject=([^>]+)>`)
	dkimHRE  = regexp.MustCompile(`(?s)DKIM-Signature:.*?\bh=([^;]+);`)
	spacesRE = regexp.MustCompile(`\s+`)
)

// hygieneMX refuses "moved" recipients (551 5.1.6: a hard bounce that is
// not proof the mailbox never existed), "full" ones (552 5.2.2: soft) and
// "gone" ones (550 5.1.1: no such user), and accepts the rest.
func hygieneMX(t *testing.T) *testkit.MX {
	return testkit.StartMX(t, testkit.MXOptions{Name: "mx.dest.test", DSN: true, Answer: func(c testkit.Command) error {
		if c.Verb == "RCPT" {
			switch {
			case strings.HasPrefix(c.Arg, "moved"):
				return &smtp.SMTPError{Code: 551, EnhancedCode: smtp.EnhancedCode{5, 1, 6}, Message: "Recipient has moved; no forwarding address"}
			case strings.HasPrefix(c.Arg, "full"):
				return &smtp.SMTPError{Code: 552, EnhancedCode: smtp.EnhancedCode{5, 2, 2}, Message: "Mailbox full"}
			case strings.HasPrefix(c.Arg, "gone"):
				return &smtp.SMTPError{Code: 550, EnhancedCode: smtp.EnhancedCode{5, 1, 1}, Message: "no such user"}
			}
		}
		return testkit.Cues(c)
	}})
}

// List hygiene through the real binary, a fake MX, the inbound listener
// and the public web listener: a one-click unsubscribe made as a mailbox
// provider makes it (curl, no cookies) refuses the next RCPT, across a
// restart; the delivered message's List-Unsubscribe fields are in its
// DKIM signature, which Mail::DKIM and dkimpy verify; three hard bounces
// across three campaigns make a confirmed bounce, soft bounces never do,
// and "no such user" does at once; a feedback report suppresses for its
// sender; the mailto link unsubscribes; five marketing messages without
// engagement sunset the address.
func TestListHygieneEndToEnd(t *testing.T) {
	dir := t.TempDir()
	out, err := exec.Command(droverBin, "dkim", "keygen", "--domain", "shop.test", "--selector", "r2026",
		"--algo", "rsa", "--out", filepath.Join(dir, "r2026.pem")).Output()
	if err != nil {
		t.Fatal(err)
	}
	dns := dnstest.Start(t, "test. 3600 IN SOA ns.test. hostmaster.test. 1 3600 600 86400 60\n"+strings.TrimSpace(string(out))+"\n")
	mx := hygieneMX(t)
	inbound, web := freePort(t), freePort(t)
	d := startDrover(t, dir, fmt.Sprintf(`bounces:
  inbound_address: %q
web:
  address: %q
  base_url: http://%s
senders:
  default:
    from_domains: [shop.test]
    bounce_domain: bounce.shop.test
    dsn: false
    sunset_after: 5
    dkim:
      - {domain: shop.test, selector: r2026, key_file: %s}
routes:
  "*.test": %q
`, inbound, web, web, filepath.Join(dir, "r2026.pem"), mx.Addr))
	c := dialSMTP(t, d.smtp)
	list := " X-DROVER-LIST=spring-news"

	// A marketing message carries its recipient's links, signed.
	if _, r := c.send("news@shop.test", list, []string{"reader@dest.test"}, marketing("reader@dest.test", "c0")); !strings.HasPrefix(r, "250") {
		t.Fatalf("DATA: %s", r)
	}
	msg := string(mx.Wait(t, 1, 20*time.Second)[0].Data)
	unfolded := strings.ReplaceAll(msg, "\r\n\t", " ")
	unfolded = strings.ReplaceAll(unfolded, "\r\n ", " ")
	m := linkRE.FindStringSubmatch(unfolded)
	if m == nil || !strings.Contains(msg, "\r\nList-Unsubscribe-Post: List-Unsubscribe=One-Click\r\n") {
		t.Fatalf("no List-Unsubscribe links:\n%s", msg)
	}
	webURL, mailto := m[1], m[2]
	if !strings.HasPrefix(webURL, "http://"+web+"/u/") || mailto != "unsubscribe@bounce.shop.test" || strings.Contains(webURL, "reader") {
		t.Errorf("links %q %q", webURL, mailto)
	}
	h := dkimHRE.FindStringSubmatch(msg)
	if h == nil {
		t.Fatalf("no DKIM h= tag:\n%s", msg)
	}
	tags := strings.Split(strings.ToLower(spacesRE.ReplaceAllString(h[1], "")), ":")
	if !contains(tags, "list-unsubscribe") || !contains(tags, "list-unsubscribe-post") {
		t.Errorf("h=%s lacks the List-Unsubscribe fields", h[1])
	}
	verifyDKIM(t, dns.Addr, filepath.Join(dir, "delivered.eml"), msg)

	// One-click, as a mailbox provider makes it.
	curl := testkit.Tool(t, "curl")
	code, err := exec.Command(curl, "-sS", "-o", "/dev/null", "-w", "%{http_code}", "-d", "List-Unsubscribe=One-Click", webURL).Output()
	if err != nil || string(code) != "200" {
		t.Fatalf("one-click POST: %s %v", code, err)
	}
	want := "550 5.7.1 Recipient unsubscribed from list spring-news"
	if r := c.rcptReply(list, "reader@dest.test"); r != want {
		t.Errorf("RCPT after the unsubscribe: %q, want %q", r, want)
	}
	if r := c.rcptReply(" X-DROVER-LIST=autumn", "Reader@Dest.test"); !strings.HasPrefix(r, "250") {
		t.Errorf("another list: %q", r)
	}
	d.event(t, "unsubscribed", map[string]any{"rcpt": "reader@dest.test", "list": "spring-news", "scope": "list"})

	// Across a restart.
	c.cmd("QUIT")
	d.stop()
	d.start()
	c = dialSMTP(t, d.smtp)
	if r := c.rcptReply(list, "READER@dest.test"); r != want {
		t.Errorf("RCPT after a restart: %q, want %q", r, want)
	}

	// Three hard bounces in a row, across three campaigns: a confirmed
	// bounce. Soft bounces never are; "no such user" is at once.
	for i := 1; i <= 3; i++ {
		camp := fmt.Sprint("c", i)
		if _, r := c.send("news@shop.test", "", []string{"moved@dest.test", "full@dest.test"}, marketing("moved@dest.test", camp)); !strings.HasPrefix(r, "250") {
			t.Fatalf("campaign %s: %s", camp, r)
		}
		d.event(t, "bounced", map[string]any{"rcpt": "moved@dest.test", "campaign": camp, "class": "hard"})
		d.event(t, "bounced", map[string]any{"rcpt": "full@dest.test", "campaign": camp, "class": "soft"})
		if i < 3 {
			if r := c.rcptReply("", "moved@dest.test"); !strings.HasPrefix(r, "250") {
				t.Fatalf("after %d hard bounces: %q", i, r)
			}
		}
	}
	d.event(t, "confirmed-bounce", map[string]any{"rcpt": "moved@dest.test", "scope": "global"})
	if r := c.rcptReply("", "moved@dest.test"); r != "550 5.7.1 Recipient address is suppressed for all senders: it hard-bounced (confirmed bounce)" {
		t.Errorf("RCPT of a confirmed bounce: %q", r)
	}
	if r := c.rcptReply(" X-DROVER-STREAM=transactional", "moved@dest.test"); !strings.HasPrefix(r, "550 5.7.1") {
		t.Errorf("transactional mail to a confirmed bounce: %q", r)
	}
	if r := c.rcptReply("", "full@dest.test"); !strings.HasPrefix(r, "250") {
		t.Errorf("soft bounces suppressed: %q", r)
	}
	c.send("news@shop.test", "", []string{"gone@dest.test"}, marketing("gone@dest.test", "c4"))
	d.event(t, "confirmed-bounce", map[string]any{"rcpt": "gone@dest.test"})

	// An asynchronous hard bounce (a DSN to the VERP return path) counts
	// as one at delivery does: "no such user" confirms at once.
	returnPathOf := func(rcpt string) string {
		var rp string
		testkit.WaitFor(t, 20*time.Second, "the message to "+rcpt, func() bool {
			for _, tx := range mx.Transactions() {
				if tx.Rcpts[0] == rcpt {
					rp = tx.From
					return true
				}
			}
			return false
		})
		return rp
	}
	c.send("news@shop.test", "", []string{"later@dest.test"}, marketing("later@dest.test", "c4"))
	dsn := "From: MAILER-DAEMON@mx.dest.test\r\nSubject: Undelivered Mail Returned to Sender\r\nMIME-Version: 1.0\r\n" +
		"Content-Type: multipart/report; report-type=delivery-status; boundary=\"B\"\r\n\r\n" +
		"--B\r\nContent-Type: text/plain\r\n\r\nNo such user.\r\n" +
		"--B\r\nContent-Type: message/delivery-status\r\n\r\nReporting-MTA: dns; mx.dest.test\r\n\r\n" +
		"Final-Recipient: rfc822; later@dest.test\r\nAction: failed\r\nStatus: 5.1.1\r\n" +
		"Diagnostic-Code: smtp; 550 5.1.1 <later@dest.test>: Recipient address rejected: User unknown\r\n--B--\r\n"
	fbl := dialSMTP(t, inbound)
	if _, r := fbl.send("", "", []string{returnPathOf("later@dest.test")}, dsn); !strings.HasPrefix(r, "250") {
		t.Fatalf("DSN: %s", r)
	}
	d.event(t, "confirmed-bounce", map[string]any{"rcpt": "later@dest.test", "campaign": "c4"})

	// A feedback report through the inbound listener, naming the return
	// path the complained-about message had.
	c.send("news@shop.test", "", []string{"complainer@dest.test"}, marketing("complainer@dest.test", "c5"))
	returnPath := returnPathOf("complainer@dest.test")
	arf := "From: fbl@isp.test\r\nTo: fbl@bounce.shop.test\r\nSubject: report\r\nMIME-Version: 1.0\r\n" +
		"Content-Type: multipart/report; report-type=feedback-report; boundary=\"F\"\r\n\r\n" +
		"--F\r\nContent-Type: text/plain\r\n\r\nA complaint.\r\n" +
		"--F\r\nContent-Type: message/feedback-report\r\n\r\nFeedback-Type: abuse\r\nUser-Agent: isp/1.0\r\nVersion: 1\r\n" +
		"Original-Mail-From: <" + returnPath + ">\r\nOriginal-Rcpt-To: <complainer@dest.test>\r\n" +
		"--F\r\nContent-Type: message/rfc822\r\n\r\nFrom: news@shop.test\r\nTo: complainer@dest.test\r\nSubject: news\r\n\r\nSpring.\r\n--F--\r\n"
	if _, r := fbl.send("", "", []string{"fbl@bounce.shop.test"}, arf); !strings.HasPrefix(r, "250") {
		t.Fatalf("ARF: %s", r)
	}
	d.event(t, "complained", map[string]any{"rcpt": "complainer@dest.test", "sender": "default"})
	d.event(t, "suppression-added", map[string]any{"rcpt": "complainer@dest.test", "reason": "complaint"})
	if r := c.rcptReply(" X-DROVER-STREAM=transactional", "complainer@dest.test"); r != "550 5.7.1 Recipient complained about mail of sender default" {
		t.Errorf("RCPT after a complaint: %q", r)
	}

	// The mailto link, answered by a mailbox provider.
	c.send("news@shop.test", " X-DROVER-LIST=weekly", []string{"mailer@dest.test"}, marketing("mailer@dest.test", "c6"))
	var subject string
	testkit.WaitFor(t, 20*time.Second, "the message to mailer@", func() bool {
		for _, tx := range mx.Transactions() {
			if tx.Rcpts[0] == "mailer@dest.test" {
				u := strings.ReplaceAll(strings.ReplaceAll(string(tx.Data), "\r\n\t", " "), "\r\n ", " ")
				if m := linkRE.FindStringSubmatch(u); m != nil {
					subject = strings.ReplaceAll(m[3], "%20", " ")
				}
				return true
			}
		}
		return false
	})
	if _, r := fbl.send("mailer@dest.test", "", []string{"unsubscribe@bounce.shop.test"}, "From: mailer@dest.test\r\nSubject: "+subject+"\r\n\r\n"); !strings.HasPrefix(r, "250") {
		t.Fatalf("mailto unsubscribe: %s", r)
	}
	if r := c.rcptReply(" X-DROVER-LIST=weekly", "mailer@dest.test"); r != "550 5.7.1 Recipient unsubscribed from list weekly" {
		t.Errorf("RCPT after the mailto unsubscribe: %q", r)
	}

	// Sunsetting: the sixth marketing message to an address that engaged
	// with none of the last five is refused.
	for i := range 5 {
		if _, r := c.send("news@shop.test", "", []string{"lazy@dest.test"}, marketing("lazy@dest.test", fmt.Sprint("s", i))); !strings.HasPrefix(r, "250") {
			t.Fatalf("message %d to lazy@: %s", i+1, r)
		}
		d.event(t, "delivered", map[string]any{"rcpt": "lazy@dest.test", "campaign": fmt.Sprint("s", i)})
	}
	d.event(t, "suppression-added", map[string]any{"rcpt": "lazy@dest.test", "reason": "inactive"})
	if r := c.rcptReply("", "lazy@dest.test"); !strings.HasPrefix(r, "550 5.7.1 Recipient is suppressed for inactivity") {
		t.Errorf("RCPT after five without engagement: %q", r)
	}
	if r := c.rcptReply(" X-DROVER-STREAM=transactional", "lazy@dest.test"); !strings.HasPrefix(r, "250") {
		t.Errorf("transactional mail to an inactive address: %q", r)
	}

	// The metrics count the entries by scope and reason, and the refusals.
	metrics := d.metrics(t)
	for _, want := range []string{`drover_suppressions{reason="unsubscribed",scope="list"} 2`, `drover_suppressions{reason="confirmed-bounce",scope="global"} 3`,
		`drover_suppressions{reason="complaint",scope="sender"} 1`, `drover_suppressions{reason="inactive",scope="sender"} 1`,
		`drover_policy_refusals_total{reason="confirmed-bounce"} 2`, `drover_policy_refusals_total{reason="inactive"} 1`} {
		if !strings.Contains(metrics, want) {
			t.Errorf("metrics lack %q", want)
		}
	}
	check := exec.Command(testkit.Tool(t, "promtool"), "check", "metrics")
	check.Stdin = strings.NewReader(metrics)
	if out, err := check.CombinedOutput(); err != nil {
		t.Errorf("promtool check metrics: %v\n%s", err, out)
	}
	d.stop()
}

func contains(s []string, v string) bool {
	for _, x := range s {
		if x == v {
			return true
		}
	}
	return false
}

// verifyDKIM checks msg's RSA signature with Mail::DKIM and dkimpy.
func verifyDKIM(t *testing.T, dnsAddr, file, msg string) {
	t.Helper()
	os.WriteFile(file, []byte(msg), 0o600)
	_, dnsPort, _ := net.SplitHostPort(dnsAddr)
	for _, v := range []struct {
		name  string
		check []string
		cmd   []string
	}{
		{"Mail::DKIM", []string{"perl", "-MMail::DKIM::Verifier", "-e1"}, []string{"perl", "../../mta/dkim/testdata/verify.pl"}},
		{"dkimpy", []string{"/usr/bin/python3", "-c", "import dkim"}, []string{"/usr/bin/python3", "../../mta/dkim/testdata/verify.py"}},
	} {
		if err := exec.Command(v.check[0], v.check[1:]...).Run(); err != nil {
			if os.Getenv("CI") != "" {
				t.Fatalf("%s is not installed (.ci/run installs it)", v.name)
			}
			t.Logf("%s not installed; skipped", v.name)
			continue
		}
		out, err := exec.Command(v.cmd[0], append(v.cmd[1:], dnsPort, file)...).CombinedOutput()
		if err != nil || !strings.Contains(string(out), "a=rsa-sha256 d=shop.test s=r2026 result=pass") {
			t.Errorf("%s: %v\n%s", v.name, err, out)
		}
	}
}
