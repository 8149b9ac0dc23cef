package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// Consent through the real binary: a list that requires it refuses RCPT
// to an address without a confirmed consent, in words; drover consent
// record lets the address through, across a restart; a withdrawal
// refuses it again. Transactional mail and the sender's other lists need
// none.
func TestConsentEndToEnd(t *testing.T) {
	dir := t.TempDir()
	d := startDrover(t, dir, `senders:
  default:
    from_domains: [shop.test]
    consent_required: [spring-news]
`)
	c := dialSMTP(t, d.smtp)
	list := " X-DROVER-LIST=spring-news"
	want := "550 5.7.1 Recipient has no confirmed consent for list spring-news"
	if r := c.rcptReply(list, "ann@dest.test"); r != want {
		t.Errorf("RCPT without consent: %q, want %q", r, want)
	}
	d.event(t, "rejected", map[string]any{"rcpt": "ann@dest.test", "reason": "no-consent", "scope": "list", "list": "spring-news"})
	for _, params := range []string{" X-DROVER-LIST=autumn", list + " X-DROVER-STREAM=transactional"} {
		if r := c.rcptReply(params, "ann@dest.test"); !strings.HasPrefix(r, "250") {
			t.Errorf("RCPT with%s: %q", params, r)
		}
	}

	text := filepath.Join(dir, "consent.txt")
	os.WriteFile(text, []byte("Yes, send me the Spring News.\n"), 0o600)
	admin := []string{"--config", d.cfgPath, "--sender", "default", "--list", "spring-news"}
	out, err := d.cli(append([]string{"consent", "record", "Ann@dest.test", "--text-file", text, "--source", "https://shop.test/signup",
		"--ip", "192.0.2.7", "--purpose", "newsletter"}, admin...)...)
	if err != nil || !strings.Contains(out, "recorded: record 1 of ann@dest.test") {
		t.Fatalf("drover consent record: %v\n%s", err, out)
	}
	if r := c.rcptReply(list, "ann@dest.test"); !strings.HasPrefix(r, "250") {
		t.Errorf("RCPT with consent: %q", r)
	}

	c.cmd("QUIT")
	d.stop()
	d.start()
	c = dialSMTP(t, d.smtp)
	if r := c.rcptReply(list, "ANN@dest.test"); !strings.HasPrefix(r, "250") {
		t.Errorf("RCPT with consent, after a restart: %q", r)
	}
	out, err = d.cli(append([]string{"consent", "withdraw", "ann@dest.test"}, admin...)...)
	if err != nil || !strings.Contains(out, "withdrawn: record 2") {
		t.Fatalf("drover consent withdraw: %v\n%s", err, out)
	}
	if r := c.rcptReply(list, "ann@dest.test"); r != want {
		t.Errorf("RCPT after the withdrawal: %q, want %q", r, want)
	}
	out, err = d.cli("consent", "show", "ann@dest.test", "--config", d.cfgPath)
	if err != nil || !strings.Contains(out, "https://shop.test/signup") || !strings.Contains(out, "withdrawn") ||
		!strings.Contains(out, "  Yes, send me the Spring News.") {
		t.Errorf("drover consent show: %v\n%s", err, out)
	}
}
