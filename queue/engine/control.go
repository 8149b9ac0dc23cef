package engine

import (
	"cmp"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"drover/queue"
)

// hold is an operator suspension of a site or a domain.
type hold struct {
	Suspension
	timer *time.Timer // fires at Until, nil when indefinite
}

// Suspension is an operator's hold on a site or a domain.
type Suspension struct {
	Kind   string    `json:"kind"` // "site" or "domain"
	Name   string    `json:"name"`
	Until  time.Time `json:"until,omitzero"` // zero: until Resume
	Reason string    `json:"reason,omitempty"`
}

func holdKey(kind, name string) string { return kind + "\x00" + name }

// Summary is the spool's summary of a group of recipients with, by site
// and by domain, the live state of the (domain's) site when known and the
// operator's hold on the group.
type Summary struct {
	queue.Summary
	Site       *SiteStatus `json:"site,omitempty"`
	Suspension *Suspension `json:"suspension,omitempty"`
}

// siteNames names the site of each domain for the spool's listings and
// selectors: the site of its latest plan; "" (the domain's own name) for a
// domain not attempted since the engine started. It is a snapshot, taken
// once per scan of the spool.
func (e *Engine) siteNames() queue.SiteOf {
	e.mu.Lock()
	m := make(map[string]string, len(e.dests))
	for name, d := range e.dests {
		if d.site != nil {
			m[name] = d.site.name
		}
	}
	e.mu.Unlock()
	return func(domain string) string { return m[domain] }
}

// Summaries summarises the queue per site, domain, sender or campaign
// (see queue.Spool.Summaries); by site, a domain counts under the site of
// its latest plan, or under its own name before its first attempt.
func (e *Engine) Summaries(groupBy string) ([]Summary, error) {
	var siteOf queue.SiteOf
	if groupBy == "site" {
		siteOf = e.siteNames()
	}
	sums, err := e.spool.Summaries(groupBy, siteOf)
	if err != nil {
		return nil, err
	}
	out := make([]Summary, len(sums))
	for i := range sums {
		out[i].Summary = sums[i]
	}
	if groupBy != "site" && groupBy != "domain" {
		return out, nil
	}
	dests := make([][]string, len(out))
	e.mu.Lock()
	for i := range out {
		sm := &out[i]
		var st *site
		if groupBy == "site" {
			st = e.sites[sm.Key]
		} else if d := e.dests[sm.Key]; d != nil {
			st = d.site
		}
		if st != nil {
			ss, ds := e.statusLocked(st)
			sm.Site, dests[i] = &ss, ds
		}
		if h := e.holds[holdKey(groupBy, sm.Key)]; h != nil {
			sp := h.Suspension
			sm.Suspension = &sp
		}
	}
	e.mu.Unlock()
	for i := range out {
		if out[i].Site != nil {
			out[i].Site.Ready = e.spool.Waiting(dests[i]...)
		}
	}
	return out, nil
}

// Show returns a queued message and its recipients as stored.
func (e *Engine) Show(id string) (*queue.Message, []queue.Recipient, error) { return e.spool.Show(id) }

// Flush makes the matching recipients due now (see queue.Spool.Flush); a
// Site selector matches the domains planned under that site. report, when
// not nil, is told of the progress as the spool scans.
func (e *Engine) Flush(sel queue.Selector, report func(queue.Progress)) (int, error) {
	return e.spool.Flush(sel, e.siteNames(), report)
}

// Bounce fails the matching recipients for good (see queue.Spool.Bounce).
func (e *Engine) Bounce(sel queue.Selector, reason string, dryRun bool, report func(queue.Progress)) (int, error) {
	return e.spool.Bounce(sel, e.siteNames(), reason, dryRun, report)
}

// Delete removes the matching recipients (see queue.Spool.Delete).
func (e *Engine) Delete(sel queue.Selector, dryRun bool, report func(queue.Progress)) (int, error) {
	return e.spool.Delete(sel, e.siteNames(), dryRun, report)
}

