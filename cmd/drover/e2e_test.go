package main

// End-to-end tests of the real binary: built once, started with a config
// written per test, fed by real clients (swaks, smtp-source, net/smtp),
// delivering to fake MX servers (go-smtp) or Postfix's smtp-sink.

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/emersion/go-smtp"
)

var droverBin string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "drover-e2e")
	if err != nil {
		panic(err)
	}
	droverBin = filepath.Join(dir, "drover")
	build := exec.Command("go", "build", "-o", droverBin, ".")
	build.Stderr = os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "building drover:", err)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// needTool skips when a peer tool is missing, except in CI, where .ci/run
// installs it and its absence is a failure.
func needTool(t *testing.T, name string) string {
	t.Helper()
	path, err := exec.LookPath(name)
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("%s is not installed (.ci/run installs it)", name)
		}
		t.Skipf("%s not installed", name)
	}
	return path
}

func freePort(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// fakeMX is a go-smtp server that records what it receives and answers on
// cue: a recipient whose local part starts with "defer" gets 451 4.3.0,
// "refuse" gets 550 5.1.1, everything else 250.
type fakeMX struct {
	addr string
	mu   sync.Mutex
	msgs []received
	srv  *smtp.Server

	active, maxActive int         // concurrent sessions
	throttle          atomic.Bool // answer MAIL with a 421 throttling reply
}

type received struct {
	From  string
	Rcpts []string
	Data  []byte
	Helo  string
	At    time.Time
}

func startFakeMX(t *testing.T) *fakeMX {
	t.Helper()
	mx := &fakeMX{}
	mx.srv = smtp.NewServer(smtp.BackendFunc(func(c *smtp.Conn) (smtp.Session, error) {
		mx.mu.Lock()
		mx.active++
		mx.maxActive = max(mx.maxActive, mx.active)
		mx.mu.Unlock()
		return &mxSession{mx: mx, conn: c}, nil
	}))
	mx.srv.Domain = "mx.test"
	mx.srv.EnableDSN = true
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	mx.addr = l.Addr().String()
	go mx.srv.Serve(l)
	t.Cleanup(func() { mx.srv.Close() })
	return mx
}

func (mx *fakeMX) received() []received {
	mx.mu.Lock()
	defer mx.mu.Unlock()
	return append([]received(nil), mx.msgs...)
}

// waitFor polls cond until it holds or the timeout passes.
func waitFor(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

type mxSession struct {
	mx    *fakeMX
	conn  *smtp.Conn
	from  string
	rcpts []string
}

func (s *mxSession) Reset() { s.from, s.rcpts = "", nil }
func (s *mxSession) Logout() error {
	s.mx.mu.Lock()
	s.mx.active--
	s.mx.mu.Unlock()
	return nil
}
func (s *mxSession) Mail(from string, _ *smtp.MailOptions) error {
	if s.mx.throttle.Load() {
		return &smtp.SMTPError{Code: 421, EnhancedCode: smtp.EnhancedCode{4, 7, 28}, Message: "[127.0.0.1] Our system has detected an unusual rate of unsolicited mail originating from your IP address."}
	}
	s.from = from
	return nil
}
func (s *mxSession) Rcpt(to string, _ *smtp.RcptOptions) error {
	switch {
	case strings.HasPrefix(to, "defer"):
		return &smtp.SMTPError{Code: 451, EnhancedCode: smtp.EnhancedCode{4, 3, 0}, Message: "try later"}
	case strings.HasPrefix(to, "refuse"):
		return &smtp.SMTPError{Code: 550, EnhancedCode: smtp.EnhancedCode{5, 1, 1}, Message: "no such user here"}
	}
	s.rcpts = append(s.rcpts, to)
	return nil
}
func (s *mxSession) Data(r io.Reader) error {
	data, err := io.ReadAll(r)
	if err != nil {
		return err
	}
	s.mx.mu.Lock()
	s.mx.msgs = append(s.mx.msgs, received{From: s.from, Rcpts: s.rcpts, Data: data, Helo: s.conn.Hostname(), At: time.Now()})
	s.mx.mu.Unlock()
	return nil
}

// drover is a running instance of the binary.
type drover struct {
	t       *testing.T
	dir     string
	cfgPath string
	smtp    string
	http    string
	cmd     *exec.Cmd
	out     *syncBuffer
	exited  chan error
}

// startDrover writes a config (the given YAML plus listeners, data dir and
// http) and starts the binary, waiting until it listens.
func startDrover(t *testing.T, dir, extraYAML string) *drover {
	t.Helper()
	d := &drover{t: t, dir: dir, smtp: freePort(t), http: freePort(t)}
	d.cfgPath = filepath.Join(dir, "drover.yaml")
	cfg := fmt.Sprintf("hostname: drover.test\ndata_dir: %s\nlog_level: debug\nlisteners:\n  - {address: %q, mode: plain, loopback_sender: default}\nhttp:\n  address: %q\n  admin_token: t0ken\n%s",
		filepath.Join(dir, "data"), d.smtp, d.http, extraYAML)
	if err := os.WriteFile(d.cfgPath, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	d.start()
	t.Cleanup(func() {
		if d.cmd.ProcessState == nil {
			d.cmd.Process.Kill()
			<-d.exited
		}
		if t.Failed() {
			t.Logf("drover output:\n%s", d.out.String())
		}
	})
	return d
}

// syncBuffer is the process's output, written by exec's copier while
// tests read it.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

func (d *drover) start() {
	d.t.Helper()
	d.out = &syncBuffer{}
	d.cmd = exec.Command(droverBin, "serve", "--config", d.cfgPath)
	d.cmd.Stdout, d.cmd.Stderr = d.out, d.out
	d.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := d.cmd.Start(); err != nil {
		d.t.Fatal(err)
	}
	d.exited = make(chan error, 1)
	go func() { d.exited <- d.cmd.Wait() }()
	waitFor(d.t, 20*time.Second, "drover to listen", func() bool {
		c, err := net.Dial("tcp", d.smtp)
		if err == nil {
			c.Close()
		}
		return err == nil
	})
}

// stop sends SIGTERM and waits for a clean exit.
func (d *drover) stop() {
	d.t.Helper()
	d.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-d.exited:
		if err != nil {
			d.t.Fatalf("drover exited with %v:\n%s", err, d.out.String())
		}
	case <-time.After(40 * time.Second):
		d.t.Fatal("drover did not stop on SIGTERM")
	}
}

// kill sends SIGKILL to the process group.
func (d *drover) kill() {
	syscall.Kill(-d.cmd.Process.Pid, syscall.SIGKILL)
	<-d.exited
}

func (d *drover) cli(args ...string) (string, error) {
	cmd := exec.Command(droverBin, args...)
	out, err := cmd.CombinedOutput()
	return string(out), err
}

func (d *drover) mailLog() []map[string]any {
	data, _ := os.ReadFile(filepath.Join(d.dir, "data", "mail.log"))
	var evs []map[string]any
	sc := bufio.NewScanner(bytes.NewReader(data))
	for sc.Scan() {
		var ev map[string]any
		if json.Unmarshal(sc.Bytes(), &ev) == nil {
			evs = append(evs, ev)
		}
	}
	return evs
}

func (d *drover) metrics(t *testing.T) string {
	t.Helper()
	resp, err := http.Get("http://" + d.http + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return string(b)
}

func swaks(t *testing.T, args ...string) string {
	t.Helper()
	path := needTool(t, "swaks")
	out, err := exec.Command(path, args...).CombinedOutput()
	if err != nil {
		t.Logf("swaks %v: %v\n%s", args, err, out)
	}
	return string(out)
}
