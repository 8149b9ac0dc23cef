package testkit

import (
	"net"
	"testing"
)

// Serve runs handle, in a goroutine of its own, on every connection ln
// accepts, until the test ends; handle closes the connection. It is for
// raw servers that misbehave on purpose, where the fake MX cannot. With a
// nil ln it listens on a free loopback port. It returns the listener's
// address.
func Serve(t testing.TB, ln net.Listener, handle func(net.Conn)) string {
	t.Helper()
	if ln == nil {
		var err error
		if ln, err = net.Listen("tcp", "127.0.0.1:0"); err != nil {
			t.Fatal(err)
		}
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go handle(c)
		}
	}()
	return ln.Addr().String()
}
