package policy

import (
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// SenderRules are one sender's hygiene options.
type SenderRules struct {
	// DropSuppressed accepts suppressed recipients at RCPT and drops them
	// (a suppressed event each) instead of refusing them.
	DropSuppressed bool
	// SunsetAfter suppresses (Inactive, for the sender) a recipient who
	// engaged with none of the sender's last SunsetAfter marketing
	// messages; 0 never does.
	SunsetAfter int
	// ConsentRequired names the sender's lists whose mail needs the
	// recipient's confirmed consent (on the streams of
	// Config.ConsentStreams); "*" is every list, and the sender's mail
	// that names no list.
	ConsentRequired []string
}

// Config is what a Policy needs.
type Config struct {
	Store Store
	// Streams names, per stream, the reasons that keep a recipient from
	// it. A stream not named uses "marketing"'s; nil: DefaultStreams.
	Streams map[string][]Reason
	// ConfirmAfter is the number of hard bounces in a row that make a
	// confirmed bounce (default 3).
	ConfirmAfter int
	// WaitForRun makes even an unambiguous nonexistent mailbox or domain
	// wait for ConfirmAfter hard bounces (by default one confirms it).
	WaitForRun bool
	Senders    map[string]SenderRules
	// SpamTraps are addresses ("trap@example.com") and domains
	// ("example.com" or "@example.com") nothing is ever sent to.
	SpamTraps []string
	// ConsentStreams names the streams whose mail needs consent where a
	// sender requires it (SenderRules.ConsentRequired). A stream named
	// neither here nor in Streams follows marketing. nil:
	// DefaultConsentStreams.
	ConsentStreams []string
	// PendingTTL is how long a double opt-in sign-up waits for its
	// confirmation before it is deleted; ProofRetention how long the
	// history of a withdrawn or lapsed consent is kept (ExpireConsents).
	// 0 keeps them.
	PendingTTL, ProofRetention time.Duration
	// ErasureKey keys the hashes that keep erased addresses suppressed
	// (Erase); it must stay the same across restarts.
	ErasureKey []byte
	// OnEvent receives policy's events; it must not block.
	OnEvent func(Event)
	Now     func() time.Time
	Logger  *slog.Logger
}

// DefaultStreams: marketing mail honours every suppression; transactional
// mail (password resets, receipts) is sent to a recipient who
// unsubscribed from marketing or went inactive, never to an address that
// bounced, complained, is a trap or was suppressed by hand.
var DefaultStreams = map[string][]Reason{
	"marketing":     Reasons,
	"transactional": {ConfirmedBounce, HardBounce, Complaint, SpamTrap, Manual},
}

// DefaultConsentStreams: marketing mail needs consent where it is
// required; transactional mail (a receipt, a password reset) never does.
var DefaultConsentStreams = []string{"marketing"}

// Reasons that leave no doubt that the address does not exist: one hard
// bounce for them is a confirmed bounce (the classifier's vocabulary).
var unambiguous = map[string]bool{"userunknown": true, "hostunknown": true, "notaccept": true}

// Kinds of Outcome and Event.
const (
	KindReceived        = "received"
	KindDelivered       = "delivered"
	KindBounced         = "bounced"
	KindComplained      = "complained"
	KindEngaged         = "engaged" // Outcome: Reason "opened" or "clicked"
	KindUnsubscribed    = "unsubscribed"
	KindConfirmedBounce = "confirmed-bounce"
	KindRemoved         = "suppression-removed"
	KindSuppressedAdded = "suppression-added" // Event only: an entry policy made by itself (complaint, sunset)
)

// Outcome is what policy learns from: an event of the mail stream.
type Outcome struct {
	Kind     string
	Time     time.Time
	MsgID    string
	Sender   string
	Address  string
	Stream   string
	Campaign string
	List     string
	Class    string // bounced: "hard" or "soft"
	Reason   string // bounced: the classifier's reason; engaged: opened or clicked
}

// Event is what policy tells: an unsubscribe, a confirmed bounce, an
// engagement, an entry it added or one an admin removed.
type Event struct {
	Kind     string
	Time     time.Time
	MsgID    string
	Campaign string
	Entry    Entry // the entry; for engaged, Address and Sender
	Detail   string
}

// Policy is list hygiene: the recipient check, the suppression list and
// the hygiene rules that feed it.
type Policy struct {
	cfg     Config
	streams map[string]map[Reason]bool
	traps   map[string]bool

	in      chan item
	done    chan struct{}
	dropped atomic.Int64

	countMu sync.Mutex
	counts  map[countKey]int

	erased erasedSet

	// consent: the senders that require consent, and for which lists;
	// consentStreams: the streams that need it (a stream not in it
	// follows marketing).
	consent        map[string]consentRule
	consentStreams map[string]bool
	consentMu      sync.Mutex // serialises the checks and appends of consent records

	// The re-permission deadline runs: repermMu serialises them and the
	// starts of campaigns; repermBusy is set while one runs in the
	// background (bg), which stop ends between batches.
	repermMu   sync.Mutex
	repermBusy atomic.Bool
	bg         sync.WaitGroup
	stop       chan struct{}
}

// consentRule is where a sender requires consent: every list (and its
// mail without one), or the lists named.
type consentRule struct {
	all   bool
	lists map[string]bool
}

type countKey struct {
	Scope  ScopeKind
	Reason Reason
}

type item struct {
	o    Outcome
	sync chan struct{} // a marker: closed once everything before it is applied
}

// New starts a Policy: it counts the stored entries (for the metrics) and
// starts the goroutine that applies outcomes.
func New(cfg Config) (*Policy, error) {
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.ConfirmAfter <= 0 {
		cfg.ConfirmAfter = 3
	}
	if cfg.Streams == nil {
		cfg.Streams = DefaultStreams
	}
	p := &Policy{cfg: cfg, streams: map[string]map[Reason]bool{}, traps: map[string]bool{},
		in: make(chan item, 1<<16), done: make(chan struct{}), stop: make(chan struct{}), counts: map[countKey]int{}}
	for s, rs := range cfg.Streams {
		m := map[Reason]bool{}
		for _, r := range rs {
			if !r.Valid() {
				return nil, fmt.Errorf("policy: stream %s: unknown reason %q", s, r)
			}
			m[r] = true
		}
		p.streams[s] = m
	}
	if p.streams["marketing"] == nil {
		p.streams["marketing"] = map[Reason]bool{}
		for _, r := range Reasons {
			p.streams["marketing"][r] = true
		}
	}
	for _, t := range cfg.SpamTraps {
		p.traps[Normalize(strings.TrimPrefix(t, "@"))] = true
	}
	if cfg.ConsentStreams == nil {
		cfg.ConsentStreams = DefaultConsentStreams
		p.cfg.ConsentStreams = cfg.ConsentStreams
	}
	p.consent, p.consentStreams = map[string]consentRule{}, map[string]bool{}
	for s := range p.streams {
		p.consentStreams[s] = false
	}
	for _, s := range cfg.ConsentStreams {
		p.consentStreams[s] = true
	}
	for sender, r := range cfg.Senders {
		if len(r.ConsentRequired) == 0 {
			continue
		}
		rule := consentRule{lists: map[string]bool{}}
		for _, l := range r.ConsentRequired {
			switch {
			case l == Any:
				rule.all = true
			case consentName.MatchString(l):
				rule.lists[l] = true
			default:
				return nil, fmt.Errorf("policy: sender %s: consent required for %q, which is not a list name", sender, l)
			}
		}
		p.consent[sender] = rule
	}
	err := cfg.Store.ScanSuppressions("", func(e Entry) error {
		p.counts[countKey{e.Kind, e.Reason}]++
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("policy: counting suppressions: %w", err)
	}
	// The re-permission campaigns whose deadline passed while the node
	// was down end now, in the background.
	p.kickRepermissions()
	if err := p.loadErased(); err != nil {
		return nil, fmt.Errorf("policy: reading the erased addresses: %w", err)
	}
	go p.run()
	return p, nil
}

// Close stops applying outcomes, after those already observed, and a
// re-permission deadline run after its current batch.
func (p *Policy) Close() {
	close(p.stop)
	close(p.in)
	<-p.done
	p.bg.Wait()
}

// Counts returns the number of entries by scope and reason.
func (p *Policy) Counts() map[ScopeKind]map[Reason]int {
	p.countMu.Lock()
	defer p.countMu.Unlock()
	out := map[ScopeKind]map[Reason]int{}
	for _, s := range scopeCodes {
		out[s] = map[Reason]int{}
		for _, r := range Reasons {
			out[s][r] = p.counts[countKey{s, r}]
		}
	}
	return out
}

// Dropped is the number of outcomes not applied because the queue of
// outcomes was full (policy never blocks delivery).
func (p *Policy) Dropped() int64 { return p.dropped.Load() }

func (p *Policy) counted(es []Entry, sign int) {
	p.countMu.Lock()
	for _, e := range es {
		p.counts[countKey{e.Kind, e.Reason}] += sign
	}
	p.countMu.Unlock()
}

func (p *Policy) emit(ev Event) {
	if p.cfg.OnEvent != nil {
		p.cfg.OnEvent(ev)
	}
}

// isTrap reports whether addr (normalised) or its domain is a spam trap.
func (p *Policy) isTrap(addr string) bool {
	if len(p.traps) == 0 {
		return false
	}
	if p.traps[addr] {
		return true
	}
	_, domain, _ := strings.Cut(addr, "@")
	return p.traps[domain]
}

// applies reports whether e keeps addr from sender's mail on stream to list.
func (p *Policy) applies(e Brief, sender, stream, list string) bool {
	rs := p.streams[stream]
	if rs == nil {
		rs = p.streams["marketing"]
	}
	if !rs[e.Reason] {
		return false
	}
	switch e.Kind {
	case Global:
		return true
	case PerSender:
		return e.Sender == sender
	case PerList:
		return e.Sender == sender && e.List == list
	}
	return false
}

// precedence orders the entries that apply: the one a refusal names.
var precedence = map[Reason]int{SpamTrap: 0, ConfirmedBounce: 1, HardBounce: 2, Complaint: 3, Manual: 4, Unsubscribed: 5, Inactive: 6}

// Check implements Checker. It costs one lookup of the store's index,
// and where the sender requires consent for the list and the stream
// needs it, one read of the latest consent record (after the
// suppressions: an entry that applies is the refusal). With sender ""
// only the global entries apply, and a spam trap's hit is not counted
// (a list check, not a message).
func (p *Policy) Check(sender, stream, list, addr string) (Decision, error) {
	a := Normalize(addr)
	if stream == "" {
		stream = "marketing"
	}
	d := Decision{Drop: p.cfg.Senders[sender].DropSuppressed}
	if p.isTrap(a) {
		if sender != "" {
			p.observe(Outcome{Kind: "trap", Time: p.cfg.Now(), Sender: sender, Address: a, Stream: stream, List: list})
		}
		d.Suppressed, d.Entry = true, Entry{Address: a, Scope: Scope{Kind: Global}, Reason: SpamTrap, Source: "config"}
		return d, nil
	}
	if p.isErased(a) {
		d.Suppressed, d.Entry = true, Entry{Address: a, Scope: Scope{Kind: Global}, Reason: Manual, Source: "erased"}
		return d, nil
	}
	var buf [4]Brief
	bs, err := p.cfg.Store.Lookup(a, buf[:0])
	if err != nil {
		return Decision{}, err
	}
	best := -1
	for i, b := range bs {
		if !p.applies(b, sender, stream, list) {
			continue
		}
		if best < 0 || precedence[b.Reason] < precedence[bs[best].Reason] ||
			(b.Reason == bs[best].Reason && b.Kind == PerList) {
			best = i
		}
	}
	if best < 0 {
		if p.needsConsent(sender, stream, list) {
			return p.checkConsent(d, sender, list, a)
		}
		return Decision{}, nil
	}
	d.Suppressed = true
	d.Entry = Entry{Address: a, Scope: bs[best].Scope, Reason: bs[best].Reason}
	if d.Drop {
		// The suppressed event names the entry's source and time: one
		// read more, for the recipients that are accepted and dropped.
		es, err := p.cfg.Store.Suppressions(a)
		if err != nil {
			return Decision{}, err
		}
		for _, e := range es {
			if e.Scope == d.Entry.Scope && e.Reason == d.Entry.Reason {
				d.Entry = e
			}
		}
	}
	return d, nil
}

// needsConsent reports whether mail of sender on stream to list needs
// the recipient's confirmed consent: maps only, no read.
func (p *Policy) needsConsent(sender, stream, list string) bool {
	r, ok := p.consent[sender]
	if !ok || !r.all && !r.lists[list] {
		return false
	}
	need, known := p.consentStreams[stream]
	if !known {
		need = p.consentStreams["marketing"]
	}
	return need
}

// checkConsent refuses the recipient unless its latest consent record
// for the list is confirmed; d carries the sender's Drop.
func (p *Policy) checkConsent(d Decision, sender, list, addr string) (Decision, error) {
	h, ok, err := p.cfg.Store.LatestConsent(sender, list, addr)
	if err != nil {
		return Decision{}, err
	}
	if ok && h.Status == ConsentConfirmed {
		return Decision{}, nil
	}
	d.Suppressed = true
	d.Entry = Entry{Address: addr, Scope: Scope{Kind: PerSender, Sender: sender}, Reason: NoConsent, Source: "consent:none"}
	if list != "" {
		d.Entry.Kind, d.Entry.List = PerList, list
	}
	if ok {
		d.Consent, d.Entry.Source = h.Status, "consent:"+string(h.Status)
	}
	return d, nil
}

// Unsubscribe implements Unsubscriber.
func (p *Policy) Unsubscribe(r Recipient, source string) error {
	if r.Sender == "" || r.Address == "" {
		return errors.New("policy: an unsubscribe names a sender and an address")
	}
	e := Entry{Address: Normalize(r.Address), Reason: Unsubscribed, Source: source, Time: p.cfg.Now().UTC()}
	e.Sender = r.Sender
	e.Kind = PerSender
	if r.List != "" {
		e.Kind, e.List = PerList, r.List
	}
	if r.MsgID != "" && !strings.Contains(source, ":") {
		e.Source = source + ":" + r.MsgID
	}
	added, err := p.cfg.Store.AddSuppressions([]Entry{e})
	if err != nil {
		return err
	}
	if len(added) > 0 {
		p.counted(added, 1)
		p.observe(Outcome{Kind: KindUnsubscribed, Time: e.Time, MsgID: r.MsgID, Sender: r.Sender, Address: e.Address, List: r.List})
		p.emit(Event{Kind: KindUnsubscribed, Time: e.Time, MsgID: r.MsgID, Entry: e})
	}
	return nil
}

// Observe hands policy an outcome. It never blocks: when the queue of
// outcomes is full the outcome is dropped and counted (Dropped).
func (p *Policy) Observe(o Outcome) { p.observe(o) }

func (p *Policy) observe(o Outcome) {
	o.Address = Normalize(o.Address)
	select {
	case p.in <- item{o: o}:
	default:
		if p.dropped.Add(1)%1000 == 1 {
			p.cfg.Logger.Warn("policy: outcomes dropped: the hygiene counters fall behind", "dropped", p.dropped.Load())
		}
	}
}

// Sync waits until every outcome observed before it has been applied.
func (p *Policy) Sync() {
	c := make(chan struct{})
	p.in <- item{sync: c}
	<-c
}

// Engage records engagements (opened, clicked) reported by the sender's
// tracking, and returns once they are applied.
func (p *Policy) Engage(os []Outcome) error {
	for i, o := range os {
		if o.Reason != "opened" && o.Reason != "clicked" {
			return fmt.Errorf("event %d: event must be opened or clicked, not %q", i+1, o.Reason)
		}
		if o.Sender == "" || o.Address == "" {
			return fmt.Errorf("event %d: sender and rcpt are required", i+1)
		}
	}
	for _, o := range os {
		o.Kind = KindEngaged
		if o.Time.IsZero() {
			o.Time = p.cfg.Now()
		}
		o.Address = Normalize(o.Address)
		p.in <- item{o: o}
	}
	p.Sync()
	return nil
}

// run applies outcomes in batches: the hygiene records of a batch in one
// write (not synced), the suppressions they make at once (synced). Every
// hour it starts the deadline run of the re-permission campaigns due.
func (p *Policy) run() {
	defer close(p.done)
	lastForget := time.Time{}
	hourly := time.NewTicker(time.Hour)
	defer hourly.Stop()
	for {
		var it item
		select {
		case <-hourly.C:
			p.kickRepermissions()
			continue
		case i, ok := <-p.in:
			if !ok {
				return
			}
			it = i
		}
		batch := []item{it}
	more:
		for len(batch) < 4096 {
			select {
			case it, ok := <-p.in:
				if !ok {
					break more
				}
				batch = append(batch, it)
			default:
				break more
			}
		}
		w := &worker{p: p, u: newUpdate()}
		var syncs []chan struct{}
		for _, it := range batch {
			if it.sync != nil {
				syncs = append(syncs, it.sync)
				continue
			}
			if err := w.apply(it.o); err != nil {
				p.cfg.Logger.Error("policy: applying an outcome failed", "kind", it.o.Kind, "rcpt", it.o.Address, "err", err)
			}
		}
		if !w.u.empty() {
			if err := p.cfg.Store.Apply(w.u); err != nil {
				p.cfg.Logger.Error("policy: writing hygiene records failed", "err", err)
			}
		}
		if now := p.cfg.Now(); now.Sub(lastForget) > time.Hour {
			lastForget = now
			if err := p.cfg.Store.ForgetMessages(now.Add(-messageMemory)); err != nil {
				p.cfg.Logger.Error("policy: forgetting old message records failed", "err", err)
			}
			if _, _, err := p.ExpireConsents(); err != nil {
				p.cfg.Logger.Error("policy: deleting expired consent records failed", "err", err)
			}
		}
		for _, c := range syncs {
			close(c)
		}
	}
}

// messageMemory is how long a received message's attribution is kept
// for the asynchronous reports about it.
const messageMemory = 30 * 24 * time.Hour

// worker applies the outcomes of one batch over the records it has read.
type worker struct {
	p *Policy
	u *Update
}

func (w *worker) hygiene(addr string) (Hygiene, error) {
	if h, ok := w.u.Hygiene[addr]; ok {
		return h, nil
	}
	return w.p.cfg.Store.Hygiene(addr)
}

func (w *worker) engagement(sender, addr string) (Engagement, bool, error) {
	if e, ok := w.u.Engagement[[2]string{sender, addr}]; ok {
		return e, true, nil
	}
	return w.p.cfg.Store.Engagement(sender, addr)
}

func (w *worker) message(id string) (MessageInfo, bool) {
	if id == "" {
		return MessageInfo{}, false
	}
	if m, ok := w.u.Messages[id]; ok {
		return m, true
	}
	m, ok, _ := w.p.cfg.Store.Message(id)
	return m, ok
}

func (w *worker) count(o Outcome, c Counts) {
	k := statKey{Sender: o.Sender, Campaign: o.Campaign, Day: unixDay(o.Time)}
	cur := w.u.Stats[k]
	cur.add(c)
	w.u.Stats[k] = cur
}

func (w *worker) suppress(e Entry, o Outcome, kind string) error {
	added, err := w.p.cfg.Store.AddSuppressions([]Entry{e})
	if err != nil || len(added) == 0 {
		return err
	}
	w.p.counted(added, 1)
	w.p.emit(Event{Kind: kind, Time: e.Time, MsgID: o.MsgID, Campaign: o.Campaign, Entry: e})
	return nil
}

// endRun ends the address's run of hard bounces (a delivery, an
// engagement) and returns its engagement with o's sender.
func (w *worker) endRun(o Outcome) (Engagement, error) {
	h, err := w.hygiene(o.Address)
	if err != nil {
		return Engagement{}, err
	}
	if h.HardInARow > 0 {
		w.u.Hygiene[o.Address] = Hygiene{}
	}
	e, _, err := w.engagement(o.Sender, o.Address)
	return e, err
}

func (w *worker) apply(o Outcome) error {
	if o.Time.IsZero() {
		o.Time = w.p.cfg.Now()
	}
	o.Time = o.Time.UTC()
	// Asynchronous reports know the message, not its campaign.
	if o.Stream == "" && o.Kind != KindReceived {
		m, _ := w.message(o.MsgID)
		if o.Sender == "" {
			o.Sender = m.Sender
		}
		if o.Stream == "" {
			o.Stream = m.Stream
		}
		if o.Campaign == "" {
			o.Campaign = m.Campaign
		}
		if o.List == "" {
			o.List = m.List
		}
	}
	switch o.Kind {
	case KindReceived:
		w.u.Messages[o.MsgID] = MessageInfo{Sender: o.Sender, Stream: o.Stream, Campaign: o.Campaign, List: o.List, Received: o.Time}
	case KindDelivered:
		w.count(o, Counts{Delivered: 1})
		e, err := w.endRun(o)
		if err != nil {
			return err
		}
		e.Delivered++
		e.LastMailed = o.Time
		if o.Stream == "" || o.Stream == "marketing" {
			e.Since++
		}
		w.u.Engagement[[2]string{o.Sender, o.Address}] = e
		if n := w.p.cfg.Senders[o.Sender].SunsetAfter; n > 0 && e.Since >= n {
			return w.suppress(Entry{Address: o.Address, Scope: Scope{Kind: PerSender, Sender: o.Sender}, Reason: Inactive,
				Source: fmt.Sprintf("sunset:%d", n), Time: o.Time}, o, KindSuppressedAdded)
		}
	case KindBounced:
		if o.Class != "hard" {
			if o.Class == "soft" {
				w.count(o, Counts{SoftBounces: 1})
			}
			return nil // soft bounces never suppress; an operator's bounce says nothing
		}
		w.count(o, Counts{HardBounces: 1})
		h, err := w.hygiene(o.Address)
		if err != nil {
			return err
		}
		h.HardInARow++
		h.LastHard = o.Time
		w.u.Hygiene[o.Address] = h
		if h.HardInARow >= w.p.cfg.ConfirmAfter || (!w.p.cfg.WaitForRun && unambiguous[o.Reason]) {
			w.count(o, Counts{ConfirmedBounces: 1})
			src := "bounced:" + o.MsgID
			if o.Reason != "" {
				src += ":" + o.Reason
			}
			return w.suppress(Entry{Address: o.Address, Scope: Scope{Kind: Global}, Reason: ConfirmedBounce, Source: src, Time: o.Time},
				o, KindConfirmedBounce)
		}
	case KindComplained:
		w.count(o, Counts{Complaints: 1})
		if o.Sender == "" {
			return errors.New("complaint names no sender")
		}
		return w.suppress(Entry{Address: o.Address, Scope: Scope{Kind: PerSender, Sender: o.Sender}, Reason: Complaint,
			Source: "complained:" + o.MsgID, Time: o.Time}, o, KindSuppressedAdded)
	case KindUnsubscribed:
		w.count(o, Counts{Unsubscribes: 1})
	case "trap":
		w.count(o, Counts{SpamTrapHits: 1})
		w.p.cfg.Logger.Warn("policy: message to a spam trap refused", "sender", o.Sender, "rcpt", o.Address)
	case KindEngaged:
		e, err := w.endRun(o)
		if err != nil {
			return err
		}
		e.Since, e.LastEngaged = 0, o.Time
		w.u.Engagement[[2]string{o.Sender, o.Address}] = e
		removed, err := w.p.cfg.Store.RemoveSuppressions(o.Address, func(x Entry) bool {
			return x.Reason == Inactive && x.Kind == PerSender && x.Sender == o.Sender
		})
		if err != nil {
			return err
		}
		w.p.counted(removed, -1)
		for _, x := range removed {
			w.p.emit(Event{Kind: KindRemoved, Time: o.Time, Entry: x, Detail: "engaged"})
		}
		w.p.emit(Event{Kind: KindEngaged, Time: o.Time, MsgID: o.MsgID, Campaign: o.Campaign,
			Entry: Entry{Address: o.Address, Scope: Scope{Sender: o.Sender}}, Detail: o.Reason})
	}
	return nil
}

// sortEntries orders entries by address, then scope and reason.
func sortEntries(es []Entry) {
	slices.SortFunc(es, func(a, b Entry) int {
		return strings.Compare(a.Address+"\x00"+string(a.Kind)+a.Sender+"\x00"+a.List+string(a.Reason),
			b.Address+"\x00"+string(b.Kind)+b.Sender+"\x00"+b.List+string(b.Reason))
	})
}
