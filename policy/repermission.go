package policy

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/cockroachdb/pebble"
)

// Re-permission campaigns: a sender asks the addresses of a list whose
// consent is confirmed to confirm it again by a deadline, and those who
// do not lose it. Starting one writes one record (pr) and changes no
// consent record: the list's confirmed consents are marked as needing
// re-confirmation by the campaign's start alone. While it runs the
// recipient check is unchanged (the re-permission message and its
// reminders must reach them); ListConsent shows a confirmation given
// before the start as pending. At the deadline every address whose
// latest record is still a confirmation from before the start gets a
// lapsed record, and the check refuses it from then on.

// RepermissionState is where a campaign stands.
type RepermissionState string

// The states of a campaign.
const (
	RepermissionRunning RepermissionState = "running" // its deadline has not been run yet
	RepermissionEnded   RepermissionState = "ended"   // those who did not re-confirm have lapsed
)

// How ListConsent shows a latest record with regard to the list's
// campaigns (Consent.Repermission).
const (
	// RepermissionPending: a confirmation from before the start of the
	// running campaign; the record is shown with status pending.
	RepermissionPending = "pending"
	// RepermissionReconfirmed: confirmed since the start of the running
	// campaign.
	RepermissionReconfirmed = "reconfirmed"
	// RepermissionLapsed: lapsed at a campaign's deadline.
	RepermissionLapsed = "lapsed"
)

// Repermission is a re-permission campaign of one list of one sender.
type Repermission struct {
	Sender string `json:"sender"`
	// List is the sender's list; "" is the sender's mail that names no
	// list.
	List     string            `json:"list"`
	State    RepermissionState `json:"state"`
	Started  time.Time         `json:"started"`
	Deadline time.Time         `json:"deadline"`
	Ended    time.Time         `json:"ended,omitzero"`
	// Confirmed is the number of addresses whose consent was confirmed
	// at the start: those asked to confirm it again.
	Confirmed int `json:"confirmed_before_start"`
	// Reconfirmed is the number of addresses whose latest record is a
	// confirmation given since the start (a re-confirmation, or a sign-up
	// made since): at the deadline, for an ended campaign.
	Reconfirmed int `json:"reconfirmed"`
	// Pending, while it runs, is the number of addresses whose latest
	// record is still a confirmation from before the start: those who
	// lapse at the deadline unless they re-confirm.
	Pending int `json:"pending"`
	// Lapsed is the number of lapsed records the deadline appended.
	Lapsed int `json:"lapsed"`
}

// RepermissionStart is a campaign to start: the deadline is Deadline,
// or Within after the start.
type RepermissionStart struct {
	Sender, List string
	Deadline     time.Time
	Within       time.Duration
}

// ErrRepermissionRunning refuses a campaign for a list with one running.
var ErrRepermissionRunning = errors.New("a re-permission campaign of the list is running")

// Bounds of a campaign.
const (
	maxRepermission = 366 * 24 * time.Hour // the longest from start to deadline
	lapseBatch      = 1000                 // lapsed records appended (and synced) at once
)

// RepermissionSource is the source of the lapsed records of the
// campaign that started at started: "repermission:" and the start, RFC
// 3339.
func RepermissionSource(started time.Time) string {
	return "repermission:" + started.UTC().Format(time.RFC3339)
}

// reconfirms reports whether c, a latest record, is a confirmation given
// since the campaign started: recorded since, and given since (its
// confirmation's time, or the sign-up's for a consent without one), so
// that an import of an old consent made during the campaign is no
// re-confirmation.
func (r Repermission) reconfirms(c Consent) bool {
	if c.Status != ConsentConfirmed || c.Recorded.Before(r.Started) {
		return false
	}
	given := c.Proof.Time
	if c.Confirmation != nil {
		given = c.Confirmation.Time
	}
	return !given.Before(r.Started)
}

// view shows c, a latest record of the campaign's list, as the running
// campaign sees it.
func (r Repermission) view(c *Consent) {
	if c.Status != ConsentConfirmed {
		return
	}
	if r.reconfirms(*c) {
		c.Repermission = RepermissionReconfirmed
		return
	}
	c.Status, c.Repermission = ConsentPending, RepermissionPending
}

// runningRepermission is the running campaign of a list, if any.
func (p *Policy) runningRepermission(sender, list string) (Repermission, bool, error) {
	rs, err := p.cfg.Store.Repermissions(sender, list)
	if err != nil || len(rs) == 0 {
		return Repermission{}, false, err
	}
	last := rs[len(rs)-1]
	return last, last.State == RepermissionRunning, nil
}

