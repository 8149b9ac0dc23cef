// Package smtpclient is Drover's outbound SMTP client: one connection to one
// mail server, reused for many messages.
//
// Why our own client: go-smtp's client lacks PIPELINING (RFC 2920) and sends
// "EHLO localhost" before STARTTLS. A bulk MTA needs both right: pipelining
// saves a round trip per recipient, and the EHLO name is checked by
// receivers before and after TLS. The client is small and written directly
// on net and bufio rather than on net/textproto, because textproto's reader
// has no line length limit (a hostile server could make us buffer without
// end) and its DotWriter passes bare CRs through. The reply parser and the
// body writer are fuzzed.
//
// Contracts:
//
//   - Dial connects, reads the greeting, says EHLO with Config.Hostname
//     (HELO when EHLO is refused with 5xx), negotiates STARTTLS according to
//     Config.TLSMode and says EHLO again, with the same name, inside TLS.
//     Opportunistic: STARTTLS when offered; when it is not offered, or the
//     server refuses the STARTTLS command, the session goes on in plain text
//     on the same connection; when the TLS handshake fails, Dial connects
//     once more and goes on in plain text (the connection is unusable after
//     a failed handshake; Postfix does the same). Required: no STARTTLS or a
//     failed handshake is an error wrapping ErrTLS. Disabled: never TLS.
//     Plain text sent by the server after its STARTTLS reply is an error
//     (STARTTLS command injection).
//   - Send runs one mail transaction. With PIPELINING it writes MAIL, RCPT
//     and DATA in one go (in groups of at most 100 commands, so that neither
//     side can block the other) and then reads the replies; without it, one
//     command at a time. A refused recipient does not fail the others; when
//     no recipient is accepted, the body is not sent and RSET ends the
//     transaction. The body is normalised on the way out: every bare CR or
//     LF becomes CRLF, leading dots are doubled.
//   - Parameters the server did not announce are dropped rather than sent:
//     BODY= without 8BITMIME, SMTPUTF8 without SMTPUTF8, SIZE= without SIZE,
//     RET=, ENVID=, NOTIFY= and ORCPT= without DSN. Other parameters are
//     sent as given. The client never adds parameters on its own. Without
//     8BITMIME an 8-bit body is still sent as is (no conversion to
//     quoted-printable, which would break DKIM signatures); nearly every
//     server accepts it.
//   - Lines are not folded: a body line longer than 998 bytes is sent as it
//     is.
//   - Errors: Send returns an error only when the connection can no longer
//     be used (I/O error, timeout, cancelled context, protocol error, 421
//     reply, failed RSET), or for invalid input (ErrInvalidInput, nothing
//     sent). Refusals are replies in SendResult, not errors. Once the
//     connection is unusable, Err reports why and every later call fails
//     with that error.
//   - A Client is not safe for concurrent use.
package smtpclient

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"time"
)

// TLSMode says when the client uses STARTTLS.
type TLSMode int

const (
	TLSOpportunistic TLSMode = iota // STARTTLS when offered, else plain text (the zero value)
	TLSRequired                     // STARTTLS or fail
	TLSDisabled                     // never STARTTLS
)

func (m TLSMode) String() string {
	switch m {
	case TLSOpportunistic:
		return "opportunistic"
	case TLSRequired:
		return "required"
	case TLSDisabled:
		return "disabled"
	}
	return "TLSMode(" + strconv.Itoa(int(m)) + ")"
}

// Config is the configuration of one connection.
type Config struct {
	// Hostname is the name given in EHLO/HELO, before and after STARTTLS:
	// a fully qualified domain name (with a PTR pointing to it), or an
	// address literal such as "[192.0.2.1]". Required.
	Hostname string
	// LocalAddr is the source address; the zero value lets the system
	// choose.
	LocalAddr netip.Addr
	// Dial, when set, opens the connection instead of a net.Dialer (with
	// LocalAddr and ConnectTimeout): in-memory peers in tests, proxies.
	Dial func(ctx context.Context, network, addr string) (net.Conn, error)
	// TLSMode says when to use STARTTLS.
	TLSMode TLSMode
	// TLS is the TLS configuration; it is cloned, and its ServerName set to
	// the host part of the address given to Dial when empty. nil means a
	// default configuration that verifies certificates in Required mode and
	// does not in Opportunistic mode (RFC 7435: unauthenticated encryption
	// beats plain text, and MX certificates are often invalid). A verifying
	// configuration in Opportunistic mode makes an invalid certificate a
	// failed handshake, after which the message goes in plain text.
	TLS *tls.Config
	// ConnectTimeout bounds the TCP connection; default 30s.
	ConnectTimeout time.Duration
	// CommandTimeout bounds the greeting, the TLS handshake and the reply
	// to each command; default 5 minutes (RFC 5321 4.5.3.2).
	CommandTimeout time.Duration
	// DataTimeout bounds writing the body and reading the reply to its
	// end; default 10 minutes (RFC 5321 4.5.3.2).
	DataTimeout time.Duration
}

