package queue

import (
	"bytes"
	"container/heap"
	"errors"
	"fmt"
	"math"
	"runtime/debug"
	"time"

	"github.com/cockroachdb/pebble"
)

// Scheduling state of a destination, for the recipients on disk that are
// not in memory.
const (
	stIdle    = iota // none known
	stWaiting        // on the heap until nextDue
	stDue            // on the due list, to be loaded by the scheduler
	stFull           // due, but its ready queue is full: take puts it back on the due list
	stFilling        // the scheduler is loading it
)

// fillChunk bounds how many recipients the scheduler loads for one
// destination before it turns to the next one.
const fillChunk = 512

// dest is a destination: its ready queue and where its recipients on
// disk stand.
type dest struct {
	name   string
	ready  []*group // FIFO from head
	head   int
	nready int
	leases int // leases taken and not finished

	// Every schedule entry of the destination below cursor is in memory
	// or gone; nextDue is the earliest due time at or after it (when
	// waiting). While the scheduler fills the ready queue, recipients that
	// leave memory lower rewindTo instead of cursor.
	state    int
	cursor   []byte
	rewindTo []byte
	nextDue  int64
	heapIdx  int
}

// destLocked returns the destination named name, creating it.
func (s *Spool) destLocked(name string) *dest {
	d := s.dests[name]
	if d == nil {
		lower, _ := destRange(name)
		d = &dest{name: name, cursor: lower, nextDue: math.MaxInt64, heapIdx: -1}
		s.dests[name] = d
	}
	return d
}

// maybeReapLocked forgets a destination that has nothing left, and tells
// the dispatcher.
func (s *Spool) maybeReapLocked(d *dest) {
	if d.state == stIdle && d.leases == 0 && d.nready == 0 && s.dests[d.name] == d {
		delete(s.dests, d.name)
		if s.disp != nil {
			s.disp.Drained(d.name)
		}
	}
}

// rewindLocked records that the schedule entry key (due at due) of d is on
// disk and not in memory.
func (s *Spool) rewindLocked(d *dest, key []byte, due int64) {
	if d.state == stFilling {
		if d.rewindTo == nil || bytes.Compare(key, d.rewindTo) < 0 {
			d.rewindTo = key
		}
		d.nextDue = min(d.nextDue, due)
		return
	}
	if bytes.Compare(key, d.cursor) < 0 {
		d.cursor = key
	}
	switch d.state {
	case stIdle:
		d.nextDue = due
		d.state = stWaiting
		heap.Push(&s.waiting, d)
	case stWaiting:
		if due < d.nextDue {
			d.nextDue = due
			heap.Fix(&s.waiting, d.heapIdx)
		}
	default:
		return
	}
	if due < s.wakeAt {
		s.wakeLocked()
	}
}

