package queue

import (
	"bytes"
	"container/heap"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"math/rand/v2"
	"os"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/cockroachdb/pebble"
	"github.com/cockroachdb/pebble/bloom"
)

// ErrNotFound is returned by Show and Body for an unknown message ID.
var ErrNotFound = errors.New("queue: message not found")

// ErrClosed is returned by Enqueue after Close has been called.
var ErrClosed = errors.New("queue: spool closed")

// ErrLocked is Open's error when another process holds the spool.
var ErrLocked = errors.New("spool locked")

// ErrStorageFull is returned (wrapped) by Enqueue when the message would
// leave less than Options.MinFreeSpace free on the spool's filesystem, or
// when the filesystem reports it is full (ENOSPC) or the quota spent
// (EDQUOT). Nothing was stored; the message may be offered again later.
var ErrStorageFull = errors.New("queue: insufficient storage")

// defaultMinFreeSpace is Options.MinFreeSpace when it is 0.
const defaultMinFreeSpace = 64 << 20

// Options configure a Spool. Only Dir is required.
type Options struct {
	Dir string // Pebble directory, created if missing

	// DelayNotice is how long a recipient stays queued, with at least one
	// temporary failure, before OnDelay is called for it (0: never). The
	// check is made when the recipient is deferred.
	DelayNotice time.Duration

	// OnDelay is called, once per recipient and at most once per message
	// and attempt, with the deferred recipients queued longer than
	// DelayNotice (their records are marked so that it is not called again,
	// across restarts too; if it fails, it is called again at the next
	// deferral). It decides from NOTIFY and the sender whether to send a
	// delay DSN. header is the message's header (for the notice's
	// text/rfc822-headers part) and until when the recipients expire (the
	// message's arrival plus the destination's MaxAge: the notice's
	// Will-Retry-Until). It is called from a delivery worker. May be nil.
	OnDelay func(msg *Message, header []byte, rcpts []Recipient, until time.Time) error

	// OnEvent receives the delivery events: delivered, deferred, bounced
	// and expired (received is the submitter's to report), and the
	// operator's bounced and deleted. It is called from Finish (the
	// delivery workers) and from operator commands, and must not block.
	// May be nil.
	OnEvent func(Event)

	// OnFailure is called once per message and attempt with the recipients
	// that failed for good (bounced or expired), before their records are
	// deleted, so that a DSN can be enqueued durably first. If it returns an
	// error the records are kept and the hook is called again after the
	// retry interval (without another delivery attempt). body must not be
	// kept after the call returns. May be nil.
	OnFailure func(msg *Message, body []byte, failed []Failed) error

	// ReadyCapacity is the maximum number of recipients held in memory per
	// destination, waiting to be taken (default 1000).
	ReadyCapacity int

	// MaxInMemory is the maximum number of recipients held in memory,
	// waiting or in flight, over all destinations (default 50 *
	// ReadyCapacity).
	MaxInMemory int

	// BodyCacheBytes bounds the bodies kept in memory for queued messages
	// (default 64 MiB). A body that does not fit is read back from Pebble
	// when it is delivered.
	BodyCacheBytes int

	Now    func() time.Time // clock (default time.Now)
	Logger *slog.Logger     // default slog.Default()

	// NoSync commits enqueued messages without waiting for fsync: much
	// faster, but a crash of the machine (not of the process) can lose
	// messages that were acknowledged. Off by default.
	NoSync bool

	// MinFreeSpace is the space Enqueue keeps free on the spool's
	// filesystem (default 64 MiB; negative: none): a message that would
	// leave less is refused with ErrStorageFull, so that the writes of
	// delivery (outcomes, deletions, the WAL, memtable flushes and
	// compactions) always find room. Pebble cannot survive a failed WAL or
	// MANIFEST write, so this margin is what keeps delivery going on a
	// full disk. The memtable is at most a quarter of it.
	MinFreeSpace int64
}

// Stats are the spool's counters, maintained in memory. Every queued
// recipient is in exactly one of Scheduled, Deferred, Ready and InFlight.
type Stats struct {
	Messages   int       // messages queued
	Recipients int       // recipients queued: the sum of the four below
	Scheduled  int       // on disk, waiting for their first attempt
	Deferred   int       // on disk, attempted at least once, waiting for a retry
	Ready      int       // in memory, waiting to be taken for delivery
	InFlight   int       // taken for delivery (or by an operator command)
	Oldest     time.Time // receipt time of the oldest queued message; zero if none
}

