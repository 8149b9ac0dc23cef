package queue

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"time"

	"github.com/cockroachdb/pebble"
)

// Hold is a record that the delivery engine keeps across restarts: an
// operator's suspension of a site or a domain, or the adaptive backoff
// state of a site. The spool stores it and knows nothing of its meaning;
// the engine drops the records whose time is over.
type Hold struct {
	// Kind is "site" or "domain" for an operator suspension, "adaptive"
	// for the adaptive backoff state of the site Name.
	Kind string
	Name string
	// Until is the end of an operator suspension (zero: until resumed).
	Until  time.Time
	Reason string
	// The adaptive state of a site (shaping.SiteState): slowed by Factor
	// from SlowSince until SlowUntil, suspended until SuspendUntil; zero
	// times for what is not in force.
	Factor        float64
	SlowSince     time.Time
	SlowUntil     time.Time
	SlowReason    string
	SuspendUntil  time.Time
	SuspendReason string
}

// holdKey is qo<kind>\x00<name>.
func holdKey(kind, name string) []byte {
	k := make([]byte, 0, len(prefixHold)+len(kind)+1+len(name))
	k = append(k, prefixHold...)
	k = append(k, kind...)
	k = append(k, 0)
	return append(k, name...)
}

// appendHold encodes h without its kind and name (which are in the key):
// version 1, Until (varint Unix nanoseconds, 0 for none), Reason, Factor
// (uvarint of its IEEE 754 bits), SlowSince, SlowUntil, SlowReason,
// SuspendUntil, SuspendReason.
func appendHold(b []byte, h *Hold) []byte {
	b = append(b, recordVersion)
	b = appendTime(b, h.Until)
	b = appendString(b, h.Reason)
	b = binary.AppendUvarint(b, math.Float64bits(h.Factor))
	b = appendTime(b, h.SlowSince)
	b = appendTime(b, h.SlowUntil)
	b = appendString(b, h.SlowReason)
	b = appendTime(b, h.SuspendUntil)
	return appendString(b, h.SuspendReason)
}

func decodeHold(key, v []byte) (Hold, error) {
	rest := key[len(prefixHold):]
	i := bytes.IndexByte(rest, 0)
	if i < 0 {
		return Hold{}, fmt.Errorf("hold %q: %w", key, errCorrupt)
	}
	h := Hold{Kind: string(rest[:i]), Name: string(rest[i+1:])}
	d := decoder{b: v}
	d.version()
	h.Until = d.time()
	h.Reason = d.string()
	h.Factor = math.Float64frombits(d.uvarint())
	h.SlowSince = d.time()
	h.SlowUntil = d.time()
	h.SlowReason = d.string()
	h.SuspendUntil = d.time()
	h.SuspendReason = d.string()
	if d.err != nil {
		return Hold{}, fmt.Errorf("hold %s %s: %w", h.Kind, h.Name, d.err)
	}
	return h, nil
}

// Holds returns every stored hold, in key order (kind, then name). A
// corrupt record is skipped and reported in the error, with the others
// returned.
func (s *Spool) Holds() ([]Hold, error) {
	done, err := s.readDB()
	if err != nil {
		return nil, err
	}
	defer done()
	it, err := s.db.NewIter(&pebble.IterOptions{LowerBound: []byte(prefixHold), UpperBound: prefixEnd(prefixHold)})
	if err != nil {
		return nil, fmt.Errorf("queue: holds: %w", err)
	}
	var out []Hold
	var errs []error
	for it.First(); it.Valid(); it.Next() {
		h, err := decodeHold(it.Key(), it.Value())
		if err != nil {
			errs = append(errs, err)
			continue
		}
		out = append(out, h)
	}
	errs = append(errs, it.Close())
	if err := errors.Join(errs...); err != nil {
		return out, fmt.Errorf("queue: holds: %w", err)
	}
	return out, nil
}

// PutHold stores h (replacing the record of the same kind and name) with
// pebble.Sync, even under Options.NoSync: holds are few and an operator's
// must outlast a crash.
func (s *Spool) PutHold(h Hold) (err error) {
	if h.Kind == "" || h.Name == "" {
		return errors.New("queue: hold without kind or name")
	}
	return s.writeDB("hold", func() error {
		return s.db.Set(holdKey(h.Kind, h.Name), appendHold(nil, &h), pebble.Sync)
	})
}

// DeleteHold removes the hold of that kind and name, if any, with
// pebble.Sync.
func (s *Spool) DeleteHold(kind, name string) error {
	return s.writeDB("hold", func() error { return s.db.Delete(holdKey(kind, name), pebble.Sync) })
}
