package policy

import (
	"bytes"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"

	"github.com/cockroachdb/pebble"
)

// The consent records of the Pebble store. A pu value is a version byte
// (1), the status and the method (their indexes in ConsentStatuses and
// ConsentMethods), the time recorded, the proof (time, ip, user agent,
// source, the text's SHA-256 as 32 bytes, the purposes), and a byte of
// flags (1: a confirmation follows, 2: an end follows) with those acts
// (time, ip, user agent, source). A pt value is a version byte (1), the
// status and the record's number (a uvarint): all the recipient check
// reads. Times are Unix seconds.

// latestKey is pt<sender>\x00<list>\x00<addr>.
func latestKey(sender, list, addr string) []byte { return key(prefixConsent, sender, list, addr) }

// historyKey is pu<sender>\x00<list>\x00<addr>\x00<seq:8>.
func historyKey(sender, list, addr string, seq uint64) []byte {
	return binary.BigEndian.AppendUint64(append(key(prefixConsentHistory, sender, list, addr), 0), seq)
}

func textKey(hash string) ([]byte, error) {
	h, err := hex.DecodeString(hash)
	if err != nil || len(h) != 32 {
		return nil, fmt.Errorf("policy: %q is not a SHA-256", hash)
	}
	return append([]byte(prefixConsentText), h...), nil
}

func appendAct(b []byte, a ConsentAct) []byte {
	b = appendTime(b, a.Time)
	return appendStr(appendStr(appendStr(b, a.IP), a.UserAgent), a.Source)
}

func (r *reader) act() ConsentAct {
	a := ConsentAct{Time: r.time()}
	a.IP, a.UserAgent, a.Source = r.str(), r.str(), r.str()
	return a
}

func encodeConsent(c Consent) ([]byte, error) {
	b := []byte{1, byte(indexOf(ConsentStatuses, c.Status)), byte(indexOf(ConsentMethods, c.Method))}
	b = appendTime(b, c.Recorded)
	b = appendAct(b, c.Proof.ConsentAct)
	var h []byte
	if c.Proof.TextHash != "" {
		var err error
		if h, err = hex.DecodeString(c.Proof.TextHash); err != nil || len(h) != 32 {
			return nil, fmt.Errorf("policy: text_sha256 %q is not a SHA-256", c.Proof.TextHash)
		}
	}
	b = appendStr(b, string(h))
	b = binary.AppendUvarint(b, uint64(len(c.Proof.Purposes)))
	for _, s := range c.Proof.Purposes {
		b = appendStr(b, s)
	}
	var flags byte
	if c.Confirmation != nil {
		flags |= 1
	}
	if c.Ended != nil {
		flags |= 2
	}
	b = append(b, flags)
	if c.Confirmation != nil {
		b = appendAct(b, *c.Confirmation)
	}
	if c.Ended != nil {
		b = appendAct(b, *c.Ended)
	}
	return b, nil
}

func decodeConsent(sender, list, addr string, seq uint64, v []byte) (Consent, error) {
	c := Consent{Sender: sender, List: list, Address: addr, Seq: seq}
	bad := func(what string) error {
		return fmt.Errorf("policy: consent record %d of %s for %s/%s: %s", seq, addr, sender, list, what)
	}
	if len(v) < 3 || v[0] != 1 {
		return c, bad("unknown version")
	}
	if int(v[1]) >= len(ConsentStatuses) || int(v[2]) >= len(ConsentMethods) {
		return c, bad("bad status or method")
	}
	c.Status, c.Method = ConsentStatuses[v[1]], ConsentMethods[v[2]]
	r := reader{b: v[3:]}
	c.Recorded = r.time()
	c.Proof.ConsentAct = r.act()
	if h := r.str(); h != "" {
		c.Proof.TextHash = hex.EncodeToString([]byte(h))
	}
	if n := r.uvarint(); n > 0 && n <= maxPurposes {
		c.Proof.Purposes = make([]string, n)
		for i := range c.Proof.Purposes {
			c.Proof.Purposes[i] = r.str()
		}
	}
	flags := r.byte()
	if flags&1 != 0 {
		a := r.act()
		c.Confirmation = &a
	}
	if flags&2 != 0 {
		a := r.act()
		c.Ended = &a
	}
	if r.err != nil {
		return c, bad(r.err.Error())
	}
	return c, nil
}

