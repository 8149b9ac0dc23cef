package testkit

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"io"
	"log"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-smtp"
)

// MXOptions configures a fake MX. The zero value is a plain server named
// mx.test on a loopback port, answering with Cues.
type MXOptions struct {
	// Name is the server's name in its greeting; default "mx.test".
	Name string
	// TLS, when set, makes the server offer STARTTLS with it.
	TLS *tls.Config
	// DSN and SMTPUTF8 announce those extensions and parse their
	// parameters.
	DSN, SMTPUTF8 bool
	// MaxMessageBytes announces SIZE and refuses larger messages; 0 is no
	// limit.
	MaxMessageBytes int64
	// NoPipelining hides PIPELINING from the plain-text EHLO replies
	// (go-smtp always announces it).
	NoPipelining bool
	// Answer decides the reply to MAIL, RCPT and DATA; default Cues.
	Answer func(Command) error
	// Listener is served instead of a new listener on 127.0.0.1, such as
	// one of several MX hosts on one port.
	Listener net.Listener
	// NoTCP serves only the in-memory pipes of Dial: for a synctest
	// bubble, where a socket would keep the bubble from being idle. Start
	// such an MX inside the bubble.
	NoTCP bool
}

// Command is one command the MX is asked to answer.
type Command struct {
	Verb string // "MAIL", "RCPT" or "DATA"
	Arg  string // the address of MAIL or RCPT, the message of DATA
	Conn int    // the connection's number (see Transaction.Conn)
}

// ErrDrop, returned by an Answer, makes the MX close the connection
// instead of replying.
var ErrDrop = errors.New("testkit: drop the connection")

// The replies of Cues.
var (
	deferred = &smtp.SMTPError{Code: 451, EnhancedCode: smtp.EnhancedCode{4, 2, 0}, Message: "mailbox busy"}
	refused  = &smtp.SMTPError{Code: 550, EnhancedCode: smtp.EnhancedCode{5, 1, 1}, Message: "no such user"}
	rejected = &smtp.SMTPError{Code: 554, EnhancedCode: smtp.EnhancedCode{5, 6, 0}, Message: "content rejected"}
)

// Cues answers on cue: a recipient whose local part starts with "defer"
// gets 451 4.2.0 "mailbox busy", "refuse" 550 5.1.1 "no such user",
// "drop" a closed connection; a message containing "REJECT-ME" gets 554
// 5.6.0 "content rejected"; everything else is
// accepted. An Answer of a test can fall back on it.
func Cues(c Command) error {
	switch c.Verb {
	case "RCPT":
		switch {
		case strings.HasPrefix(c.Arg, "defer"):
			return deferred
		case strings.HasPrefix(c.Arg, "refuse"):
			return refused
		case strings.HasPrefix(c.Arg, "drop"):
			return ErrDrop
		}
	case "DATA":
		if strings.Contains(c.Arg, "REJECT-ME") {
			return rejected
		}
	}
	return nil
}

// Transaction is one message the MX accepted.
type Transaction struct {
	At       time.Time // when MAIL was given (the bubble's time in synctest)
	Conn     int       // the connection, numbered from 0 in the order the MX accepted them
	Helo     string    // the EHLO or HELO name in force
	TLS      bool      // over STARTTLS
	From     string
	MailOpts smtp.MailOptions
	Rcpts    []string // the accepted recipients
	RcptOpts []smtp.RcptOptions
	Data     []byte
}

// Hello is a greeting that opened a session: the first EHLO or HELO of a
// connection, or the first one after STARTTLS.
type Hello struct {
	Name string
	TLS  bool
}

// Wire is one read or write of a connection, as the server saw it (in
// cipher text after STARTTLS).
type Wire struct {
	Read bool // client to server
	Data string
}

// MX is a fake mail exchanger: a go-smtp server that records what it is
// given and answers as MXOptions.Answer says. It listens on a loopback
// port (Addr) and on in-memory pipes (Dial). It is safe for concurrent use.
type MX struct {
	// Addr is the TCP address ("127.0.0.1:port"); with NoTCP, the address
	// the pipes report.
	Addr string

	o     MXOptions
	srv   *smtp.Server
	pipes *Pipes
	sig   Signal

	mu        sync.Mutex
	conns     []*wireConn
	active    int
	maxActive int
	hellos    []Hello
	txs       []Transaction
}

