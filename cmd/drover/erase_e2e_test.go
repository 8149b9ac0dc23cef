package main

import (
	"bytes"
	"encoding/base64"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// forms are the ways an address can be written in a file: as it is, in
// any case, URL-encoded, and in base64 at each of its three alignments
// (quoted-printable writes an address as it is).
func forms(addr string) [][]byte {
	out := [][]byte{[]byte(strings.ToLower(addr)), []byte(strings.ToLower(url.QueryEscape(addr)))}
	for pad := 0; pad < 3; pad++ {
		enc := base64.StdEncoding.EncodeToString(append(bytes.Repeat([]byte{' '}, pad), addr...))
		// The characters that do not depend on what comes before.
		skip := []int{0, 2, 3}[pad]
		out = append(out, []byte(enc[skip:len(enc)-4]))
	}
	return out
}

// findIn returns the files under dir that hold addr in one of its forms.
func findIn(t *testing.T, dir, addr string) []string {
	t.Helper()
	var found []string
	filepath.Walk(dir, func(p string, info os.FileInfo, err error) error {
		if err != nil || info.IsDir() {
			return nil
		}
		b, _ := os.ReadFile(p)
		lower := bytes.ToLower(b)
		for i, f := range forms(addr) {
			if (i < 2 && bytes.Contains(lower, f)) || (i >= 2 && bytes.Contains(b, f)) {
				j := bytes.Index(lower, f)
				ctx := ""
				if j >= 0 {
					ctx = fmt.Sprintf("%q", b[max(0, j-30):min(len(b), j+len(f)+10)])
				}
				found = append(found, fmt.Sprintf("%s (form %d) %s", filepath.Base(p), i, ctx))
			}
		}
		return nil
	})
	return found
}

// drover gdpr erase leaves the address nowhere: not in any file under the
// data directory (the spool, policy's records, the mail log and its
// rotated files), in any case or common encoding; it stays refused, and
// a consent record of it is refused.
func TestGDPRErase(t *testing.T) {
	dir := t.TempDir()
	mx := startMX(t)
	d := startDrover(t, dir, fmt.Sprintf("senders:\n  default:\n    from_domains: [shop.test]\n    dsn: false\nroutes:\n  \"*.test\": %q\n", mx.Addr))
	cli := func(args ...string) (string, error) { return d.cli(append(args, "--config", d.cfgPath)...) }
	const addr = "defer-erin@dest.test"
	c := dialSMTP(t, d.smtp)
	for _, to := range []string{addr, "Defer-Erin@Dest.test", "other@dest.test"} {
		if _, r := c.send("news@shop.test", "", []string{to}, marketing(to, "c1")); !strings.HasPrefix(r, "250") {
			t.Fatalf("DATA: %s", r)
		}
	}
	d.event(t, "deferred", map[string]any{"rcpt": addr})
	text := filepath.Join(dir, "consent.txt")
	os.WriteFile(text, []byte("Yes."), 0o600)
	for _, args := range [][]string{
		{"consent", "record", addr, "--sender", "default", "--list", "news", "--source", "form", "--text-file", text},
		{"suppression", "add", addr, "--sender", "default", "--list", "weekly", "--reason", "unsubscribed"},
	} {
		if out, err := cli(args...); err != nil {
			t.Fatalf("%v: %v\n%s", args, err, out)
		}
	}
	if found := findIn(t, filepath.Join(dir, "data"), addr); len(found) == 0 {
		t.Fatal("the address is in no file before the erasure: the search finds nothing")
	}
	os.Remove(text)
	if out, err := cli("gdpr", "erase", addr); err == nil || !strings.Contains(out, "--yes") {
		t.Errorf("erase without --yes: %v\n%s", err, out)
	}
	if out, err := cli("gdpr", "erase", strings.ToUpper(addr), "--yes"); err != nil {
		t.Fatalf("erase: %v\n%s", err, out)
	}
	if found := findIn(t, dir, addr); len(found) > 0 {
		t.Errorf("after the erasure the address is still in: %v", found)
	}
	c.cmd("QUIT")
	d.stop()
	if found := findIn(t, dir, addr); len(found) > 0 {
		t.Errorf("after a stop the address is in: %v", found)
	}
	d.start()
	c = dialSMTP(t, d.smtp)
	if r := c.rcptReply(" X-DROVER-STREAM=transactional", addr); !strings.HasPrefix(r, "550 5.7.1") {
		t.Errorf("RCPT of an erased address: %q", r)
	}
	os.WriteFile(text, []byte("Yes."), 0o600)
	if out, err := cli("consent", "record", addr, "--sender", "default", "--list", "news", "--source", "api", "--text-file", text); err == nil {
		t.Errorf("a consent record of an erased address was taken:\n%s", out)
	}
	os.Remove(text)
	if r := c.rcptReply("", "other@dest.test"); !strings.HasPrefix(r, "250") {
		t.Errorf("another address after the erasure: %q", r)
	}
	d.stop()
}