// StartRepermission starts a re-permission campaign of a list: from now
// on (the policy's clock, to the second) until the deadline, the list's
// consents confirmed before the start are pending re-confirmation. It
// reads the list's latest records once, to count the confirmed ones. It
// refuses (ErrRepermissionRunning) a list whose last campaign has not
// ended, and (InvalidConsentError) a deadline that is not after now or
// more than a year away.
func (p *Policy) StartRepermission(in RepermissionStart) (Repermission, error) {
	if err := checkSenderList(in.Sender, in.List); err != nil {
		return Repermission{}, err
	}
	p.repermMu.Lock()
	defer p.repermMu.Unlock()
	now := p.cfg.Now().Truncate(time.Second).UTC()
	deadline := in.Deadline
	switch {
	case !in.Deadline.IsZero() && in.Within != 0:
		return Repermission{}, invalidf("a campaign has a deadline or a duration, not both")
	case in.Within != 0:
		deadline = now.Add(in.Within)
	case in.Deadline.IsZero():
		return Repermission{}, invalidf("a re-permission campaign needs its deadline")
	}
	deadline = deadline.Truncate(time.Second).UTC()
	if !deadline.After(now) {
		return Repermission{}, invalidf("deadline %s: not after now (%s)", deadline.Format(time.RFC3339), now.Format(time.RFC3339))
	}
	if deadline.Sub(now) > maxRepermission {
		return Repermission{}, invalidf("deadline %s: more than a year away", deadline.Format(time.RFC3339))
	}
	last, running, err := p.runningRepermission(in.Sender, in.List)
	if err != nil {
		return Repermission{}, err
	}
	if running {
		when := "its deadline is " + last.Deadline.Format(time.RFC3339)
		if !now.Before(last.Deadline) {
			when = "its deadline " + last.Deadline.Format(time.RFC3339) + " has passed: it ends at the next deadline run"
		}
		return Repermission{}, fmt.Errorf("%s: started %s, %s: %w", listName(in.Sender, in.List),
			last.Started.Format(time.RFC3339), when, ErrRepermissionRunning)
	}
	if !last.Started.IsZero() && !now.After(last.Started) {
		// Campaigns are named and ordered by their start.
		return Repermission{}, invalidf("%s: the last campaign started at %s, not before now", listName(in.Sender, in.List),
			last.Started.Format(time.RFC3339))
	}
	n := 0
	err = p.cfg.Store.ScanConsent(in.Sender, in.List, ConsentConfirmed, "", func(ConsentHead) error {
		n++
		return nil
	})
	if err != nil {
		return Repermission{}, err
	}
	r := Repermission{Sender: in.Sender, List: in.List, State: RepermissionRunning, Started: now, Deadline: deadline,
		Confirmed: n, Pending: n}
	if err := p.cfg.Store.PutRepermission(r); err != nil {
		return Repermission{}, err
	}
	p.cfg.Logger.Info("policy: re-permission campaign started", "sender", r.Sender, "list", r.List,
		"deadline", r.Deadline, "confirmed", n)
	return r, nil
}

// listName names a list in a message.
func listName(sender, list string) string {
	if list == "" {
		return fmt.Sprintf("the mail of sender %s that names no list", sender)
	}
	return fmt.Sprintf("list %s of sender %s", list, sender)
}

// Repermissions returns the campaigns of sender's list (list Any: of
// every list of the sender), by list and start. A running campaign's
// Reconfirmed and Pending are counted now: a read of each confirmed
// latest record of the list (about a second for a million).
func (p *Policy) Repermissions(sender, list string) ([]Repermission, error) {
	if list == Any {
		if err := checkSenderList(sender, ""); err != nil {
			return nil, err
		}
	} else if err := checkSenderList(sender, list); err != nil {
		return nil, err
	}
	rs, err := p.cfg.Store.Repermissions(sender, list)
	if err != nil {
		return nil, err
	}
	for i := range rs {
		if rs[i].State != RepermissionRunning {
			continue
		}
		r := &rs[i]
		r.Reconfirmed, r.Pending = 0, 0
		err := p.scanConfirmed(r.Sender, r.List, func(c Consent) error {
			if r.reconfirms(c) {
				r.Reconfirmed++
			} else {
				r.Pending++
			}
			return nil
		})
		if err != nil {
			return nil, err
		}
	}
	return rs, nil
}

// scanConfirmed calls fn with every latest record of a list that is
// confirmed.
func (p *Policy) scanConfirmed(sender, list string, fn func(Consent) error) error {
	return p.cfg.Store.ScanConsent(sender, list, ConsentConfirmed, "", func(h ConsentHead) error {
		c, ok, err := p.cfg.Store.ConsentRecord(h.Sender, h.List, h.Address, h.Seq)
		if err != nil || !ok {
			return err
		}
		return fn(c)
	})
}

