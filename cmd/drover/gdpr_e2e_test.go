package main

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// drover gdpr export gathers what every store holds about an address,
// whatever case it is given in: its consent with proof, its
// suppressions, its engagement, the message queued to it and the
// mail-log lines that name it.
func TestGDPRExport(t *testing.T) {
	dir := t.TempDir()
	mx := startMX(t)
	d := startDrover(t, dir, fmt.Sprintf("senders:\n  default:\n    from_domains: [shop.test]\n    dsn: false\nroutes:\n  \"*.test\": %q\n", mx.Addr))
	cli := func(args ...string) string {
		t.Helper()
		out, err := d.cli(append(args, "--config", d.cfgPath)...)
		if err != nil {
			t.Fatalf("drover %s: %v\n%s", strings.Join(args, " "), err, out)
		}
		return out
	}
	const addr = "defer-ann@dest.test"
	c := dialSMTP(t, d.smtp)
	if _, r := c.send("news@shop.test", "", []string{addr}, marketing(addr, "c1")); !strings.HasPrefix(r, "250") {
		t.Fatalf("DATA: %s", r)
	}
	d.event(t, "deferred", map[string]any{"rcpt": addr})
	text := filepath.Join(dir, "consent.txt")
	os.WriteFile(text, []byte("Yes, send me the news."), 0o600)
	cli("consent", "record", addr, "--sender", "default", "--list", "news", "--source", "https://shop.test/join", "--ip", "192.0.2.1", "--text-file", text)
	cli("suppression", "add", addr, "--sender", "default", "--list", "weekly", "--reason", "unsubscribed")
	events := filepath.Join(dir, "events.jsonl")
	os.WriteFile(events, []byte(`{"event":"opened","sender":"default","rcpt":"`+addr+`"}`+"\n"), 0o600)
	cli("events", "send", events)

	out := filepath.Join(dir, "export.json")
	cli("gdpr", "export", "Defer-Ann@DEST.test", "--out", out)
	raw, _ := os.ReadFile(out)
	var got struct {
		Address string `json:"address"`
		Consent []struct {
			Proof struct {
				Text string `json:"text"`
				IP   string `json:"ip"`
			} `json:"proof"`
		} `json:"consent"`
		Suppressions []map[string]any `json:"suppressions"`
		Engagement   []map[string]any `json:"engagement"`
		Queued       []map[string]any `json:"queued"`
		MailLog      []map[string]any `json:"mail_log"`
	}
	if err := json.Unmarshal(raw, &got); err != nil {
		t.Fatalf("%v\n%s", err, raw)
	}
	if got.Address != addr || len(got.Consent) != 1 || got.Consent[0].Proof.Text != "Yes, send me the news." || got.Consent[0].Proof.IP != "192.0.2.1" ||
		len(got.Suppressions) != 1 || got.Suppressions[0]["list"] != "weekly" || len(got.Engagement) != 1 || got.Engagement[0]["sender"] != "default" ||
		len(got.Queued) != 1 || len(got.MailLog) < 2 {
		t.Errorf("export:\n%s", raw)
	}
	kinds := map[any]bool{}
	for _, l := range got.MailLog {
		kinds[l["event"]] = true
	}
	if !kinds["received"] || !kinds["deferred"] {
		t.Errorf("mail-log lines %v", kinds)
	}
	if st, _ := os.Stat(out); st.Mode().Perm() != 0o600 {
		t.Errorf("export file mode %v", st.Mode())
	}
	d.stop()
}
