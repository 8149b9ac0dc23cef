package policy

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net/netip"
	"regexp"
	"slices"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"
)

// ConsentStatus is where an address's consent to a list stands.
type ConsentStatus string

// The statuses of a consent record.
const (
	ConsentPending   ConsentStatus = "pending"   // signed up for double opt-in, not confirmed yet
	ConsentConfirmed ConsentStatus = "confirmed" // consent given (and confirmed, for double opt-in)
	ConsentWithdrawn ConsentStatus = "withdrawn" // the recipient took it back
	ConsentLapsed    ConsentStatus = "lapsed"    // it ran out (a pending sign-up never confirmed, an old consent)
)

// ConsentStatuses lists the statuses, in the order of their codes on disk.
var ConsentStatuses = []ConsentStatus{ConsentPending, ConsentConfirmed, ConsentWithdrawn, ConsentLapsed}

// Valid reports whether s is one of ConsentStatuses.
func (s ConsentStatus) Valid() bool { return slices.Contains(ConsentStatuses, s) }

// ConsentMethod is how consent was obtained.
type ConsentMethod string

// The methods of a consent record.
const (
	SingleOptIn  ConsentMethod = "single-opt-in" // a sign-up (a form, a checkbox), taken as it came
	DoubleOptIn  ConsentMethod = "double-opt-in" // a sign-up confirmed from the address's own mailbox
	MethodImport ConsentMethod = "import"        // obtained elsewhere and imported
	MethodAPI    ConsentMethod = "api"           // recorded by the sender's application through the admin API
)

// ConsentMethods lists the methods, in the order of their codes on disk.
var ConsentMethods = []ConsentMethod{SingleOptIn, DoubleOptIn, MethodImport, MethodAPI}

// Valid reports whether m is one of ConsentMethods.
func (m ConsentMethod) Valid() bool { return slices.Contains(ConsentMethods, m) }

// Any, as the sender or the list of a consent scan or history, is every
// sender or every list. No sender or list of a record may be named so.
const Any = "*"

// ConsentAct is the evidence of one act of the recipient's (a sign-up, a
// confirmation, a withdrawal): when, from which address, with which
// program, through what.
type ConsentAct struct {
	Time      time.Time `json:"time"`
	IP        string    `json:"ip,omitempty"`
	UserAgent string    `json:"user_agent,omitempty"`
	// Source is where it happened: the form's URL, the import's file, the
	// name of the API key, "one-click", ...
	Source string `json:"source,omitempty"`
}

// ConsentProof is the proof of a sign-up: the act, the consent text the
// recipient was shown and the purposes consented to.
type ConsentProof struct {
	ConsentAct
	// TextHash is the SHA-256 (hex) of the consent text shown: the text
	// is stored once, by its hash, and records name it.
	TextHash string `json:"text_sha256"`
	// Text is the text itself, filled in by the reads that resolve it
	// (Policy.ConsentHistory); records never hold it.
	Text     string   `json:"text,omitempty"`
	Purposes []string `json:"purposes,omitempty"`
}

// Consent is one record of an address's consent history with one list
// of one sender. The history is append-only: a record is never changed,
// only followed by another. A confirmation of a double opt-in is a record
// with status confirmed that repeats the sign-up's proof and adds the
// confirmation; a withdrawal or a lapse is a record that repeats the
// proof and says when it ended and why.
type Consent struct {
	Sender string `json:"sender"`
	// List is the sender's list; "" is the sender's mail that names no
	// list.
	List    string `json:"list"`
	Address string `json:"address"`
	// Seq numbers the records of the address's history with the list,
	// from 1.
	Seq uint64 `json:"seq"`
	// Recorded is when Drover recorded it.
	Recorded     time.Time     `json:"recorded"`
	Status       ConsentStatus `json:"status"`
	Method       ConsentMethod `json:"method"`
	Proof        ConsentProof  `json:"proof"`
	Confirmation *ConsentAct   `json:"confirmation,omitempty"` // a double opt-in's confirmation
	Ended        *ConsentAct   `json:"ended,omitempty"`        // withdrawn, lapsed: when and why
	// Repermission is how ListConsent shows the record with regard to
	// the list's re-permission campaigns: while one runs, "pending" (a
	// confirmation from before its start, shown with status pending: not
	// a double opt-in's sign-up) or "reconfirmed" (confirmed since);
	// "lapsed" for a record a campaign's deadline lapsed. Records never
	// hold it.
	Repermission string `json:"repermission,omitempty"`
}

