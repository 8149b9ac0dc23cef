package queue

import (
	"bytes"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"runtime/debug"
	"strconv"
	"strings"
	"time"

	"github.com/cockroachdb/pebble"
)

// worker is a delivery goroutine of one destination. It holds at most one
// connection, and the connection slot of its site that goes with it, and
// takes one message (group) at a time.
type worker struct {
	wake    chan struct{}
	timer   *time.Timer
	conn    Conn
	site    *site // the site whose connection slot the worker holds; nil: none
	leaving bool  // its slot counts in site.leaving: closing to get under max
	shed    bool  // close the connection at the next look for work
	sent    int   // messages sent on conn
	exited  bool  // the worker has left its destination's count
}

// kickLocked gets a worker for new work in d's ready queue: an idle one,
// or a new one while d has fewer than MaxConnections and its site has a
// free connection slot (else d waits for one). Nothing starts while d or
// its site is suspended.
func (s *Spool) kickLocked(d *dest) {
	if s.closing {
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
		// The site is not known yet: one worker looks it up.
		if d.workers == 0 {
			s.startWorkerLocked(d, nil)
		}
		return
	}
	if d.waiting || d.workers >= d.limits.MaxConnections || st.suspendedLocked() {
		return
	}
	if s.grabSlotLocked(st, d) {
		s.startWorkerLocked(d, st)
	}
}

// startWorkerLocked starts a worker for d, holding a slot of slot if not nil.
func (s *Spool) startWorkerLocked(d *dest, slot *site) {
	d.workers++
	s.wg.Add(1)
	go s.runWorker(d, slot)
}

func (s *Spool) runWorker(d *dest, slot *site) {
	w := &worker{wake: make(chan struct{}, 1), site: slot}
	defer func() {
		if r := recover(); r != nil {
			s.log.Error("queue: panic in delivery worker", "dest", d.name, "panic", r, "stack", string(debug.Stack()))
		}
		if w.conn != nil {
			s.closeConn(d, w)
		}
		s.mu.Lock()
		if w.site != nil {
			s.dropSlotLocked(w)
		}
		if !w.exited {
			d.workers--
			if d.nready > 0 {
				s.kickLocked(d) // a replacement, after a panic
			}
			s.maybeReapLocked(d)
		}
		s.mu.Unlock()
		s.wg.Done()
	}()
	for {
		if w.conn == nil && !s.acquire(d, w) {
			return
		}
		g, lim, again := s.take(d, w)
		if g == nil {
			if again {
				continue
			}
			return
		}
		if dead := s.handle(d, w, g, lim, nil); dead != nil {
			s.failReady(d, w, *dead)
		}
	}
}

// acquire prepares w to open a connection to d: it looks up d's site (the
// only call of Options.SiteOf, which may block on DNS), refreshes the
// limits of both, and takes a connection slot of the site. It returns
// false, with the worker off its destination's count, when there is
// nothing to do, d is suspended, or the site has no free slot (d then
// waits for one).
func (s *Spool) acquire(d *dest, w *worker) bool {
	site := s.siteOf(d)
	lim := s.limitsFor(site, d.name)
	slim := s.limitsFor(site, "")
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closing {
		s.exitLocked(d, w)
		return false
	}
	st := s.siteLocked(site.Name)
	if site.MX != nil || st.mx == nil {
		st.mx = site.MX
	}
	s.bindLocked(d, st)
	d.limits = lim
	s.setSiteLimitsLocked(st, slim)
	if w.site != nil && w.site != st {
		s.dropSlotLocked(w)
	}
	if d.nready == 0 || s.heldLocked(d) {
		s.exitLocked(d, w)
		return false
	}
	if w.site == nil {
		if !s.grabSlotLocked(st, d) {
			s.exitLocked(d, w)
			return false
		}
		w.site = st
	}
	return true
}

// exitLocked takes w off d's count, with the slot it holds if any.
func (s *Spool) exitLocked(d *dest, w *worker) {
	if w.site != nil {
		s.dropSlotLocked(w)
	}
	d.workers--
	w.exited = true
	s.maybeReapLocked(d)
}

// dropSlotLocked gives back w's connection slot.
func (s *Spool) dropSlotLocked(w *worker) {
	st, leaving := w.site, w.leaving
	w.site, w.leaving = nil, false
	s.releaseSlotLocked(st, leaving)
}

