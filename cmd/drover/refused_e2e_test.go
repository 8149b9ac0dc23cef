package main

import (
	"testing"
	"time"

	"drover/testkit"
)

// A destination whose server refuses the connection is deferred as a
// network error in the mail log, not as an expiry: the classifier that
// reads returned bounces decides the synchronous replies too.
func TestRefusedConnectionIsNetworkError(t *testing.T) {
	closed := freePort(t) // nothing listens there any more
	d := startDrover(t, t.TempDir(), "routes:\n  \"refused.test\": \""+closed+"\"\n")
	submit(t, d, 1, func(int) string { return "someone@refused.test" })
	var deferred map[string]any
	testkit.WaitFor(t, 10*time.Second, "the deferred event", func() bool {
		for _, ev := range d.mailLog() {
			if ev["event"] == "deferred" {
				deferred = ev
				return true
			}
		}
		return false
	})
	if deferred["reason"] != "networkerror" || deferred["class"] != "soft" || deferred["status"] != "4.4.1" || deferred["rcpt"] != "someone@refused.test" {
		t.Errorf("deferred event %v, want a soft networkerror with status 4.4.1", deferred)
	}
}