// ConsentHead is what the recipient check reads of the latest record of
// an address with a list: its status and number.
type ConsentHead struct {
	Sender, List, Address string
	Status                ConsentStatus
	Seq                   uint64
}

// ConsentInput is a consent record as an admin, an application or an
// import gives it. For status pending or confirmed, Time, IP, UserAgent,
// Source, Text and Purposes are the sign-up's proof, and Confirmation a
// double opt-in's confirmation; for withdrawn and lapsed (imports only)
// Time, IP, UserAgent and Source are the end's.
type ConsentInput struct {
	Sender       string        `json:"sender"`
	List         string        `json:"list"`
	Address      string        `json:"address"`
	Status       ConsentStatus `json:"status,omitempty"`
	Method       ConsentMethod `json:"method,omitempty"`
	Time         time.Time     `json:"time,omitzero"`
	IP           string        `json:"ip,omitempty"`
	UserAgent    string        `json:"user_agent,omitempty"`
	Source       string        `json:"source,omitempty"`
	Text         string        `json:"text,omitempty"`
	Purposes     []string      `json:"purposes,omitempty"`
	Confirmation *ConsentAct   `json:"confirmation,omitempty"`
}

// InvalidConsentError is a consent record refused for what it says (or
// lacks): the caller's to correct.
type InvalidConsentError struct{ Msg string }

func (e *InvalidConsentError) Error() string { return e.Msg }

func invalidf(format string, args ...any) error {
	return &InvalidConsentError{Msg: fmt.Sprintf(format, args...)}
}

// SuppressedError refuses a consent record for an address that no
// consent makes mailable: suppressed for every sender, or for the
// sender for a complaint (or a configured spam trap).
type SuppressedError struct {
	Entry Entry
}

func (e *SuppressedError) Error() string {
	return fmt.Sprintf("%s: %s; no consent is recorded for it", e.Entry.Address,
		Decision{Suppressed: true, Entry: e.Entry}.Text())
}

// ErrNoConsent: there is no consent record to withdraw.
var ErrNoConsent = errors.New("no consent is recorded")

// Bounds of a consent record's fields.
const (
	maxConsentText   = 64 << 10
	maxConsentField  = 1024 // user agent
	maxConsentSource = 2048 // a form's URL
	maxPurposes      = 32
	// consentSkew is how far in the future a proof's time may be (the
	// clocks of the sender's application and of Drover differ).
	consentSkew = 5 * time.Minute
)

// consentName is a list's or a purpose's name: what X-Drover-List takes.
var consentName = regexp.MustCompile(`^[A-Za-z0-9._-]{1,64}$`)

// checkSenderList says what is wrong with a sender's name or a list's,
// nil when nothing is.
func checkSenderList(sender, list string) error {
	switch {
	case sender == "":
		return invalidf("a consent record names a sender")
	case sender == Any || len(sender) > 255 || strings.ContainsFunc(sender, unicode.IsControl):
		return invalidf("sender %q is not a sender's name", sender)
	case list != "" && !consentName.MatchString(list):
		return invalidf("list %q is not a list name (1 to 64 letters, digits, - . _; \"\" for mail that names no list)", list)
	}
	return nil
}

// checkText says what is wrong with a field of free text.
func checkText(name, s string, max int) error {
	if len(s) > max {
		return invalidf("%s: longer than %d bytes", name, max)
	}
	if !utf8.ValidString(s) || strings.ContainsFunc(s, unicode.IsControl) {
		return invalidf("%s: not UTF-8 text on one line", name)
	}
	return nil
}