// rstate is where a queued recipient is, for the counters.
type rstate int

const (
	rsGone      rstate = iota // not queued (before Enqueue, after it is done)
	rsScheduled               // on disk, never attempted
	rsDeferred                // on disk, attempted
	rsReady                   // in a ready queue
	rsInFlight                // leased, or pinned by an operator command
	nstates
)

// onDisk is the state of a recipient on disk with attempts attempts.
func onDisk(attempts int) rstate {
	if attempts > 0 {
		return rsDeferred
	}
	return rsScheduled
}

// counts are the spool's counters, guarded by Spool.mu. Recipients change
// state only through move, the one place that counts them.
type counts struct {
	messages int
	n        [nstates]int
}

func (c *counts) move(from, to rstate, n int) {
	c.n[from] -= n
	c.n[to] += n
}

func (c *counts) inMemory() int { return c.n[rsReady] + c.n[rsInFlight] }

func (c *counts) stats() Stats {
	return Stats{
		Messages:   c.messages,
		Recipients: c.n[rsScheduled] + c.n[rsDeferred] + c.n[rsReady] + c.n[rsInFlight],
		Scheduled:  c.n[rsScheduled], Deferred: c.n[rsDeferred], Ready: c.n[rsReady], InFlight: c.n[rsInFlight],
	}
}

// Spool is the durable queue. Its methods are safe for concurrent use.
type Spool struct {
	opts       Options
	db         *pebble.DB
	log        *slog.Logger
	now        func() time.Time
	commitOpt  *pebble.WriteOptions
	readyCap   int
	maxMem     int
	bodyBudget int
	idCounter  atomic.Uint32
	disp       Dispatcher // set by Start; nil: nothing is delivered

	stop   chan struct{} // closed when Close starts
	wake   chan struct{} // wakes the scheduler
	wg     sync.WaitGroup
	enqWG  sync.WaitGroup
	leases sync.WaitGroup // leases not finished

	dbMu     sync.RWMutex // held shared by reads of the database from outside
	dbClosed bool

	ctlMu sync.Mutex // serialises Flush, Bounce and Delete

	enqBytes   atomic.Int64 // bytes of the messages being enqueued
	fullSince  atomic.Int64 // Unix nanoseconds of the last flush for room; 0: space was free
	compacting atomic.Bool  // a compaction for room is running
	lastFree   atomic.Int64 // free bytes at the last statfs (0: none yet)
	sinceFree  atomic.Int64 // bytes enqueued since then

	mu         sync.Mutex
	closing    bool
	mem        map[string]*msgMem // messages with recipients in memory
	dests      map[string]*dest
	waiting    destHeap // destinations waiting for their next due time
	dueList    []*dest  // destinations with due recipients to load
	wakeAt     int64    // when the scheduler wakes by itself
	globalWait bool     // the scheduler waits for room under MaxInMemory
	bodyBytes  int

	count counts

	oldestID    string // smallest queued message ID
	oldest      time.Time
	oldestStale bool   // oldestID was deleted: recompute on demand
	oldestGen   uint64 // bumped when oldestID changes
}

// msgMem is a message with recipients in memory (ready or in flight).
type msgMem struct {
	id        string
	msg       *Message
	body      []byte   // nil until loaded; counted in Spool.bodyBytes
	remaining int      // recipients of the message still queued, in memory or not
	refs      int      // recipients in memory, plus the scheduler's pins
	inMem     []uint64 // bit set of the recipient indexes in memory
}

func (m *msgMem) has(idx int) bool {
	w := idx / 64
	return w < len(m.inMem) && m.inMem[w]&(1<<(idx%64)) != 0
}

func (m *msgMem) set(idx int) {
	w := idx / 64
	for w >= len(m.inMem) {
		m.inMem = append(m.inMem, 0)
	}
	m.inMem[w] |= 1 << (idx % 64)
}

func (m *msgMem) clear(idx int) {
	if w := idx / 64; w < len(m.inMem) {
		m.inMem[w] &^= 1 << (idx % 64)
	}
}

// entry is a recipient in memory.
type entry struct {
	r    Recipient
	due  int64    // the time in its schedule key
	fail *failure // a final outcome whose OnFailure hook must be retried
}

