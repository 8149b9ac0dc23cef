package engine

import (
	"errors"
	"fmt"
	"runtime/debug"
	"time"

	"drover/mta/smtperr"
	"drover/queue"
)

// worker is a delivery goroutine of one destination. It holds at most one
// connection, and the connection slot of its site that goes with it, and
// runs one lease (one transaction) at a time.
type worker struct {
	wake    chan struct{}
	timer   *time.Timer
	conn    Conn
	pool    string // the source pool of conn
	site    *site  // the site whose connection slot the worker holds; nil: none
	leaving bool   // its slot counts in site.leaving: closing to get under max
	shed    bool   // close the connection at the next look for work
	sent    int    // transactions run on conn
	exited  bool   // the worker has left its destination's count
	plan    *Plan  // the plan it acquired under
	planErr error  // the planner's error, to fail the next connection with
}

// kickLocked gets a worker for work signalled for d: an idle one, or a
// new one while d has fewer than MaxConnections and its site has a free
// connection slot (else d waits for one). Nothing starts while d or its
// site is suspended.
func (e *Engine) kickLocked(d *dest) {
	if e.closing {
		return
	}
	if n := len(d.idle); n > 0 {
		w := d.idle[n-1]
		d.idle = d.idle[:n-1]
		if w.site != nil {
			w.site.nidle--
		}
		select {
		case w.wake <- struct{}{}: // empty: a worker is idle once per wait
		default:
		}
		return
	}
	if d.hold != nil {
		return
	}
	st := d.site
	if st == nil {
		// No plan yet: one worker makes it.
		if d.workers == 0 {
			e.startWorkerLocked(d, nil)
		}
		return
	}
	if d.waiting || d.workers >= d.limits().MaxConnections || st.suspendedLocked() {
		return
	}
	if e.grabSlotLocked(st, d) {
		e.startWorkerLocked(d, st)
	}
}

// startWorkerLocked starts a worker for d, holding a slot of slot if not nil.
func (e *Engine) startWorkerLocked(d *dest, slot *site) {
	d.workers++
	e.wg.Add(1)
	go e.runWorker(d, slot)
}

func (e *Engine) runWorker(d *dest, slot *site) {
	w := &worker{wake: make(chan struct{}, 1), site: slot}
	defer func() {
		if r := recover(); r != nil {
			e.log.Error("engine: panic in delivery worker", "dest", d.name, "panic", r, "stack", string(debug.Stack()))
		}
		if w.conn != nil {
			e.closeConn(d, w, false)
		}
		e.mu.Lock()
		if w.site != nil {
			e.dropSlotLocked(w)
		}
		if !w.exited {
			d.workers--
			if d.pending {
				e.kickLocked(d) // a replacement, after a panic
			}
			e.maybeReapLocked(d)
		}
		e.mu.Unlock()
		e.wg.Done()
	}()
	for {
		if w.conn == nil && !e.acquire(d, w) {
			return
		}
		l, plan, again := e.take(d, w)
		if l == nil {
			if again {
				continue
			}
			return
		}
		if dead := e.handle(d, w, l, plan, nil); dead != nil {
			e.failReady(d, w, plan, *dead)
		}
	}
}

// acquire prepares w to open a connection to d: it asks the planner for
// d's plan (the only call that may block on DNS), binds d to the plan's
// site with its limits, and takes a connection slot of the site. It
// returns false, with the worker off its destination's count, when there
// is nothing to do, d is suspended, or the site has no free slot (d then
// waits for one).
func (e *Engine) acquire(d *dest, w *worker) bool {
	p, err := e.plan(d)
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.closing {
		e.exitLocked(d, w)
		return false
	}
	st := e.siteLocked(p.Site)
	if p.MX != nil || st.mx == nil {
		st.mx = p.MX
	}
	e.bindLocked(d, st)
	d.plan = p
	w.plan, w.planErr = p, err
	e.setSiteLimitsLocked(st, p.SiteLimits)
	if w.site != nil && w.site != st {
		e.dropSlotLocked(w)
	}
	if !d.pending || e.heldLocked(d) {
		e.exitLocked(d, w)
		return false
	}
	if w.site == nil {
		if !e.grabSlotLocked(st, d) {
			e.exitLocked(d, w)
			return false
		}
		w.site = st
	}
	return true
}

// exitLocked takes w off d's count, with the slot it holds if any.
func (e *Engine) exitLocked(d *dest, w *worker) {
	if w.site != nil {
		e.dropSlotLocked(w)
	}
	d.workers--
	w.exited = true
	e.maybeReapLocked(d)
}