// Suspend stops deliveries to a site (kind "site": every domain of it) or
// to a domain (kind "domain") until until (zero: until Resume), with a
// reason shown by Sites, Summaries and Suspensions. Connections close
// after their current transaction; recipients stay queued, without
// attempts counted. A second Suspend replaces the first. Suspensions are
// kept in memory only: they end when the process stops.
func (e *Engine) Suspend(kind, name string, until time.Time, reason string) error {
	if kind != "site" && kind != "domain" {
		return fmt.Errorf("engine: suspend: kind %q is not site or domain", kind)
	}
	if kind == "domain" {
		name = strings.ToLower(name)
	}
	if name == "" {
		return errors.New("engine: suspend: no name")
	}
	if !until.IsZero() && !until.After(time.Now()) {
		return fmt.Errorf("engine: suspend: %v is not in the future", until)
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.closing {
		return errors.New("engine: closed")
	}
	key := holdKey(kind, name)
	if old := e.holds[key]; old != nil && old.timer != nil {
		old.timer.Stop()
	}
	h := &hold{Suspension: Suspension{Kind: kind, Name: name, Until: until, Reason: reason}}
	e.holds[key] = h
	if !until.IsZero() {
		h.timer = time.AfterFunc(time.Until(until), func() { e.holdTimer(h) })
	}
	switch kind {
	case "site":
		if st := e.sites[name]; st != nil {
			st.hold = h
			e.shedIdleLocked(st, st.nidle, nil)
		}
	case "domain":
		if d := e.dests[name]; d != nil {
			d.hold = h
			e.shedDestIdleLocked(d)
		}
	}
	e.log.Info("engine: suspended by operator", "kind", kind, "name", name, "until", until, "reason", reason)
	return nil
}

// Resume ends an operator suspension of a site or a domain; for a site,
// it also ends the adaptive backoff in force (slowdown and suspension). It
// is not an error to resume what is not suspended.
func (e *Engine) Resume(kind, name string) error {
	if kind != "site" && kind != "domain" {
		return fmt.Errorf("engine: resume: kind %q is not site or domain", kind)
	}
	if kind == "domain" {
		name = strings.ToLower(name)
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	if h := e.holds[holdKey(kind, name)]; h != nil {
		e.endHoldLocked(h)
		e.log.Info("engine: resumed by operator", "kind", kind, "name", name)
	}
	if st := e.sites[name]; kind == "site" && st != nil && (st.factor < 1 || !st.suspendUntil.IsZero()) {
		st.state.Resume()
		e.syncStateLocked(st)
		e.log.Info("engine: adaptive backoff ended by operator", "site", name)
	}
	return nil
}

func (e *Engine) holdTimer(h *hold) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.holds[holdKey(h.Kind, h.Name)] == h {
		e.endHoldLocked(h)
		e.log.Info("engine: operator suspension over", "kind", h.Kind, "name", h.Name)
	}
}

func (e *Engine) endHoldLocked(h *hold) {
	delete(e.holds, holdKey(h.Kind, h.Name))
	if h.timer != nil {
		h.timer.Stop()
	}
	if e.closing {
		return
	}
	switch h.Kind {
	case "site":
		if st := e.sites[h.Name]; st != nil && st.hold == h {
			st.hold = nil
			if !st.suspendedLocked() {
				e.resumeLocked(st, nil)
			}
		}
	case "domain":
		if d := e.dests[h.Name]; d != nil && d.hold == h {
			d.hold = nil
			if !e.heldLocked(d) {
				e.resumeLocked(nil, d)
			}
		}
	}
}

// Suspensions returns the operator suspensions in force.
func (e *Engine) Suspensions() []Suspension {
	e.mu.Lock()
	out := make([]Suspension, 0, len(e.holds))
	for _, h := range e.holds {
		out = append(out, h.Suspension)
	}
	e.mu.Unlock()
	slices.SortFunc(out, func(a, b Suspension) int {
		return cmp.Or(cmp.Compare(a.Kind, b.Kind), cmp.Compare(a.Name, b.Name))
	})
	return out
}