// take returns the next message to deliver, waiting up to the idle timeout
// while the worker has a connection open. It returns nil when the worker
// should stop, or with again set when it must acquire a connection slot
// first. A worker leaves its destination's count only once its
// connection is closed and under the same lock as its last look for work,
// so neither MaxConnections nor a recipient placed meanwhile is missed.
// A connection closes here, after its message, when its site went over its
// (lowered) MaxConnections, when d or its site is suspended, and when
// another destination of the site waits for the slot of an idle one.
func (s *Spool) take(d *dest, w *worker) (*group, Limits, bool) {
	s.mu.Lock()
	for {
		if s.closing {
			s.mu.Unlock()
			return nil, Limits{}, false
		}
		if st := w.site; st != nil {
			held := s.heldLocked(d)
			over := st.slots-st.leaving > st.max
			if w.shed || st != d.site || held || over {
				if over && !w.shed && !held && st == d.site && !w.leaving {
					w.leaving = true
					st.leaving++
				}
				w.shed = false
				if w.conn == nil {
					s.dropSlotLocked(w)
					continue
				}
				s.mu.Unlock()
				s.closeConn(d, w)
				s.mu.Lock()
				continue
			}
		}
		if d.nready > 0 {
			if w.site == nil {
				s.mu.Unlock()
				return nil, Limits{}, true
			}
			g, lim := s.takeLocked(d, true)
			s.mu.Unlock()
			return g, lim, false
		}
		if w.conn == nil {
			s.exitLocked(d, w)
			s.mu.Unlock()
			return nil, Limits{}, false
		}
		d.idle = append(d.idle, w)
		w.site.nidle++
		s.mu.Unlock()
		if w.timer == nil {
			w.timer = time.NewTimer(s.idle)
		} else {
			w.timer.Reset(s.idle)
		}
		select {
		case <-w.wake:
			w.timer.Stop()
			s.mu.Lock()
		case <-w.timer.C:
			s.mu.Lock()
			if s.removeIdleLocked(d, w) {
				s.mu.Unlock()
				s.closeConn(d, w)
				s.mu.Lock()
				continue
			}
			<-w.wake // kicked while the timer fired; sent under the lock
		case <-s.stop:
			w.timer.Stop()
			s.mu.Lock()
			if !s.removeIdleLocked(d, w) {
				<-w.wake
			}
		}
	}
}

