package queue

import (
	"bytes"
	"fmt"
	"math"
	"math/rand/v2"
	"strconv"
	"strings"
	"time"

	"github.com/cockroachdb/pebble"
)

// Dispatcher is told when recipients of a destination are waiting in
// memory to be taken, and when the spool has nothing of a destination
// queued any more (the delivery engine implements it). Its methods are
// called with the spool's lock held: they must not block and must not
// call the Spool. Ready may be called again before anything was taken.
type Dispatcher interface {
	Ready(dest string)
	// Drained tells that the spool forgot dest: nothing of it is left
	// on disk, waiting or taken.
	Drained(dest string)
}

// Lease is recipients of one message for one destination, taken for
// delivery by Take. The taker must end it with exactly one Finish.
type Lease struct {
	Msg   *Message    // the message; not to be modified
	Rcpts []Recipient // the recipients, as stored

	s *Spool
	d *dest
	g *group
}

// Outcome is what became of one recipient of a Lease.
type Outcome struct {
	Result  Result
	Tried   bool // an attempt was made: counted, and Result applies
	Release bool // not attempted: back to the schedule unchanged
}

// Retry is how a destination's temporary failures are retried: the first
// retry after Interval, doubled per attempt up to MaxInterval, with ±20%
// jitter; a recipient queued longer than MaxAge expires.
type Retry struct {
	Interval    time.Duration
	MaxInterval time.Duration
	MaxAge      time.Duration
}