// dropSlotLocked gives back w's connection slot.
func (e *Engine) dropSlotLocked(w *worker) {
	st, leaving := w.site, w.leaving
	w.site, w.leaving = nil, false
	e.releaseSlotLocked(st, leaving)
}

// take leases the next transaction's recipients from the spool, waiting
// up to the idle timeout while the worker has a connection open. It
// returns nil when the worker should stop, or with again set when it must
// acquire a connection slot first. A worker leaves its destination's count
// only once its connection is closed and under the same lock as its last
// look for work, and a signal of the spool that came while it looked is
// seen (d.gen), so neither MaxConnections nor new work is missed. A
// connection closes here, after its transaction, when its site went over
// its (lowered) MaxConnections, when d or its site is suspended, and when
// another destination of the site waits for the slot of an idle one
// (already idle, or going idle now).
func (e *Engine) take(d *dest, w *worker) (*queue.Lease, *Plan, bool) {
	e.mu.Lock()
	for {
		if e.closing {
			e.mu.Unlock()
			return nil, nil, false
		}
		if st := w.site; st != nil {
			held := e.heldLocked(d)
			over := st.slots-st.leaving > st.max
			if w.shed || st != d.site || held || over {
				if over && !w.shed && !held && st == d.site && !w.leaving {
					w.leaving = true
					st.leaving++
				}
				w.shed = false
				if w.conn == nil {
					e.dropSlotLocked(w)
					continue
				}
				e.mu.Unlock()
				e.closeConn(d, w, false)
				e.mu.Lock()
				continue
			}
		}
		if d.pending {
			if w.site == nil {
				e.mu.Unlock()
				return nil, nil, true
			}
			gen, plan := d.gen, d.plan
			e.mu.Unlock()
			l, more := e.spool.Take(d.name, transaction(plan))
			e.mu.Lock()
			if (l == nil || !more) && d.gen == gen {
				d.pending = false
			}
			if l == nil {
				continue
			}
			if d.pending {
				e.kickLocked(d) // more work than workers: another connection
			}
			e.mu.Unlock()
			return l, plan, false
		}
		if w.conn == nil {
			e.exitLocked(d, w)
			e.mu.Unlock()
			return nil, nil, false
		}
		if othersWaitLocked(w.site, d) {
			// Give the slot way now rather than hold it idle.
			w.shed = true
			continue
		}
		d.idle = append(d.idle, w)
		w.site.nidle++
		e.mu.Unlock()
		if w.timer == nil {
			w.timer = time.NewTimer(e.idle)
		} else {
			w.timer.Reset(e.idle)
		}
		select {
		case <-w.wake:
			w.timer.Stop()
			e.mu.Lock()
		case <-w.timer.C:
			e.mu.Lock()
			if e.removeIdleLocked(d, w) {
				e.mu.Unlock()
				e.closeConn(d, w, false)
				e.mu.Lock()
				continue
			}
			<-w.wake // kicked while the timer fired; sent under the lock
		case <-e.stop:
			w.timer.Stop()
			e.mu.Lock()
			if !e.removeIdleLocked(d, w) {
				<-w.wake
			}
		}
	}
}

// transaction returns how many recipients of a message one transaction
// takes under plan: one when each has its own return path (VERP), else
// the destination's MaxRecipientsPerMessage. Every transaction then
// counts against the message rate and MaxMessagesPerConnection.
func transaction(plan *Plan) func(*queue.Message) int {
	n, env := plan.Limits.MaxRecipientsPerMessage, plan.Envelope
	return func(m *queue.Message) int {
		if env != nil && m.ReturnPath != "" && env.PerRecipient(m) {
			return 1
		}
		return n
	}
}

// othersWaitLocked reports whether a destination of st other than d, with
// work, waits for a connection slot.
func othersWaitLocked(st *site, d *dest) bool {
	for _, x := range st.waiters {
		if x != d && x.pending && !x.reaped {
			return true
		}
	}
	return false
}

func (e *Engine) removeIdleLocked(d *dest, w *worker) bool {
	for i, x := range d.idle {
		if x == w {
			d.idle = append(d.idle[:i], d.idle[i+1:]...)
			if w.site != nil {
				w.site.nidle--
			}
			return true
		}
	}
	return false
}