// StartMX starts a fake MX; it stops when the test ends.
func StartMX(t testing.TB, o MXOptions) *MX {
	t.Helper()
	if o.Name == "" {
		o.Name = "mx.test"
	}
	if o.Answer == nil {
		o.Answer = Cues
	}
	mx := &MX{o: o}
	ln := o.Listener
	if ln == nil && !o.NoTCP {
		var err error
		if ln, err = net.Listen("tcp", "127.0.0.1:0"); err != nil {
			t.Fatal(err)
		}
	}
	if ln != nil {
		mx.Addr = ln.Addr().String()
	} else {
		mx.Addr = "192.0.2.1:25" // TEST-NET-1: nothing real answers there
	}
	mx.pipes = NewPipes(mx.Addr)

	mx.srv = smtp.NewServer(smtp.BackendFunc(mx.newSession))
	mx.srv.Domain = o.Name
	mx.srv.TLSConfig = o.TLS
	mx.srv.EnableDSN = o.DSN
	mx.srv.EnableSMTPUTF8 = o.SMTPUTF8
	mx.srv.MaxMessageBytes = o.MaxMessageBytes
	mx.srv.ErrorLog = log.New(io.Discard, "", 0)
	var wg sync.WaitGroup
	for _, l := range []net.Listener{ln, mx.pipes} {
		if l == nil {
			continue
		}
		wl := &wireListener{Listener: l, mx: mx}
		wg.Go(func() { mx.srv.Serve(wl) })
	}
	t.Cleanup(func() {
		mx.srv.Close()
		// Close the listeners too: Close misses one that Serve has not
		// registered yet.
		mx.pipes.Close()
		if ln != nil {
			ln.Close()
		}
		wg.Wait()
	})
	return mx
}

// Dial opens an in-memory connection to the MX, whatever network and
// address it is given: for smtpclient.Config.Dial and courier.Config.Dial.
func (mx *MX) Dial(ctx context.Context, network, addr string) (net.Conn, error) {
	return mx.pipes.Dial(ctx, network, addr)
}

// Transactions returns the messages accepted so far, in order.
func (mx *MX) Transactions() []Transaction {
	mx.mu.Lock()
	defer mx.mu.Unlock()
	return append([]Transaction(nil), mx.txs...)
}

// Wait waits until the MX has accepted n messages and returns them; it
// fails the test when timeout passes first.
func (mx *MX) Wait(t testing.TB, n int, timeout time.Duration) []Transaction {
	t.Helper()
	var txs []Transaction
	if !mx.sig.Await(timeout, func() bool { txs = mx.Transactions(); return len(txs) >= n }) {
		t.Fatalf("timed out after %v waiting for %d messages at %s; it has %d", timeout, n, mx.o.Name, len(txs))
	}
	return txs
}

// Hellos returns the greetings that opened sessions, in order.
func (mx *MX) Hellos() []Hello {
	mx.mu.Lock()
	defer mx.mu.Unlock()
	return append([]Hello(nil), mx.hellos...)
}

// Conns returns the number of connections accepted so far.
func (mx *MX) Conns() int {
	mx.mu.Lock()
	defer mx.mu.Unlock()
	return len(mx.conns)
}

// MaxActive returns the largest number of connections that were open at
// once. A connection counts from its accept until the client has said
// QUIT (or the connection closed): a client that closes after the 221 and
// opens another at once is not seen with both, however late the server
// notices the first one's end.
func (mx *MX) MaxActive() int {
	mx.mu.Lock()
	defer mx.mu.Unlock()
	return mx.maxActive
}

// Wire returns the reads and writes of connection i so far (nil for a
// connection not yet accepted).
func (mx *MX) Wire(i int) []Wire {
	mx.mu.Lock()
	defer mx.mu.Unlock()
	if i >= len(mx.conns) {
		return nil
	}
	return append([]Wire(nil), mx.conns[i].wire...)
}

// Sent returns what the client sent on connection i so far.
func (mx *MX) Sent(i int) string {
	var b strings.Builder
	for _, w := range mx.Wire(i) {
		if w.Read {
			b.WriteString(w.Data)
		}
	}
	return b.String()
}

