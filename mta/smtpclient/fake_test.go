package smtpclient

import (
	"bufio"
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"io"
	"log"
	"math/big"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-smtp"
)

// selfSigned returns a certificate for mx.test and 127.0.0.1, and a pool
// that trusts it.
func selfSigned(t testing.TB) (tls.Certificate, *x509.CertPool) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: "mx.test"},
		DNSNames:     []string{"mx.test"},
		IPAddresses:  []net.IP{net.IPv4(127, 0, 0, 1)},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(cert)
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: cert}, pool
}

// tapConn records what a server connection reads and writes, in order.
type tapConn struct {
	net.Conn
	l *tapListener
}

type tapEvent struct {
	read bool // client to server
	data string
}

func (c *tapConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	if n > 0 {
		c.l.record(c, true, p[:n])
	}
	return n, err
}

func (c *tapConn) Write(p []byte) (int, error) {
	q := p
	if c.l.stripPipelining {
		q = bytes.ReplaceAll(p, []byte("250-PIPELINING\r\n"), nil)
	}
	c.l.record(c, false, q)
	if _, err := c.Conn.Write(q); err != nil {
		return 0, err
	}
	return len(p), nil
}

// tapListener wraps the connections it accepts in tapConns. With
// stripPipelining it hides PIPELINING from the EHLO replies of go-smtp,
// which always announces it.
type tapListener struct {
	net.Listener
	stripPipelining bool

	mu     sync.Mutex
	conns  []*tapConn
	events map[*tapConn][]tapEvent
}

func (l *tapListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	tc := &tapConn{Conn: c, l: l}
	l.mu.Lock()
	l.conns = append(l.conns, tc)
	l.mu.Unlock()
	return tc, nil
}

func (l *tapListener) record(c *tapConn, read bool, p []byte) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.events == nil {
		l.events = make(map[*tapConn][]tapEvent)
	}
	l.events[c] = append(l.events[c], tapEvent{read, string(p)})
}

// conn returns the events of the i-th connection.
func (l *tapListener) conn(i int) []tapEvent {
	l.mu.Lock()
	defer l.mu.Unlock()
	if i >= len(l.conns) {
		return nil
	}
	return append([]tapEvent(nil), l.events[l.conns[i]]...)
}

// sent returns what the client sent on the i-th connection.
func (l *tapListener) sent(i int) string {
	var b strings.Builder
	for _, e := range l.conn(i) {
		if e.read {
			b.WriteString(e.data)
		}
	}
	return b.String()
}

// fakeMX is a go-smtp server that records what it is given. Recipients
// whose local part starts with "defer" get 451, with "refuse" 550; a body
// containing "REJECT-ME" gets 554.
type fakeMX struct {
	addr string
	tap  *tapListener

	mu     sync.Mutex
	hellos []hello
	msgs   []*gotMsg
}

type hello struct {
	name string
	tls  bool
}

type gotMsg struct {
	from     string
	mailOpts smtp.MailOptions
	rcpts    []string
	rcptOpts []smtp.RcptOptions
	data     []byte
}

type mxOptions struct {
	tls          *tls.Config
	noPipelining bool
	dsn          bool
	smtputf8     bool
}

func startMX(t testing.TB, o mxOptions) *fakeMX {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	mx := &fakeMX{addr: ln.Addr().String(), tap: &tapListener{Listener: ln, stripPipelining: o.noPipelining}}
	srv := smtp.NewServer(smtp.BackendFunc(func(c *smtp.Conn) (smtp.Session, error) {
		_, isTLS := c.TLSConnectionState()
		mx.mu.Lock()
		mx.hellos = append(mx.hellos, hello{c.Hostname(), isTLS})
		mx.mu.Unlock()
		return &mxSession{mx: mx}, nil
	}))
	srv.Domain = "mx.test"
	srv.TLSConfig = o.tls
	srv.EnableDSN = o.dsn
	srv.EnableSMTPUTF8 = o.smtputf8
	srv.ErrorLog = log.New(io.Discard, "", 0)
	go srv.Serve(mx.tap)
	t.Cleanup(func() { srv.Close() })
	return mx
}

func (mx *fakeMX) messages() []*gotMsg {
	mx.mu.Lock()
	defer mx.mu.Unlock()
	return append([]*gotMsg(nil), mx.msgs...)
}

func (mx *fakeMX) greetings() []hello {
	mx.mu.Lock()
	defer mx.mu.Unlock()
	return append([]hello(nil), mx.hellos...)
}

type mxSession struct {
	mx  *fakeMX
	msg *gotMsg
}

func (s *mxSession) Reset()        { s.msg = nil }
func (s *mxSession) Logout() error { return nil }

func (s *mxSession) Mail(from string, opts *smtp.MailOptions) error {
	s.msg = &gotMsg{from: from}
	if opts != nil {
		s.msg.mailOpts = *opts
	}
	return nil
}

func (s *mxSession) Rcpt(to string, opts *smtp.RcptOptions) error {
	switch {
	case strings.HasPrefix(to, "defer"):
		return &smtp.SMTPError{Code: 451, EnhancedCode: smtp.EnhancedCode{4, 2, 1}, Message: "try again later"}
	case strings.HasPrefix(to, "refuse"):
		return &smtp.SMTPError{Code: 550, EnhancedCode: smtp.EnhancedCode{5, 1, 1}, Message: "no such user"}
	}
	s.msg.rcpts = append(s.msg.rcpts, to)
	if opts != nil {
		s.msg.rcptOpts = append(s.msg.rcptOpts, *opts)
	}
	return nil
}

func (s *mxSession) Data(r io.Reader) error {
	data, err := io.ReadAll(r)
	if err != nil {
		return err
	}
	if bytes.Contains(data, []byte("REJECT-ME")) {
		return &smtp.SMTPError{Code: 554, EnhancedCode: smtp.EnhancedCode{5, 6, 0}, Message: "content rejected"}
	}
	s.msg.data = data
	s.mx.mu.Lock()
	s.mx.msgs = append(s.mx.msgs, s.msg)
	s.mx.mu.Unlock()
	return nil
}

// scriptServer serves one connection from a script: it writes greeting,
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
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &scriptServer{addr: ln.Addr().String()}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go s.serve(c, greeting, reply)
		}
	}()
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