// RunRepermissionDeadlines ends every running campaign whose deadline
// has passed by the policy's clock, and returns them ended. The policy
// runs it at start and every hour; a call makes the run happen now
// (runs never overlap). Ending a campaign appends a lapsed record
// (source RepermissionSource, time now) for every address of the list
// whose latest record is a confirmation from before the start, a batch
// at a time, each synced; then the campaign is written ended with its
// counts. A run stopped midway (a crash, Close) leaves the campaign
// running, and the next run lapses the rest.
func (p *Policy) RunRepermissionDeadlines() ([]Repermission, error) {
	p.repermMu.Lock()
	defer p.repermMu.Unlock()
	due, err := p.dueRepermissions()
	if err != nil {
		return nil, err
	}
	var ended []Repermission
	for _, r := range due {
		r, err := p.endRepermission(r)
		if err != nil {
			return ended, fmt.Errorf("policy: ending the re-permission campaign of %s: %w", listName(r.Sender, r.List), err)
		}
		ended = append(ended, r)
	}
	return ended, nil
}

// dueRepermissions are the running campaigns whose deadline has passed.
func (p *Policy) dueRepermissions() ([]Repermission, error) {
	rs, err := p.cfg.Store.Repermissions(Any, Any)
	if err != nil {
		return nil, err
	}
	now := p.cfg.Now()
	var due []Repermission
	for _, r := range rs {
		if r.State == RepermissionRunning && !now.Before(r.Deadline) {
			due = append(due, r)
		}
	}
	return due, nil
}

// errClosing stops a deadline run when the policy closes.
var errClosing = errors.New("policy: closing")

// endRepermission lapses the consents of r's list not re-confirmed, and
// writes r ended.
func (p *Policy) endRepermission(r Repermission) (Repermission, error) {
	reconfirmed := 0
	for from := ""; ; {
		select {
		case <-p.stop:
			return r, errClosing
		default:
		}
		var addrs []string
		next := ""
		err := p.cfg.Store.ScanConsent(r.Sender, r.List, ConsentConfirmed, from, func(h ConsentHead) error {
			if len(addrs) == lapseBatch {
				next = h.Address
				return errStop
			}
			addrs = append(addrs, h.Address)
			return nil
		})
		if err != nil && !errors.Is(err, errStop) {
			return r, err
		}
		n, err := p.lapse(r, addrs)
		if err != nil {
			return r, err
		}
		reconfirmed += n
		if next == "" {
			break
		}
		from = next
	}
	// Lapsed records are counted from the histories, so that a run
	// resumed after a crash counts those of the run it resumes.
	lapsed, source := 0, RepermissionSource(r.Started)
	err := p.cfg.Store.ScanConsent(r.Sender, r.List, ConsentLapsed, "", func(h ConsentHead) error {
		c, ok, err := p.cfg.Store.ConsentRecord(h.Sender, h.List, h.Address, h.Seq)
		if err == nil && ok && c.Ended != nil && c.Ended.Source == source {
			lapsed++
		}
		return err
	})
	if err != nil {
		return r, err
	}
	r.State, r.Ended = RepermissionEnded, p.cfg.Now().Truncate(time.Second).UTC()
	r.Reconfirmed, r.Pending, r.Lapsed = reconfirmed, 0, lapsed
	if err := p.cfg.Store.PutRepermission(r); err != nil {
		return r, err
	}
	p.cfg.Logger.Info("policy: re-permission campaign ended", "sender", r.Sender, "list", r.List,
		"started", r.Started, "reconfirmed", reconfirmed, "lapsed", lapsed)
	return r, nil
}

// lapse appends, in one synced batch, a lapsed record for each of addrs
// whose latest record is still a confirmation from before r's start,
// read again under the lock of the consent records (a re-confirmation
// may have come since the scan). It returns the number re-confirmed.
func (p *Policy) lapse(r Repermission, addrs []string) (int, error) {
	p.consentMu.Lock()
	defer p.consentMu.Unlock()
	now := p.cfg.Now().Truncate(time.Second).UTC()
	source := RepermissionSource(r.Started)
	reconfirmed := 0
	var cs []Consent
	for _, a := range addrs {
		prev, ok, err := p.storedLatest(consentKey{r.Sender, r.List, a})
		if err != nil {
			return 0, err
		}
		if !ok || prev.Status != ConsentConfirmed {
			continue
		}
		if r.reconfirms(prev) {
			reconfirmed++
			continue
		}
		// As a withdrawal: the record repeats the consent it ends.
		c := prev
		c.Seq, c.Status, c.Recorded = 0, ConsentLapsed, now
		c.Proof.Text, c.Repermission = "", ""
		c.Ended = &ConsentAct{Time: now, Source: source}
		cs = append(cs, c)
	}
	if len(cs) == 0 {
		return reconfirmed, nil
	}
	_, err := p.cfg.Store.AppendConsent(cs)
	return reconfirmed, err
}

