package main

import (
	"fmt"
	"net/smtp"
	"os"
	"slices"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	gosmtp "github.com/emersion/go-smtp"

	"drover/testkit"
)

func submit(t *testing.T, d *drover, n int, rcpt func(i int) string) {
	t.Helper()
	c, err := smtp.Dial(d.smtp)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Quit()
	for i := 0; i < n; i++ {
		if err := c.Mail("a@sender.test"); err != nil {
			t.Fatal(err)
		}
		if err := c.Rcpt(rcpt(i)); err != nil {
			t.Fatal(err)
		}
		w, err := c.Data()
		if err != nil {
			t.Fatal(err)
		}
		fmt.Fprintf(w, "From: a@sender.test\r\nSubject: %d\r\n\r\nbody\r\n", i)
		if err := w.Close(); err != nil {
			t.Fatal(err)
		}
	}
}

// A site's connection and message-rate limits hold at a fake MX that
// counts parallel sessions and stamps every message, across two domains
// routed to the same place (one site).
func TestShapingLimitsHold(t *testing.T) {
	mx := startMX(t)
	d := startDrover(t, t.TempDir(), fmt.Sprintf(`shaping:
  sites:
    "route:%s":
      max_connections: 2
      max_messages_per_connection: 3
      max_message_rate: 10/s
routes:
  "*.test": %q
`, mx.Addr, mx.Addr))
	const n = 30
	submit(t, d, n, func(i int) string { return fmt.Sprintf("r%d@%s.test", i, []string{"one", "two"}[i%2]) })
	mx.Wait(t, n, 30*time.Second)

	if maxActive := mx.MaxActive(); maxActive > 2 {
		t.Errorf("%d parallel sessions, limit 2", maxActive)
	}
	var at []time.Time
	for _, m := range mx.Transactions() {
		at = append(at, m.At)
	}
	slices.SortFunc(at, func(a, b time.Time) int { return a.Compare(b) })
	// 10/s with a burst of 1: any 11 consecutive messages span at least 1 s
	// (less a scheduling tolerance).
	for i := 10; i < len(at); i++ {
		if span := at[i].Sub(at[i-10]); span < 900*time.Millisecond {
			for j := 1; j < len(at); j++ {
				t.Logf("gap %d: %v", j, at[j].Sub(at[j-1]))
			}
			t.Fatalf("messages %d..%d within %v: rate above 10/s", i-10, i, span)
		}
	}
	d.stop()
}

// A fake MX starts answering Gmail's 421 4.7.28 throttling reply: the site
// is slowed (queue ls shows it), then returns to normal after the rule's
// time and delivers everything.
func TestAdaptiveBackoff(t *testing.T) {
	var throttle atomic.Bool // answer MAIL with Gmail's 421 throttling reply
	throttle.Store(true)
	mx := testkit.StartMX(t, testkit.MXOptions{DSN: true, Answer: func(c testkit.Command) error {
		if c.Verb == "MAIL" && throttle.Load() {
			return &gosmtp.SMTPError{Code: 421, EnhancedCode: gosmtp.EnhancedCode{4, 7, 28}, Message: "[127.0.0.1] Our system has detected an unusual rate of unsolicited mail originating from your IP address."}
		}
		return testkit.Cues(c)
	}})
	d := startDrover(t, t.TempDir(), fmt.Sprintf(`shaping:
  default:
    retry_interval: 1s
    max_retry_interval: 1s
  rules:
    - name: google-4.7.28
      status: "4.7.28"
      action: slow
      factor: 0.25
      duration: 3s
routes:
  "*.test": %q
`, mx.Addr))
	submit(t, d, 4, func(i int) string { return fmt.Sprintf("r%d@dest.test", i) })
	testkit.WaitFor(t, 10*time.Second, "the site to be slowed", func() bool {
		ls, _ := d.cli("queue", "ls", "--config", d.cfgPath)
		return strings.Contains(ls, "slowed") && strings.Contains(ls, "google-4.7.28")
	})
	metrics := d.metrics(t)
	if !strings.Contains(metrics, "drover_site_factor") {
		t.Errorf("site state not in metrics")
	}
	throttle.Store(false)
	mx.Wait(t, 4, 30*time.Second)
	testkit.WaitFor(t, 10*time.Second, "the site back to normal", func() bool {
		ls, _ := d.cli("queue", "ls", "--config", d.cfgPath)
		return !strings.Contains(ls, "slowed")
	})
	d.stop()
}