// group is recipients of one message for one destination.
type group struct {
	m  *msgMem
	es []entry
}

// Open opens (or creates) the spool in opts.Dir and counts what is queued
// without loading it into memory. Nothing is delivered until Start.
func Open(opts Options) (*Spool, error) {
	if opts.Dir == "" {
		return nil, errors.New("queue: Options.Dir is required")
	}
	if opts.ReadyCapacity <= 0 {
		opts.ReadyCapacity = 1000
	}
	if opts.MaxInMemory <= 0 {
		opts.MaxInMemory = 50 * opts.ReadyCapacity
	}
	if opts.BodyCacheBytes <= 0 {
		opts.BodyCacheBytes = 64 << 20
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.MinFreeSpace == 0 {
		opts.MinFreeSpace = defaultMinFreeSpace
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if err := os.MkdirAll(opts.Dir, 0o700); err != nil {
		return nil, fmt.Errorf("queue: %w", err)
	}
	// Bodies are usually deleted within seconds: a large memtable lets
	// most of them die before they are flushed to a table. Its WAL (which
	// Pebble preallocates) and its flush must fit in the free space kept.
	memTable := uint64(16 << 20)
	if opts.MinFreeSpace > 0 {
		memTable = min(memTable, max(uint64(opts.MinFreeSpace)/4, 1<<20))
	}
	popts := &pebble.Options{
		MemTableSize:       memTable,
		FormatMajorVersion: pebble.FormatNewest,
		Logger:             pebbleLogger{opts.Logger},
		// The MANIFEST names every table's smallest and largest key: it
		// is rewritten at each change (a few KB), so that a key deleted
		// and compacted away (a GDPR erasure) does not stay in it.
		MaxManifestFileSize: 1,
	}
	// Bloom filters in every level: most point reads (a policy check per
	// RCPT, a message ID's uniqueness) look for keys that do not exist.
	popts.Levels = make([]pebble.LevelOptions, 7)
	for i := range popts.Levels {
		popts.Levels[i].FilterPolicy = bloom.FilterPolicy(10)
	}
	db, err := pebble.Open(opts.Dir, popts)
	if err != nil && (errors.Is(err, syscall.EAGAIN) || errors.Is(err, syscall.EWOULDBLOCK) || strings.Contains(err.Error(), "lock held by current process")) {
		// Pebble's LOCK file is held: another process (flock's EAGAIN)
		// or this one (Pebble's own text; it exports no error) has the
		// spool.
		return nil, fmt.Errorf("queue: open %s: %w: another drover serve is using this data directory (stop it, or give this one another data_dir)", opts.Dir, ErrLocked)
	}
	if err != nil {
		return nil, fmt.Errorf("queue: open %s: %w", opts.Dir, err)
	}
	s := &Spool{
		opts:       opts,
		db:         db,
		log:        opts.Logger,
		now:        opts.Now,
		commitOpt:  pebble.Sync,
		readyCap:   opts.ReadyCapacity,
		maxMem:     opts.MaxInMemory,
		bodyBudget: opts.BodyCacheBytes,
		stop:       make(chan struct{}),
		wake:       make(chan struct{}, 1),
		mem:        make(map[string]*msgMem),
		dests:      make(map[string]*dest),
		wakeAt:     math.MaxInt64,
	}
	if opts.NoSync {
		s.commitOpt = pebble.NoSync
	}
	s.idCounter.Store(rand.Uint32())
	if err := s.countStored(); err != nil {
		db.Close()
		return nil, err
	}
	return s, nil
}

// DB is the node's Pebble database, for the packages that keep their
// data beside the spool under prefixes of their own (never one that
// starts with 'q'). It is closed by Close: they must be done with it first.
func (s *Spool) DB() *pebble.DB { return s.db }

// Start starts the scheduler: from now on, due recipients are loaded into
// the ready queues and d is told of them, to Take them. Call it once.
func (s *Spool) Start(d Dispatcher) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.disp != nil || s.closing {
		return
	}
	s.disp = d
	s.wg.Add(1)
	go s.schedule()
}

// countStored counts the queued messages and recipients and puts every
// destination with scheduled recipients on the scheduler's heap, due at its
// earliest entry. Recipients that were in flight when the process stopped
// kept their schedule entry, so they are due at once.
func (s *Spool) countStored() error {
	it, err := s.db.NewIter(&pebble.IterOptions{LowerBound: []byte(prefixSched), UpperBound: prefixEnd(prefixSched)})
	if err != nil {
		return fmt.Errorf("queue: open: %w", err)
	}
	var cur *dest
	for valid := it.First(); valid; valid = it.Next() {
		e, ok := parseSchedKey(it.Key())
		if !ok {
			s.log.Error("queue: malformed schedule key", "key", fmt.Sprintf("%q", it.Key()))
			continue
		}
		if cur == nil || cur.name != string(e.dest) {
			cur = s.destLocked(string(e.dest))
			cur.nextDue = e.due
			cur.state = stWaiting
			heap.Push(&s.waiting, cur)
		}
		s.count.move(rsGone, onDisk(parseSchedValue(it.Value())), 1)
	}
	if err := it.Close(); err != nil {
		return fmt.Errorf("queue: open: %w", err)
	}
	it, err = s.db.NewIter(&pebble.IterOptions{LowerBound: []byte(prefixMsg), UpperBound: prefixEnd(prefixMsg)})
	if err != nil {
		return fmt.Errorf("queue: open: %w", err)
	}
	for valid := it.First(); valid; valid = it.Next() {
		if s.count.messages == 0 {
			id := string(it.Key()[len(prefixMsg):])
			m, err := decodeMessage(id, it.Value())
			if err != nil {
				it.Close()
				return fmt.Errorf("queue: open: %w", err)
			}
			s.oldestID, s.oldest = id, m.Received
		}
		s.count.messages++
	}
	if err := it.Close(); err != nil {
		return fmt.Errorf("queue: open: %w", err)
	}
	return nil
}

// NewID returns a new message ID, for a caller that needs the ID before
// Enqueue (to name it in the Received field it adds): it is made as
// Enqueue makes one, from the spool's clock and counter, so it is unique
// among the spool's IDs.
func (s *Spool) NewID() string {
	return newID(s.now(), s.idCounter.Add(1))
}

// Enqueue stores msg with its recipients and body and returns its ID. It
// sets msg.Size, msg.Received when zero, and msg.ID when empty; a
// msg.ID given must come from NewID and not be stored yet. It returns only after
// the write is committed to disk (unless Options.NoSync), so a 250 reply may
// be sent when it returns nil. Concurrent calls share disk syncs.
//
// The spool keeps a copy of *msg but keeps body itself: the caller must not
// modify body after the call.
func (s *Spool) Enqueue(msg *Message, rcpts []NewRecipient, body []byte) (string, error) {
	if err := s.EnqueueAll([]Submission{{Msg: msg, Rcpts: rcpts, Body: body}}); err != nil {
		return "", err
	}
	return msg.ID, nil
}

// Submission is one message for EnqueueAll.
type Submission struct {
	Msg   *Message
	Rcpts []NewRecipient
	Body  []byte
}

// pending is a message of EnqueueAll on its way in.
type pending struct {
	m       *msgMem
	mc      *Message
	entries []entry
	body    []byte
}

// EnqueueAll stores several messages as Enqueue does, all or none: they
// are committed in one batch (one disk sync), so a failure leaves none of
// them queued.
func (s *Spool) EnqueueAll(subs []Submission) error {
	now := s.now()
	due := dueTime(now)
	ps := make([]pending, len(subs))
	total := 0
	for i, sub := range subs {
		msg, rcpts := sub.Msg, sub.Rcpts
		if msg == nil || len(rcpts) == 0 {
			return errors.New("queue: enqueue needs a message and at least one recipient")
		}
		if len(rcpts) > math.MaxUint32 {
			return errors.New("queue: too many recipients")
		}
		entries := make([]entry, len(rcpts))
		for j, r := range rcpts {
			d, err := domainOf(r.Addr)
			if err != nil {
				return err
			}
			entries[j] = entry{due: due, r: Recipient{
				Index: j, Addr: r.Addr, Domain: d, Notify: r.Notify, ORCPT: r.ORCPT,
				NextAttempt: time.Unix(0, due),
			}}
		}
		if msg.Received.IsZero() {
			msg.Received = now
		}
		msg.Size = len(sub.Body)
		if msg.ID == "" {
			msg.ID = newID(now, s.idCounter.Add(1))
		} else if !validID(msg.ID) {
			return fmt.Errorf("queue: enqueue: bad message ID %q", msg.ID)
		} else if err := s.exists(msg.ID); err == nil {
			// An ID from NewID is new, unless the caller gives it twice:
			// a stored message is never overwritten.
			return fmt.Errorf("queue: enqueue: message %s exists", msg.ID)
		} else if !errors.Is(err, pebble.ErrNotFound) {
			return err
		}
		mc := *msg
		m := &msgMem{id: msg.ID, msg: &mc, remaining: len(rcpts), refs: len(rcpts)}
		for j := range entries {
			m.set(j)
		}
		ps[i] = pending{m: m, mc: &mc, entries: entries, body: sub.Body}
		total += len(sub.Body)
	}

	// Register the recipients as in memory before they are visible on disk,
	// so that the scheduler does not load them too.
	s.mu.Lock()
	if s.closing {
		s.mu.Unlock()
		return ErrClosed
	}
	for i, p := range ps {
		if s.mem[p.m.id] != nil {
			for _, q := range ps[:i] {
				delete(s.mem, q.m.id)
			}
			s.mu.Unlock()
			return fmt.Errorf("queue: enqueue: message %s exists", p.m.id)
		}
		s.mem[p.m.id] = p.m
	}
	s.enqWG.Add(1)
	s.mu.Unlock()
	defer s.enqWG.Done()

	err := s.reserve(total)
	if err == nil {
		err = s.write(ps)
		s.enqBytes.Add(-int64(total))
	}
	if err != nil {
		s.mu.Lock()
		for _, p := range ps {
			delete(s.mem, p.m.id)
		}
		s.mu.Unlock()
		return err
	}

	s.mu.Lock()
	defer s.mu.Unlock()
	for _, p := range ps {
		s.placeNewLocked(p)
	}
	return nil
}

// placeNewLocked counts a message just written and hands its recipients
// to the ready queues (or the schedule).
func (s *Spool) placeNewLocked(p pending) {
	m, entries, id := p.m, p.entries, p.m.id
	s.count.messages++
	s.count.move(rsGone, rsInFlight, len(entries)) // registered in memory above
	if s.count.messages == 1 || id < s.oldestID {
		s.oldestID, s.oldest, s.oldestStale = id, p.mc.Received, false
		s.oldestGen++
	}
	deliver := s.disp != nil && !s.closing
	if deliver && s.bodyBytes+len(p.body) <= s.bodyBudget {
		m.body = p.body
		s.bodyBytes += len(p.body)
	}
	if slices.ContainsFunc(entries, func(e entry) bool { return e.r.Domain != entries[0].r.Domain }) {
		// Several destinations: one run of recipients per destination.
		slices.SortStableFunc(entries, func(a, b entry) int { return strings.Compare(a.r.Domain, b.r.Domain) })
	}
	for start := 0; start < len(entries); {
		end := start + 1
		for end < len(entries) && entries[end].r.Domain == entries[start].r.Domain {
			end++
		}
		es := entries[start:end:end]
		start = end
		d := s.destLocked(es[0].r.Domain)
		n := 0
		if deliver {
			n = s.placeLocked(d, m, es)
		}
		s.count.move(rsInFlight, rsReady, n)
		for i := n; i < len(es); i++ {
			s.count.move(rsInFlight, rsScheduled, 1)
			s.releaseLocked(d, m, es[i].r.Index, es[i].due)
		}
	}
	s.unrefLocked(m, 0)
}

// exists is nil when message id is stored, pebble.ErrNotFound when not.
func (s *Spool) exists(id string) error {
	_, closer, err := s.db.Get(msgKey(id))
	if err == nil {
		closer.Close()
	}
	return err
}

// write commits new messages in one batch.
func (s *Spool) write(ps []pending) error {
	size := 64
	mvs := make([][]byte, len(ps))
	for i, p := range ps {
		mvs[i] = appendMessage(nil, p.mc)
		size += 64 + len(mvs[i]) + len(p.body)
		for j := range p.entries {
			r := &p.entries[j].r
			size += 96 + 2*len(r.Domain) + len(r.Addr) + len(r.Notify) + len(r.ORCPT)
		}
	}
	b := s.db.NewBatchWithSize(size)
	defer b.Close()
	var scratch [256]byte
	for i, p := range ps {
		id := p.mc.ID
		buf := append(scratch[:0], prefixMsg...)
		buf = append(buf, id...)
		_ = b.Set(buf, mvs[i], nil)
		buf = append(buf[:0], prefixBody...)
		buf = append(buf, id...)
		_ = b.Set(buf, p.body, nil)
		for j := range p.entries {
			e := &p.entries[j]
			buf = appendRcptKey(buf[:0], id, e.r.Index)
			k := len(buf)
			buf = appendRecipient(buf, &e.r, nil)
			_ = b.Set(buf[:k], buf[k:], nil)
			buf = appendSchedKey(buf[:0], e.r.Domain, e.due, id, e.r.Index)
			k = len(buf)
			buf = schedValue(buf, 0)
			_ = b.Set(buf[:k], buf[k:], nil)
		}
	}
	if err := b.Commit(s.commitOpt); err != nil {
		if errors.Is(err, syscall.ENOSPC) || errors.Is(err, syscall.EDQUOT) {
			return fmt.Errorf("%w: %w", ErrStorageFull, err)
		}
		return fmt.Errorf("queue: enqueue: %w", err)
	}
	return nil
}

// reserve counts n bytes as being enqueued if, with the others being
// enqueued, they leave Options.MinFreeSpace free; else it returns
// ErrStorageFull. While space is short it flushes the memtable now and
// then, so that the deletions of delivered messages reach the tables,
// compactions drop the bodies and the old WAL files go.
func (s *Spool) reserve(n int) error {
	pending := s.enqBytes.Add(int64(n))
	if s.opts.MinFreeSpace < 0 {
		return nil
	}
	// statfs only when the last reading, less what was written since
	// (four times over, for Pebble's WAL, flushes and compactions), gets
	// near the margin: on a disk with room, not once per message.
	since := s.sinceFree.Add(int64(n))
	if s.lastFree.Load()-4*(since+pending) >= 2*s.opts.MinFreeSpace {
		return nil
	}
	free, ok := freeSpace(s.opts.Dir)
	s.lastFree.Store(free)
	s.sinceFree.Store(0)
	if !ok || free-pending >= s.opts.MinFreeSpace {
		s.fullSince.Store(0)
		return nil
	}
	s.enqBytes.Add(-int64(n))
	now := time.Now().UnixNano()
	if last := s.fullSince.Load(); now-last >= int64(time.Second) && s.fullSince.CompareAndSwap(last, now) {
		if _, err := s.db.AsyncFlush(); err != nil {
			s.log.Error("queue: flush for room", "err", err)
		}
		// Deleted bodies take no less room until a compaction drops
		// them with their tombstones: run one (the data directory is
		// small when it is full, so it is quick), one at a time.
		if s.compacting.CompareAndSwap(false, true) {
			// Within Enqueue (enqWG held), so Close waits for it in wg.
			s.wg.Add(1)
			go func() {
				defer s.wg.Done()
				defer s.compacting.Store(false)
				if err := s.db.Compact([]byte(prefixBody), prefixEnd(prefixBody), false); err != nil && !errors.Is(err, pebble.ErrClosed) {
					s.log.Warn("queue: compaction for room", "err", err)
				}
			}()
		}
	}
	return fmt.Errorf("%w: %d bytes free in %s, %d kept free", ErrStorageFull, free-pending+int64(n), s.opts.Dir, s.opts.MinFreeSpace)
}

// domainOf returns the destination of an address: its lower-cased domain.
func domainOf(addr string) (string, error) {
	at := strings.LastIndexByte(addr, '@')
	if at < 0 || at == len(addr)-1 {
		return "", fmt.Errorf("queue: recipient %q has no domain", addr)
	}
	d := strings.ToLower(addr[at+1:])
	if strings.IndexByte(d, 0) >= 0 {
		return "", fmt.Errorf("queue: recipient %q has a NUL byte in its domain", addr)
	}
	return d, nil
}

// dueTime is the schedule time of t: Unix nanoseconds, at least 1.
func dueTime(t time.Time) int64 { return max(t.UnixNano(), 1) }

// placeLocked appends as many of es (recipients of m for d, registered in
// memory) to d's ready queue as there is room for, tells the dispatcher,
// and returns how many; the caller counts them.
func (s *Spool) placeLocked(d *dest, m *msgMem, es []entry) int {
	n := min(len(es), s.readyCap-d.nready, s.maxMem-s.count.inMemory())
	if n <= 0 {
		return 0
	}
	if last := len(d.ready) - 1; last >= d.head && d.ready[last].m == m {
		d.ready[last].es = append(d.ready[last].es, es[:n]...)
	} else {
		d.ready = append(d.ready, &group{m: m, es: es[:n:n]})
	}
	d.nready += n
	s.disp.Ready(d.name)
	return n
}

// releaseLocked takes recipient idx of m out of memory, unchanged: it is
// due again at its schedule time. Counters of the recipient are the
// caller's business.
func (s *Spool) releaseLocked(d *dest, m *msgMem, idx int, due int64) {
	m.clear(idx)
	m.refs--
	s.rewindLocked(d, appendSchedKey(nil, d.name, due, m.id, idx), due)
}

// unrefLocked drops n references to m and forgets m when none is left.
func (s *Spool) unrefLocked(m *msgMem, n int) {
	m.refs -= n
	if m.refs > 0 {
		return
	}
	if s.mem[m.id] == m {
		delete(s.mem, m.id)
	}
	s.bodyBytes -= len(m.body)
	m.body = nil
}

// Close stops scheduling and taking, waits for the messages being
// enqueued and for the leases taken to be finished (until ctx expires),
// and closes the database. The delivery engine is to be closed first.
// Recipients not delivered stay queued.
func (s *Spool) Close(ctx context.Context) error {
	s.mu.Lock()
	if s.closing {
		s.mu.Unlock()
		return ErrClosed
	}
	s.closing = true
	s.mu.Unlock()
	close(s.stop)
	s.enqWG.Wait()
	done := make(chan struct{})
	go func() {
		s.wg.Wait()
		s.leases.Wait()
		close(done)
	}()
	select {
	case <-done:
	case <-ctx.Done():
		if s.leasesTaken() {
			return fmt.Errorf("queue: close: leases not finished: %w", ctx.Err())
		}
		<-done // no lease left (the engine was closed first): the scheduler is stopping
	}
	s.dbMu.Lock()
	s.dbClosed = true
	s.dbMu.Unlock()
	if err := s.db.Close(); err != nil {
		return fmt.Errorf("queue: close: %w", err)
	}
	return nil
}

// leasesTaken reports whether a lease is still to be finished: Finish
// counts it back before its last use of the database.
func (s *Spool) leasesTaken() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, d := range s.dests {
		if d.leases > 0 {
			return true
		}
	}
	return false
}