// kickRepermissions starts a deadline run in the background when a
// campaign is due and no run is under way: outcomes are applied
// meanwhile. Close stops it between batches.
func (p *Policy) kickRepermissions() {
	due, err := p.dueRepermissions()
	if err != nil {
		p.cfg.Logger.Error("policy: reading the re-permission campaigns failed", "err", err)
		return
	}
	if len(due) == 0 || !p.repermBusy.CompareAndSwap(false, true) {
		return
	}
	p.bg.Add(1)
	go func() {
		defer p.bg.Done()
		defer p.repermBusy.Store(false)
		defer func() {
			if v := recover(); v != nil {
				p.cfg.Logger.Error("policy: the re-permission deadline run panicked", "panic", v)
			}
		}()
		if _, err := p.RunRepermissionDeadlines(); err != nil && !errors.Is(err, errClosing) {
			p.cfg.Logger.Error("policy: the re-permission deadline run failed", "err", err)
		}
	}()
}

// The campaigns of the Pebble store: pr<sender>\x00<list>\x00<started:8>
// (Unix seconds, big-endian), whose value is a version byte (1), the
// deadline and the end (0 while it runs), and the counts (confirmed at
// the start, re-confirmed, lapsed) as uvarints.

func repermissionKey(sender, list string, started time.Time) []byte {
	return binary.BigEndian.AppendUint64(append(key(prefixRepermission, sender, list), 0), uint64(started.Unix()))
}

func (p *PebbleStore) PutRepermission(r Repermission) error {
	v := appendTime(appendTime([]byte{1}, r.Deadline), r.Ended)
	for _, n := range []int{r.Confirmed, r.Reconfirmed, r.Lapsed} {
		v = binary.AppendUvarint(v, uint64(n))
	}
	return p.db.Set(repermissionKey(r.Sender, r.List, r.Started), v, pebble.Sync)
}

func (p *PebbleStore) Repermissions(sender, list string) ([]Repermission, error) {
	var lo, hi []byte
	switch {
	case sender == Any:
		lo, hi = []byte(prefixRepermission), prefixEnd(prefixRepermission)
	case list == Any:
		lo, hi = key(prefixRepermission, sender, ""), append(key(prefixRepermission, sender), 1)
	default:
		lo, hi = append(key(prefixRepermission, sender, list), 0), append(key(prefixRepermission, sender, list), 1)
	}
	it, err := p.db.NewIter(&pebble.IterOptions{LowerBound: lo, UpperBound: hi})
	if err != nil {
		return nil, err
	}
	defer it.Close()
	var out []Repermission
	for it.First(); it.Valid(); it.Next() {
		k := it.Key()[len(prefixRepermission):]
		if len(k) < 10 || k[len(k)-9] != 0 {
			continue
		}
		s, l, ok := bytes.Cut(k[:len(k)-9], []byte{0})
		if !ok || bytes.IndexByte(l, 0) >= 0 {
			continue
		}
		r := Repermission{Sender: string(s), List: string(l),
			Started: time.Unix(int64(binary.BigEndian.Uint64(k[len(k)-8:])), 0).UTC()}
		v := it.Value()
		if len(v) == 0 || v[0] != 1 {
			return nil, fmt.Errorf("policy: re-permission campaign of %s/%s: unknown version", r.Sender, r.List)
		}
		rd := reader{b: v[1:]}
		r.Deadline, r.Ended = rd.time(), rd.time()
		r.Confirmed, r.Reconfirmed, r.Lapsed = int(rd.uvarint()), int(rd.uvarint()), int(rd.uvarint())
		if rd.err != nil {
			return nil, fmt.Errorf("policy: re-permission campaign of %s/%s: %w", r.Sender, r.List, rd.err)
		}
		r.State = RepermissionEnded
		if r.Ended.IsZero() {
			r.State, r.Pending = RepermissionRunning, r.Confirmed
		}
		out = append(out, r)
	}
	return out, it.Error()
}

// markLapsed says so of a record lapsed by a campaign's deadline.
func markLapsed(c *Consent) {
	if c.Status == ConsentLapsed && c.Ended != nil && strings.HasPrefix(c.Ended.Source, "repermission:") {
		c.Repermission = RepermissionLapsed
	}
}