// checkAct checks an act's fields and brings its time to the second, in
// UTC, as it is stored.
func (p *Policy) checkAct(name string, a *ConsentAct) error {
	if a.Time.IsZero() {
		return invalidf("%s: the time is required", name)
	}
	a.Time = a.Time.Truncate(time.Second).UTC()
	if a.Time.After(p.cfg.Now().Add(consentSkew)) {
		return invalidf("%s: time %s is in the future", name, a.Time.Format(time.RFC3339))
	}
	if a.IP != "" {
		ip, err := netip.ParseAddr(a.IP)
		if err != nil {
			return invalidf("%s: ip %q is not an IP address", name, a.IP)
		}
		a.IP = ip.Unmap().String()
	}
	if err := checkText(name+": user_agent", a.UserAgent, maxConsentField); err != nil {
		return err
	}
	return checkText(name+": source", a.Source, maxConsentSource)
}

// TextHash is the SHA-256 of a consent text, in hex: its name in the
// store.
func TextHash(text string) string {
	h := sha256.Sum256([]byte(text))
	return hex.EncodeToString(h[:])
}

// consentKey names an address's history with a list.
type consentKey struct{ sender, list, addr string }

// latestConsent is what a new record is checked against: the key's
// latest record, if any.
type latestConsent func(k consentKey) (Consent, bool, error)

// storedLatest reads the latest record of a key from the store.
func (p *Policy) storedLatest(k consentKey) (Consent, bool, error) {
	h, ok, err := p.cfg.Store.LatestConsent(k.sender, k.list, k.addr)
	if err != nil || !ok {
		return Consent{}, false, err
	}
	c, ok, err := p.cfg.Store.ConsentRecord(k.sender, k.list, k.addr, h.Seq)
	if err == nil && !ok {
		err = fmt.Errorf("policy: consent record %d of %s for %s/%s is missing", h.Seq, k.addr, k.sender, k.list)
	}
	return c, ok, err
}

// consentBlocked is the entry that keeps sender from recording consent
// for addr: a global entry, a complaint about the sender's mail, a spam
// trap. ok false when none.
func (p *Policy) consentBlocked(sender, addr string) (Entry, bool, error) {
	if p.isTrap(addr) {
		return Entry{Address: addr, Scope: Scope{Kind: Global}, Reason: SpamTrap}, true, nil
	}
	var buf [4]Brief
	bs, err := p.cfg.Store.Lookup(addr, buf[:0])
	if err != nil {
		return Entry{}, false, err
	}
	best := -1
	for i, b := range bs {
		if (b.Kind == Global || b.Kind == PerSender && b.Sender == sender && b.Reason == Complaint) &&
			(best < 0 || precedence[b.Reason] < precedence[bs[best].Reason]) {
			best = i
		}
	}
	if best < 0 {
		return Entry{}, false, nil
	}
	return Entry{Address: addr, Scope: bs[best].Scope, Reason: bs[best].Reason}, true, nil
}

