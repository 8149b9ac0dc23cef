package main

// End-to-end tests of the real binary: built once, started with a config
// written per test, fed by real clients (swaks, smtp-source, net/smtp),
// delivering to fake MX servers (testkit's, on go-smtp) or Postfix's
// smtp-sink. They wait for events (a port, a log line, a file, a metric,
// a message at the MX) with a deadline, never for a fixed time.

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
	"syscall"
	"testing"
	"time"

	"drover/testkit"
)

var droverBin string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "drover-e2e")
	if err != nil {
		panic(err)
	}
	droverBin = filepath.Join(dir, "drover")
	build := exec.Command("go", "build", "-buildvcs=auto", "-o", droverBin, ".")
	build.Stderr = os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "building drover:", err)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
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

// startMX starts a fake MX that announces DSN and answers on testkit's
// cues (a recipient "defer..." gets 451 4.2.0, "refuse..." 550 5.1.1).
func startMX(t *testing.T) *testkit.MX {
	return testkit.StartMX(t, testkit.MXOptions{DSN: true})
}

// drover is a running instance of the binary.
type drover struct {
	t       *testing.T
	dir     string
	cfgPath string
	smtp    string
	http    string
	web     string // the public web listener (its own port: no base_url, unless the test gives one)
	cmd     *exec.Cmd
	out     *testkit.Buffer
	exited  chan error
}

// startDrover writes a config (the given YAML plus listeners, data dir and
// http, with admin token t0ken) and starts the binary, waiting until it
// listens.
func startDrover(t *testing.T, dir, extraYAML string) *drover {
	t.Helper()
	return startDroverHTTP(t, dir, "  admin_token: t0ken\n", extraYAML)
}

// startDroverHTTP is startDrover with httpYAML (indented keys) in the http
// section, besides its address.
func startDroverHTTP(t *testing.T, dir, httpYAML, extraYAML string) *drover {
	t.Helper()
	d := &drover{t: t, dir: dir, smtp: freePort(t), http: freePort(t), web: freePort(t)}
	d.cfgPath = filepath.Join(dir, "drover.yaml")
	cfg := fmt.Sprintf("hostname: drover.test\ndata_dir: %s\nlog_level: debug\nlisteners:\n  - {address: %q, mode: plain, loopback_sender: default}\nhttp:\n  address: %q\n%s%s",
		filepath.Join(dir, "data"), d.smtp, d.http, httpYAML, extraYAML)
	if !strings.HasPrefix(extraYAML, "web:") && !strings.Contains(extraYAML, "\nweb:") {
		cfg += fmt.Sprintf("web:\n  address: %q\n", d.web)
	}
	if err := os.WriteFile(d.cfgPath, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if d.cmd == nil {
			return
		}
		if d.cmd.ProcessState == nil {
			d.cmd.Process.Kill()
			<-d.exited
		}
		if t.Failed() {
			t.Logf("drover output:\n%s", d.out.String())
		}
	})
	d.start()
	return d
}

func (d *drover) start() {
	d.t.Helper()
	d.out = &testkit.Buffer{}
	d.cmd = exec.Command(droverBin, "serve", "--config", d.cfgPath)
	d.cmd.Stdout, d.cmd.Stderr = d.out, d.out
	d.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := d.cmd.Start(); err != nil {
		d.t.Fatal(err)
	}
	d.exited = make(chan error, 1)
	go func() { d.exited <- d.cmd.Wait() }()
	testkit.WaitFor(d.t, 20*time.Second, "drover to listen", func() bool {
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
	path := testkit.Tool(t, "swaks")
	out, err := exec.Command(path, args...).CombinedOutput()
	if err != nil {
		t.Logf("swaks %v: %v\n%s", args, err, out)
	}
	return string(out)
}
