package queue

import (
	"bytes"
	"cmp"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/cockroachdb/pebble"
)

// ctlBatch is the number of recipients an operator command handles per
// Pebble batch (more when one message has more matching recipients: a
// message's recipients are handled together, for one DSN per message).
const ctlBatch = 256

// scanRecipients calls fn for every recipient record in key order, so that
// the recipients of a message come together, with its message's envelope
// (read once per message; nil when the message record is missing).
func (s *Spool) scanRecipients(fn func(msg *Message, r *Recipient, f *failure) error) error {
	return s.scanRange([]byte(prefixRcpt), prefixEnd(prefixRcpt), fn)
}

// scanSelected is scanRecipients restricted to the messages sel.IDs names
// (all of them when it names none): a command on a few messages reads
// only their records.
func (s *Spool) scanSelected(sel *Selector, fn func(msg *Message, r *Recipient, f *failure) error) error {
	if len(sel.IDs) == 0 {
		return s.scanRecipients(fn)
	}
	for _, id := range sel.IDs {
		lower := appendRcptKey(nil, id, 0)
		upper := prefixEnd(string(lower[:len(prefixRcpt)+idLen]))
		if err := s.scanRange(lower, upper, fn); err != nil {
			return err
		}
	}
	return nil
}

// normalize checks sel and puts its IDs (sorted, without repeats) and
// domains in their stored form.
func (sel *Selector) normalize() error {
	ids := make([]string, 0, len(sel.IDs))
	for _, typed := range sel.IDs {
		id, ok := NormalizeID(typed)
		if !ok {
			return fmt.Errorf("%q is not a message ID", typed)
		}
		ids = append(ids, id)
	}
	slices.Sort(ids)
	sel.IDs = slices.Compact(ids)
	sel.Domain = strings.ToLower(sel.Domain)
	sel.Recipient = strings.ToLower(strings.TrimSpace(sel.Recipient))
	if sel.Recipient == "@" {
		return errors.New("recipient \"@\" names no domain")
	}
	return nil
}

func (s *Spool) scanRange(lower, upper []byte, fn func(msg *Message, r *Recipient, f *failure) error) error {
	rit, err := s.db.NewIter(&pebble.IterOptions{LowerBound: lower, UpperBound: upper})
	if err != nil {
		return err
	}
	defer rit.Close()
	mit, err := s.db.NewIter(&pebble.IterOptions{LowerBound: []byte(prefixMsg), UpperBound: prefixEnd(prefixMsg)})
	if err != nil {
		return err
	}
	defer mit.Close()
	var curID []byte
	var msg *Message
	for valid := rit.First(); valid; valid = rit.Next() {
		id, idx, ok := parseRcptKey(rit.Key())
		if !ok {
			continue
		}
		if !bytes.Equal(id, curID) {
			curID = append(curID[:0], id...)
			msg = nil
			if mit.SeekGE(msgKey(string(id))) && bytes.Equal(mit.Key()[len(prefixMsg):], id) {
				m, err := decodeMessage(string(id), mit.Value())
				if err != nil {
					return err
				}
				msg = m
			}
		}
		r, f, err := decodeRecipient(idx, rit.Value())
		if err != nil {
			return fmt.Errorf("%s: %w", id, err)
		}
		if err := fn(msg, &r, f); err != nil {
			return err
		}
	}
	return rit.Error()
}

// SiteOf names the site of a destination for Summaries and the operator
// commands: the delivery engine knows them. nil, or "" for a domain, means
// the site named like the domain.
type SiteOf func(domain string) string

func (f SiteOf) of(domain string) string {
	if f != nil {
		if name := f(domain); name != "" {
			return name
		}
	}
	return domain
}