// handle delivers a lease (or applies forced, the result of a failed
// connection, without delivering) and has the spool record the outcome.
// It returns the result to fail d's other ready recipients with when d is
// unreachable.
func (e *Engine) handle(d *dest, w *worker, l *queue.Lease, plan *Plan, forced *queue.Result) (dead *queue.Result) {
	outs := make([]queue.Outcome, len(l.Rcpts))
	finished := false
	defer func() {
		if r := recover(); r != nil {
			e.log.Error("engine: panic in delivery", "dest", d.name, "id", l.Msg.ID, "panic", r, "stack", string(debug.Stack()))
			if !finished {
				for i := range outs {
					outs[i] = queue.Outcome{Release: true}
				}
				e.spool.Finish(l, outs, retryOf(plan.Limits))
			}
			dead = nil
		}
	}()
	if todo := l.Todo(e.spool.Now(), plan.Limits.MaxAge); len(todo) > 0 {
		dead = e.attempt(d, w, l, plan, forced, todo, outs)
	}
	finished = true
	e.spool.Finish(l, outs, retryOf(plan.Limits))
	return dead
}

// attempt delivers the recipients todo of l and fills in their outcomes.
// The worker holds a slot of its site; it waits for the site's connection
// rate before opening and for its message rate before the transaction,
// and gives the recipients back unchanged if the engine stops or d is
// suspended meanwhile.
func (e *Engine) attempt(d *dest, w *worker, l *queue.Lease, plan *Plan, forced *queue.Result, todo []int, outs []queue.Outcome) (dead *queue.Result) {
	setAll := func(res queue.Result) {
		for _, i := range todo {
			outs[i] = queue.Outcome{Result: res, Tried: true}
		}
	}
	release := func() {
		for _, i := range todo {
			outs[i] = queue.Outcome{Release: true}
		}
	}
	if forced != nil {
		setAll(*forced)
		return nil
	}
	st := w.site
	body, err := l.Body()
	if err != nil {
		e.log.Error("engine: reading body", "id", l.Msg.ID, "err", err)
		setAll(queue.Result{Status: queue.Temporary, Text: "local error: " + err.Error()})
		return nil
	}
	pool := plan.Limits.Pool
	if plan.Envelope != nil {
		if p := plan.Envelope.Pool(l.Msg); p != "" {
			pool = p
		}
	}
	if w.conn != nil && w.pool != pool {
		e.closeConn(d, w, true) // another source address: a new connection, same slot
	}
	if w.conn == nil {
		if !e.rateWait(d, st.connRate) || e.held(d) {
			release()
			return nil
		}
		if err := e.open(d, w, plan, pool); err != nil {
			if e.ctx.Err() != nil {
				release()
				return nil
			}
			res := []queue.Result{errResult(err)}
			e.adapt(st, res)
			setAll(res[0])
			// Unreachable: the others waiting get the same result, unless
			// a rule suspended the site (they wait for its end instead).
			e.mu.Lock()
			unreachable := res[0].Status == queue.Permanent || d.conns == 0 && !e.heldLocked(d)
			e.mu.Unlock()
			if unreachable {
				return &res[0]
			}
			return nil
		}
	}
	// take looked for a hold just before the lease; after a wait for the
	// rate, rateWait looks again.
	if !e.rateWait(d, st.msgRate) {
		release()
		return nil
	}
	rcpts := l.Rcpts // usually every recipient is to be tried
	if len(todo) < len(rcpts) {
		rcpts = make([]queue.Recipient, len(todo))
		for j, i := range todo {
			rcpts[j] = l.Rcpts[i]
		}
	}
	from := l.Msg.ReturnPath
	if env := plan.Envelope; env != nil && from != "" && len(rcpts) == 1 && env.PerRecipient(l.Msg) {
		from = env.ReturnPath(l.Msg, rcpts[0])
	}
	results, err := e.deliver(w.conn, l.Msg, from, rcpts, body)
	w.sent++
	if len(results) > len(todo) {
		results = results[:len(todo)]
	}
	e.adapt(st, results)
	for j, i := range todo {
		switch {
		case j < len(results):
			outs[i] = queue.Outcome{Result: results[j], Tried: true}
		case err != nil && e.ctx.Err() != nil:
			outs[i] = queue.Outcome{Release: true}
		case err != nil:
			outs[i] = queue.Outcome{Result: errResult(err), Tried: true}
		default:
			outs[i] = queue.Outcome{Result: queue.Result{Status: queue.Temporary, Text: "local error: no result from courier"}, Tried: true}
		}
	}
	if err != nil || w.sent >= plan.Limits.MaxMessagesPerConnection {
		e.closeConn(d, w, false)
	}
	return nil
}