// Operators hold a domain, see what is queued, bounce or delete it with a
// dry run first, and release the rest.
func TestQueueControl(t *testing.T) {
	mx := startMX(t)
	d := startDrover(t, t.TempDir(), fmt.Sprintf("routes:\n  \"*.test\": %q\n", mx.Addr))
	run := func(args ...string) string {
		t.Helper()
		out, err := d.cli(append(args, "--config", d.cfgPath)...)
		if err != nil {
			t.Fatalf("drover %v: %v\n%s", args, err, out)
		}
		return out
	}
	run("queue", "suspend", "--domain", "held.test", "--for", "1h", "--reason", "maintenance")
	if out := run("queue", "suspensions"); !strings.Contains(out, "domain") || !strings.Contains(out, "held.test") || !strings.Contains(out, "maintenance") {
		t.Errorf("queue suspensions:\n%s", out)
	}
	submit(t, d, 6, func(i int) string { return fmt.Sprintf("r%d@held.test", i) })
	// The held recipients are due and in memory, where a worker would
	// take them: from here on they would be on their way to the MX.
	const held = `drover_queue_recipients{state="ready"} 6`
	testkit.WaitFor(t, 10*time.Second, "the held recipients to be ready", func() bool { return strings.Contains(d.metrics(t), held) })
	// A message for another domain goes all the way to the same MX after
	// that; the held ones are still where they were.
	submit(t, d, 1, func(i int) string { return "free@open.test" })
	mx.Wait(t, 1, 10*time.Second)
	if got := len(mx.Transactions()); got != 1 {
		t.Fatalf("%d messages delivered while held.test was suspended", got)
	}
	if m := d.metrics(t); !strings.Contains(m, held) {
		t.Errorf("held recipients not waiting:\n%s", m)
	}
	if ls := run("queue", "ls", "--by", "domain"); !strings.Contains(ls, "held.test") || !strings.Contains(ls, "6") {
		t.Errorf("queue ls --by domain:\n%s", ls)
	}
	if out := run("queue", "delete", "--domain", "held.test", "--dry-run"); !strings.Contains(out, "6 recipients would be affected") {
		t.Errorf("dry run: %s", out)
	}
	if ls := run("queue", "ls", "--by", "domain"); !strings.Contains(ls, "held.test") {
		t.Errorf("dry run changed the queue:\n%s", ls)
	}
	if out := run("queue", "bounce", "--domain", "held.test", "--sender", "nobody"); !strings.Contains(out, "0 recipients affected") {
		t.Errorf("bounce of an unmatched sender: %s", out)
	}
	run("queue", "resume", "--domain", "held.test")
	run("queue", "flush", "--domain", "held.test")
	mx.Wait(t, 7, 20*time.Second)
	if out, err := d.cli("queue", "bounce", "--config", d.cfgPath); err == nil || !strings.Contains(out, "at least one of") {
		t.Errorf("bounce without a selector: %v %s", err, out)
	}
	d.stop()
}

// SIGHUP applies new shaping without dropping an open session; a bad file
// is refused and the running configuration stays.
func TestReloadOnSIGHUP(t *testing.T) {
	mx := startMX(t)
	d := startDrover(t, t.TempDir(), fmt.Sprintf("routes:\n  \"*.test\": %q\n", mx.Addr))
	c, err := smtp.Dial(d.smtp)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.Hello("client.test"); err != nil {
		t.Fatal(err)
	}
	good, _ := os.ReadFile(d.cfgPath)

	os.WriteFile(d.cfgPath, append(good, []byte("shaping:\n  default:\n    max_connections: 0\n")...), 0o600)
	d.cmd.Process.Signal(syscall.SIGHUP)
	d.out.WaitFor(t, 5*time.Second, "reload refused")
	if !strings.Contains(d.out.String(), "max_connections") {
		t.Errorf("refusal does not name the key:\n%s", d.out.String())
	}

	os.WriteFile(d.cfgPath, append(good, []byte("shaping:\n  default:\n    max_connections: 3\n")...), 0o600)
	d.cmd.Process.Signal(syscall.SIGHUP)
	d.out.WaitFor(t, 5*time.Second, "configuration reloaded")

	// The session opened before both reloads still works.
	if err := c.Mail("a@sender.test"); err != nil {
		t.Fatalf("session dropped by reload: %v", err)
	}
	c.Rcpt("x@dest.test")
	w, _ := c.Data()
	fmt.Fprint(w, "From: a@sender.test\r\n\r\nafter reload\r\n")
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	mx.Wait(t, 1, 10*time.Second)
	d.stop()
}
