package smtpclient

// The go-smtp fake MX is testkit's; the script server here misbehaves on
// purpose (refused greetings, injected replies, stalls, malformed
// replies), which only a raw server can.

import (
	"bufio"
	"io"
	"net"
	"strings"
	"sync"
	"testing"

	"drover/testkit"
)

// scriptServer serves connections from a script: it writes greeting,
// then for each command line the client sends writes reply(line). An empty
// reply closes the connection; after a reply starting with "354" it reads
// the data up to the lone dot and calls reply with "<data>".
type scriptServer struct {
	addr string
	mu   sync.Mutex
	got  []string
}

func startScript(t testing.TB, greeting string, reply func(line string) string) *scriptServer {
	t.Helper()
	return serveScript(t, nil, greeting, reply)
}

// serveScript serves the script on ln (nil: a loopback port), such as
// testkit.Pipes inside a synctest bubble.
func serveScript(t testing.TB, ln net.Listener, greeting string, reply func(line string) string) *scriptServer {
	t.Helper()
	s := &scriptServer{}
	s.addr = testkit.Serve(t, ln, func(c net.Conn) { s.serve(c, greeting, reply) })
	return s
}

func (s *scriptServer) serve(c net.Conn, greeting string, reply func(string) string) {
	defer c.Close()
	r := bufio.NewReader(c)
	io.WriteString(c, greeting)
	for {
		line, err := r.ReadString('\n')
		if err != nil {
			return
		}
		line = strings.TrimSuffix(line, "\r\n")
		s.record(line)
		out := reply(line)
		if out == "" {
			return
		}
		if _, err := io.WriteString(c, out); err != nil {
			return
		}
		if strings.HasPrefix(out, "354") {
			for {
				l, err := r.ReadString('\n')
				if err != nil {
					return
				}
				if l == ".\r\n" {
					break
				}
			}
			s.record("<data>")
			io.WriteString(c, reply("<data>"))
		}
	}
}

func (s *scriptServer) record(line string) {
	s.mu.Lock()
	s.got = append(s.got, line)
	s.mu.Unlock()
}

func (s *scriptServer) lines() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.got...)
}