// prepareConsent checks a record as given and makes it what is appended
// (without its Seq), given the key's latest record. The text, when the
// record gives one, is returned to be stored. dup: the record says what
// the latest already does, and nothing is to be appended.
func (p *Policy) prepareConsent(in ConsentInput, latest latestConsent) (c Consent, text string, dup bool, err error) {
	addr, err := Canonical(in.Address)
	if err != nil {
		return Consent{}, "", false, &InvalidConsentError{Msg: err.Error()}
	}
	if err := checkSenderList(in.Sender, in.List); err != nil {
		return Consent{}, "", false, err
	}
	if in.Status == "" {
		in.Status = ConsentConfirmed
	}
	if !in.Status.Valid() {
		return Consent{}, "", false, invalidf("status %q: pending, confirmed, withdrawn or lapsed", in.Status)
	}
	if in.Method != "" && !in.Method.Valid() {
		return Consent{}, "", false, invalidf("method %q: single-opt-in, double-opt-in, import or api", in.Method)
	}
	if p.isErased(addr) && !(in.Method == DoubleOptIn && (in.Status == ConsentPending || in.Confirmation != nil)) {
		// Only the person's own new double opt-in lifts an erasure.
		return Consent{}, "", false, &SuppressedError{Entry: Entry{Address: addr, Scope: Scope{Kind: Global}, Reason: Manual, Source: "erased"}}
	}
	if e, blocked, err := p.consentBlocked(in.Sender, addr); err != nil {
		return Consent{}, "", false, err
	} else if blocked {
		return Consent{}, "", false, &SuppressedError{Entry: e}
	}
	k := consentKey{in.Sender, in.List, addr}
	prev, hasPrev, err := latest(k)
	if err != nil {
		return Consent{}, "", false, err
	}
	c = Consent{Sender: in.Sender, List: in.List, Address: addr, Status: in.Status, Method: in.Method,
		Recorded: p.cfg.Now().Truncate(time.Second).UTC()}
	act := ConsentAct{Time: in.Time, IP: in.IP, UserAgent: in.UserAgent, Source: in.Source}
	switch in.Status {
	case ConsentWithdrawn, ConsentLapsed:
		if in.Text != "" || len(in.Purposes) > 0 || in.Confirmation != nil {
			return Consent{}, "", false, invalidf("a %s record takes no text, purposes or confirmation: it repeats the consent it ends", in.Status)
		}
		if !hasPrev {
			return Consent{}, "", false, fmt.Errorf("%s for list %q of sender %s: %w", addr, in.List, in.Sender, ErrNoConsent)
		}
		if prev.Status == ConsentWithdrawn || prev.Status == ConsentLapsed {
			return prev, "", true, nil // ended already: a replayed withdrawal changes nothing
		}
		if act.Source == "" {
			return Consent{}, "", false, invalidf("a %s record names its source", in.Status)
		}
		if err := p.checkAct(string(in.Status), &act); err != nil {
			return Consent{}, "", false, err
		}
		if in.Method != "" && in.Method != prev.Method {
			return Consent{}, "", false, invalidf("method %s: the consent it ends was %s", in.Method, prev.Method)
		}
		c.Method, c.Proof, c.Confirmation, c.Ended = prev.Method, prev.Proof, prev.Confirmation, &act
		c.Proof.Text = ""
		return c, "", false, nil
	}

	// A sign-up: pending, or confirmed.
	if c.Method == "" {
		c.Method = MethodAPI
		if in.Status == ConsentPending || in.Confirmation != nil {
			c.Method = DoubleOptIn
		}
	}
	if in.Status == ConsentPending && c.Method != DoubleOptIn {
		return Consent{}, "", false, invalidf("a pending record is a double opt-in's sign-up (method double-opt-in), not %s", c.Method)
	}
	if in.Confirmation != nil && (in.Status != ConsentConfirmed || c.Method != DoubleOptIn) {
		return Consent{}, "", false, invalidf("only a confirmed double opt-in has a confirmation")
	}
	gaveProof := !in.Time.IsZero() || in.IP != "" || in.UserAgent != "" || in.Source != "" || in.Text != "" || len(in.Purposes) > 0
	confirmsPending := in.Status == ConsentConfirmed && c.Method == DoubleOptIn && hasPrev && prev.Status == ConsentPending
	switch {
	case gaveProof:
		if act.Time.IsZero() || act.Source == "" || strings.TrimSpace(in.Text) == "" {
			return Consent{}, "", false, invalidf("a consent record needs its proof: at least the time, the source and the consent text shown")
		}
		if err := p.checkAct("proof", &act); err != nil {
			return Consent{}, "", false, err
		}
		if len(in.Text) > maxConsentText || !utf8.ValidString(in.Text) {
			return Consent{}, "", false, invalidf("text: UTF-8 of at most %d bytes", maxConsentText)
		}
		if len(in.Purposes) > maxPurposes {
			return Consent{}, "", false, invalidf("purposes: at most %d", maxPurposes)
		}
		var purposes []string
		for _, s := range in.Purposes {
			if !consentName.MatchString(s) {
				return Consent{}, "", false, invalidf("purpose %q is not a short name (letters, digits, - . _)", s)
			}
			if !slices.Contains(purposes, s) {
				purposes = append(purposes, s)
			}
		}
		c.Proof = ConsentProof{ConsentAct: act, TextHash: TextHash(in.Text), Purposes: purposes}
		text = in.Text
	case confirmsPending:
		c.Proof = prev.Proof // the sign-up's proof, by reference
		c.Proof.Text = ""
	default:
		return Consent{}, "", false, invalidf("a consent record needs its proof: at least the time, the source and the consent text shown")
	}
	if in.Status == ConsentConfirmed && c.Method == DoubleOptIn {
		switch {
		case in.Confirmation != nil:
			conf := *in.Confirmation
			if conf.Time.IsZero() {
				conf.Time = c.Recorded // confirmed now, through the API
			}
			if err := p.checkAct("confirmation", &conf); err != nil {
				return Consent{}, "", false, err
			}
			if conf.Time.Before(c.Proof.Time) {
				return Consent{}, "", false, invalidf("confirmation: its time is before the sign-up's")
			}
			c.Confirmation = &conf
		case confirmsPending:
			c.Confirmation = &ConsentAct{Time: c.Recorded} // confirmed now, through the API
		default:
			return Consent{}, "", false, invalidf("a confirmed double opt-in needs its confirmation (time, ip, user_agent) or a pending sign-up to confirm")
		}
	}
	if hasPrev && sameConsent(prev, c) {
		return prev, "", true, nil
	}
	return c, text, false, nil
}

