package main

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/smtp"
	"syscall"
	"testing"
	"time"

	"drover/testkit"
)

type healthBody struct {
	Status string            `json:"status"`
	Checks map[string]string `json:"checks"`
}

func (d *drover) health(t *testing.T) (int, healthBody) {
	t.Helper()
	resp, err := http.Get("http://" + d.http + "/healthz")
	if err != nil {
		return 0, healthBody{}
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	var h healthBody
	if err := json.Unmarshal(b, &h); err != nil {
		t.Fatalf("/healthz body %q: %v", b, err)
	}
	return resp.StatusCode, h
}

// /healthz reports the spool and both SMTP listeners; after SIGTERM, while
// a message being received holds the drain open, it answers 503
// "draining"; that message still gets its 250.
func TestHealthzReportsAndDrains(t *testing.T) {
	dir := t.TempDir()
	inbound := freePort(t)
	d := startDrover(t, dir, fmt.Sprintf("bounces:\n  inbound_address: %q\nroutes:\n  \"*\": %q\n", inbound, freePort(t)))
	code, h := d.health(t)
	if code != 200 || h.Status != "ok" || h.Checks["spool"] != "ok" || h.Checks["smtp_submission"] != "ok" ||
		h.Checks["smtp_inbound"] != "ok" || h.Checks["draining"] != "ok" {
		t.Fatalf("healthy drover: %d %+v", code, h)
	}

	c, err := smtp.Dial(d.smtp)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.Mail("a@sender.test"); err != nil {
		t.Fatal(err)
	}
	if err := c.Rcpt("r@dest.test"); err != nil {
		t.Fatal(err)
	}
	w, err := c.Data()
	if err != nil {
		t.Fatal(err)
	}
	fmt.Fprintf(w, "From: a@sender.test\r\nSubject: held\r\n\r\n")

	d.cmd.Process.Signal(syscall.SIGTERM)
	testkit.WaitFor(t, 20*time.Second, "/healthz to report draining", func() bool {
		code, h := d.health(t)
		return code == 503 && h.Status == "draining" && h.Checks["draining"] == "draining"
	})
	fmt.Fprintf(w, "body\r\n")
	if err := w.Close(); err != nil {
		t.Errorf("message received during the drain: %v", err)
	}
	select {
	case err := <-d.exited:
		if err != nil {
			t.Fatalf("drover exited with %v:\n%s", err, d.out.String())
		}
	case <-time.After(40 * time.Second):
		t.Fatal("drover did not stop on SIGTERM")
	}
}