// readDB guards a read of the database by a caller of the Spool against
// Close; done must be called when it returns nil.
func (s *Spool) readDB() (done func(), err error) {
	s.dbMu.RLock()
	if s.dbClosed {
		s.dbMu.RUnlock()
		return nil, ErrClosed
	}
	return s.dbMu.RUnlock, nil
}

// Stats returns the spool's counters. Oldest may need one short seek in
// Pebble after the oldest message was delivered.
func (s *Spool) Stats() Stats {
	s.mu.Lock()
	st := s.count.stats()
	st.Oldest = s.oldest
	stale, from, gen := s.oldestStale, s.oldestID, s.oldestGen
	s.mu.Unlock()
	if st.Messages == 0 {
		st.Oldest = time.Time{}
		return st
	}
	if !stale {
		return st
	}
	// Message IDs are time-ordered, and the new oldest sorts after the
	// deleted one: seek from there, past its tombstone.
	done, err := s.readDB()
	if err != nil {
		return st
	}
	id, received, err := s.firstMessage(from)
	done()
	if err != nil {
		s.log.Error("queue: stats", "err", err)
		return st
	}
	st.Oldest = received
	s.mu.Lock()
	if s.oldestGen == gen {
		s.oldestID, s.oldest, s.oldestStale = id, received, false
		s.oldestGen++
	}
	s.mu.Unlock()
	return st
}