// sameConsent reports whether b says what a does (their numbers and
// times of recording aside): a replayed record.
func sameConsent(a, b Consent) bool {
	eqAct := func(x, y *ConsentAct) bool { return x == nil && y == nil || x != nil && y != nil && *x == *y }
	return a.Status == b.Status && a.Method == b.Method && a.Proof.ConsentAct == b.Proof.ConsentAct &&
		a.Proof.TextHash == b.Proof.TextHash && slices.Equal(a.Proof.Purposes, b.Proof.Purposes) &&
		eqAct(a.Confirmation, b.Confirmation) && eqAct(a.Ended, b.Ended)
}

// RecordConsent records a sign-up (pending) or a consent (confirmed): a
// new record at the end of the address's history with the list, synced
// before it returns. The consent text is stored once, by its hash. A
// confirmed double opt-in needs its confirmation, or a pending sign-up
// whose proof it repeats (confirmed now when no confirmation, or one
// without a time, is given).
// It refuses (InvalidConsentError) a record without its proof (time,
// source, text) and (SuppressedError) an address suppressed for every
// sender or for the sender for a complaint. A record that says what the
// latest already does is not appended again: added is false and the
// latest is returned.
func (p *Policy) RecordConsent(in ConsentInput) (c Consent, added bool, err error) {
	if in.Status != "" && in.Status != ConsentPending && in.Status != ConsentConfirmed {
		return Consent{}, false, invalidf("status %q: a record is pending or confirmed (a withdrawal is WithdrawConsent)", in.Status)
	}
	c, added, err = p.appendOne(in)
	if err == nil && added && c.Status == ConsentConfirmed && c.Confirmation != nil {
		err = p.unerase(c.Address)
	}
	return c, added, err
}

// WithdrawConsent records the withdrawal of an address's consent to a
// list ("" for the sender's mail that names no list): a new record,
// status withdrawn, repeating the consent's proof; act says when (now
// when zero) and through what (its Source is required). Withdrawing an
// ended consent changes nothing (added false); an address without a
// record is ErrNoConsent.
func (p *Policy) WithdrawConsent(sender, list, addr string, act ConsentAct) (Consent, bool, error) {
	if act.Time.IsZero() {
		act.Time = p.cfg.Now()
	}
	return p.appendOne(ConsentInput{Sender: sender, List: list, Address: addr, Status: ConsentWithdrawn,
		Time: act.Time, IP: act.IP, UserAgent: act.UserAgent, Source: act.Source})
}