const (
	defaultConnectTimeout = 30 * time.Second
	defaultCommandTimeout = 5 * time.Minute
	defaultDataTimeout    = 10 * time.Minute
	quitTimeout           = 10 * time.Second

	readBufferSize  = 4096     // also the longest reply line accepted (RFC 5321 allows 512)
	writeBufferSize = 32 << 10 // a typical campaign message and its end in one write
)

// ErrTLS marks a failure to set up TLS: a failed handshake, or, in Required
// mode, a server that does not offer or refuses STARTTLS.
var ErrTLS = errors.New("smtpclient: TLS failed")

// Client is one SMTP connection.
type Client struct {
	cfg    Config
	raw    net.Conn // the TCP connection, for deadlines
	conn   net.Conn // raw, or the TLS connection over it
	r      *bufio.Reader
	w      *bufio.Writer
	ext    map[string]string // EHLO keywords (upper case) to their parameters
	tls    bool
	err    error // why the connection is unusable; nil while it is usable
	closed bool

	text []byte            // scratch for reply text
	strs map[string]string // interned reply strings
}

// Dial connects to addr ("host:port") and makes the session ready for Send:
// greeting, EHLO, STARTTLS as cfg.TLSMode says, and EHLO again inside TLS. A
// refusing greeting or EHLO/HELO reply is returned as an *Error.
func Dial(ctx context.Context, addr string, cfg Config) (*Client, error) {
	if cfg.Hostname == "" || strings.ContainsFunc(cfg.Hostname, func(r rune) bool { return r <= ' ' || r == 0x7f }) {
		return nil, fmt.Errorf("%w: EHLO hostname %q", ErrInvalidInput, cfg.Hostname)
	}
	if cfg.TLSMode < TLSOpportunistic || cfg.TLSMode > TLSDisabled {
		return nil, fmt.Errorf("%w: %v", ErrInvalidInput, cfg.TLSMode)
	}
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, fmt.Errorf("%w: address %q: %w", ErrInvalidInput, addr, err)
	}
	if cfg.ConnectTimeout <= 0 {
		cfg.ConnectTimeout = defaultConnectTimeout
	}
	if cfg.CommandTimeout <= 0 {
		cfg.CommandTimeout = defaultCommandTimeout
	}
	if cfg.DataTimeout <= 0 {
		cfg.DataTimeout = defaultDataTimeout
	}
	c, err := dial(ctx, addr, host, cfg, cfg.TLSMode)
	if err != nil && cfg.TLSMode == TLSOpportunistic && errors.Is(err, ErrTLS) {
		// The server offered STARTTLS but the handshake failed, which
		// leaves the connection unusable: go on in plain text on a new one.
		c, err = dial(ctx, addr, host, cfg, TLSDisabled)
	}
	return c, err
}

func dial(ctx context.Context, addr, host string, cfg Config, mode TLSMode) (*Client, error) {
	dialFn := cfg.Dial
	if dialFn == nil {
		d := net.Dialer{Timeout: cfg.ConnectTimeout}
		if cfg.LocalAddr.IsValid() {
			d.LocalAddr = net.TCPAddrFromAddrPort(netip.AddrPortFrom(cfg.LocalAddr, 0))
		}
		dialFn = d.DialContext
	}
	conn, err := dialFn(ctx, "tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("smtpclient: connect: %w", err)
	}
	c := &Client{
		cfg:  cfg,
		raw:  conn,
		conn: conn,
		r:    bufio.NewReaderSize(conn, readBufferSize),
		w:    bufio.NewWriterSize(conn, writeBufferSize),
		strs: make(map[string]string),
	}
	if err := c.open(ctx, host, mode); err != nil {
		c.Close()
		return nil, err
	}
	return c, nil
}

// open runs the session up to the point where a mail transaction can start.
func (c *Client) open(ctx context.Context, host string, mode TLSMode) error {
	defer c.watch(ctx)()
	if err := c.setDeadline(ctx, c.cfg.CommandTimeout); err != nil {
		return err
	}
	greeting, err := c.readReply(nil)
	if err != nil {
		return c.ioError(ctx, "greeting", err)
	}
	if greeting.Code/100 != 2 {
		c.quitQuietly()
		return &Error{Command: "greeting", Reply: greeting}
	}
	if err := c.hello(ctx); err != nil {
		return err
	}
	if mode == TLSDisabled {
		return nil
	}
	if _, ok := c.ext["STARTTLS"]; !ok {
		if mode == TLSRequired {
			c.quitQuietly()
			return fmt.Errorf("%w: STARTTLS not offered", ErrTLS)
		}
		return nil
	}
	return c.startTLS(ctx, host, mode)
}