func (s *Spool) firstMessage(from string) (string, time.Time, error) {
	it, err := s.db.NewIter(&pebble.IterOptions{LowerBound: msgKey(from), UpperBound: prefixEnd(prefixMsg)})
	if err != nil {
		return "", time.Time{}, err
	}
	defer it.Close()
	if !it.First() {
		return "", time.Time{}, it.Error()
	}
	id := string(it.Key()[len(prefixMsg):])
	m, err := decodeMessage(id, it.Value())
	if err != nil {
		return "", time.Time{}, err
	}
	return id, m.Received, nil
}

// Show returns a queued message and its remaining recipients as stored.
// The ID may be typed (see NormalizeID).
func (s *Spool) Show(id string) (*Message, []Recipient, error) {
	id, ok := NormalizeID(id)
	if !ok {
		return nil, nil, ErrNotFound
	}
	done, err := s.readDB()
	if err != nil {
		return nil, nil, err
	}
	defer done()
	v, closer, err := s.db.Get(msgKey(id))
	if errors.Is(err, pebble.ErrNotFound) {
		return nil, nil, ErrNotFound
	}
	if err != nil {
		return nil, nil, fmt.Errorf("queue: show %s: %w", id, err)
	}
	msg, err := decodeMessage(id, v)
	closer.Close()
	if err != nil {
		return nil, nil, fmt.Errorf("queue: show: %w", err)
	}
	rcpts, _, err := s.recipients(id)
	if err != nil {
		return nil, nil, fmt.Errorf("queue: show %s: %w", id, err)
	}
	return msg, rcpts, nil
}

