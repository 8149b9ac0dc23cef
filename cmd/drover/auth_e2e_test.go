package main

import (
	"fmt"
	"os/exec"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"

	"drover/testkit"
)

// Password guessing with real clients: swaks, one AUTH per connection,
// is slowed and then locked out per address; Python's smtplib, trying
// again in one session, is disconnected. Failures are logged and counted.
func TestAuthGuessingWithSwaks(t *testing.T) {
	hash, err := bcrypt.GenerateFromPassword([]byte("s3cret"), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	d := startDrover(t, t.TempDir(), fmt.Sprintf(`senders:
  default:
    from_domains: [sender.test]
  shop:
    login: shop
    password_hash: %q
    from_domains: [shop.test]
smtp:
  auth:
    slow_after: 2
    lockout_after: 3
    lockout: 1h
`, hash))
	auth := func(password string) (string, time.Duration) {
		start := time.Now()
		out := swaks(t, "--server", d.smtp, "--from", "a@shop.test", "--to", "x@dest.test", "--quit-after", "AUTH",
			"--auth", "PLAIN", "--auth-user", "shop", "--auth-password", password)
		return out, time.Since(start)
	}
	for i := 1; i <= 3; i++ {
		out, took := auth("guess")
		if !strings.Contains(out, "<** 535 5.7.8") {
			t.Fatalf("failure %d:\n%s", i, out)
		}
		if i == 3 && took < 900*time.Millisecond {
			t.Errorf("failure 3 (after slow_after 2) answered after %v, want a delay of 1s", took)
		}
	}
	if out, _ := auth("s3cret"); !strings.Contains(out, "<** 454 4.7.0 Too many failed login attempts from your address") {
		t.Errorf("right password during the lockout:\n%s", out)
	}

	python := testkit.Tool(t, "python3")
	script := `
import base64, smtplib, sys
# From another address, so that the lockout above does not apply.
s = smtplib.SMTP(sys.argv[1], int(sys.argv[2]), source_address=("127.0.0.2", 0))
s.ehlo("client.test")
for i in range(3):
    code, msg = s.docmd("AUTH", "PLAIN " + base64.b64encode(b"\0nobody\0guess").decode())
    print(code, msg.decode())
try:
    s.noop()
    print("still open")
except smtplib.SMTPServerDisconnected:
    print("disconnected")
`
	host, port, _ := strings.Cut(d.smtp, ":")
	out, err := exec.Command(python, "-c", script, host, port).CombinedOutput()
	if err != nil {
		t.Fatalf("python: %v\n%s", err, out)
	}
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	if len(lines) != 4 || !strings.HasPrefix(lines[0], "535 5.7.8") || !strings.HasPrefix(lines[1], "535 5.7.8") ||
		lines[2] != "421 4.7.0 Too many failed login attempts, closing connection" || lines[3] != "disconnected" {
		t.Errorf("smtplib session:\n%s", out)
	}

	metrics := d.metrics(t)
	if want := fmt.Sprintf("drover_smtp_auth_failures_total{listener=%q} 6", d.smtp); !strings.Contains(metrics, want) {
		t.Errorf("metrics lack %q", want)
	}
	log := d.out.String()
	for _, want := range []string{`msg="smtp auth failed" client_ip=127.0.0.1 login=shop mechanism=PLAIN`, `client_ip=127.0.0.2 login=nobody`, `msg="smtp auth locked out"`} {
		if !strings.Contains(log, want) {
			t.Errorf("log lacks %q", want)
		}
	}
}
