package main

import (
	"bytes"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"net"
	"net/smtp"
	"net/textproto"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"drover/testkit"
)

// TestDiskFullLosesNothing fills the data directory (a 24 MB tmpfs) with
// mail the MX defers: new mail gets 452 4.3.1 while the queue is full,
// every message acknowledged with 250 is delivered intact once the MX
// accepts, and new mail is accepted again without a restart.
func TestDiskFullLosesNothing(t *testing.T) {
	if os.Geteuid() != 0 {
		if os.Getenv("CI") != "" {
			t.Fatal("TestDiskFullLosesNothing mounts a tmpfs and must run as root in CI")
		}
		t.Skip("not root: cannot mount a small tmpfs as the data directory")
	}
	dir := t.TempDir()
	data := filepath.Join(dir, "data")
	if err := os.Mkdir(data, 0o700); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size=24m", "tmpfs", data).CombinedOutput(); err != nil {
		t.Fatalf("mount tmpfs: %v\n%s", err, out)
	}
	t.Cleanup(func() { // after drover is killed: cleanups run last first
		if out, err := exec.Command("umount", data).CombinedOutput(); err != nil {
			t.Errorf("umount: %v\n%s", err, out)
		}
	})

	var accept atomic.Bool
	mx := testkit.StartMX(t, testkit.MXOptions{DSN: true, Answer: func(c testkit.Command) error {
		if c.Verb == "RCPT" && !accept.Load() {
			return testkit.Cues(testkit.Command{Verb: "RCPT", Arg: "defer"})
		}
		return testkit.Cues(c)
	}})
	d := startDrover(t, dir, fmt.Sprintf("queue:\n  min_free_space: 8MB\nshaping:\n  default:\n    retry_interval: 1s\n    max_retry_interval: 2s\nroutes:\n  \"*\": %q\n", mx.Addr))

	// A few sessions submit 50 KB messages (incompressible, so that they
	// fill the disk) until each is refused for storage.
	const sessions, limit = 4, 1000 // limit: far more than 24 MB
	var (
		mu      sync.Mutex
		acked   = map[string][]byte{} // subject: body
		full    atomic.Int32          // 452 4.3.1 replies
		sent    atomic.Int32
		wg      sync.WaitGroup
		failure = make(chan error, sessions)
	)
	for s := range sessions {
		wg.Add(1)
		go func() {
			defer wg.Done()
			conn, err := net.Dial("tcp", d.smtp)
			if err != nil {
				failure <- err
				return
			}
			c, err := smtp.NewClient(conn, "127.0.0.1")
			if err != nil {
				failure <- err
				return
			}
			defer c.Close()
			for i := 0; sent.Add(1) <= limit; i++ {
				subject := fmt.Sprintf("diskfull-s%d-m%d", s, i)
				body := randomBody(50 << 10)
				conn.SetDeadline(time.Now().Add(10 * time.Second)) // a wedged spool never replies
				err := submitMessage(c, subject, body)
				var te *textproto.Error
				switch {
				case err == nil:
					mu.Lock()
					acked[subject] = body
					mu.Unlock()
				case errors.As(err, &te) && te.Code == 452 && strings.HasPrefix(te.Msg, "4.3.1 "):
					full.Add(1)
					return
				default:
					failure <- fmt.Errorf("%s: %w", subject, err)
					return
				}
			}
		}()
	}
	wg.Wait()
	close(failure)
	for err := range failure {
		t.Errorf("submission: neither 250 nor 452 4.3.1: %v", err)
	}
	if full.Load() == 0 {
		t.Fatalf("no 452 4.3.1 after %d messages on a 24 MB data directory", len(acked))
	}
	if d.cmd.ProcessState != nil {
		t.Fatalf("drover exited while the disk was full")
	}

	// Delivery of what was queued goes on once the MX accepts.
	accept.Store(true)
	delivered := func() map[string]int {
		got := map[string]int{}
		for _, tx := range mx.Transactions() {
			if m := subjectRE.FindSubmatch(tx.Data); m != nil {
				if body, ok := acked[string(m[1])]; ok && bytes.Contains(tx.Data, body) {
					got[string(m[1])]++
				}
			}
		}
		return got
	}
	testkit.WaitFor(t, 40*time.Second, "every acknowledged message at the MX", func() bool {
		return len(delivered()) == len(acked)
	})
	got := delivered()
	lost := 0
	for s := range acked {
		if got[s] == 0 {
			lost++
		}
	}

	// New mail is accepted again, without a restart.
	c, err := smtp.Dial(d.smtp)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	var last error
	testkit.WaitFor(t, 20*time.Second, "a 250 to new mail", func() bool {
		last = submitMessage(c, "diskfull-after", randomBody(50<<10))
		return last == nil
	})
	if os.Getenv("DISKFULL_LOG") != "" {
		t.Logf("drover output:\n%s", d.out.String())
	}
	t.Logf("acked %d, refused 452 4.3.1 %d, delivered after recovery %d, lost %d", len(acked), full.Load(), len(got), lost)
	if strings.Contains(d.out.String(), "panic") {
		t.Errorf("drover logged a panic:\n%s", d.out.String())
	}
}

var subjectRE = regexp.MustCompile(`(?m)^Subject: (\S+)\r?$`)

// submitMessage sends one message over c and returns the reply to DATA as an
// error unless it is 250.
func submitMessage(c *smtp.Client, subject string, body []byte) error {
	if err := c.Mail("load@sender.example"); err != nil {
		return err
	}
	if err := c.Rcpt("rcpt@dest.example"); err != nil {
		return err
	}
	w, err := c.Data()
	if err != nil {
		return err
	}
	fmt.Fprintf(w, "From: load@sender.example\r\nSubject: %s\r\n\r\n%s", subject, body)
	return w.Close()
}

// randomBody returns about n bytes of base64 lines of random bytes.
func randomBody(n int) []byte {
	raw := make([]byte, n*3/4)
	rand.Read(raw)
	enc := base64.StdEncoding.EncodeToString(raw)
	var b bytes.Buffer
	for len(enc) > 0 {
		k := min(76, len(enc))
		b.WriteString(enc[:k])
		b.WriteString("\r\n")
		enc = enc[k:]
	}
	return b.Bytes()
}