// recipients reads the recipient records of a message.
func (s *Spool) recipients(id string) ([]Recipient, []*failure, error) {
	lower := appendRcptKey(nil, id, 0)
	upper := prefixEnd(string(lower[:len(prefixRcpt)+idLen]))
	it, err := s.db.NewIter(&pebble.IterOptions{LowerBound: lower, UpperBound: upper})
	if err != nil {
		return nil, nil, err
	}
	defer it.Close()
	var rcpts []Recipient
	var fails []*failure
	for valid := it.First(); valid; valid = it.Next() {
		_, idx, ok := parseRcptKey(it.Key())
		if !ok {
			continue
		}
		r, f, err := decodeRecipient(idx, it.Value())
		if err != nil {
			return nil, nil, err
		}
		rcpts = append(rcpts, r)
		fails = append(fails, f)
	}
	return rcpts, fails, it.Error()
}

// Body returns the body of a queued message (the ID may be typed).
func (s *Spool) Body(id string) ([]byte, error) {
	id, ok := NormalizeID(id)
	if !ok {
		return nil, ErrNotFound
	}
	done, err := s.readDB()
	if err != nil {
		return nil, err
	}
	defer done()
	v, closer, err := s.db.Get(bodyKey(id))
	if errors.Is(err, pebble.ErrNotFound) {
		return nil, ErrNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("queue: body %s: %w", id, err)
	}
	defer closer.Close()
	return bytes.Clone(v), nil
}

