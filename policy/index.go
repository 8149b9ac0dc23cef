package policy

import (
	"hash/maphash"
	"sync"
)

// index is the Pebble store's copy in memory of what the recipient check
// reads: the scope and reason of every entry, by address. Pebble's point
// read of a suppression costs 2 to 4 µs on a cached table of a million
// entries; a map lookup costs a tenth of that.
//
// It holds no pointer the garbage collector must follow, so a million
// entries cost the collector nothing while mail flows: an address is
// known by a 64-bit keyed hash of its normalised form (maphash, with a
// seed of this process), and each entry is packed in a uint64 (scope 2
// bits, reason 4, sender 26, list 32, the names interned). Two addresses
// share a hash with probability 2^-64: a million entries make a false
// match of an unsuppressed address a chance of about 5e-14 per lookup.
// An address with one entry, nearly every one, takes a map slot with no
// slice: about 30 bytes an address in all.
type index struct {
	seed  maphash.Seed
	mu    sync.RWMutex
	one   map[uint64]uint64   // addresses with one entry
	many  map[uint64][]uint64 // addresses with more
	names []string            // interned senders and lists; names[0] is ""
	ids   map[string]uint32
}

func newIndex() *index {
	return &index{seed: maphash.MakeSeed(), one: map[uint64]uint64{}, many: map[uint64][]uint64{},
		names: []string{""}, ids: map[string]uint32{"": 0}}
}

func (x *index) key(addr string) uint64 { return maphash.String(x.seed, addr) }

// intern returns the id of name; the caller holds mu for writing.
func (x *index) intern(name string) uint32 {
	if id, ok := x.ids[name]; ok {
		return id
	}
	id := uint32(len(x.names))
	x.names = append(x.names, name)
	x.ids[name] = id
	return id
}

func (x *index) pack(e Entry) uint64 {
	return uint64(indexOf(scopeCodes, e.Kind))<<62 | uint64(indexOf(Reasons, e.Reason))<<58 |
		uint64(x.intern(e.Sender)&(1<<26-1))<<32 | uint64(x.intern(e.List))
}

func (x *index) unpack(v uint64) Brief {
	return Brief{Scope: Scope{Kind: scopeCodes[v>>62], Sender: x.names[v>>32&(1<<26-1)], List: x.names[uint32(v)]}, Reason: Reasons[v>>58&15]}
}

// set replaces the entries of addr (none: removes it).
func (x *index) set(addr string, es []Entry) {
	x.mu.Lock()
	defer x.mu.Unlock()
	x.setLocked(addr, es)
}

func (x *index) setLocked(addr string, es []Entry) {
	k := x.key(addr)
	delete(x.one, k)
	delete(x.many, k)
	switch len(es) {
	case 0:
	case 1:
		x.one[k] = x.pack(es[0])
	default:
		vs := make([]uint64, len(es))
		for i, e := range es {
			vs[i] = x.pack(e)
		}
		x.many[k] = vs
	}
}

func (x *index) lookup(addr string, buf []Brief) []Brief {
	k := x.key(addr)
	x.mu.RLock()
	defer x.mu.RUnlock()
	if v, ok := x.one[k]; ok {
		return append(buf, x.unpack(v))
	}
	for _, v := range x.many[k] {
		buf = append(buf, x.unpack(v))
	}
	return buf
}

// has reports whether addr has entries.
func (x *index) has(addr string) bool {
	k := x.key(addr)
	x.mu.RLock()
	defer x.mu.RUnlock()
	_, one := x.one[k]
	return one || len(x.many[k]) > 0
}