// held reports whether d is suspended (see heldLocked).
func (e *Engine) held(d *dest) bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.heldLocked(d)
}

// rateWait waits for the next event of a site limiter. After a wait, it
// reports false if the engine is stopping or d was suspended meanwhile.
func (e *Engine) rateWait(d *dest, l *limiter) bool {
	if l.unlimited.Load() {
		return true
	}
	r := l.Reserve()
	wait := r.Delay()
	if wait == 0 {
		return true
	}
	if !e.wait(wait) {
		r.Cancel()
		return false
	}
	e.mu.Lock()
	ok := !e.closing && !e.heldLocked(d)
	e.mu.Unlock()
	return ok
}

// wait sleeps for d unless the engine stops first; it reports whether it
// slept the whole time.
func (e *Engine) wait(d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-e.stop:
		return false
	case <-e.ctx.Done():
		return false
	}
}

// failReady fails the recipients that were waiting in d's ready queue with
// res, after a connection to d failed with no other connection open.
func (e *Engine) failReady(d *dest, w *worker, plan *Plan, res queue.Result) {
	whole := func(*queue.Message) int { return 0 }
	for n := e.spool.Waiting(d.name); n > 0; {
		e.mu.Lock()
		closing := e.closing
		e.mu.Unlock()
		if closing {
			return
		}
		l, _ := e.spool.Take(d.name, whole)
		if l == nil {
			return
		}
		n -= len(l.Rcpts)
		e.handle(d, w, l, plan, &res)
	}
}

// open connects w to d as plan says (or fails with the planner's error);
// on failure, w gives back its slot.
func (e *Engine) open(d *dest, w *worker, plan *Plan, pool string) (err error) {
	var c Conn
	if err = w.planErr; err != nil {
		w.planErr = nil
	} else {
		func() {
			defer func() {
				if r := recover(); r != nil {
					e.log.Error("engine: panic in Courier.Open", "dest", d.name, "panic", r, "stack", string(debug.Stack()))
					err = fmt.Errorf("local error: panic in courier: %v", r)
				}
			}()
			c, err = e.cfg.Courier.Open(e.ctx, d.name, plan, pool)
		}()
		if err == nil && c == nil {
			err = errors.New("local error: courier returned no connection")
		}
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	if err != nil {
		e.dropSlotLocked(w)
		return err
	}
	d.conns++
	w.site.conns++
	w.conn, w.pool, w.sent = c, pool, 0
	return nil
}

// deliver calls Conn.Deliver, turning a panic into an error.
func (e *Engine) deliver(c Conn, msg *queue.Message, from string, rcpts []queue.Recipient, body []byte) (results []queue.Result, err error) {
	defer func() {
		if r := recover(); r != nil {
			e.log.Error("engine: panic in Conn.Deliver", "id", msg.ID, "panic", r, "stack", string(debug.Stack()))
			results, err = nil, fmt.Errorf("local error: panic in courier: %v", r)
		}
	}()
	return c.Deliver(e.ctx, msg, from, rcpts, body)
}

// closeConn closes w's connection, and then gives back its slot unless
// keepSlot: a destination waiting for it opens only after the remote saw
// this one close.
func (e *Engine) closeConn(d *dest, w *worker, keepSlot bool) {
	c := w.conn
	w.conn = nil
	func() {
		defer func() {
			if r := recover(); r != nil {
				e.log.Error("engine: panic in Conn.Close", "dest", d.name, "panic", r)
			}
		}()
		if err := c.Close(); err != nil {
			e.log.Debug("engine: closing connection", "dest", d.name, "err", err)
		}
	}()
	e.mu.Lock()
	d.conns--
	if w.site != nil {
		w.site.conns--
		if !keepSlot {
			e.dropSlotLocked(w)
		}
	}
	e.mu.Unlock()
}

// errResult is the result of a Courier or Planner error, for every
// recipient it fails: the *smtperr.Error it is or wraps (reply, enhanced
// code, text, remote host, and the bounce class and reason its maker
// classified it with), else its text; temporary unless the error proves
// it permanent (smtperr.From).
func errResult(err error) queue.Result {
	e := smtperr.From(err)
	res := queue.Result{Status: queue.Temporary, Code: e.Code, Enhanced: e.Enhanced, Text: e.Message, Remote: e.Remote, Class: e.Class, Reason: e.Reason}
	if e.Permanent {
		res.Status = queue.Permanent
	}
	return res
}