// emit sends ev to OnEvent, recovering a panic in it.
func (s *Spool) emit(ev Event) {
	defer func() {
		if r := recover(); r != nil {
			s.log.Error("queue: panic in OnEvent", "panic", r, "event", ev.Kind, "id", ev.MsgID)
		}
	}()
	s.opts.OnEvent(ev)
}

func messageEvent(kind EventKind, now time.Time, msg *Message) Event {
	return Event{
		Kind: kind, Time: now, MsgID: msg.ID, Sender: msg.Sender, ReturnPath: msg.ReturnPath,
		Size: msg.Size, Stream: msg.Stream, Campaign: msg.Campaign, List: msg.List, Flow: msg.Flow,
	}
}

// pebbleLogger sends Pebble's log lines to slog.
type pebbleLogger struct{ l *slog.Logger }

func (p pebbleLogger) Infof(format string, args ...any) {
	p.l.Info(fmt.Sprintf(format, args...), "component", "pebble")
}

// Fatalf ends the process: Pebble calls it when a write of its WAL or
// MANIFEST failed (on a full disk, for one), and its commit pipeline
// cannot go on. A panic would be recovered by the goroutine that
// committed (an SMTP session, a delivery worker) and leave every later
// commit blocked, so the process neither delivered nor refused mail. On
// restart Pebble recovers from its WAL: what was acknowledged is there.
func (p pebbleLogger) Fatalf(format string, args ...any) {
	p.l.Error(fmt.Sprintf(format, args...), "component", "pebble", "fatal", true)
	os.Exit(70) // EX_SOFTWARE
}