func encodeHead(status ConsentStatus, seq uint64) []byte {
	return binary.AppendUvarint([]byte{1, byte(indexOf(ConsentStatuses, status))}, seq)
}

func decodeHead(v []byte) (ConsentStatus, uint64, error) {
	if len(v) < 3 || v[0] != 1 || int(v[1]) >= len(ConsentStatuses) {
		return "", 0, errors.New("policy: latest consent record: unknown version or status")
	}
	seq, n := binary.Uvarint(v[2:])
	if n <= 0 {
		return "", 0, errors.New("policy: latest consent record: bad number")
	}
	return ConsentStatuses[v[1]], seq, nil
}

// splitConsentKey reads sender, list and address from a key after its
// prefix.
func splitConsentKey(k []byte) (sender, list, addr string, ok bool) {
	s, rest, ok1 := bytes.Cut(k, []byte{0})
	l, a, ok2 := bytes.Cut(rest, []byte{0})
	return string(s), string(l), string(a), ok1 && ok2
}

func (p *PebbleStore) AppendConsent(cs []Consent) ([]Consent, error) {
	p.consentMu.Lock()
	defer p.consentMu.Unlock()
	type k3 struct{ s, l, a string }
	next := make(map[k3]uint64, len(cs))
	out := make([]Consent, len(cs))
	size := 0
	vals := make([][]byte, len(cs))
	for i, c := range cs {
		k := k3{c.Sender, c.List, c.Address}
		seq, ok := next[k]
		if !ok {
			h, found, err := p.LatestConsent(c.Sender, c.List, c.Address)
			if err != nil {
				return nil, err
			}
			if found {
				seq = h.Seq
			}
		}
		seq++
		next[k] = seq
		c.Seq = seq
		c.Proof.Text = ""
		v, err := encodeConsent(c)
		if err != nil {
			return nil, err
		}
		out[i], vals[i] = c, v
		size += 2*(len(c.Sender)+len(c.List)+len(c.Address)) + len(v) + 48
	}
	b := p.db.NewBatchWithSize(size)
	defer b.Close()
	for i, c := range out {
		if err := b.Set(historyKey(c.Sender, c.List, c.Address, c.Seq), vals[i], nil); err != nil {
			return nil, err
		}
		// Several records of one address in a batch: the last one's
		// head stays.
		if err := b.Set(latestKey(c.Sender, c.List, c.Address), encodeHead(c.Status, c.Seq), nil); err != nil {
			return nil, err
		}
		if err := b.Set(key(prefixConsentIndex, c.Address, c.Sender, c.List), nil, nil); err != nil {
			return nil, err
		}
	}
	if err := b.Commit(pebble.Sync); err != nil {
		return nil, err
	}
	if size > bulkSize {
		// A bulk import, flushed and compacted into its level now (see
		// AddSuppressions).
		if err := p.db.Compact([]byte(prefixConsent), prefixEnd(prefixConsentHistory), true); err != nil {
			return nil, err
		}
	}
	return out, nil
}

func (p *PebbleStore) LatestConsent(sender, list, addr string) (ConsentHead, bool, error) {
	var buf [160]byte
	k := append(append(append(append(append(buf[:0], prefixConsent...), sender...), 0), list...), 0)
	k = append(k, addr...)
	v, closer, err := p.db.Get(k)
	if errors.Is(err, pebble.ErrNotFound) {
		return ConsentHead{}, false, nil
	}
	if err != nil {
		return ConsentHead{}, false, err
	}
	defer closer.Close()
	st, seq, err := decodeHead(v)
	if err != nil {
		return ConsentHead{}, false, err
	}
	return ConsentHead{Sender: sender, List: list, Address: addr, Status: st, Seq: seq}, true, nil
}