func (p *Policy) appendOne(in ConsentInput) (Consent, bool, error) {
	p.consentMu.Lock()
	defer p.consentMu.Unlock()
	c, text, dup, err := p.prepareConsent(in, p.storedLatest)
	if err != nil || dup {
		return c, false, err
	}
	if text != "" {
		if _, err := p.cfg.Store.PutConsentText(text); err != nil {
			return Consent{}, false, err
		}
	}
	out, err := p.cfg.Store.AppendConsent([]Consent{c})
	if err != nil {
		return Consent{}, false, err
	}
	return out[0], true, nil
}

// resolver fills in the texts of records, reading each text once.
type resolver struct {
	s     Store
	texts map[string]string
}

func (r *resolver) resolve(c *Consent) error {
	h := c.Proof.TextHash
	if h == "" {
		return nil
	}
	t, ok := r.texts[h]
	if !ok {
		var found bool
		var err error
		if t, found, err = r.s.ConsentText(h); err != nil {
			return err
		}
		if !found {
			return fmt.Errorf("policy: the consent text %s of %s's record %d is missing", h, c.Address, c.Seq)
		}
		r.texts[h] = t
	}
	c.Proof.Text = t
	return nil
}

// ConsentHistory returns the consent records of an address, oldest
// first, with their texts: with sender's list (list Any: every list of
// the sender; sender Any: every sender's), found through the index by
// address (pc).
func (p *Policy) ConsentHistory(addr, sender, list string) ([]Consent, error) {
	a, err := Canonical(addr)
	if err != nil {
		return nil, &InvalidConsentError{Msg: err.Error()}
	}
	if sender == Any && list != Any {
		return nil, invalidf("a list belongs to a sender: name the sender too")
	}
	r := &resolver{s: p.cfg.Store, texts: map[string]string{}}
	var out []Consent
	add := func(s, l string) error {
		cs, err := p.cfg.Store.ConsentHistory(s, l, a)
		if err != nil {
			return err
		}
		for i := range cs {
			if err := r.resolve(&cs[i]); err != nil {
				return err
			}
		}
		out = append(out, cs...)
		return nil
	}
	if sender != Any && list != Any {
		return out, add(sender, list)
	}
	lists, err := p.cfg.Store.ConsentLists(a)
	if err != nil {
		return nil, err
	}
	for _, sl := range lists {
		if sender == Any || sl[0] == sender {
			if err := add(sl[0], sl[1]); err != nil {
				return nil, err
			}
		}
	}
	return out, nil
}

// ListConsent returns at most limit latest records of sender's list ("":
// its mail that names no list) whose status is status ("" any), in
// address order from the first address not before from, and the address
// to continue from ("" at the end). While a re-permission campaign of
// the list runs, a confirmation from before its start is shown, and
// selected, as pending, with Repermission "pending"; one given since
// has Repermission "reconfirmed". A record lapsed by a campaign's
// deadline has Repermission "lapsed".
func (p *Policy) ListConsent(sender, list string, status ConsentStatus, from string, limit int) ([]Consent, string, error) {
	if err := checkSenderList(sender, list); err != nil {
		return nil, "", err
	}
	if status != "" && !status.Valid() {
		return nil, "", invalidf("status %q: pending, confirmed, withdrawn or lapsed", status)
	}
	camp, running, err := p.runningRepermission(sender, list)
	if err != nil {
		return nil, "", err
	}
	scan := status
	if running && status == ConsentPending {
		scan = "" // confirmed records may be pending re-confirmation
	}
	out := []Consent{}
	next := ""
	err = p.cfg.Store.ScanConsent(sender, list, scan, Normalize(from), func(h ConsentHead) error {
		if scan != status && h.Status != ConsentPending && h.Status != ConsentConfirmed {
			return nil
		}
		c, ok, err := p.cfg.Store.ConsentRecord(h.Sender, h.List, h.Address, h.Seq)
		if err != nil || !ok {
			return err
		}
		if running {
			camp.view(&c)
		}
		markLapsed(&c)
		if status != "" && c.Status != status {
			return nil
		}
		if len(out) == limit {
			next = h.Address
			return errStop
		}
		out = append(out, c)
		return nil
	})
	if err != nil && !errors.Is(err, errStop) {
		return nil, "", err
	}
	return out, next, nil
}