func (mx *MX) newSession(c *smtp.Conn) (smtp.Session, error) {
	_, isTLS := c.TLSConnectionState()
	n := -1
	nc := c.Conn()
	if tc, ok := nc.(*tls.Conn); ok {
		nc = tc.NetConn()
	}
	if wc, ok := nc.(*wireConn); ok {
		n = wc.n
	}
	mx.mu.Lock()
	mx.hellos = append(mx.hellos, Hello{c.Hostname(), isTLS})
	mx.mu.Unlock()
	return &session{mx: mx, conn: c, n: n}, nil
}

// wireListener numbers and records the connections it accepts.
type wireListener struct {
	net.Listener
	mx *MX
}

func (l *wireListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	mx := l.mx
	mx.mu.Lock()
	defer mx.mu.Unlock()
	wc := &wireConn{Conn: c, mx: mx, n: len(mx.conns)}
	mx.conns = append(mx.conns, wc)
	mx.active++
	mx.maxActive = max(mx.maxActive, mx.active)
	return wc, nil
}

// wireConn records what one connection reads and writes.
type wireConn struct {
	net.Conn
	mx    *MX
	n     int
	wire  []Wire // under mx.mu
	close sync.Once
}

func (c *wireConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	if n > 0 {
		c.record(true, p[:n])
		// QUIT is the last thing a client sends.
		if bytes.HasSuffix(bytes.ToUpper(p[:n]), []byte("QUIT\r\n")) {
			c.end()
		}
	}
	return n, err
}

func (c *wireConn) Write(p []byte) (int, error) {
	q := p
	if c.mx.o.NoPipelining {
		q = bytes.ReplaceAll(p, []byte("250-PIPELINING\r\n"), nil)
	}
	c.record(false, q)
	if _, err := c.Conn.Write(q); err != nil {
		return 0, err
	}
	return len(p), nil
}

func (c *wireConn) Close() error {
	c.end()
	return c.Conn.Close()
}

// end takes the connection off the active count, once.
func (c *wireConn) end() {
	c.close.Do(func() {
		c.mx.mu.Lock()
		c.mx.active--
		c.mx.mu.Unlock()
	})
}

func (c *wireConn) record(read bool, p []byte) {
	c.mx.mu.Lock()
	defer c.mx.mu.Unlock()
	c.wire = append(c.wire, Wire{read, string(p)})
}

type session struct {
	mx   *MX
	conn *smtp.Conn
	n    int
	tx   *Transaction
}

func (s *session) Reset()        { s.tx = nil }
func (s *session) Logout() error { return nil }

// answer asks the MX's Answer about one command and carries out a drop.
func (s *session) answer(verb, arg string) error {
	err := s.mx.o.Answer(Command{Verb: verb, Arg: arg, Conn: s.n})
	if errors.Is(err, ErrDrop) {
		s.conn.Conn().Close()
	}
	return err
}

func (s *session) Mail(from string, opts *smtp.MailOptions) error {
	if err := s.answer("MAIL", from); err != nil {
		return err
	}
	_, isTLS := s.conn.TLSConnectionState()
	s.tx = &Transaction{At: time.Now(), Conn: s.n, Helo: s.conn.Hostname(), TLS: isTLS, From: from}
	if opts != nil {
		s.tx.MailOpts = *opts
	}
	return nil
}

func (s *session) Rcpt(to string, opts *smtp.RcptOptions) error {
	if err := s.answer("RCPT", to); err != nil {
		return err
	}
	s.tx.Rcpts = append(s.tx.Rcpts, to)
	if opts != nil {
		s.tx.RcptOpts = append(s.tx.RcptOpts, *opts)
	}
	return nil
}

func (s *session) Data(r io.Reader) error {
	data, err := io.ReadAll(r)
	if err != nil {
		return err
	}
	if err := s.answer("DATA", string(data)); err != nil {
		return err
	}
	s.tx.Data = data
	s.mx.mu.Lock()
	s.mx.txs = append(s.mx.txs, *s.tx)
	s.mx.mu.Unlock()
	s.mx.sig.Broadcast()
	return nil
}
