package testkit

import (
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"
)

// StartSmtpSink runs Postfix's smtp-sink, a real SMTP server that accepts
// everything, on a free loopback port, with extra arguments such as "-p"
// (no PIPELINING) or "-f RCPT" (refuse RCPT). With capture it writes every
// transaction into the dump file it returns (LF line endings, dots
// unstuffed; each message starts with an X-Client-Addr: line). It returns
// once smtp-sink listens, and stops it when the test ends. Without
// smtp-sink the test is skipped, unless CI is set (see Tool).
func StartSmtpSink(tb testing.TB, capture bool, args ...string) (addr, dump string) {
	tb.Helper()
	path := Tool(tb, "smtp-sink")
	// smtp-sink drops root privileges to -u: its dump lives in a directory
	// of its own that user may write.
	dir, err := os.MkdirTemp("", "smtp-sink")
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o777); err != nil {
		tb.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	addr = ln.Addr().String()
	ln.Close()
	argv := append([]string{"-h", "sink.test"}, args...)
	if capture {
		dump = filepath.Join(dir, "dump")
		argv = append(argv, "-D", dump)
	}
	if os.Geteuid() == 0 {
		argv = append(argv, "-u", "nobody")
	}
	cmd := exec.Command(path, append(argv, addr, "256")...)
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
	})
	WaitFor(tb, 10*time.Second, "smtp-sink to listen on "+addr, func() bool {
		c, err := net.Dial("tcp", addr)
		if err == nil {
			c.Close()
		}
		return err == nil
	})
	return addr, dump
}