func (s *Spool) removeIdleLocked(d *dest, w *worker) bool {
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

// takeLocked takes the first message of d's ready queue, with up to
// MaxRecipientsPerMessage of its recipients, and puts them in flight. With
// kick, it gets another worker going if more work is waiting.
func (s *Spool) takeLocked(d *dest, kick bool) (*group, Limits) {
	g := d.ready[d.head]
	if n := d.limits.MaxRecipientsPerMessage; len(g.es) > n {
		t := &group{m: g.m, es: g.es[:n:n]}
		g.es = g.es[n:]
		g = t
	} else {
		d.ready[d.head] = nil
		d.head++
		if d.head == len(d.ready) {
			d.ready, d.head = d.ready[:0], 0
		} else if d.head >= 64 && 2*d.head >= len(d.ready) {
			n := copy(d.ready, d.ready[d.head:])
			clear(d.ready[n:])
			d.ready, d.head = d.ready[:n], 0
		}
	}
	n := len(g.es)
	d.nready -= n
	s.nready -= n
	s.ninflight += n
	for i := range g.es {
		if g.es[i].r.Attempts > 0 {
			s.ndeferred--
		}
	}
	if kick && d.nready > 0 {
		s.kickLocked(d) // more work than workers: another connection
	}
	if d.state == stFull && d.nready <= s.readyCap/2 {
		d.state = stDue
		s.dueList = append(s.dueList, d)
		s.wakeLocked()
	}
	return g, d.limits
}

// outcome is what happened to one recipient of a group.
type outcome struct {
	res     Result
	tried   bool     // a delivery attempt was made
	release bool     // no attempt (shutdown): give the recipient back unchanged
	final   *failure // failed for good without an attempt: expired, or its hook is retried
}

// handle delivers a group (or applies forced, the result of a failed
// connection, without delivering) and records the outcome. It returns the
// result to fail d's other ready recipients with when d is unreachable.
func (s *Spool) handle(d *dest, w *worker, g *group, lim Limits, forced *Result) (dead *Result) {
	finished := false
	defer func() {
		if r := recover(); r != nil {
			s.log.Error("queue: panic in delivery", "dest", d.name, "id", g.m.id, "panic", r, "stack", string(debug.Stack()))
			if !finished {
				outs := make([]outcome, len(g.es))
				for i := range outs {
					outs[i].release = true
				}
				s.finish(d, g, outs, s.now(), lim)
			}
			dead = nil
		}
	}()
	now := s.now()
	outs := make([]outcome, len(g.es))
	todo := make([]int, 0, len(g.es))
	for i := range g.es {
		e := &g.es[i]
		switch {
		case e.fail != nil:
			outs[i].final = e.fail
		case now.Sub(g.m.msg.Received) > lim.MaxAge:
			outs[i].final = expired(e.r.Attempts, e.r.LastError, Result{})
		default:
			todo = append(todo, i)
		}
	}
	if len(todo) > 0 {
		dead = s.attempt(d, w, g, lim, forced, todo, outs)
	}
	finished = true
	s.finish(d, g, outs, now, lim)
	return dead
}

// attempt delivers the recipients todo of g and fills in their outcomes.
// The worker holds a slot of its site; it waits for the site's connection
// rate before opening and for its message rate before each transaction,
// and gives the recipients back unchanged if the spool stops or d is
// suspended meanwhile.
func (s *Spool) attempt(d *dest, w *worker, g *group, lim Limits, forced *Result, todo []int, outs []outcome) (dead *Result) {
	setAll := func(res Result) {
		for _, i := range todo {
			outs[i].res, outs[i].tried = res, true
		}
	}
	release := func() {
		for _, i := range todo {
			outs[i].release = true
		}
	}
	if forced != nil {
		setAll(*forced)
		return nil
	}
	st := w.site
	body, err := s.bodyOf(g.m)
	if err != nil {
		s.log.Error("queue: reading body", "id", g.m.id, "err", err)
		setAll(Result{Status: Temporary, Text: "local error: " + err.Error()})
		return nil
	}
	if w.conn == nil {
		if !s.rateWait(d, &st.connRate) || s.held(d) {
			release()
			return nil
		}
		if err := s.open(d, w, lim); err != nil {
			if s.ctx.Err() != nil {
				release()
				return nil
			}
			res := []Result{errResult(err)}
			s.adapt(st, res)
			setAll(res[0])
			// Unreachable: the others waiting get the same result, unless
			// a rule suspended the site (they wait for its end instead).
			s.mu.Lock()
			unreachable := res[0].Status == Permanent || d.conns == 0 && !s.heldLocked(d)
			s.mu.Unlock()
			if unreachable {
				return &res[0]
			}
			return nil
		}
	}
	if !s.rateWait(d, &st.msgRate) {
		release()
		return nil
	}
	rcpts := make([]Recipient, len(todo))
	for j, i := range todo {
		rcpts[j] = g.es[i].r
	}
	results, err := s.deliver(w.conn, g.m.msg, rcpts, body)
	w.sent++
	if len(results) > len(todo) {
		results = results[:len(todo)]
	}
	s.adapt(st, results)
	for j, i := range todo {
		switch {
		case j < len(results):
			outs[i].res, outs[i].tried = results[j], true
		case err != nil && s.ctx.Err() != nil:
			outs[i].release = true
		case err != nil:
			outs[i].res, outs[i].tried = errResult(err), true
		default:
			outs[i].res, outs[i].tried = Result{Status: Temporary, Text: "local error: no result from courier"}, true
		}
	}
	if err != nil || w.sent >= lim.MaxMessagesPerConnection {
		s.closeConn(d, w)
	}
	return nil
}

// held reports whether d is suspended (see heldLocked).
func (s *Spool) held(d *dest) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.heldLocked(d)
}

// rateWait waits for the next event of a site limiter. After a wait, it
// reports false if the spool is stopping or d was suspended meanwhile.
func (s *Spool) rateWait(d *dest, l *limiter) bool {
	wait := l.reserve()
	if wait == 0 {
		return true
	}
	if !s.wait(wait) {
		return false
	}
	s.mu.Lock()
	ok := !s.closing && !s.heldLocked(d)
	s.mu.Unlock()
	return ok
}

// failReady fails the recipients that were waiting in d's ready queue with
// res, after a connection to d failed with no other connection open.
func (s *Spool) failReady(d *dest, w *worker, res Result) {
	s.mu.Lock()
	n := d.nready
	s.mu.Unlock()
	for n > 0 {
		s.mu.Lock()
		if s.closing || d.nready == 0 {
			s.mu.Unlock()
			return
		}
		g, lim := s.takeLocked(d, false)
		s.mu.Unlock()
		n -= len(g.es)
		s.handle(d, w, g, lim, &res)
	}
}

