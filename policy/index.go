package policy

import (
	"sync"
)

// index is the Pebble store's copy in memory of what the recipient check
// reads: the scope and reason of every entry, by address. Pebble's point
// read of a suppression costs 2 to 4 µs on a cached table of a million
// entries; a map lookup costs a tenth of that. Each entry is packed in a
// uint64 (scope 2 bits, reason 4, sender 26, list 32, the names interned),
// and an address with one entry, nearly every one, takes a map slot with
// no slice: about 60 bytes an address in all.
type index struct {
	mu    sync.RWMutex
	one   map[string]uint64   // addresses with one entry
	many  map[string][]uint64 // addresses with more
	names []string            // interned senders and lists; names[0] is ""
	ids   map[string]uint32
}

func newIndex() *index {
	return &index{one: map[string]uint64{}, many: map[string][]uint64{}, names: []string{""}, ids: map[string]uint32{"": 0}}
}

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
	delete(x.one, addr)
	delete(x.many, addr)
	switch len(es) {
	case 0:
	case 1:
		x.one[addr] = x.pack(es[0])
	default:
		vs := make([]uint64, len(es))
		for i, e := range es {
			vs[i] = x.pack(e)
		}
		x.many[addr] = vs
	}
}

func (x *index) lookup(addr string, buf []Brief) []Brief {
	x.mu.RLock()
	defer x.mu.RUnlock()
	if v, ok := x.one[addr]; ok {
		return append(buf, x.unpack(v))
	}
	for _, v := range x.many[addr] {
		buf = append(buf, x.unpack(v))
	}
	return buf
}

// has reports whether addr has entries.
func (x *index) has(addr string) bool {
	x.mu.RLock()
	defer x.mu.RUnlock()
	_, one := x.one[addr]
	return one || len(x.many[addr]) > 0
}
