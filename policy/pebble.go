package policy

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"maps"
	"slices"
	"sync"
	"time"

	"github.com/cockroachdb/pebble"
)

// Key prefixes of the Pebble store. Policy owns every key that starts
// with the byte 'p'; the package doc lists them. The tables that are
// seldom written (the attributes; the suppression list, the consent
// records and texts, which are large; the re-permission campaigns) sort
// below every prefix written with each message (message records,
// campaign tallies, hard-bounce runs, engagement), which sort just below
// the spool's ('q'): a memtable flush holds the hot records and the
// spool's, and the tables it makes must not overlap the cold tables' key
// range, or every compaction would rewrite them while mail flows.
const (
	prefixAttributes     = "pa" // pa<sender>\x00<addr>                      the address's attributes with the sender (name)
	prefixErased         = "pe" // pe<hmac:16>                               an erased address's keyed hash: it stays suppressed
	prefixConsentIndex   = "pc" // pc<addr>\x00<sender>\x00<list>              the lists an address has consent records with
	prefixRepermission   = "pr" // pr<sender>\x00<list>\x00<started:8>       a re-permission campaign
	prefixSuppression    = "ps" // ps<addr>                                  every entry of the address
	prefixConsent        = "pt" // pt<sender>\x00<list>\x00<addr>             latest consent record: status, number
	prefixConsentHistory = "pu" // pu<sender>\x00<list>\x00<addr>\x00<seq:8>   every consent record
	prefixConsentText    = "pv" // pv<sha256:32>                             a consent text
	prefixMessage        = "pw" // pw<id>                                    received message's attribution
	prefixStats          = "px" // px<sender>\x00<day:8>\x00<campaign>        campaign tallies
	prefixHygiene        = "py" // py<addr>                                  hard-bounce run
	prefixEngagement     = "pz" // pz<sender>\x00<addr>                      engagement with the sender
)

// coldPrefixes are seldom written (and most of them large);
// hotPrefixes are written with every message. Every cold key sorts below every hot one.
var (
	coldPrefixes = []string{prefixAttributes, prefixConsentIndex, prefixErased, purgeKey, prefixRepermission, prefixSuppression, prefixConsent, prefixConsentHistory, prefixConsentText}
	hotPrefixes  = []string{prefixMessage, prefixStats, prefixHygiene, prefixEngagement}
)

// prefixEnd is the first key after every key with prefix p.
func prefixEnd(p string) []byte { return []byte(p[:len(p)-1] + string(p[len(p)-1]+1)) }

// bulkSize is the size of a batch of suppressions above which it is
// flushed to a table at once.
const bulkSize = 16 << 20

// PebbleStore keeps policy's state in the node's Pebble database, beside
// the spool, under the 'p' prefixes, and what the recipient check reads
// in memory too (index).
type PebbleStore struct {
	db        *pebble.DB
	mu        sync.Mutex // serialises the read-modify-writes of suppressions
	consentMu sync.Mutex // serialises the numbering of consent records
	attrMu    sync.Mutex // serialises the read-modify-writes of attributes
	idx       *index
}

// NewPebbleStore uses db (opened and closed by its owner, the spool). It
// reads every suppression into its index: about a second for a million.
func NewPebbleStore(db *pebble.DB) (*PebbleStore, error) {
	p := &PebbleStore{db: db, idx: newIndex()}
	it, err := db.NewIter(&pebble.IterOptions{LowerBound: []byte(prefixSuppression), UpperBound: prefixEnd(prefixSuppression)})
	if err != nil {
		return nil, err
	}
	defer it.Close()
	for it.First(); it.Valid(); it.Next() {
		addr := string(it.Key()[len(prefixSuppression):])
		es, err := decodeEntries(addr, it.Value())
		if err != nil {
			return nil, err
		}
		p.idx.setLocked(addr, es)
	}
	return p, it.Error()
}

func (p *PebbleStore) Lookup(addr string, buf []Brief) ([]Brief, error) {
	return p.idx.lookup(addr, buf), nil
}

// Close does nothing: the database is its owner's to close.
func (p *PebbleStore) Close() error { return nil }

