package main

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"drover/mta/resolve/dnstest"
	"drover/testkit"
)

// The binary's whole path with DKIM and DNS: keys made by `drover dkim
// keygen`, the MX found through an in-process DNS server, the message
// signed with RSA-2048 and Ed25519 at intake and delivered; Mail::DKIM
// (RSA) and dkimpy (both) verify what the MX received, against the same
// DNS server. A null-MX domain bounces at once.
func TestDKIMSignedDeliveryThroughMX(t *testing.T) {
	dir := t.TempDir()
	mx := startMX(t)
	_, port, _ := net.SplitHostPort(mx.Addr)
	var records []string
	for _, k := range []struct{ algo, sel string }{{"rsa", "r2026"}, {"ed25519", "e2026"}} {
		out, err := exec.Command(droverBin, "dkim", "keygen", "--domain", "shop.test", "--selector", k.sel,
			"--algo", k.algo, "--out", filepath.Join(dir, k.sel+".pem")).Output()
		if err != nil {
			t.Fatalf("keygen %s: %v", k.algo, err)
		}
		records = append(records, strings.TrimSpace(string(out)))
	}
	dns := dnstest.Start(t, `
test.             3600 IN SOA ns.test. hostmaster.test. 1 3600 600 86400 60
dest.test.        300 IN MX 10 mx.dest.test.
mx.dest.test.     300 IN A 127.0.0.1
nomail.test.      300 IN MX 0 .
`+strings.Join(records, "\n")+"\n")
	d := startDrover(t, dir, fmt.Sprintf(`delivery:
  resolver: %q
  port: %s
senders:
  default:
    from_domains: [shop.test]
    dkim:
      - {domain: shop.test, selector: r2026, key_file: %s}
      - {domain: shop.test, selector: e2026, key_file: %s}
`, dns.Addr, port, filepath.Join(dir, "r2026.pem"), filepath.Join(dir, "e2026.pem")))
	out := swaks(t, "--server", d.smtp, "--from", "news@shop.test", "--to", "reader@dest.test,someone@nomail.test",
		"--header", "Subject: signed", "--header", "X-Drover-Campaign: dkim", "--body", "Signed body.\n")
	if !strings.Contains(out, "queued as") {
		t.Fatalf("swaks:\n%s", out)
	}
	msg := mx.Wait(t, 1, 20*time.Second)[0].Data
	if n := strings.Count(string(msg), "DKIM-Signature:"); n != 2 {
		t.Fatalf("%d DKIM signatures:\n%s", n, msg)
	}
	file := filepath.Join(dir, "received.eml")
	os.WriteFile(file, msg, 0o600)
	_, dnsPort, _ := net.SplitHostPort(dns.Addr)
	verifiers := []struct {
		name  string
		check []string
		cmd   []string
		want  []string
	}{
		{"Mail::DKIM", []string{"perl", "-MMail::DKIM::Verifier", "-e1"}, []string{"perl", "../../mta/dkim/testdata/verify.pl"},
			[]string{"a=rsa-sha256 d=shop.test s=r2026 result=pass"}},
		{"dkimpy", []string{"/usr/bin/python3", "-c", "import dkim, nacl"}, []string{"/usr/bin/python3", "../../mta/dkim/testdata/verify.py"},
			[]string{"a=rsa-sha256 d=shop.test s=r2026 result=pass", "a=ed25519-sha256 d=shop.test s=e2026 result=pass"}},
	}
	for _, v := range verifiers {
		if err := exec.Command(v.check[0], v.check[1:]...).Run(); err != nil {
			if os.Getenv("CI") != "" {
				t.Fatalf("%s is not installed (.ci/run installs it)", v.name)
			}
			t.Logf("%s not installed; skipped", v.name)
			continue
		}
		out, err := exec.Command(v.cmd[0], append(v.cmd[1:], dnsPort, file)...).CombinedOutput()
		if err != nil {
			t.Fatalf("%s: %v\n%s", v.name, err, out)
		}
		for _, w := range v.want {
			if !strings.Contains(string(out), w) {
				t.Errorf("%s output lacks %q:\n%s", v.name, w, out)
			}
		}
	}
	testkit.WaitFor(t, 10*time.Second, "the null-MX bounce", func() bool {
		for _, ev := range d.mailLog() {
			if ev["event"] == "bounced" && ev["rcpt"] == "someone@nomail.test" && ev["status"] == "5.1.10" {
				return true
			}
		}
		return false
	})
	d.stop()
}
