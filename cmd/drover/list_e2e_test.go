package main

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"drover/testkit"
)

// An operator lists the queue per message (a deferred one shows its last
// error), prints a message as stored, holds it across a restart, releases
// it, and deletes it by its ID typed in lower case.
func TestQueueListShowHoldDelete(t *testing.T) {
	mx := startMX(t)
	d := startDrover(t, t.TempDir(), fmt.Sprintf("shaping:\n  default:\n    retry_interval: 1h\n    max_retry_interval: 2h\nroutes:\n  \"*.test\": %q\n", mx.Addr))
	d.waitHTTP(t)
	out := swaks(t, "--server", d.smtp, "--from", "news@sender.test", "--to", "defer@dest.test",
		"--header", "Subject: qlist e2e", "--body", "the stored body\n")
	m := queuedAs.FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("no queue id in swaks output:\n%s", out)
	}
	id := m[1]
	q := func(args ...string) (string, error) {
		return d.cli(append(append([]string{"queue"}, args...), "--config", d.cfgPath)...)
	}

	var list string
	testkit.WaitFor(t, 20*time.Second, "the deferral in queue list", func() bool {
		list, _ = q("list")
		return strings.Contains(list, "mailbox busy")
	})
	if !strings.Contains(strings.ToLower(list), strings.ToLower(id)) || !strings.Contains(list, "defer@dest.test") || !strings.Contains(list, "<news@sender.test>") {
		t.Errorf("queue list:\n%s", list)
	}
	js, err := q("list", "--json", "--recipient", "@dest.test", "--older-than", "1ms")
	var entry struct {
		ID         string `json:"id"`
		Size       int    `json:"size"`
		Recipients []struct {
			Address   string `json:"address"`
			LastError string `json:"last_error"`
		} `json:"recipients"`
	}
	if err != nil || json.Unmarshal([]byte(js), &entry) != nil || !strings.EqualFold(entry.ID, id) || entry.Size == 0 ||
		len(entry.Recipients) != 1 || !strings.Contains(entry.Recipients[0].LastError, "mailbox busy") {
		t.Errorf("queue list --json: %v\n%s", err, js)
	}
	if out, _ := q("list", "--newer-than", "1ms"); strings.Contains(out, "defer@dest.test") {
		t.Errorf("queue list --newer-than 1ms lists an older message:\n%s", out)
	}

	body, err := q("show", id, "--body")
	if err != nil || !strings.Contains(body, "Subject: qlist e2e") || !strings.Contains(body, "the stored body") {
		t.Errorf("queue show --body: %v\n%s", err, body)
	}
	if show, err := q("show", id); err != nil || strings.Contains(show, "the stored body") || !strings.Contains(show, "defer@dest.test") {
		t.Errorf("queue show: %v\n%s", err, show)
	}

	if out, err := q("hold", id); err != nil || !strings.Contains(out, "hold: 1 recipients affected") {
		t.Fatalf("queue hold: %v\n%s", err, out)
	}
	d.stop()
	d.start()
	d.waitHTTP(t)
	if out, _ := q("list"); !strings.Contains(out, "(held)") {
		t.Errorf("queue list after a restart does not show the hold:\n%s", out)
	}
	if out, err := q("flush", "--all"); err != nil || !strings.Contains(out, "flush: 0 recipients affected") {
		t.Errorf("flush of a held message: %v\n%s", err, out)
	}
	if out, err := q("release", strings.ToLower(id)); err != nil || !strings.Contains(out, "release: 1 recipients affected") {
		t.Fatalf("queue release: %v\n%s", err, out)
	}
	if out, _ := q("list"); strings.Contains(out, "(held)") {
		t.Errorf("still held after release:\n%s", out)
	}

	if out, err := q("delete", "--all"); err == nil || !strings.Contains(out, "--yes") {
		t.Errorf("delete --all off a terminal without --yes: %v\n%s", err, out)
	}
	testkit.WaitFor(t, 20*time.Second, "the delete", func() bool {
		out, _ := q("delete", strings.ToLower(id))
		return strings.Contains(out, "delete: 1 recipients affected") // 0 while the retry is in flight
	})
	out, err = q("show", id)
	if err == nil || !strings.Contains(out, "not found") || strings.Contains(out, "404") {
		t.Errorf("queue show of a deleted message: %v\n%s", err, out)
	}
	if out, _ := q("list"); strings.Contains(out, "defer@dest.test") {
		t.Errorf("queue list after delete:\n%s", out)
	}
}