// hello says EHLO, or HELO if EHLO is refused with 5xx, and records the
// extensions.
func (c *Client) hello(ctx context.Context) error {
	ext := make(map[string]string)
	rep, err := c.command(ctx, "EHLO", func(n int, text []byte) {
		if n > 0 {
			parseExtension(ext, text)
		}
	}, "EHLO ", c.cfg.Hostname)
	if err != nil {
		return err
	}
	if rep.Code/100 == 2 {
		c.ext = ext
		return nil
	}
	c.ext = nil
	if rep.Code/100 != 5 {
		c.quitQuietly()
		return &Error{Command: "EHLO", Reply: rep}
	}
	rep, err = c.command(ctx, "HELO", nil, "HELO ", c.cfg.Hostname)
	if err != nil {
		return err
	}
	if rep.Code/100 != 2 {
		c.quitQuietly()
		return &Error{Command: "HELO", Reply: rep}
	}
	return nil
}

// parseExtension records one EHLO line: a keyword and its parameters.
func parseExtension(ext map[string]string, text []byte) {
	kw, params, _ := strings.Cut(string(text), " ")
	if kw == "" || strings.ContainsFunc(kw, func(r rune) bool {
		return !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-')
	}) {
		return
	}
	ext[strings.ToUpper(kw)] = strings.TrimSpace(params)
}

func (c *Client) startTLS(ctx context.Context, host string, mode TLSMode) error {
	rep, err := c.command(ctx, "STARTTLS", nil, "STARTTLS")
	if err != nil {
		return err
	}
	switch {
	case rep.Code == 421:
		return c.broken(&Error{Command: "STARTTLS", Reply: rep})
	case rep.Code != 220 && mode == TLSRequired:
		c.quitQuietly()
		return fmt.Errorf("%w: STARTTLS refused: %s", ErrTLS, rep)
	case rep.Code != 220:
		return nil // opportunistic: the session goes on in plain text
	}
	if c.r.Buffered() > 0 {
		return fmt.Errorf("%w: plain text after the STARTTLS reply", ErrProtocol)
	}
	var tc *tls.Config
	if c.cfg.TLS != nil {
		tc = c.cfg.TLS.Clone()
	} else {
		tc = &tls.Config{InsecureSkipVerify: mode == TLSOpportunistic}
	}
	if tc.ServerName == "" {
		tc.ServerName = host
	}
	conn := tls.Client(c.raw, tc)
	if err := c.setDeadline(ctx, c.cfg.CommandTimeout); err != nil {
		return err
	}
	if err := conn.HandshakeContext(ctx); err != nil {
		return fmt.Errorf("%w: %w", ErrTLS, err)
	}
	c.conn = conn
	c.r.Reset(conn)
	c.w.Reset(conn)
	c.tls = true
	return c.hello(ctx)
}

// command writes one command line made of parts, flushes it and reads the
// reply. It is for the commands of the session set-up, which then check the
// reply themselves.
func (c *Client) command(ctx context.Context, name string, each func(int, []byte), parts ...string) (Reply, error) {
	if err := c.setDeadline(ctx, c.cfg.CommandTimeout); err != nil {
		return Reply{}, err
	}
	for _, p := range parts {
		c.w.WriteString(p)
	}
	c.w.WriteString("\r\n")
	if err := c.w.Flush(); err != nil {
		return Reply{}, c.ioError(ctx, name, err)
	}
	rep, err := c.readReply(each)
	if err != nil {
		return Reply{}, c.ioError(ctx, name, err)
	}
	return rep, nil
}

// quitQuietly says QUIT after a refusal during the session set-up (RFC 5321
// 3.1 asks for it after a 554 greeting), without waiting long for the reply.
func (c *Client) quitQuietly() {
	c.raw.SetDeadline(time.Now().Add(time.Second))
	c.w.WriteString("QUIT\r\n")
	if c.w.Flush() == nil {
		c.readReply(nil)
	}
}

// Extensions are the service extensions the server announced in its last
// EHLO reply.
type Extensions struct {
	Pipelining          bool  // PIPELINING (RFC 2920)
	EightBitMIME        bool  // 8BITMIME (RFC 6152)
	SMTPUTF8            bool  // SMTPUTF8 (RFC 6531)
	DSN                 bool  // DSN (RFC 3461)
	EnhancedStatusCodes bool  // ENHANCEDSTATUSCODES (RFC 2034)
	StartTLS            bool  // STARTTLS (RFC 3207); false inside TLS
	Size                bool  // SIZE (RFC 1870)
	MaxSize             int64 // SIZE limit in bytes; 0 if none was given
}

