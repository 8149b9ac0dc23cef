package engine

import (
	"errors"
	"time"

	"drover/queue"
	"drover/queue/shaping"
)

// Store keeps the operator suspensions and the adaptive states of sites
// across restarts; *queue.Spool implements it (keys qo…, written with
// pebble.Sync). The engine calls it only without its lock held, one write
// at a time (Engine.pmu), so that the records follow the order of the
// changes.
type Store interface {
	Holds() ([]queue.Hold, error)
	PutHold(h queue.Hold) error
	DeleteHold(kind, name string) error
}

// SiteNames knows the site names of the shaping configuration, so that
// Suspend can warn of a site name that matches nothing;
// *shaping.Current implements it.
type SiteNames interface {
	KnowsSite(name string) bool
	// ProviderSite is the site of the provider so named, "" if none.
	ProviderSite(name string) string
}

// kindAdaptive is the Kind of a site's adaptive state in the Store.
const kindAdaptive = "adaptive"

// saveSlack is how far a slowdown's end may move on before it is written
// again: each throttling reply pushes it on, and a synced write per reply
// would cost more than a restart losing up to a minute of a slowdown.
// A change of factor, or of a suspension, is always written.
const saveSlack = time.Minute

// storeOp is a write to the Store decided under the engine's lock and made
// after it is released (with pmu held).
type storeOp struct {
	put  *queue.Hold
	kind string // delete kind/name when put is nil and kind is set
	name string
}

func (e *Engine) doStore(ops ...storeOp) error {
	var errs []error
	for _, op := range ops {
		var err error
		switch {
		case op.put != nil:
			err = e.store.PutHold(*op.put)
		case op.kind != "":
			err = e.store.DeleteHold(op.kind, op.name)
		default:
			continue
		}
		if err != nil {
			e.log.Error("engine: suspension or adaptive state not saved (it is in force, but will not survive a restart as it is)", "err", err)
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// adaptiveOpLocked decides whether the adaptive state of st is to be
// written (or deleted) and takes note of it as written.
func (e *Engine) adaptiveOpLocked(st *site) storeOp {
	cur := st.state.Save()
	old := st.saved
	switch {
	case cur.Normal() && old.Normal():
		return storeOp{}
	case cur.Normal():
		st.saved = cur
		return storeOp{kind: kindAdaptive, name: st.name}
	}
	if cur.Factor == old.Factor && cur.SlowReason == old.SlowReason && cur.SlowSince.Equal(old.SlowSince) &&
		cur.SuspendUntil.Equal(old.SuspendUntil) && cur.SuspendReason == old.SuspendReason &&
		(cur.SlowUntil.Equal(old.SlowUntil) || !old.SlowUntil.IsZero() && cur.SlowUntil.Sub(old.SlowUntil) < saveSlack) {
		return storeOp{}
	}
	st.saved = cur
	return storeOp{put: &queue.Hold{Kind: kindAdaptive, Name: st.name,
		Factor: cur.Factor, SlowSince: cur.SlowSince, SlowUntil: cur.SlowUntil, SlowReason: cur.SlowReason,
		SuspendUntil: cur.SuspendUntil, SuspendReason: cur.SuspendReason}}
}

// load puts back the suspensions and adaptive states of the Store, before
// anything is delivered: those still in force hold (or slow) their site
// or domain for the time they have left, the others are deleted.
func (e *Engine) load() error {
	holds, err := e.store.Holds()
	if err != nil && holds == nil {
		return err
	}
	if err != nil {
		e.log.Error("engine: some saved suspensions could not be read", "err", err)
	}
	now := time.Now()
	var drop []storeOp
	e.mu.Lock()
	for _, h := range holds {
		switch h.Kind {
		case "site", "domain":
			if !h.Until.IsZero() && !h.Until.After(now) {
				drop = append(drop, storeOp{kind: h.Kind, name: h.Name})
				e.log.Info("engine: operator suspension ended while stopped", "kind", h.Kind, "name", h.Name, "until", h.Until)
				continue
			}
			e.holdLocked(h.Kind, h.Name, h.Until, h.Reason)
			e.log.Info("engine: operator suspension restored", "kind", h.Kind, "name", h.Name, "until", h.Until, "reason", h.Reason)
		case kindAdaptive:
			saved := shaping.Saved{Factor: h.Factor, SlowSince: h.SlowSince, SlowUntil: h.SlowUntil, SlowReason: h.SlowReason,
				SuspendUntil: h.SuspendUntil, SuspendReason: h.SuspendReason}
			probe := shaping.NewSiteState(time.Now)
			probe.Restore(saved)
			if cur := probe.Save(); cur.Normal() {
				drop = append(drop, storeOp{kind: h.Kind, name: h.Name})
				continue
			}
			st := e.siteLocked(h.Name)
			st.state.Restore(saved)
			st.saved = st.state.Save()
			e.syncStateLocked(st)
			e.log.Info("engine: adaptive backoff restored", "site", h.Name, "state", st.state.Status().String())
		default:
			e.log.Warn("engine: unknown saved hold left alone", "kind", h.Kind, "name", h.Name)
		}
	}
	e.mu.Unlock()
	e.doStore(drop...)
	return nil
}
