package policy

import (
	"crypto/hmac"
	"crypto/sha256"
	"sync"
	"sync/atomic"
)

// Erasure (GDPR art. 17): Erase deletes every record of an address from
// the store, under every prefix, and keeps only a keyed hash of it
// (HMAC-SHA256 with Config.ErasureKey, 16 bytes, in pe), so that the
// address stays suppressed for every sender without being stored: the
// recipient check refuses it, and a consent record, an import or an API
// subscription of it is refused. Only the person's own new double opt-in
// lifts it: a pending sign-up is taken, and its confirmation from the
// mailbox drops the hash. Purge then makes the deleted values gone from
// the store's files.

// erasedSet is the keyed hashes of the erased addresses, in memory.
type erasedSet struct {
	n   atomic.Int64 // len(set), read without the lock on every check
	mu  sync.RWMutex
	set map[[16]byte]bool
}

// add and remove change the set (the caller holds mu).
func (e *erasedSet) add(k [16]byte) {
	if !e.set[k] {
		e.set[k] = true
		e.n.Add(1)
	}
}

func (e *erasedSet) remove(k [16]byte) {
	if e.set[k] {
		delete(e.set, k)
		e.n.Add(-1)
	}
}

func (p *Policy) marker(addr string) [16]byte {
	m := hmac.New(sha256.New, p.cfg.ErasureKey)
	m.Write([]byte("drover-erased-v1\x00" + addr))
	var k [16]byte
	copy(k[:], m.Sum(nil))
	return k
}

// isErased reports whether addr (normalised) was erased.
func (p *Policy) isErased(addr string) bool {
	if p.erased.n.Load() == 0 {
		return false // no hash to compute, no lock, while nothing was erased
	}
	k := p.marker(addr)
	p.erased.mu.RLock()
	defer p.erased.mu.RUnlock()
	return p.erased.set[k]
}

// Erase deletes what policy holds about addr and keeps its keyed hash.
func (p *Policy) Erase(addr string) error {
	a, err := Canonical(addr)
	if err != nil {
		return &InvalidConsentError{Msg: err.Error()}
	}
	// The outcomes observed so far are applied first: none of them
	// writes a record of the address after its erasure.
	p.Sync()
	es, err := p.cfg.Store.Suppressions(a)
	if err != nil {
		return err
	}
	k := p.marker(a)
	if err := p.cfg.Store.Erase(a, k[:]); err != nil {
		return err
	}
	p.counted(es, -1)
	p.erased.mu.Lock()
	p.erased.add(k)
	p.erased.mu.Unlock()
	return nil
}

// Purge makes what was erased gone from the store's files too.
func (p *Policy) Purge() error { return p.cfg.Store.Purge() }

func (p *Policy) unerase(addr string) error {
	if !p.isErased(addr) {
		return nil
	}
	k := p.marker(addr)
	if err := p.cfg.Store.Unerase(k[:]); err != nil {
		return err
	}
	p.erased.mu.Lock()
	p.erased.remove(k)
	p.erased.mu.Unlock()
	return nil
}

func (p *Policy) loadErased() error {
	ms, err := p.cfg.Store.Erased()
	if err != nil {
		return err
	}
	p.erased.mu.Lock()
	defer p.erased.mu.Unlock()
	p.erased.set = map[[16]byte]bool{}
	for _, m := range ms {
		var k [16]byte
		copy(k[:], m)
		p.erased.add(k)
	}
	return nil
}