func (p *PebbleStore) ConsentRecord(sender, list, addr string, seq uint64) (Consent, bool, error) {
	v, ok, err := p.get(historyKey(sender, list, addr, seq))
	if err != nil || !ok {
		return Consent{}, false, err
	}
	c, err := decodeConsent(sender, list, addr, seq, v)
	return c, err == nil, err
}

func (p *PebbleStore) ConsentHistory(sender, list, addr string) ([]Consent, error) {
	lo := append(key(prefixConsentHistory, sender, list, addr), 0)
	hi := append(key(prefixConsentHistory, sender, list, addr), 1)
	it, err := p.db.NewIter(&pebble.IterOptions{LowerBound: lo, UpperBound: hi})
	if err != nil {
		return nil, err
	}
	defer it.Close()
	var out []Consent
	for it.First(); it.Valid(); it.Next() {
		k := it.Key()
		if len(k) != len(lo)+8 {
			continue
		}
		c, err := decodeConsent(sender, list, addr, binary.BigEndian.Uint64(k[len(lo):]), it.Value())
		if err != nil {
			return nil, err
		}
		out = append(out, c)
	}
	return out, it.Error()
}

func (p *PebbleStore) ScanConsent(sender, list string, status ConsentStatus, from string, fn func(ConsentHead) error) error {
	var lo, hi []byte
	switch {
	case sender == Any:
		lo, hi = []byte(prefixConsent), prefixEnd(prefixConsent)
	case list == Any:
		lo, hi = key(prefixConsent, sender, ""), append(key(prefixConsent, sender), 1)
	default:
		lo, hi = key(prefixConsent, sender, list, from), append(key(prefixConsent, sender, list), 1)
	}
	it, err := p.db.NewIter(&pebble.IterOptions{LowerBound: lo, UpperBound: hi})
	if err != nil {
		return err
	}
	defer it.Close()
	for it.First(); it.Valid(); it.Next() {
		s, l, a, ok := splitConsentKey(it.Key()[len(prefixConsent):])
		if !ok {
			continue
		}
		st, seq, err := decodeHead(it.Value())
		if err != nil {
			return fmt.Errorf("%w (%s for %s/%s)", err, a, s, l)
		}
		if status != "" && st != status {
			continue
		}
		if err := fn(ConsentHead{Sender: s, List: l, Address: a, Status: st, Seq: seq}); err != nil {
			return err
		}
	}
	return it.Error()
}

func (p *PebbleStore) ConsentLists(addr string) ([][2]string, error) {
	lo := key(prefixConsentIndex, addr, "")
	it, err := p.db.NewIter(&pebble.IterOptions{LowerBound: lo, UpperBound: append(key(prefixConsentIndex, addr), 1)})
	if err != nil {
		return nil, err
	}
	defer it.Close()
	var out [][2]string
	for it.First(); it.Valid(); it.Next() {
		if s, l, ok := strings.Cut(string(it.Key()[len(lo):]), "\x00"); ok {
			out = append(out, [2]string{s, l})
		}
	}
	return out, it.Error()
}

func (p *PebbleStore) DeleteConsent(sender, list, addr string) error {
	p.consentMu.Lock()
	defer p.consentMu.Unlock()
	b := p.db.NewBatch()
	defer b.Close()
	b.Delete(key(prefixConsent, sender, list, addr), nil)
	b.Delete(key(prefixConsentIndex, addr, sender, list), nil)
	if err := p.deleteKeys(b, append(key(prefixConsentHistory, sender, list, addr), 0), append(key(prefixConsentHistory, sender, list, addr), 1)); err != nil {
		return err
	}
	return b.Commit(pebble.Sync)
}

func (p *PebbleStore) PutConsentText(text string) (string, error) {
	h := TextHash(text)
	k, _ := textKey(h)
	if _, ok, err := p.get(k); err != nil || ok {
		return h, err // stored once
	}
	return h, p.db.Set(k, []byte(text), pebble.Sync)
}

func (p *PebbleStore) ConsentText(hash string) (string, bool, error) {
	k, err := textKey(hash)
	if err != nil {
		return "", false, err
	}
	v, ok, err := p.get(k)
	return string(v), ok, err
}
