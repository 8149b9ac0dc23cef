package mta

import (
	"errors"
	"fmt"
	"net"
	"sync/atomic"

	"github.com/emersion/go-smtp"
)

// errNotStarted is what Healthy answers before Start.
var errNotStarted = errors.New("not started")

// errDraining is what Healthy answers once Shutdown has begun.
var errDraining = errors.New("shutting down")

// serveLoop is one listener's accept loop, run by serve; done is closed
// when the loop has returned.
type serveLoop struct {
	addr     string
	ln       net.Listener
	stopping atomic.Bool // stop was called: the loop's end is no failure
	done     chan struct{}
	err      error // why the loop returned (nil: it was stopped); read after done
}

// serve runs srv on ln in the background and returns the loop's record.
func serve(srv *smtp.Server, ln net.Listener, onErr func(error)) *serveLoop {
	l := &serveLoop{addr: ln.Addr().String(), ln: ln, done: make(chan struct{})}
	go func() {
		defer close(l.done)
		err := srv.Serve(ln)
		if errors.Is(err, smtp.ErrServerClosed) || l.stopping.Load() {
			err = nil
		}
		if err != nil {
			onErr(err)
		}
		l.err = err
	}()
	return l
}

// stop closes the loop's listener. The server's own Close and Shutdown
// close only the listeners its Serve has registered, which a loop started
// a moment before may not have done yet.
func (l *serveLoop) stop() {
	l.stopping.Store(true)
	l.ln.Close()
}

// healthy is nil while the loop accepts connections.
func (l *serveLoop) healthy() error {
	select {
	case <-l.done:
		if l.err != nil {
			return fmt.Errorf("listener %s stopped: %w", l.addr, l.err)
		}
	default:
		if !l.stopping.Load() {
			return nil
		}
	}
	return fmt.Errorf("listener %s closed", l.addr)
}

// listenersHealthy is the health of a server's listeners: nil while every
// loop accepts connections and no shutdown has begun.
func listenersHealthy(ss *sessions, loops []*serveLoop) error {
	if ss.draining.Load() {
		return errDraining
	}
	if len(loops) == 0 {
		return errNotStarted
	}
	for _, l := range loops {
		if err := l.healthy(); err != nil {
			return err
		}
	}
	return nil
}