// Actions on a recipient after an attempt.
const (
	actRelease   = iota // back to the schedule unchanged
	actDelivered        // done
	actFailed           // done: bounced or expired
	actDeferred         // rescheduled after a temporary failure
	actHookRetry        // failed, but OnFailure failed: rescheduled to retry the hook
)

type action struct {
	kind int
	r    Recipient // the updated record
	res  Result    // for the event
	fail *failure
	next int64  // new due time
	key  []byte // new schedule key
}

// finish writes the outcome of a group tried at start, calling OnFailure
// first for the recipients that failed for good, and emits the events.
func (s *Spool) finish(d *dest, g *group, outs []outcome, start time.Time, lim Limits) {
	m, msg := g.m, g.m.msg
	now := s.now()
	acts := make([]action, len(g.es))
	var failed []Failed
	for i := range g.es {
		e, o, a := &g.es[i], &outs[i], &acts[i]
		a.r = e.r
		if o.release {
			continue
		}
		if o.tried {
			a.r.Attempts++
			a.r.LastAttempt = start
		}
		f := o.final
		if f == nil {
			switch o.res.Status {
			case Delivered:
				a.kind, a.res = actDelivered, o.res
				continue
			case Permanent:
				f = &failure{Result: o.res}
			default:
				a.r.LastError = describe(o.res)
				if now.Sub(msg.Received) <= lim.MaxAge {
					a.kind, a.res = actDeferred, o.res
					a.next = dueTime(now.Add(backoff(a.r.Attempts, lim)))
					a.r.NextAttempt = time.Unix(0, a.next)
					continue
				}
				f = expired(a.r.Attempts, a.r.LastError, o.res)
			}
		}
		a.kind, a.fail, a.res = actFailed, f, f.Result
		failed = append(failed, Failed{Recipient: a.r, Result: f.Result, Expired: f.Expired})
	}
	if s.opts.DelayNotice > 0 && s.opts.OnDelay != nil {
		s.delayNotices(msg, acts, now)
	}
	if len(failed) > 0 && s.opts.OnFailure != nil {
		if err := s.failureHook(m, failed); err != nil {
			s.log.Warn("queue: OnFailure failed, will retry", "id", m.id, "err", err)
			next := dueTime(now.Add(backoff(1, lim)))
			for i := range acts {
				if acts[i].kind == actFailed {
					acts[i].kind, acts[i].next = actHookRetry, next
				}
			}
		}
	}

	b := s.db.NewBatch()
	defer b.Close()
	ndone := 0
	var buf []byte
	for i := range acts {
		a, e := &acts[i], &g.es[i]
		switch a.kind {
		case actDelivered, actFailed:
			ndone++
			buf = appendRcptKey(buf[:0], m.id, e.r.Index)
			_ = b.Delete(buf, nil)
			buf = appendSchedKey(buf[:0], d.name, e.due, m.id, e.r.Index)
			_ = b.SingleDelete(buf, nil)
		case actDeferred, actHookRetry:
			var f *failure
			if a.kind == actHookRetry {
				f = a.fail
			}
			a.r.NextAttempt = time.Unix(0, a.next)
			buf = appendSchedKey(buf[:0], d.name, e.due, m.id, e.r.Index)
			_ = b.SingleDelete(buf, nil)
			a.key = appendSchedKey(nil, d.name, a.next, m.id, e.r.Index)
			_ = b.Set(a.key, schedValue(buf[:0], a.r.Attempts), nil)
			buf = appendRcptKey(buf[:0], m.id, e.r.Index)
			k := len(buf)
			buf = appendRecipient(buf, &a.r, f)
			_ = b.Set(buf[:k], buf[k:], nil)
		}
	}
	last := false
	if ndone > 0 {
		s.mu.Lock()
		m.remaining -= ndone
		last = m.remaining == 0
		s.mu.Unlock()
		if last {
			_ = b.SingleDelete(msgKey(m.id), nil)
			_ = b.SingleDelete(bodyKey(m.id), nil)
		}
	}
	if !b.Empty() {
		// Not synced: losing it in a crash means a duplicate delivery
		// or retry, never a lost message.
		if err := b.Commit(pebble.NoSync); err != nil {
			s.log.Error("queue: recording delivery outcome", "id", m.id, "err", err)
			s.mu.Lock()
			m.remaining += ndone
			s.mu.Unlock()
			for i := range acts {
				acts[i] = action{r: g.es[i].r}
			}
			ndone, last = 0, false
		}
	}

	s.mu.Lock()
	s.ninflight -= len(g.es)
	if s.globalWait && s.nready+s.ninflight <= s.maxMem-s.maxMem/4 {
		s.globalWait = false
		s.wakeLocked()
	}
	s.nrcpts -= ndone
	if last {
		s.nmsgs--
		if m.id == s.oldestID {
			s.oldestStale = true
		}
	}
	for i := range acts {
		a, e := &acts[i], &g.es[i]
		m.clear(e.r.Index)
		switch a.kind {
		case actRelease:
			if e.r.Attempts > 0 {
				s.ndeferred++
			}
			s.rewindLocked(d, appendSchedKey(nil, d.name, e.due, m.id, e.r.Index), e.due)
		case actDeferred, actHookRetry:
			if a.r.Attempts > 0 {
				s.ndeferred++
			}
			s.rewindLocked(d, a.key, a.next)
		}
	}
	s.unrefLocked(m, len(g.es))
	s.mu.Unlock()

	if s.opts.OnEvent == nil {
		return
	}
	for i := range acts {
		a := &acts[i]
		var kind EventKind
		switch {
		case a.kind == actDelivered:
			kind = EventDelivered
		case a.kind == actDeferred:
			kind = EventDeferred
		case a.kind == actFailed && a.fail.Expired:
			kind = EventExpired
		case a.kind == actFailed:
			kind = EventBounced
		default:
			continue
		}
		ev := messageEvent(kind, now, msg)
		ev.Recipient = a.r.Addr
		ev.Attempt = a.r.Attempts
		ev.Code, ev.Enhanced, ev.Text, ev.Remote = a.res.Code, a.res.Enhanced, a.res.Text, a.res.Remote
		ev.Class, ev.Reason = a.res.Class, a.res.Reason
		ev.Delay = now.Sub(msg.Received)
		if kind == EventDeferred {
			ev.NextRetry = a.r.NextAttempt
		}
		s.emit(ev)
	}
}

