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

// Suspension is an operator's hold on a site or a domain or, with
// Adaptive, an action of the adaptive backoff on a site: a suspension
// (Factor 0) or a slowdown (Factor below 1), with its rule as Reason.
type Suspension struct {
	Kind     string    `json:"kind"` // "site" or "domain"
	Name     string    `json:"name"`
	Until    time.Time `json:"until,omitzero"` // zero: until Resume
	Reason   string    `json:"reason,omitempty"`
	Adaptive bool      `json:"adaptive,omitempty"` // set by a rule on a remote reply, not by an operator
	Factor   float64   `json:"factor,omitempty"`   // adaptive slowdown: the scale of the site's limits
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
// attempts counted. A second Suspend replaces the first. The suspension is
// saved in the store (synced) before Suspend returns, and holds again
// after a restart for the time it has left.
//
// The warning is not empty when the suspension may hold nothing: a site
// name that is neither a site the engine knows (one of a plan since it
// started, or with a suspension or adaptive state) nor one the shaping
// configuration names (KnownSites: a provider's site, a configured site or
// domain); the suspension is recorded all the same, for a site of that name
// may come. Domain names are not checked: any domain may get mail. A
// suspension in force that could not be saved is told in the warning too.
func (e *Engine) Suspend(kind, name string, until time.Time, reason string) (warning string, err error) {
	if kind != "site" && kind != "domain" {
		return "", fmt.Errorf("engine: suspend: kind %q is not site or domain", kind)
	}
	if kind == "domain" {
		name = strings.ToLower(name)
	}
	if name == "" {
		return "", errors.New("engine: suspend: no name")
	}
	if !until.IsZero() && !until.After(time.Now()) {
		return "", fmt.Errorf("engine: suspend: %v is not in the future", until)
	}
	e.pmu.Lock()
	defer e.pmu.Unlock()
	e.mu.Lock()
	if e.closing {
		e.mu.Unlock()
		return "", errors.New("engine: closed")
	}
	if kind == "site" {
		warning = e.unknownSiteLocked(name)
	}
	e.holdLocked(kind, name, until, reason)
	e.mu.Unlock()
	e.log.Info("engine: suspended by operator", "kind", kind, "name", name, "until", until, "reason", reason)
	if err := e.doStore(storeOp{put: &queue.Hold{Kind: kind, Name: name, Until: until, Reason: reason}}); err != nil {
		warning = strings.TrimPrefix(warning+"; ", "; ") + "the suspension is in force but was not saved, so a restart ends it: " + err.Error()
	}
	return warning, nil
}

// unknownSiteLocked returns the warning of Suspend for a site name that
// matches nothing known, "" for a known one.
func (e *Engine) unknownSiteLocked(name string) string {
	if e.sites[name] != nil || e.holds[holdKey("site", name)] != nil {
		return ""
	}
	for _, d := range e.dests {
		if d.plan != nil && d.plan.Site == name {
			return ""
		}
	}
	known := e.cfg.KnownSites
	if known != nil && known.KnowsSite(name) {
		return ""
	}
	w := "no known site is named " + name + "; the suspension is recorded and holds a site of that name if one appears"
	if known != nil {
		if ps := known.ProviderSite(name); ps != "" {
			w += "; the site of provider " + name + " is " + ps
		}
	}
	if d := e.dests[strings.ToLower(name)]; d != nil && d.site != nil {
		w += "; " + d.name + " is a domain of site " + d.site.name + " (suspend the domain with kind domain)"
	}
	return w
}

// holdLocked puts a hold in force (replacing one of the same kind and
// name), with its timer.
func (e *Engine) holdLocked(kind, name string, until time.Time, reason string) {
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
}

// Resume ends an operator suspension of a site or a domain; for a site,
// it also ends the adaptive backoff in force (slowdown and suspension).
// Their records are deleted from the store. It is not an error to resume
// what is not suspended.
func (e *Engine) Resume(kind, name string) error {
	if kind != "site" && kind != "domain" {
		return fmt.Errorf("engine: resume: kind %q is not site or domain", kind)
	}
	if kind == "domain" {
		name = strings.ToLower(name)
	}
	e.pmu.Lock()
	defer e.pmu.Unlock()
	e.mu.Lock()
	if h := e.holds[holdKey(kind, name)]; h != nil {
		e.endHoldLocked(h)
		e.log.Info("engine: resumed by operator", "kind", kind, "name", name)
	}
	ops := []storeOp{{kind: kind, name: name}}
	if st := e.sites[name]; kind == "site" && st != nil && (st.factor < 1 || !st.suspendUntil.IsZero()) {
		st.state.Resume()
		e.syncStateLocked(st)
		ops = append(ops, e.adaptiveOpLocked(st))
		e.log.Info("engine: adaptive backoff ended by operator", "site", name)
	}
	e.mu.Unlock()
	if err := e.doStore(ops...); err != nil {
		return fmt.Errorf("engine: resume: in force, but a restart may bring the suspension back: %w", err)
	}
	return nil
}

func (e *Engine) holdTimer(h *hold) {
	e.pmu.Lock()
	defer e.pmu.Unlock()
	e.mu.Lock()
	if e.holds[holdKey(h.Kind, h.Name)] != h || e.closing {
		e.mu.Unlock()
		return
	}
	e.endHoldLocked(h)
	e.mu.Unlock()
	e.log.Info("engine: operator suspension over", "kind", h.Kind, "name", h.Name)
	e.doStore(storeOp{kind: h.Kind, name: h.Name})
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

// Suspensions returns what holds or slows deliveries: the operator
// suspensions in force, then (Adaptive) the adaptive suspensions and
// slowdowns of sites, sorted by kind and name. Both are saved, so the list
// is the same after a restart, less what ended meanwhile.
func (e *Engine) Suspensions() []Suspension {
	e.mu.Lock()
	out := make([]Suspension, 0, len(e.holds))
	for _, h := range e.holds {
		out = append(out, h.Suspension)
	}
	for _, st := range e.sites {
		if !st.suspendUntil.IsZero() {
			out = append(out, Suspension{Kind: "site", Name: st.name, Until: st.suspendUntil, Reason: st.suspendReason, Adaptive: true})
		}
		if st.factor < 1 && !st.slowUntil.IsZero() {
			out = append(out, Suspension{Kind: "site", Name: st.name, Until: st.slowUntil, Reason: st.slowReason, Adaptive: true, Factor: st.factor})
		}
	}
	e.mu.Unlock()
	slices.SortFunc(out, func(a, b Suspension) int {
		return cmp.Or(cmp.Compare(a.Kind, b.Kind), cmp.Compare(a.Name, b.Name), cmp.Compare(adaptiveRank(a), adaptiveRank(b)))
	})
	return out
}

// adaptiveRank sorts a name's operator suspension first, then its adaptive
// suspension, then its slowdown.
func adaptiveRank(s Suspension) int {
	switch {
	case !s.Adaptive:
		return 0
	case s.Factor == 0:
		return 1
	}
	return 2
}