// Take leases the first message waiting in dest's ready queue, with up to
// max(msg) of its recipients there (at least 1), and reports whether more
// recipients of dest are waiting. It returns nil when none waits. max is
// called with the spool's lock held and must not call the Spool.
func (s *Spool) Take(dest string, max func(*Message) int) (l *Lease, more bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	d := s.dests[dest]
	if s.closing || d == nil || d.nready == 0 {
		return nil, false
	}
	g := d.ready[d.head]
	if n := max(g.m.msg); n > 0 && len(g.es) > n {
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
	d.leases++
	s.count.move(rsReady, rsInFlight, n)
	s.leases.Add(1)
	if d.state == stFull && d.nready <= s.readyCap/2 {
		d.state = stDue
		s.dueList = append(s.dueList, d)
		s.wakeLocked()
	}
	l = &Lease{Msg: g.m.msg, Rcpts: make([]Recipient, n), s: s, d: d, g: g}
	for i := range g.es {
		l.Rcpts[i] = g.es[i].r
	}
	return l, d.nready > 0
}

// Todo returns the indexes of the recipients of l that need a delivery
// attempt at now (Spool.Now: Finish judges expiry by the same clock): not
// those older than maxAge (they expire) and not those whose failure was
// recorded and only awaits Options.OnFailure again. Finish settles the
// others by itself.
func (l *Lease) Todo(now time.Time, maxAge time.Duration) []int {
	todo := make([]int, 0, len(l.g.es))
	if now.Sub(l.Msg.Received) > maxAge {
		return todo
	}
	for i := range l.g.es {
		if l.g.es[i].fail == nil {
			todo = append(todo, i)
		}
	}
	return todo
}

// Now returns the time by the spool's clock (Options.Now), which dates
// receipts, attempts and retries; a taker gives it to Todo.
func (s *Spool) Now() time.Time { return s.now() }

// Body returns the body of the leased message, from memory or from disk; a
// body read from disk is kept while there is room in the body cache.
func (l *Lease) Body() ([]byte, error) { return l.s.bodyOf(l.g.m) }

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

// Finish records the outcomes of a lease (outs[i] for l.Rcpts[i]),
// calling OnFailure first for the recipients that failed for good, and
// emits the events. Recipients that Todo left out are settled here: their
// recorded failure, or expiry. A recipient neither tried nor released
// that Todo listed is released.
func (s *Spool) Finish(l *Lease, outs []Outcome, retry Retry) {
	defer s.leases.Done()
	d, g := l.d, l.g
	m, msg := g.m, g.m.msg
	now := s.now()
	old := now.Sub(msg.Received) > retry.MaxAge
	acts := make([]action, len(g.es))
	var failed []Failed
	for i := range g.es {
		e, a := &g.es[i], &acts[i]
		var o Outcome
		if i < len(outs) {
			o = outs[i]
		}
		a.r = e.r
		f := e.fail
		switch {
		case f != nil:
		case o.Release || !o.Tried && !old:
			continue
		case !o.Tried:
			f = expired(e.r.Attempts, e.r.LastError, Result{})
		}
		if o.Tried && f == nil {
			a.r.Attempts++
			a.r.LastAttempt = now
			switch o.Result.Status {
			case Delivered:
				a.kind, a.res = actDelivered, o.Result
				continue
			case Permanent:
				f = &failure{Result: o.Result}
			default:
				a.r.LastError = o.Result.Describe()
				if !old {
					a.kind, a.res = actDeferred, o.Result
					next := now.Add(backoff(a.r.Attempts, retry))
					if exp := msg.Received.Add(retry.MaxAge); next.After(exp) {
						// Due just past the max age instead: the
						// recipient expires then (and its DSN goes), not
						// at the retry after it.
						next = exp.Add(time.Nanosecond)
					}
					a.next = dueTime(next)
					a.r.NextAttempt = time.Unix(0, a.next)
					continue
				}
				f = expired(a.r.Attempts, a.r.LastError, o.Result)
			}
		}
		a.kind, a.fail, a.res = actFailed, f, f.Result
		failed = append(failed, Failed{Recipient: a.r, Result: f.Result, Expired: f.Expired})
	}
	if s.opts.DelayNotice > 0 && s.opts.OnDelay != nil {
		s.delayNotices(m, acts, now, msg.Received.Add(retry.MaxAge))
	}
	if len(failed) > 0 && s.opts.OnFailure != nil {
		if err := s.failureHook(m, failed); err != nil {
			s.log.Warn("queue: OnFailure failed, will retry", "id", m.id, "err", err)
			next := dueTime(now.Add(backoff(1, retry)))
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
	d.leases--
	for i := range acts {
		a, e := &acts[i], &g.es[i]
		m.clear(e.r.Index)
		switch a.kind {
		case actRelease:
			s.count.move(rsInFlight, onDisk(e.r.Attempts), 1)
			s.rewindLocked(d, appendSchedKey(nil, d.name, e.due, m.id, e.r.Index), e.due)
		case actDeferred, actHookRetry:
			s.count.move(rsInFlight, onDisk(a.r.Attempts), 1)
			s.rewindLocked(d, a.key, a.next)
		default:
			s.count.move(rsInFlight, rsGone, 1)
		}
	}
	if last {
		s.count.messages--
		if m.id == s.oldestID {
			s.oldestStale = true
		}
	}
	s.roomLocked()
	s.unrefLocked(m, len(g.es))
	s.maybeReapLocked(d)
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

// roomLocked wakes the scheduler when it waits for room under MaxInMemory
// and a quarter of it is free again.
func (s *Spool) roomLocked() {
	if s.globalWait && s.count.inMemory() <= s.maxMem-s.maxMem/4 {
		s.globalWait = false
		s.wakeLocked()
	}
}

// delayNotices calls OnDelay for the deferred recipients of acts queued
// longer than DelayNotice and not notified yet, and marks them notified
// when it succeeds (the mark is written with the deferral). until is when
// they expire.
func (s *Spool) delayNotices(m *msgMem, acts []action, now, until time.Time) {
	msg := m.msg
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
	body, err := s.bodyOf(m)
	if err == nil {
		err = s.delayHook(msg, headerOf(body), rcpts, until)
	}
	if err != nil {
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
func (s *Spool) delayHook(msg *Message, header []byte, rcpts []Recipient, until time.Time) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("panic in OnDelay: %v", r)
		}
	}()
	return s.opts.OnDelay(msg, header, rcpts, until)
}

// headerOf is the header of a message, up to and with the blank line
// that ends it (all of it when there is none).
func headerOf(body []byte) []byte {
	for _, sep := range [][]byte{[]byte("\r\n\r\n"), []byte("\n\n")} {
		if i := bytes.Index(body, sep); i >= 0 {
			return body[:i+len(sep)]
		}
	}
	return body
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

// backoff is the delay before attempt attempts+1: Interval doubled per
// attempt, capped at MaxInterval, with ±20% jitter (below the cap).
func backoff(attempts int, r Retry) time.Duration {
	d := float64(r.Interval) * math.Pow(2, float64(max(attempts-1, 0)))
	maxd := float64(r.MaxInterval)
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

// Describe renders a result as one line, as Recipient.LastError holds
// it: "451 4.7.1 text".
func (r Result) Describe() string {
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

func oneLine(s string) string { return strings.Join(strings.Fields(s), " ") }

// Waiting returns how many recipients of the destinations wait in their
// ready queues.
func (s *Spool) Waiting(dests ...string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for _, name := range dests {
		if d := s.dests[name]; d != nil {
			n += d.nready
		}
	}
	return n
}