// delayNotices calls OnDelay for the deferred recipients of acts queued
// longer than DelayNotice and not notified yet, and marks them notified
// when it succeeds (the mark is written with the deferral).
func (s *Spool) delayNotices(msg *Message, acts []action, now time.Time) {
	if now.Sub(msg.Received) < s.opts.DelayNotice {
		return
	}
	var rcpts []Recipient
	for i := range acts {
		if a := &acts[i]; a.kind == actDeferred && !a.r.DelayNotified {
			rcpts = append(rcpts, a.r)
		}
	}
	if len(rcpts) == 0 {
		return
	}
	if err := s.delayHook(msg, rcpts); err != nil {
		s.log.Warn("queue: OnDelay failed, will retry at the next deferral", "id", msg.ID, "err", err)
		return
	}
	for i := range acts {
		if a := &acts[i]; a.kind == actDeferred {
			a.r.DelayNotified = true
		}
	}
}

// delayHook calls OnDelay, turning a panic into an error.
func (s *Spool) delayHook(msg *Message, rcpts []Recipient) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("panic in OnDelay: %v", r)
		}
	}()
	return s.opts.OnDelay(msg, rcpts)
}

// failureHook calls OnFailure, turning a panic into an error.
func (s *Spool) failureHook(m *msgMem, failed []Failed) (err error) {
	body, err := s.bodyOf(m)
	if err != nil {
		return err
	}
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("panic in OnFailure: %v", r)
		}
	}()
	return s.opts.OnFailure(m.msg, body, failed)
}

// bodyOf returns the body of m, from memory or from disk; a body read from
// disk is kept while there is room in the body cache.
func (s *Spool) bodyOf(m *msgMem) ([]byte, error) {
	s.mu.Lock()
	body := m.body
	s.mu.Unlock()
	if body != nil {
		return body, nil
	}
	v, closer, err := s.db.Get(bodyKey(m.id))
	if err != nil {
		return nil, fmt.Errorf("body of %s: %w", m.id, err)
	}
	body = bytes.Clone(v)
	closer.Close()
	s.mu.Lock()
	if m.body == nil && m.refs > 0 && s.bodyBytes+len(body) <= s.bodyBudget {
		m.body = body
		s.bodyBytes += len(body)
	}
	s.mu.Unlock()
	return body, nil
}

