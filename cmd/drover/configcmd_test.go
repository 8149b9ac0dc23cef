package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"drover/configs"
	"drover/testkit"
)

// config effective prints what serve runs with, secrets redacted, in a
// form config check takes back.
func TestConfigEffective(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "drover.yaml")
	os.WriteFile(file, []byte("http:\n  admin_token: very-secret\nqueue:\n  delay_notice: 2d\nsenders:\n  shop:\n    login: shop\n    password_hash: \"$2a$10$7mIdYoRo93XQTR43jdUFW.LRR2uJP8msuZa0U.t28iNxztvDn80JO\"\n    from_domains: [shop.example]\n  default: {from_domains: [\"*\"]}\n"), 0o600)
	out, err := exec.Command(droverBin, "config", "effective", file).CombinedOutput()
	if err != nil {
		t.Fatalf("config effective: %v\n%s", err, out)
	}
	s := string(out)
	if strings.Contains(s, "very-secret") || strings.Contains(s, "$2a$") || !strings.Contains(s, redacted) {
		t.Errorf("secrets not redacted:\n%s", s)
	}
	// The layering shows: the file's value and the default's.
	if !strings.Contains(s, "delay_notice: 48h0m0s") || !strings.Contains(s, "drain_timeout: 30s") {
		t.Errorf("effective configuration lacks the file's or the default's values:\n%s", s)
	}
	// It reads back (with the redacted secrets put back in).
	back := strings.Replace(s, "password_hash: "+redacted, `password_hash: "$2a$10$7mIdYoRo93XQTR43jdUFW.LRR2uJP8msuZa0U.t28iNxztvDn80JO"`, 1)
	c, err := configs.Parse([]byte(back))
	if err != nil {
		t.Fatalf("effective output does not parse: %v\n%s", err, back)
	}
	if c.Queue.DelayNotice != 48*time.Hour || c.Senders["shop"] == nil {
		t.Errorf("read back: %+v", c.Queue)
	}
}

// drover reload makes the running server reread its file.
func TestReloadCommand(t *testing.T) {
	d := startDrover(t, t.TempDir(), "")
	out, err := d.cli("reload", "--config", d.cfgPath)
	if err != nil || !strings.Contains(out, "reloaded") {
		t.Fatalf("drover reload: %v\n%s", err, out)
	}
	testkit.WaitFor(t, 10*time.Second, "the reload in the log", func() bool { return strings.Contains(d.out.String(), "reload") })
}