func key(prefix string, parts ...string) []byte {
	k := []byte(prefix)
	for i, s := range parts {
		if i > 0 {
			k = append(k, 0)
		}
		k = append(k, s...)
	}
	return k
}

func (p *PebbleStore) get(k []byte) ([]byte, bool, error) {
	v, closer, err := p.db.Get(k)
	if errors.Is(err, pebble.ErrNotFound) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, err
	}
	out := bytes.Clone(v)
	closer.Close()
	return out, true, nil
}

func (p *PebbleStore) Suppressions(addr string) ([]Entry, error) {
	var buf [128]byte
	k := append(append(buf[:0], prefixSuppression...), addr...)
	v, closer, err := p.db.Get(k)
	if errors.Is(err, pebble.ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	defer closer.Close()
	return decodeEntries(addr, v) // copies what it keeps
}

func sameEntry(a, b Entry) bool { return a.Scope == b.Scope && a.Reason == b.Reason }

func (p *PebbleStore) AddSuppressions(es []Entry) ([]Entry, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	// Several entries of one import may name one address: merged here.
	pending := make(map[string][]Entry, len(es))
	order := make([]string, 0, len(es))
	added := make([]Entry, 0, len(es))
	for _, e := range es {
		cur, ok := pending[e.Address]
		if !ok && p.idx.has(e.Address) {
			// Only an address the index holds has entries on disk:
			// the others (a new list's) cost no read.
			var err error
			if cur, err = p.Suppressions(e.Address); err != nil {
				return nil, err
			}
		}
		dup := false
		for _, c := range cur {
			if sameEntry(c, e) {
				dup = true
				break
			}
		}
		if !dup {
			cur = append(cur, e)
			added = append(added, e)
		}
		if !ok {
			order = append(order, e.Address)
		}
		pending[e.Address] = cur
	}
	if len(added) == 0 {
		return nil, nil
	}
	// One batch, sized beforehand: a million entries would otherwise be
	// copied again at every doubling of the batch.
	vals := make([][]byte, len(order))
	size := 0
	for i, addr := range order {
		vals[i] = encodeEntries(pending[addr])
		size += len(prefixSuppression) + len(addr) + len(vals[i]) + 16
	}
	b := p.db.NewBatchWithSize(size)
	defer b.Close()
	for i, addr := range order {
		if err := b.Set(key(prefixSuppression, addr), vals[i], nil); err != nil {
			return nil, err
		}
	}
	if err := b.Commit(pebble.Sync); err != nil {
		return nil, err
	}
	if size > bulkSize {
		// A bulk import: flushed to tables and compacted into its level
		// now (for a new list, Pebble only moves the tables), rather than
		// left in the WAL and level 0, which the next start would replay
		// and compact while mail flows.
		if err := p.db.Compact([]byte(prefixSuppression), prefixEnd(prefixSuppression), true); err != nil {
			return nil, err
		}
	}
	p.idx.mu.Lock()
	for _, addr := range order {
		p.idx.setLocked(addr, pending[addr])
	}
	p.idx.mu.Unlock()
	return added, nil
}

func (p *PebbleStore) RemoveSuppressions(addr string, remove func(Entry) bool) ([]Entry, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	cur, err := p.Suppressions(addr)
	if err != nil {
		return nil, err
	}
	var kept, removed []Entry
	for _, e := range cur {
		if remove(e) {
			removed = append(removed, e)
		} else {
			kept = append(kept, e)
		}
	}
	if len(removed) == 0 {
		return nil, nil
	}
	k := key(prefixSuppression, addr)
	if len(kept) == 0 {
		err = p.db.Delete(k, pebble.Sync)
	} else {
		err = p.db.Set(k, encodeEntries(kept), pebble.Sync)
	}
	if err != nil {
		return nil, err
	}
	p.idx.set(addr, kept)
	return removed, nil
}

func (p *PebbleStore) ScanSuppressions(from string, fn func(Entry) error) error {
	it, err := p.db.NewIter(&pebble.IterOptions{LowerBound: key(prefixSuppression, from), UpperBound: prefixEnd(prefixSuppression)})
	if err != nil {
		return err
	}
	defer it.Close()
	for it.First(); it.Valid(); it.Next() {
		addr := string(it.Key()[len(prefixSuppression):])
		es, err := decodeEntries(addr, it.Value())
		if err != nil {
			return err
		}
		for _, e := range es {
			if err := fn(e); err != nil {
				return err
			}
		}
	}
	return it.Error()
}

func (p *PebbleStore) Hygiene(addr string) (Hygiene, error) {
	v, ok, err := p.get(key(prefixHygiene, addr))
	if err != nil || !ok {
		return Hygiene{}, err
	}
	var h Hygiene
	r := reader{b: v}
	h.HardInARow = int(r.uvarint())
	h.LastHard = r.time()
	return h, r.err
}

func (p *PebbleStore) Engagement(sender, addr string) (Engagement, bool, error) {
	v, ok, err := p.get(key(prefixEngagement, sender, addr))
	if err != nil || !ok {
		return Engagement{}, false, err
	}
	e, err := decodeEngagement(v)
	return e, err == nil, err
}

func decodeEngagement(v []byte) (Engagement, error) {
	r := reader{b: v}
	e := Engagement{Since: int(r.uvarint()), Delivered: int(r.uvarint())}
	e.LastMailed, e.LastEngaged = r.time(), r.time()
	return e, r.err
}

func (p *PebbleStore) ScanEngagement(sender string, fn func(addr string, e Engagement) error) error {
	lo := key(prefixEngagement, sender, "")
	hi := append(key(prefixEngagement, sender), 1)
	it, err := p.db.NewIter(&pebble.IterOptions{LowerBound: lo, UpperBound: hi})
	if err != nil {
		return err
	}
	defer it.Close()
	for it.First(); it.Valid(); it.Next() {
		e, err := decodeEngagement(it.Value())
		if err != nil {
			return err
		}
		if err := fn(string(it.Key()[len(lo):]), e); err != nil {
			return err
		}
	}
	return it.Error()
}

func dayKey(day int64) string {
	var b [8]byte
	binary.BigEndian.PutUint64(b[:], uint64(day))
	return string(b[:])
}

func (p *PebbleStore) Stats(sender string, since time.Time) ([]CampaignDay, error) {
	lo := key(prefixStats, sender, dayKey(unixDay(since)))
	hi := append(key(prefixStats, sender), 1)
	it, err := p.db.NewIter(&pebble.IterOptions{LowerBound: lo, UpperBound: hi})
	if err != nil {
		return nil, err
	}
	defer it.Close()
	base := len(prefixStats) + len(sender) + 1
	var out []CampaignDay
	for it.First(); it.Valid(); it.Next() {
		k := it.Key()
		if len(k) < base+9 {
			continue
		}
		day := int64(binary.BigEndian.Uint64(k[base : base+8]))
		r := reader{b: it.Value()}
		c := CampaignDay{Day: time.Unix(day*86400, 0).UTC(), Campaign: string(k[base+9:])}
		c.Counts = Counts{Delivered: int(r.uvarint()), HardBounces: int(r.uvarint()), SoftBounces: int(r.uvarint()),
			ConfirmedBounces: int(r.uvarint()), Complaints: int(r.uvarint()), Unsubscribes: int(r.uvarint()), SpamTrapHits: int(r.uvarint())}
		if r.err != nil {
			return nil, r.err
		}
		out = append(out, c)
	}
	return out, it.Error()
}

func encodeCounts(c Counts) []byte {
	var b []byte
	for _, n := range []int{c.Delivered, c.HardBounces, c.SoftBounces, c.ConfirmedBounces, c.Complaints, c.Unsubscribes, c.SpamTrapHits} {
		b = binary.AppendUvarint(b, uint64(n))
	}
	return b
}

func (p *PebbleStore) Message(id string) (MessageInfo, bool, error) {
	v, ok, err := p.get(key(prefixMessage, id))
	if err != nil || !ok {
		return MessageInfo{}, false, err
	}
	r := reader{b: v}
	m := MessageInfo{Sender: r.str(), Stream: r.str(), Campaign: r.str(), List: r.str(), Received: r.time()}
	return m, r.err == nil, r.err
}

func (p *PebbleStore) Apply(u *Update) error {
	b := p.db.NewBatch()
	defer b.Close()
	for addr, h := range u.Hygiene {
		k := key(prefixHygiene, addr)
		if h == (Hygiene{}) {
			b.Delete(k, nil)
			continue
		}
		v := binary.AppendUvarint(nil, uint64(h.HardInARow))
		b.Set(k, appendTime(v, h.LastHard), nil)
	}
	for sa, e := range u.Engagement {
		v := binary.AppendUvarint(nil, uint64(e.Since))
		v = binary.AppendUvarint(v, uint64(e.Delivered))
		v = appendTime(appendTime(v, e.LastMailed), e.LastEngaged)
		b.Set(key(prefixEngagement, sa[0], sa[1]), v, nil)
	}
	for sk, d := range u.Stats {
		k := key(prefixStats, sk.Sender, dayKey(sk.Day), sk.Campaign)
		var c Counts
		if v, ok, err := p.get(k); err != nil {
			return err
		} else if ok {
			r := reader{b: v}
			c = Counts{Delivered: int(r.uvarint()), HardBounces: int(r.uvarint()), SoftBounces: int(r.uvarint()),
				ConfirmedBounces: int(r.uvarint()), Complaints: int(r.uvarint()), Unsubscribes: int(r.uvarint()), SpamTrapHits: int(r.uvarint())}
		}
		c.add(d)
		b.Set(k, encodeCounts(c), nil)
	}
	for id, m := range u.Messages {
		var v []byte
		for _, s := range []string{m.Sender, m.Stream, m.Campaign, m.List} {
			v = appendStr(v, s)
		}
		b.Set(key(prefixMessage, id), appendTime(v, m.Received), nil)
	}
	return b.Commit(pebble.NoSync)
}

func (p *PebbleStore) ForgetMessages(before time.Time) error {
	it, err := p.db.NewIter(&pebble.IterOptions{LowerBound: []byte(prefixMessage), UpperBound: prefixEnd(prefixMessage)})
	if err != nil {
		return err
	}
	defer it.Close()
	b := p.db.NewBatch()
	defer b.Close()
	for it.First(); it.Valid(); it.Next() {
		r := reader{b: it.Value()}
		r.str()
		r.str()
		r.str()
		r.str()
		if t := r.time(); r.err == nil && t.Before(before) {
			b.Delete(it.Key(), nil)
		}
	}
	if err := it.Error(); err != nil {
		return err
	}
	return b.Commit(pebble.NoSync)
}

// The value of a ps key is a version byte (1) and the entries: scope
// kind, reason, time (Unix seconds), sender, list, source.

var scopeCodes = []ScopeKind{Global, PerSender, PerList}

func encodeEntries(es []Entry) []byte {
	b := []byte{1}
	for _, e := range es {
		b = append(b, byte(indexOf(scopeCodes, e.Kind)), byte(indexOf(Reasons, e.Reason)))
		b = appendTime(b, e.Time)
		b = appendStr(appendStr(appendStr(b, e.Sender), e.List), e.Source)
	}
	return b
}

func decodeEntries(addr string, v []byte) ([]Entry, error) {
	if len(v) == 0 || v[0] != 1 {
		return nil, fmt.Errorf("policy: suppression record of %s: unknown version", addr)
	}
	r := reader{b: v[1:]}
	var es []Entry
	for len(r.b) > 0 && r.err == nil {
		sc, rs := r.byte(), r.byte()
		e := Entry{Address: addr, Time: r.time()}
		e.Sender, e.List, e.Source = r.str(), r.str(), r.str()
		if int(sc) >= len(scopeCodes) || int(rs) >= len(Reasons) {
			return nil, fmt.Errorf("policy: suppression record of %s: bad scope or reason", addr)
		}
		e.Kind, e.Reason = scopeCodes[sc], Reasons[rs]
		es = append(es, e)
	}
	if r.err != nil {
		return nil, fmt.Errorf("policy: suppression record of %s: %w", addr, r.err)
	}
	return es, nil
}

func indexOf[T comparable](s []T, v T) int {
	for i, x := range s {
		if x == v {
			return i
		}
	}
	return 0
}

func appendStr(b []byte, s string) []byte {
	return append(binary.AppendUvarint(b, uint64(len(s))), s...)
}

func appendTime(b []byte, t time.Time) []byte {
	if t.IsZero() {
		return binary.AppendVarint(b, 0)
	}
	return binary.AppendVarint(b, t.Unix())
}

var errShort = errors.New("record too short")

type reader struct {
	b   []byte
	err error
}

func (r *reader) byte() byte {
	if r.err != nil || len(r.b) == 0 {
		r.err = errShort
		return 0
	}
	c := r.b[0]
	r.b = r.b[1:]
	return c
}

func (r *reader) uvarint() uint64 {
	if r.err != nil {
		return 0
	}
	v, n := binary.Uvarint(r.b)
	if n <= 0 {
		r.err = errShort
		return 0
	}
	r.b = r.b[n:]
	return v
}

func (r *reader) time() time.Time {
	if r.err != nil {
		return time.Time{}
	}
	v, n := binary.Varint(r.b)
	if n <= 0 {
		r.err = errShort
		return time.Time{}
	}
	r.b = r.b[n:]
	if v == 0 {
		return time.Time{}
	}
	return time.Unix(v, 0).UTC()
}

func (r *reader) str() string {
	l := r.uvarint()
	if r.err != nil || uint64(len(r.b)) < l {
		r.err = errShort
		return ""
	}
	s := string(r.b[:l])
	r.b = r.b[l:]
	return s
}

func unixDay(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.Unix() / 86400
}

// attrVersion is the version byte of a pa value: then the number of
// attributes and each name and value, length-prefixed, in name order.
const attrVersion = 1

func (p *PebbleStore) Attributes(sender, addr string) (map[string]string, error) {
	v, ok, err := p.get(key(prefixAttributes, sender, addr))
	if err != nil || !ok {
		return map[string]string{}, err
	}
	return decodeAttributes(v)
}

func (p *PebbleStore) SetAttribute(sender, addr, name, value string) error {
	p.attrMu.Lock()
	defer p.attrMu.Unlock()
	k := key(prefixAttributes, sender, addr)
	attrs, err := p.Attributes(sender, addr)
	if err != nil {
		return err
	}
	if value == "" {
		delete(attrs, name)
	} else {
		attrs[name] = value
	}
	if len(attrs) == 0 {
		return p.db.Delete(k, pebble.Sync)
	}
	return p.db.Set(k, encodeAttributes(attrs), pebble.Sync)
}

func encodeAttributes(attrs map[string]string) []byte {
	b := []byte{attrVersion}
	b = binary.AppendUvarint(b, uint64(len(attrs)))
	for _, n := range slices.Sorted(maps.Keys(attrs)) {
		b = appendStr(appendStr(b, n), attrs[n])
	}
	return b
}

func decodeAttributes(v []byte) (map[string]string, error) {
	r := &reader{b: v}
	if ver := r.byte(); ver != attrVersion {
		return nil, fmt.Errorf("policy: attribute record version %d", ver)
	}
	out := map[string]string{}
	for n := r.uvarint(); n > 0 && r.err == nil; n-- {
		name := r.str()
		out[name] = r.str()
	}
	if r.err != nil {
		return nil, fmt.Errorf("policy: attribute record: %w", r.err)
	}
	return out, nil
}

// Erase deletes every record of addr under every prefix but the texts
// (shared, and naming no one) and the message records (naming no
// recipient), and keeps marker, its keyed hash, in pe; one batch,
// synced. The index forgets it too.
func (p *PebbleStore) Erase(addr string, marker []byte) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.consentMu.Lock()
	defer p.consentMu.Unlock()
	b := p.db.NewBatch()
	defer b.Close()
	b.Delete(key(prefixSuppression, addr), nil)
	b.Delete(key(prefixHygiene, addr), nil)
	lists, err := p.ConsentLists(addr)
	if err != nil {
		return err
	}
	for _, sl := range lists {
		b.Delete(key(prefixConsent, sl[0], sl[1], addr), nil)
		if err := p.deleteKeys(b, append(key(prefixConsentHistory, sl[0], sl[1], addr), 0), append(key(prefixConsentHistory, sl[0], sl[1], addr), 1)); err != nil {
			return err
		}
	}
	// Point deletions, not range ones: a range deletion's bounds would
	// name the address in the tables' bounds (the MANIFEST) until the
	// bottom level drops it.
	if err := p.deleteKeys(b, key(prefixConsentIndex, addr, ""), append(key(prefixConsentIndex, addr), 1)); err != nil {
		return err
	}
	// Attributes and engagement are keyed sender first: every sender's.
	for _, prefix := range []string{prefixAttributes, prefixEngagement} {
		it, err := p.db.NewIter(&pebble.IterOptions{LowerBound: []byte(prefix), UpperBound: prefixEnd(prefix)})
		if err != nil {
			return err
		}
		suffix := append([]byte{0}, addr...)
		for it.First(); it.Valid(); it.Next() {
			if bytes.HasSuffix(it.Key(), suffix) {
				b.Delete(bytes.Clone(it.Key()), nil)
			}
		}
		if err := it.Close(); err != nil {
			return err
		}
	}
	b.Set(append([]byte(prefixErased), marker...), nil, nil)
	if err := b.Commit(pebble.Sync); err != nil {
		return err
	}
	p.idx.set(addr, nil)
	return nil
}