// open connects w to d under lim; on failure, w gives back its slot.
func (s *Spool) open(d *dest, w *worker, lim Limits) (err error) {
	var c Conn
	func() {
		defer func() {
			if r := recover(); r != nil {
				s.log.Error("queue: panic in Courier.Open", "dest", d.name, "panic", r, "stack", string(debug.Stack()))
				err = fmt.Errorf("local error: panic in courier: %v", r)
			}
		}()
		c, err = s.opts.Courier.Open(s.ctx, d.name, lim)
	}()
	if err == nil && c == nil {
		err = errors.New("local error: courier returned no connection")
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if err != nil {
		s.dropSlotLocked(w)
		return err
	}
	d.conns++
	w.site.conns++
	w.conn, w.sent = c, 0
	return nil
}

// deliver calls Conn.Deliver, turning a panic into an error.
func (s *Spool) deliver(c Conn, msg *Message, rcpts []Recipient, body []byte) (results []Result, err error) {
	defer func() {
		if r := recover(); r != nil {
			s.log.Error("queue: panic in Conn.Deliver", "id", msg.ID, "panic", r, "stack", string(debug.Stack()))
			results, err = nil, fmt.Errorf("local error: panic in courier: %v", r)
		}
	}()
	return c.Deliver(s.ctx, msg, rcpts, body)
}

// closeConn closes w's connection, and then gives back its slot: a
// destination waiting for it opens only after the remote saw this one
// close.
func (s *Spool) closeConn(d *dest, w *worker) {
	c := w.conn
	w.conn = nil
	func() {
		defer func() {
			if r := recover(); r != nil {
				s.log.Error("queue: panic in Conn.Close", "dest", d.name, "panic", r)
			}
		}()
		if err := c.Close(); err != nil {
			s.log.Debug("queue: closing connection", "dest", d.name, "err", err)
		}
	}()
	s.mu.Lock()
	d.conns--
	if w.site != nil {
		w.site.conns--
		s.dropSlotLocked(w)
	}
	s.mu.Unlock()
}

// backoff is the delay before attempt attempts+1: RetryInterval doubled
// per attempt, capped at MaxRetryInterval, with ±20% jitter (below the cap).
func backoff(attempts int, lim Limits) time.Duration {
	d := float64(lim.RetryInterval) * math.Pow(2, float64(max(attempts-1, 0)))
	maxd := float64(lim.MaxRetryInterval)
	if d >= maxd {
		return time.Duration(maxd * (0.8 + 0.2*rand.Float64()))
	}
	return time.Duration(min(d*(0.8+0.4*rand.Float64()), maxd))
}

// expired is the failure of a recipient older than MaxAge: a local
// decision (Code 0) whose text ends with the last error; last is the
// result of the attempt that found it expired, if any.
func expired(attempts int, lastErr string, last Result) *failure {
	text := fmt.Sprintf("4.4.7 message expired after %d attempts", attempts)
	if lastErr != "" {
		text += ": " + lastErr
	}
	return &failure{Expired: true, Result: Result{
		Status: Permanent, Enhanced: "4.4.7", Text: text,
		Remote: last.Remote, Class: "soft", Reason: "expired",
	}}
}

// describe renders a result for Recipient.LastError: "451 4.7.1 text".
func describe(r Result) string {
	var parts []string
	if r.Code != 0 {
		parts = append(parts, strconv.Itoa(r.Code))
	}
	if r.Enhanced != "" && !strings.HasPrefix(r.Text, r.Enhanced) {
		parts = append(parts, r.Enhanced)
	}
	if r.Text != "" {
		parts = append(parts, r.Text)
	}
	if len(parts) == 0 {
		return "temporary failure"
	}
	return strings.Join(parts, " ")
}

// errResult is the result of a Courier error: the one it carries (a
// Result() Result method), else its text, temporary unless the error says
// it is permanent.
func errResult(err error) Result {
	var r interface{ Result() Result }
	if errors.As(err, &r) {
		res := r.Result()
		if res.Status == Delivered {
			res.Status = Temporary
		}
		if res.Text == "" {
			res.Text = oneLine(err.Error())
		}
		return res
	}
	res := Result{Status: Temporary, Text: oneLine(err.Error())}
	var p interface{ Permanent() bool }
	if errors.As(err, &p) && p.Permanent() {
		res.Status = Permanent
	}
	return res
}

func oneLine(s string) string { return strings.Join(strings.Fields(s), " ") }