func (s *Spool) wakeLocked() {
	s.wakeAt = math.MinInt64
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

// schedule is the scheduler goroutine: it moves due recipients from disk
// into the ready queues, sleeping until the next due time or a wake-up.
func (s *Spool) schedule() {
	defer s.wg.Done()
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	for {
		wait, ok := s.scheduleOnce()
		if !ok {
			return
		}
		var tc <-chan time.Time
		if wait >= 0 {
			timer.Reset(wait)
			tc = timer.C
		}
		select {
		case <-s.stop:
			timer.Stop()
			return
		case <-s.wake:
		case <-tc:
		}
		timer.Stop()
	}
}

// scheduleOnce loads what is due and returns how long to sleep (-1: until
// woken), or false when the spool is closing.
func (s *Spool) scheduleOnce() (wait time.Duration, ok bool) {
	defer func() {
		if r := recover(); r != nil {
			s.log.Error("queue: panic in scheduler", "panic", r, "stack", string(debug.Stack()))
			wait, ok = time.Second, true
		}
	}()
	for {
		s.mu.Lock()
		if s.closing {
			s.mu.Unlock()
			return 0, false
		}
		now := dueTime(s.now())
		for len(s.waiting) > 0 && s.waiting[0].nextDue <= now {
			d := heap.Pop(&s.waiting).(*dest)
			d.state = stDue
			s.dueList = append(s.dueList, d)
		}
		var d *dest
		limit := 0
		for len(s.dueList) > 0 {
			if s.count.inMemory() >= s.maxMem {
				s.globalWait = true
				break
			}
			d = s.dueList[0]
			s.dueList[0] = nil
			s.dueList = s.dueList[1:]
			if d.nready >= s.readyCap {
				d.state = stFull
				d = nil
				continue
			}
			limit = min(s.readyCap-d.nready, s.maxMem-s.count.inMemory(), fillChunk)
			d.state = stFilling
			d.nextDue = math.MaxInt64
			d.rewindTo = nil
			break
		}
		if d == nil {
			s.wakeAt = math.MaxInt64
			if len(s.waiting) > 0 {
				s.wakeAt = s.waiting[0].nextDue
			}
			wakeAt := s.wakeAt
			s.mu.Unlock()
			if wakeAt == math.MaxInt64 {
				return -1, true
			}
			return time.Duration(wakeAt - now), true
		}
		s.wakeAt = math.MinInt64 // busy: no need to be woken
		cursor := d.cursor
		s.mu.Unlock()
		s.fill(d, cursor, now, limit)
	}
}

// candidate is a schedule entry the scheduler may load.
type candidate struct {
	key  []byte
	due  int64
	id   string
	idx  int
	m    *msgMem
	skip bool // already in memory
	drop bool // stale entry, or its record is gone
	r    Recipient
	fail *failure
}

// fill loads up to limit due recipients of d from disk into its ready
// queue, starting at cursor, and then sets d's scheduling state. After an
// error it tries d again a second later.
func (s *Spool) fill(d *dest, cursor []byte, now int64, limit int) {
	placed, full, exhausted, failed := 0, false, false, true
	next := int64(math.MaxInt64)
	defer func() {
		if r := recover(); r != nil {
			s.log.Error("queue: panic in scheduler", "dest", d.name, "panic", r, "stack", string(debug.Stack()))
		}
		s.mu.Lock()
		defer s.mu.Unlock()
		if d.rewindTo != nil && bytes.Compare(d.rewindTo, d.cursor) < 0 {
			d.cursor = d.rewindTo
		}
		d.rewindTo = nil
		switch {
		case failed:
			d.nextDue = min(d.nextDue, now+int64(time.Second))
			d.state = stWaiting
			heap.Push(&s.waiting, d)
		case exhausted && min(next, d.nextDue) == math.MaxInt64:
			d.state = stIdle
			d.nextDue = math.MaxInt64
			s.maybeReapLocked(d)
		case exhausted:
			d.nextDue = min(next, d.nextDue)
			d.state = stWaiting
			heap.Push(&s.waiting, d)
		case d.nready >= s.readyCap:
			d.state = stFull
		default:
			d.state = stDue
			s.dueList = append(s.dueList, d)
		}
	}()
	_, upper := destRange(d.name)
	it, err := s.db.NewIter(&pebble.IterOptions{LowerBound: cursor, UpperBound: upper})
	if err != nil {
		s.log.Error("queue: scheduler", "dest", d.name, "err", err)
		return
	}
	valid := it.First()
	var chunk []candidate
	for placed < limit && !full && !exhausted {
		chunk = chunk[:0]
		for valid && len(chunk) < limit-placed {
			e, ok := parseSchedKey(it.Key())
			if !ok {
				s.log.Error("queue: malformed schedule key", "key", fmt.Sprintf("%q", it.Key()))
				valid = it.Next()
				continue
			}
			if e.due > now {
				next = e.due
				break
			}
			chunk = append(chunk, candidate{key: bytes.Clone(it.Key()), due: e.due, id: string(e.id), idx: e.idx})
			valid = it.Next()
		}
		exhausted = !valid || next != math.MaxInt64
		if len(chunk) == 0 {
			break
		}
		var n int
		n, full = s.load(d, chunk)
		placed += n
	}
	if err := it.Close(); err != nil {
		s.log.Error("queue: scheduler", "dest", d.name, "err", err)
		return
	}
	failed = false
}

// load moves the candidates (in schedule order) into d's ready queue as far
// as there is room, and advances d's cursor past them. It returns how many
// it placed, and whether the ready queues ran out of room.
func (s *Spool) load(d *dest, chunk []candidate) (placed int, full bool) {
	// Pin the candidates' messages, so that they stay in memory while the
	// records are read without the lock. Only the scheduler brings
	// recipients of existing messages into memory, so a candidate that is
	// not in memory now cannot be loaded by anyone else meanwhile.
	var fresh map[*msgMem]bool // messages not in memory before this load
	s.mu.Lock()
	for i := range chunk {
		c := &chunk[i]
		m := s.mem[c.id]
		if m != nil && m.has(c.idx) {
			c.skip = true
			continue
		}
		if m == nil {
			m = &msgMem{id: c.id}
			s.mem[c.id] = m
			if fresh == nil {
				fresh = make(map[*msgMem]bool)
			}
			fresh[m] = true
		}
		m.refs++
		m.set(c.idx)
		c.m = m
	}
	s.mu.Unlock()

	type loaded struct {
		msg       *Message
		remaining int
	}
	var msgs map[*msgMem]loaded
	for i := range chunk {
		c := &chunk[i]
		if c.skip {
			continue
		}
		r, f, err := s.readRecipient(c.id, c.idx)
		if err != nil || r.NextAttempt.UnixNano() != c.due {
			// Gone or rescheduled since the iterator's snapshot (the
			// entry has been replaced), or unreadable.
			if err != nil && !errors.Is(err, pebble.ErrNotFound) {
				s.log.Error("queue: reading recipient", "id", c.id, "idx", c.idx, "err", err)
			}
			c.drop = true
			continue
		}
		c.r, c.fail = r, f
		if !fresh[c.m] {
			continue
		}
		if _, ok := msgs[c.m]; ok {
			continue
		}
		msg, n, err := s.readMessage(c.id)
		if errors.Is(err, pebble.ErrNotFound) {
			s.log.Warn("queue: removing a recipient without message", "id", c.id, "idx", c.idx)
			s.deleteOrphan(c)
		} else if err != nil {
			s.log.Error("queue: reading message", "id", c.id, "err", err.Error())
		}
		if err != nil {
			c.drop = true
			continue
		}
		if msgs == nil {
			msgs = make(map[*msgMem]loaded)
		}
		msgs[c.m] = loaded{msg, n}
	}

	s.mu.Lock()
	defer s.mu.Unlock()
	for m, l := range msgs {
		m.msg, m.remaining = l.msg, l.remaining
	}
	for i := range chunk {
		c := &chunk[i]
		if c.skip {
			continue
		}
		if c.m.msg == nil {
			c.drop = true // its message could not be read
		}
		switch {
		case c.drop:
			c.m.clear(c.idx)
			s.unrefLocked(c.m, 1)
		case s.placeLocked(d, c.m, []entry{{r: c.r, due: c.due, fail: c.fail}}) == 0:
			full = true
			s.releaseLocked(d, c.m, c.idx, c.due)
			s.unrefLocked(c.m, 0)
		default:
			s.count.move(onDisk(c.r.Attempts), rsReady, 1)
			placed++
		}
	}
	d.cursor = append(chunk[len(chunk)-1].key, 0)
	return placed, full
}

func (s *Spool) readRecipient(id string, idx int) (Recipient, *failure, error) {
	v, closer, err := s.db.Get(appendRcptKey(nil, id, idx))
	if err != nil {
		return Recipient{}, nil, err
	}
	defer closer.Close()
	return decodeRecipient(idx, v)
}

// readMessage reads a message record and counts its recipients.
func (s *Spool) readMessage(id string) (*Message, int, error) {
	v, closer, err := s.db.Get(msgKey(id))
	if err != nil {
		return nil, 0, err
	}
	msg, err := decodeMessage(id, v)
	closer.Close()
	if err != nil {
		return nil, 0, err
	}
	lower := appendRcptKey(nil, id, 0)
	it, err := s.db.NewIter(&pebble.IterOptions{LowerBound: lower, UpperBound: prefixEnd(string(lower[:len(prefixRcpt)+idLen]))})
	if err != nil {
		return nil, 0, err
	}
	n := 0
	for valid := it.First(); valid; valid = it.Next() {
		n++
	}
	return msg, n, it.Close()
}

// deleteOrphan removes a recipient whose message record is gone (it was
// done, and a failed write left it behind), and the body if any.
func (s *Spool) deleteOrphan(c *candidate) {
	b := s.db.NewBatch()
	defer b.Close()
	_ = b.Delete(appendRcptKey(nil, c.id, c.idx), nil)
	_ = b.Delete(c.key, nil)
	_ = b.Delete(bodyKey(c.id), nil)
	if err := b.Commit(pebble.NoSync); err != nil {
		s.log.Error("queue: deleting orphan recipient", "id", c.id, "err", err)
		return
	}
	s.mu.Lock()
	s.count.move(onDisk(c.r.Attempts), rsGone, 1)
	s.mu.Unlock()
}

// destHeap orders waiting destinations by next due time.
type destHeap []*dest

func (h destHeap) Len() int           { return len(h) }
func (h destHeap) Less(i, j int) bool { return h[i].nextDue < h[j].nextDue }
func (h destHeap) Swap(i, j int) {
	h[i], h[j] = h[j], h[i]
	h[i].heapIdx = i
	h[j].heapIdx = j
}
func (h *destHeap) Push(x any) {
	d := x.(*dest)
	d.heapIdx = len(*h)
	*h = append(*h, d)
}
func (h *destHeap) Pop() any {
	old := *h
	d := old[len(old)-1]
	old[len(old)-1] = nil
	*h = old[:len(old)-1]
	d.heapIdx = -1
	return d
}