// Extensions returns the extensions of the server (all false after HELO).
func (c *Client) Extensions() Extensions {
	e := Extensions{
		Pipelining:          c.has("PIPELINING"),
		EightBitMIME:        c.has("8BITMIME"),
		SMTPUTF8:            c.has("SMTPUTF8"),
		DSN:                 c.has("DSN"),
		EnhancedStatusCodes: c.has("ENHANCEDSTATUSCODES"),
		StartTLS:            c.has("STARTTLS"),
		Size:                c.has("SIZE"),
	}
	if n, err := strconv.ParseInt(c.ext["SIZE"], 10, 64); err == nil && n > 0 {
		e.MaxSize = n
	}
	return e
}

func (c *Client) has(name string) bool {
	_, ok := c.ext[name]
	return ok
}

// TLS reports whether the session runs inside TLS.
func (c *Client) TLS() bool { return c.tls }

// TLSConnectionState returns the state of the TLS session, if any.
func (c *Client) TLSConnectionState() (tls.ConnectionState, bool) {
	if tc, ok := c.conn.(*tls.Conn); ok {
		return tc.ConnectionState(), true
	}
	return tls.ConnectionState{}, false
}

// RemoteAddr returns the address of the server.
func (c *Client) RemoteAddr() net.Addr { return c.raw.RemoteAddr() }

// LocalAddr returns the source address of the connection.
func (c *Client) LocalAddr() net.Addr { return c.raw.LocalAddr() }

// Err returns why the connection is no longer usable, or nil while it is.
func (c *Client) Err() error { return c.err }

// Reset sends RSET, abandoning any transaction.
func (c *Client) Reset() error {
	if c.err != nil {
		return c.err
	}
	return c.reset(context.Background())
}

func (c *Client) reset(ctx context.Context) error {
	rep, err := c.command(ctx, "RSET", nil, "RSET")
	if err != nil {
		// Without RSET the server may still hold the transaction.
		return c.broken(err)
	}
	if rep.Code/100 != 2 {
		// The state of the session is unknown: do not use it any more.
		return c.broken(&Error{Command: "RSET", Reply: rep})
	}
	return nil
}

// Quit sends QUIT, waits for the reply (at most 10 seconds, or
// Config.CommandTimeout if shorter: nothing depends on it) and closes the
// connection.
func (c *Client) Quit() error {
	if c.err != nil {
		c.Close()
		return c.err
	}
	ctx, cancel := context.WithTimeout(context.Background(), quitTimeout)
	defer cancel()
	_, err := c.command(ctx, "QUIT", nil, "QUIT")
	if cerr := c.Close(); err == nil {
		err = cerr
	}
	return err
}

// Close closes the connection without QUIT.
func (c *Client) Close() error {
	if c.closed {
		return nil
	}
	c.closed = true
	if c.err == nil {
		c.err = errors.New("smtpclient: connection closed")
	}
	return c.conn.Close()
}

// watch makes the I/O in progress fail when ctx is done. The returned
// function stops watching; once it returns, the watcher no longer touches
// the connection, so the next operation's deadline stands.
func (c *Client) watch(ctx context.Context) func() {
	if ctx.Done() == nil {
		return func() {}
	}
	raw := c.raw
	fired := make(chan struct{})
	stop := context.AfterFunc(ctx, func() {
		raw.SetDeadline(time.Unix(1, 0))
		close(fired)
	})
	return func() {
		if !stop() {
			<-fired
		}
	}
}

// setDeadline bounds the next I/O by d and by the deadline of ctx.
func (c *Client) setDeadline(ctx context.Context, d time.Duration) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("smtpclient: %w", err)
	}
	t := time.Now().Add(d)
	if dl, ok := ctx.Deadline(); ok && dl.Before(t) {
		t = dl
	}
	if err := c.raw.SetDeadline(t); err != nil {
		return c.broken(fmt.Errorf("smtpclient: %w", err))
	}
	// The watcher may have set its past deadline just before ours.
	if err := ctx.Err(); err != nil {
		return c.broken(fmt.Errorf("smtpclient: %w", err))
	}
	return nil
}

// ioError marks the connection unusable after an I/O or protocol error
// during command, and returns the error to report.
func (c *Client) ioError(ctx context.Context, command string, err error) error {
	if cerr := ctx.Err(); cerr != nil {
		err = fmt.Errorf("smtpclient: %s: %w (%w)", command, cerr, err)
	} else {
		err = fmt.Errorf("smtpclient: %s: %w", command, err)
	}
	return c.broken(err)
}

// broken records err as the reason the connection is unusable, closes it
// and returns err.
func (c *Client) broken(err error) error {
	if c.err == nil {
		c.err = err
	}
	if !c.closed {
		c.closed = true
		c.conn.Close()
	}
	return err
}