// Erased returns the keyed hashes of the erased addresses.
func (p *PebbleStore) Erased() ([][]byte, error) {
	it, err := p.db.NewIter(&pebble.IterOptions{LowerBound: []byte(prefixErased), UpperBound: prefixEnd(prefixErased)})
	if err != nil {
		return nil, err
	}
	defer it.Close()
	var out [][]byte
	for it.First(); it.Valid(); it.Next() {
		out = append(out, bytes.Clone(it.Key()[len(prefixErased):]))
	}
	return out, it.Error()
}

// Unerase deletes an erased address's marker (its own confirmed double
// opt-in lifts it).
func (p *PebbleStore) Unerase(marker []byte) error {
	return p.db.Delete(append([]byte(prefixErased), marker...), pebble.Sync)
}

// deleteKeys adds a point deletion of every key in [lo, hi) to b.
func (p *PebbleStore) deleteKeys(b *pebble.Batch, lo, hi []byte) error {
	it, err := p.db.NewIter(&pebble.IterOptions{LowerBound: lo, UpperBound: hi})
	if err != nil {
		return err
	}
	for it.First(); it.Valid(); it.Next() {
		b.Delete(bytes.Clone(it.Key()), nil)
	}
	return it.Close()
}

// purgeKey holds the padding that overwrites the write-ahead logs.
const purgeKey = "pf"

// Purge makes what was deleted gone from the database's files too.
// Pebble keeps deleted values in its tables until a compaction drops
// them, names the tables' bounding keys in its MANIFEST (rewritten at
// each change: queue.Open sets MaxManifestFileSize so), and keeps an
// obsolete write-ahead log for reuse, whose old bytes stay beyond what it
// is written with next. So Purge flushes, then writes padding larger
// than any kept log, once for each log it may keep, so that each is
// overwritten through, deletes the padding and compacts everything.
func (p *PebbleStore) Purge() error {
	if err := p.db.Flush(); err != nil {
		return err
	}
	for range 5 {
		m := p.db.Metrics()
		size := int(m.WAL.ObsoletePhysicalSize) + int(m.WAL.PhysicalSize) + 64<<10
		if err := p.db.Set([]byte(purgeKey), make([]byte, size), pebble.Sync); err != nil {
			return err
		}
		if err := p.db.Flush(); err != nil {
			return err
		}
	}
	if err := p.db.Delete([]byte(purgeKey), pebble.Sync); err != nil {
		return err
	}
	if err := p.db.Flush(); err != nil {
		return err
	}
	return p.db.Compact([]byte{0}, []byte{0xff}, true)
}
