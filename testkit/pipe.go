package testkit

import (
	"context"
	"errors"
	"io"
	"net"
	"net/netip"
	"sync"
	"syscall"
	"time"
)

// Pipes is a net.Listener whose connections are in-memory pipes
// (net.Pipe), opened by its Dial. A server on Pipes runs inside a
// testing/synctest bubble, where a socket would keep the bubble from ever
// being idle: make the Pipes inside the bubble. It is safe for concurrent
// use.
//
// The connections report TCP addresses: the listener's own on the server
// side, and the listener's IP with a port counting up from 40000 on the
// client side, so that code that looks at addresses (loopback checks,
// "host[ip]:port" in logs) sees what a socket would give it.
type Pipes struct {
	addr  *net.TCPAddr
	conns chan net.Conn
	done  chan struct{}
	close sync.Once

	mu   sync.Mutex
	port int
}

// NewPipes returns a listener whose address is addr ("ip:port").
func NewPipes(addr string) *Pipes {
	ap := netip.MustParseAddrPort(addr)
	return &Pipes{
		addr:  net.TCPAddrFromAddrPort(ap),
		conns: make(chan net.Conn),
		done:  make(chan struct{}),
		port:  40000,
	}
}

// Accept waits for the next Dial.
func (p *Pipes) Accept() (net.Conn, error) {
	select {
	case <-p.done:
		return nil, net.ErrClosed
	default:
	}
	select {
	case c := <-p.conns:
		return c, nil
	case <-p.done:
		return nil, net.ErrClosed
	}
}

// Close stops Accept; later Dials fail as if the connection were refused.
// Connections already open stay open.
func (p *Pipes) Close() error {
	p.close.Do(func() { close(p.done) })
	return nil
}

// Addr is the listener's address.
func (p *Pipes) Addr() net.Addr { return p.addr }

// Dial opens a connection to the listener, whatever network and address
// it is given (the signature is that of smtpclient.Config.Dial and
// net.Dialer.DialContext). It waits for Accept, or ctx.
func (p *Pipes) Dial(ctx context.Context, _, _ string) (net.Conn, error) {
	refused := &net.OpError{Op: "dial", Net: "tcp", Addr: p.addr, Err: syscall.ECONNREFUSED}
	select {
	case <-p.done:
		return nil, refused
	default:
	}
	p.mu.Lock()
	p.port++
	client := &net.TCPAddr{IP: p.addr.IP, Port: p.port}
	p.mu.Unlock()
	c, s := net.Pipe()
	select {
	case p.conns <- pipeConn{s, p.addr, client}:
		return pipeConn{c, client, p.addr}, nil
	case <-p.done:
		return nil, refused
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// pipeConn is one end of a pipe with the addresses it reports. Its
// errors after Close are a socket's (net.ErrClosed) rather than
// io.ErrClosedPipe, so that servers take them for a closed connection.
type pipeConn struct {
	net.Conn
	local, remote net.Addr
}

func (c pipeConn) LocalAddr() net.Addr  { return c.local }
func (c pipeConn) RemoteAddr() net.Addr { return c.remote }

func (c pipeConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	return n, c.sockErr("read", err)
}

func (c pipeConn) Write(p []byte) (int, error) {
	n, err := c.Conn.Write(p)
	return n, c.sockErr("write", err)
}

func (c pipeConn) SetDeadline(t time.Time) error {
	return c.sockErr("set", c.Conn.SetDeadline(t))
}

func (c pipeConn) SetReadDeadline(t time.Time) error {
	return c.sockErr("set", c.Conn.SetReadDeadline(t))
}

func (c pipeConn) SetWriteDeadline(t time.Time) error {
	return c.sockErr("set", c.Conn.SetWriteDeadline(t))
}

func (c pipeConn) sockErr(op string, err error) error {
	if errors.Is(err, io.ErrClosedPipe) {
		return &net.OpError{Op: op, Net: "tcp", Source: c.local, Addr: c.remote, Err: net.ErrClosed}
	}
	return err
}
