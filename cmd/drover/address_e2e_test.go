package main

import (
	"fmt"
	"strings"
	"testing"
	"time"
)

// A real client (swaks) gets 553 for paths no RFC allows, and a quoted
// local part travels to the MX with its quotes.
func TestPathSyntaxWithSwaks(t *testing.T) {
	mx := startMX(t)
	d := startDrover(t, t.TempDir(), fmt.Sprintf("senders:\n  default:\n    from_domains: [sender.test]\nroutes:\n  \"*\": %q\n", mx.Addr))
	for _, tc := range []struct{ from, to, want string }{
		{"app@@sender.test", "x@dest.test", "553 5.1.7"},
		{"a@sender.test", "bad@@example.net", "553 5.1.3"},
		{"a@sender.test", "user@example..net", "553 5.1.3"},
		{"a@sender.test", "user@-bad-.net", "553 5.1.3"},
	} {
		if out := swaks(t, "--server", d.smtp, "--from", tc.from, "--to", tc.to); !strings.Contains(out, "<** "+tc.want) {
			t.Errorf("MAIL <%s> RCPT <%s>: swaks output lacks %q:\n%s", tc.from, tc.to, tc.want, out)
		}
	}
	out := swaks(t, "--server", d.smtp, "--from", "a@sender.test", "--to", `"q x"@dest.test`)
	if !strings.Contains(out, "queued as") {
		t.Fatalf("quoted local part not queued:\n%s", out)
	}
	got := mx.Wait(t, 1, 20*time.Second)
	if len(got) != 1 || strings.Join(got[0].Rcpts, ",") != `"q x"@dest.test` {
		t.Errorf("MX got %+v, want one message to \"q x\"@dest.test", got)
	}
}
