package mta

import (
	"context"
	"maps"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/emersion/go-smtp"
)

// sessions tracks the open sessions of go-smtp servers and the DATA
// transactions among them, so that a shutdown can stop taking mail, let
// every message being received get its reply, and then close what is left
// (go-smtp's own Shutdown would wait for idle clients to leave).
type sessions struct {
	draining atomic.Bool
	// inTx counts DATA transactions from the DATA command (before its 354
	// reply) until the reply after the message has been written (go-smtp
	// resets the session after it).
	inTx  atomic.Int64
	mu    sync.Mutex
	conns map[*smtp.Conn]struct{}
}

// opened registers a new session's connection.
func (ss *sessions) opened(c *smtp.Conn) {
	ss.mu.Lock()
	if ss.conns == nil {
		ss.conns = map[*smtp.Conn]struct{}{}
	}
	ss.conns[c] = struct{}{}
	ss.mu.Unlock()
}

// closed forgets a session's connection (from Session.Logout).
func (ss *sessions) closed(c *smtp.Conn) {
	ss.mu.Lock()
	delete(ss.conns, c)
	ss.mu.Unlock()
}

// tx is one session's DATA transaction count: begin at DATA, end at the
// reset after the reply or at logout.
type tx struct{ open bool }

func (t *tx) begin(ss *sessions) {
	if !t.open {
		t.open = true
		ss.inTx.Add(1)
	}
}

// start begins the transaction at the DATA command, unless a shutdown
// has begun: incremented before draining is read (shutdown stores
// draining before it reads the count), so that a shutdown either waits
// for the message or the client is refused before its 354.
func (t *tx) start(ss *sessions) error {
	t.begin(ss)
	if ss.draining.Load() {
		t.end(ss)
		return errShutdown
	}
	return nil
}

func (t *tx) end(ss *sessions) {
	if t.open {
		t.open = false
		ss.inTx.Add(-1)
	}
}

// shutdown closes the servers' listeners, waits until no DATA transaction
// is open (or ctx ends), then closes the remaining sessions.
func (ss *sessions) shutdown(ctx context.Context, servers ...*smtp.Server) error {
	ss.draining.Store(true)
	stopped := make(chan error, len(servers))
	for _, srv := range servers {
		// Shutdown closes the listeners at once, then waits for the
		// connections, which are closed below.
		go func() { stopped <- srv.Shutdown(ctx) }()
	}
	var err error
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
wait:
	for ss.inTx.Load() > 0 {
		select {
		case <-tick.C:
		case <-ctx.Done():
			err = ctx.Err()
			break wait
		}
	}
	ss.mu.Lock()
	open := slices.Collect(maps.Keys(ss.conns))
	ss.mu.Unlock()
	for _, c := range open {
		c.Close() // calls Logout, which takes ss.mu
	}
	for range servers {
		if serr := <-stopped; err == nil && serr != nil {
			err = serr
		}
	}
	return err
}