// Summaries scans the recipient records and summarises them per site,
// domain, sender or campaign (groupBy), largest first. Memory is
// proportional to the number of groups, not of recipients. By site, each
// domain counts under siteOf(domain). Site and Suspension are left to the
// delivery engine.
func (s *Spool) Summaries(groupBy string, siteOf SiteOf) ([]Summary, error) {
	switch groupBy {
	case "site", "domain", "sender", "campaign":
	default:
		return nil, fmt.Errorf("queue: summaries: cannot group by %q (site, domain, sender or campaign)", groupBy)
	}
	done, err := s.readDB()
	if err != nil {
		return nil, err
	}
	defer done()
	type acc struct {
		Summary
		lastTry time.Time
		lastMsg string
	}
	sums := make(map[string]*acc)
	err = s.scanRecipients(func(msg *Message, r *Recipient, _ *failure) error {
		var key string
		switch groupBy {
		case "site":
			key = siteOf.of(r.Domain)
		case "domain":
			key = r.Domain
		case "sender":
			if msg != nil {
				key = msg.Sender
			}
		case "campaign":
			if msg != nil {
				key = msg.Campaign
			}
		}
		a := sums[key]
		if a == nil {
			a = &acc{Summary: Summary{Key: key}}
			sums[key] = a
		}
		a.Recipients++
		if msg != nil {
			if a.lastMsg != msg.ID {
				a.lastMsg = msg.ID
				a.Messages++
			}
			if a.Oldest.IsZero() || msg.Received.Before(a.Oldest) {
				a.Oldest = msg.Received
			}
		}
		if r.LastError != "" && r.LastAttempt.After(a.lastTry) {
			a.LastError, a.lastTry = r.LastError, r.LastAttempt
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("queue: summaries: %w", err)
	}
	out := make([]Summary, 0, len(sums))
	for _, a := range sums {
		out = append(out, a.Summary)
	}
	slices.SortFunc(out, func(a, b Summary) int {
		return cmp.Or(cmp.Compare(b.Recipients, a.Recipients), strings.Compare(a.Key, b.Key))
	})
	return out, nil
}

// Operator commands.

type ctlOp int

const (
	opFlush ctlOp = iota
	opBounce
	opDelete
	opHold
	opRelease
)

func (op ctlOp) String() string {
	return [...]string{"flush", "bounce", "delete", "hold", "release"}[op]
}

// pinned is a recipient an operator command holds in memory (its bit set
// in its msgMem, with a reference) while it changes it, so that neither
// the scheduler nor a delivery touches it meanwhile.
type pinned struct {
	m     *msgMem
	e     entry
	ready bool // taken from a ready queue (counted in flight meanwhile)
}

// matcher tells whether a recipient matches a selector.
type matcher struct {
	sel    Selector
	siteOf SiteOf
}

func (mt *matcher) match(msg *Message, r *Recipient) bool {
	sel := &mt.sel
	domain := r.Domain
	if sel.Domain != "" && domain != sel.Domain {
		return false
	}
	if len(sel.IDs) > 0 && (msg == nil || !slices.Contains(sel.IDs, msg.ID)) {
		return false
	}
	if sel.Recipient != "" {
		if at, ok := strings.CutPrefix(sel.Recipient, "@"); ok {
			if domain != at {
				return false
			}
		} else if !strings.EqualFold(r.Addr, sel.Recipient) {
			return false
		}
	}
	if sel.Site != "" && mt.siteOf.of(domain) != sel.Site {
		return false
	}
	if sel.Sender != "" && (msg == nil || msg.Sender != sel.Sender) {
		return false
	}
	if sel.Campaign != "" && (msg == nil || msg.Campaign != sel.Campaign) {
		return false
	}
	return true
}

// Progress is how far an operator command (Flush, Bounce, Delete) has
// got, as handed to its report function.
type Progress struct {
	// Total is the number of recipients queued when the command started:
	// about what it scans (recipients queued meanwhile may add to it).
	Total int
	// Scanned is the number of recipient records read so far.
	Scanned int
	// Affected is the number of recipients changed so far (counted, for a
	// dry run); the command's result is the final count.
	Affected int
}

// ctlReportEvery is the number of recipient records an operator command
// reads between two progress reports (and checks for Close).
const ctlReportEvery = 256

// Flush makes every queued recipient that matches sel (all of them for
// the empty selector) and waits for a later time due now, keeping its
// attempt count and backoff. It returns how many it rescheduled; the ones
// in flight or already due are left alone. Suspensions still apply.
//
// Flush, Bounce and Delete run one at a time. When report is not nil,
// they call it on the caller's goroutine once they start (after any
// command before them), after every ctlReportEvery recipient records read,
// and at the end; it must not block. When the spool closes, they stop
// within ctlReportEvery records, with ErrClosed and the count so far.
func (s *Spool) Flush(sel Selector, siteOf SiteOf, report func(Progress)) (int, error) {
	return s.control(opFlush, sel, siteOf, "", false, report)
}

// Bounce fails for good the queued recipients that match sel (which must
// not be empty), as the remote would: OnFailure is called first (once per
// message and batch, for the DSN), then their records are removed and a
// bounced event is emitted per recipient, with Result{Status: Permanent,
// Enhanced: "5.0.0", Text: "bounced by operator: <reason>", Reason:
// ReasonOperator} and no class: final, and an operator's decision says
// nothing about the address. Recipients waiting in memory for a connection are included;
// those in flight (or being loaded by the scheduler at that moment) are
// skipped and not counted: a later call catches them if they are deferred.
// With dryRun it only counts. If OnFailure fails for a message, its
// recipients stay queued and the error is returned with the count of the
// others.
func (s *Spool) Bounce(sel Selector, siteOf SiteOf, reason string, dryRun bool, report func(Progress)) (int, error) {
	if sel.Empty() {
		return 0, errors.New("queue: bounce: empty selector")
	}
	return s.control(opBounce, sel, siteOf, reason, dryRun, report)
}

// Delete removes the queued recipients that match sel (which must not be
// empty) without a DSN, with the message and its body when its last
// recipient goes, and emits a deleted event per recipient. Like Bounce, it
// skips (and does not count) the recipients in flight; with dryRun it only
// counts.
func (s *Spool) Delete(sel Selector, siteOf SiteOf, dryRun bool, report func(Progress)) (int, error) {
	if sel.Empty() {
		return 0, errors.New("queue: delete: empty selector")
	}
	return s.control(opDelete, sel, siteOf, "", dryRun, report)
}

// Hold keeps the queued recipients that match sel (which must not be
// empty) from delivery until Release: their records are marked held
// (written with pebble.Sync, so a restart keeps them held) and their
// schedule entries moved to the far end of time, so the scheduler never
// loads them. Recipients waiting in a ready queue are taken back; those in
// flight are skipped and not counted. Flush leaves held recipients alone;
// Bounce and Delete act on them as on any other. It returns how many it
// held (those already held are not counted).
func (s *Spool) Hold(sel Selector, siteOf SiteOf, report func(Progress)) (int, error) {
	if sel.Empty() {
		return 0, errors.New("queue: hold: empty selector")
	}
	return s.control(opHold, sel, siteOf, "", false, report)
}

// Release makes the held recipients that match sel (which must not be
// empty) due now, keeping their attempt counts. It returns how many it
// released.
func (s *Spool) Release(sel Selector, siteOf SiteOf, report func(Progress)) (int, error) {
	if sel.Empty() {
		return 0, errors.New("queue: release: empty selector")
	}
	return s.control(opRelease, sel, siteOf, "", false, report)
}

// ctl is the state of one operator command.
type ctl struct {
	s      *Spool
	op     ctlOp
	reason string
	dryRun bool
	now    time.Time

	n, skipped int
	errs       []error
	ready      map[string][]pinned // taken from the ready queues, by message ID
}

// candidate of an operator command, found on disk.
type ctlCand struct {
	msg *Message
	idx int
	r   Recipient
}

func (s *Spool) control(op ctlOp, sel Selector, siteOf SiteOf, reason string, dryRun bool, report func(Progress)) (int, error) {
	if err := sel.normalize(); err != nil {
		return 0, fmt.Errorf("queue: %s: %w", op, err)
	}
	s.ctlMu.Lock()
	defer s.ctlMu.Unlock()
	done, err := s.readDB()
	if err != nil {
		return 0, err
	}
	defer done()
	mt := &matcher{sel: sel, siteOf: siteOf}
	c := &ctl{s: s, op: op, reason: reason, dryRun: dryRun, now: s.now()}
	s.mu.Lock()
	prog := Progress{Total: s.count.stats().Recipients}
	s.mu.Unlock()
	if report == nil {
		report = func(Progress) {}
	}
	report(prog)
	if op != opFlush && op != opRelease {
		c.takeReady(mt) // nothing held is in a ready queue
	}
	var batch []ctlCand
	err = s.scanSelected(&mt.sel, func(msg *Message, r *Recipient, _ *failure) error {
		if prog.Scanned++; prog.Scanned%ctlReportEvery == 0 {
			prog.Affected = c.n
			report(prog)
			select {
			case <-s.stop:
				return ErrClosed
			default:
			}
		}
		if msg == nil || !mt.match(msg, r) {
			return nil
		}
		switch {
		case op == opFlush && (r.Held || r.NextAttempt.UnixNano() <= dueTime(c.now)),
			op == opHold && r.Held,
			op == opRelease && !r.Held:
			return nil
		}
		if len(batch) >= ctlBatch && batch[len(batch)-1].msg.ID != msg.ID {
			c.handleBatch(batch)
			clear(batch)
			batch = batch[:0]
		}
		batch = append(batch, ctlCand{msg: msg, idx: r.Index, r: *r})
		return nil
	})
	if len(batch) > 0 {
		c.handleBatch(batch)
	}
	switch {
	case errors.Is(err, ErrClosed):
		c.errs = append(c.errs, fmt.Errorf("queue: %s: stopped after %d of about %d recipients: %w", op, prog.Scanned, prog.Total, err))
	case err != nil:
		c.errs = append(c.errs, fmt.Errorf("queue: %s: %w", op, err))
	}
	// What was taken from the ready queues and not handled with its
	// message's recipients on disk.
	ids := make([]string, 0, len(c.ready))
	for id := range c.ready {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	for _, id := range ids {
		c.apply(c.ready[id])
	}
	prog.Affected = c.n
	report(prog)
	if c.skipped > 0 {
		s.log.Info("queue: recipients in flight skipped", "op", op.String(), "skipped", c.skipped)
	}
	if !dryRun && c.n > 0 {
		s.log.Info("queue: operator command", "op", op.String(), "selector", fmt.Sprintf("%+v", sel), "affected", c.n, "reason", reason)
	}
	return c.n, errors.Join(c.errs...)
}

// takeReady takes the matching recipients out of the ready queues (or
// counts them for a dry run).
func (c *ctl) takeReady(mt *matcher) {
	s := c.s
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, d := range s.dests {
		if d.nready == 0 || mt.sel.Domain != "" && d.name != mt.sel.Domain {
			continue
		}
		var kept []*group
		for _, g := range d.ready[d.head:] {
			var taken, left []entry
			for _, e := range g.es {
				if mt.match(g.m.msg, &e.r) {
					taken = append(taken, e)
				} else {
					left = append(left, e)
				}
			}
			if len(taken) == 0 {
				kept = append(kept, g)
				continue
			}
			if c.dryRun {
				c.n += len(taken)
				kept = append(kept, g)
				continue
			}
			for _, e := range taken {
				if c.ready == nil {
					c.ready = make(map[string][]pinned)
				}
				c.ready[g.m.id] = append(c.ready[g.m.id], pinned{m: g.m, e: e, ready: true})
			}
			if len(left) > 0 {
				g.es = left
				kept = append(kept, g)
			}
			n := len(taken)
			d.nready -= n
			s.count.move(rsReady, rsInFlight, n)
		}
		if c.dryRun {
			continue
		}
		clear(d.ready)
		d.ready, d.head = append(d.ready[:0], kept...), 0
		if d.state == stFull && d.nready <= s.readyCap/2 {
			d.state = stDue
			s.dueList = append(s.dueList, d)
			s.wakeLocked()
		}
	}
}

// handleBatch pins the candidates that are not in memory (or counts them
// for a dry run) and applies the command to them, per message.
func (c *ctl) handleBatch(batch []ctlCand) {
	s := c.s
	var pins []pinned
	s.mu.Lock()
	for i := range batch {
		cd := &batch[i]
		m := s.mem[cd.msg.ID]
		if c.isReady(cd.msg.ID, cd.idx) {
			continue // taken from a ready queue: handled with them
		}
		if m != nil && (m.has(cd.idx) || m.msg == nil) {
			// In flight, waiting in memory since takeReady, or its
			// message is being loaded by the scheduler.
			c.skipped++
			continue
		}
		if c.dryRun {
			c.n++
			continue
		}
		if m == nil {
			n, err := s.countRecipients(cd.msg.ID)
			if err != nil {
				c.errs = append(c.errs, fmt.Errorf("queue: %s: %s: %w", c.op, cd.msg.ID, err))
				continue
			}
			m = &msgMem{id: cd.msg.ID, msg: cd.msg, remaining: n}
			s.mem[m.id] = m
		}
		m.set(cd.idx)
		m.refs++
		pins = append(pins, pinned{m: m, e: entry{r: cd.r, due: cd.r.NextAttempt.UnixNano()}})
	}
	s.mu.Unlock()
	if len(pins) == 0 {
		return
	}
	// Re-read the records now that they are pinned: they may have
	// changed since the scan (a delivery may have retried or finished
	// them), and nobody changes them any more. They are counted from
	// what they are now: a recipient gone meanwhile was counted gone by
	// whoever removed it.
	live := pins[:0]
	var gone []pinned
	for _, p := range pins {
		r, f, err := s.readRecipient(p.m.id, p.e.r.Index)
		if err != nil {
			if !errors.Is(err, pebble.ErrNotFound) {
				c.errs = append(c.errs, fmt.Errorf("queue: %s: %s: %w", c.op, p.m.id, err))
			}
			gone = append(gone, p)
			continue
		}
		p.e = entry{r: r, due: r.NextAttempt.UnixNano(), fail: f}
		live = append(live, p)
	}
	s.mu.Lock()
	for _, p := range live {
		s.count.move(onDisk(p.e.r.Attempts), rsInFlight, 1)
	}
	for _, p := range gone {
		p.m.clear(p.e.r.Index)
		s.unrefLocked(p.m, 1)
	}
	s.mu.Unlock()
	for start := 0; start < len(live); {
		end := start + 1
		for end < len(live) && live[end].m == live[start].m {
			end++
		}
		ps := live[start:end]
		if more := c.ready[ps[0].m.id]; len(more) > 0 {
			ps = append(slices.Clip(ps), more...)
			delete(c.ready, ps[0].m.id)
		}
		c.apply(ps)
		start = end
	}
}

// isReady reports whether recipient idx of message id was taken from a
// ready queue.
func (c *ctl) isReady(id string, idx int) bool {
	for _, p := range c.ready[id] {
		if p.e.r.Index == idx {
			return true
		}
	}
	return false
}

// countRecipients counts the recipient records of a message. Called with
// Spool.mu held for a message without recipients in memory: nobody else
// changes its records meanwhile.
func (s *Spool) countRecipients(id string) (int, error) {
	lower := appendRcptKey(nil, id, 0)
	it, err := s.db.NewIter(&pebble.IterOptions{LowerBound: lower, UpperBound: prefixEnd(string(lower[:len(prefixRcpt)+idLen]))})
	if err != nil {
		return 0, err
	}
	n := 0
	for valid := it.First(); valid; valid = it.Next() {
		n++
	}
	return n, it.Close()
}

// apply carries out the command on pinned recipients of one message.
func (c *ctl) apply(ps []pinned) {
	if len(ps) == 0 {
		return
	}
	switch c.op {
	case opFlush, opHold, opRelease:
		c.reschedule(ps)
	case opBounce:
		c.bounce(ps)
	case opDelete:
		c.remove(ps, nil)
	}
}

// unpin gives recipients back to the schedule: at key and due when set,
// else unchanged.
func (c *ctl) unpin(ps []pinned, keys [][]byte, dues []int64) {
	s := c.s
	s.mu.Lock()
	defer s.mu.Unlock()
	for i, p := range ps {
		d := s.destLocked(p.e.r.Domain)
		p.m.clear(p.e.r.Index)
		p.m.refs--
		key, due := []byte(nil), p.e.due
		if keys != nil && keys[i] != nil {
			key, due = keys[i], dues[i]
		} else {
			key = appendSchedKey(nil, d.name, p.e.due, p.m.id, p.e.r.Index)
		}
		s.count.move(rsInFlight, onDisk(p.e.r.Attempts), 1)
		s.rewindLocked(d, key, due)
		s.unrefLocked(p.m, 0)
	}
}

// reschedule moves pinned recipients in the schedule: flush makes them due
// now, hold marks them held and moves them to holdDue, release unmarks
// them and makes them due now.
func (c *ctl) reschedule(ps []pinned) {
	s := c.s
	now := dueTime(c.now)
	b := s.db.NewBatch()
	defer b.Close()
	keys := make([][]byte, len(ps))
	dues := make([]int64, len(ps))
	n := 0
	var buf []byte
	for i := range ps {
		p := &ps[i]
		r := p.e.r
		due := now
		switch c.op {
		case opFlush:
			if p.e.due <= now || r.Held {
				continue
			}
		case opHold:
			if r.Held {
				continue
			}
			r.Held, due = true, holdDue
		case opRelease:
			if !r.Held {
				continue
			}
			r.Held = false
		}
		r.NextAttempt = time.Unix(0, due)
		_ = b.SingleDelete(appendSchedKey(buf[:0], r.Domain, p.e.due, p.m.id, r.Index), nil)
		keys[i] = appendSchedKey(nil, r.Domain, due, p.m.id, r.Index)
		dues[i] = due
		_ = b.Set(keys[i], schedValue(nil, r.Attempts), nil)
		buf = appendRcptKey(buf[:0], p.m.id, r.Index)
		k := len(buf)
		buf = appendRecipient(buf, &r, p.e.fail)
		_ = b.Set(buf[:k], buf[k:], nil)
		p.e.r = r
		n++
	}
	if n > 0 {
		// A hold or release is an operator's decision, kept across a
		// crash; a flush is only sooner.
		sync := pebble.NoSync
		if c.op != opFlush {
			sync = pebble.Sync
		}
		if err := b.Commit(sync); err != nil {
			c.errs = append(c.errs, fmt.Errorf("queue: %s: %w", c.op, err))
			keys, n = nil, 0
		}
	}
	c.n += n
	c.unpin(ps, keys, dues)
}

func (c *ctl) bounce(ps []pinned) {
	s := c.s
	text := "bounced by operator"
	if r := oneLine(c.reason); r != "" {
		text += ": " + r
	}
	res := Result{Status: Permanent, Enhanced: "5.0.0", Text: text, Reason: ReasonOperator}
	if s.opts.OnFailure != nil {
		failed := make([]Failed, len(ps))
		for i, p := range ps {
			failed[i] = Failed{Recipient: p.e.r, Result: res}
		}
		if err := s.failureHook(ps[0].m, failed); err != nil {
			c.errs = append(c.errs, fmt.Errorf("queue: bounce %s: OnFailure: %w", ps[0].m.id, err))
			c.unpin(ps, nil, nil)
			return
		}
	}
	c.remove(ps, &res)
}

// remove deletes the records of pinned recipients of one message (and the
// message when they are its last), then emits bounced events (with res)
// or deleted events.
func (c *ctl) remove(ps []pinned, res *Result) {
	s := c.s
	m := ps[0].m
	b := s.db.NewBatch()
	defer b.Close()
	var buf []byte
	for _, p := range ps {
		buf = appendRcptKey(buf[:0], m.id, p.e.r.Index)
		_ = b.Delete(buf, nil)
		buf = appendSchedKey(buf[:0], p.e.r.Domain, p.e.due, m.id, p.e.r.Index)
		_ = b.SingleDelete(buf, nil)
	}
	s.mu.Lock()
	m.remaining -= len(ps)
	last := m.remaining == 0
	s.mu.Unlock()
	if last {
		_ = b.SingleDelete(msgKey(m.id), nil)
		_ = b.SingleDelete(bodyKey(m.id), nil)
	}
	if err := b.Commit(pebble.NoSync); err != nil {
		s.mu.Lock()
		m.remaining += len(ps)
		s.mu.Unlock()
		c.errs = append(c.errs, fmt.Errorf("queue: %s %s: %w", c.op, m.id, err))
		c.unpin(ps, nil, nil)
		return
	}
	c.n += len(ps)
	s.mu.Lock()
	s.count.move(rsInFlight, rsGone, len(ps))
	if last {
		s.count.messages--
		if m.id == s.oldestID {
			s.oldestStale = true
		}
	}
	for _, p := range ps {
		m.clear(p.e.r.Index)
	}
	s.roomLocked()
	s.unrefLocked(m, len(ps))
	s.mu.Unlock()

	if s.opts.OnEvent == nil {
		return
	}
	now := s.now()
	for _, p := range ps {
		var ev Event
		if res != nil {
			ev = messageEvent(EventBounced, now, m.msg)
			ev.Code, ev.Enhanced, ev.Text, ev.Class, ev.Reason = res.Code, res.Enhanced, res.Text, res.Class, res.Reason
		} else {
			ev = messageEvent(EventDeleted, now, m.msg)
			ev.Text = "deleted by operator"
		}
		ev.Recipient = p.e.r.Addr
		ev.Attempt = p.e.r.Attempts
		ev.Delay = now.Sub(m.msg.Received)
		s.emit(ev)
	}
}
