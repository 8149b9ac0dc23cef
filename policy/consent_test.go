package policy

import (
	"bytes"
	"errors"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cockroachdb/pebble"
)

const signupText = "Yes, send me the Spring News, about once a week. I can unsubscribe at any time."

// signup is a single opt-in sign-up's record, with its proof.
func signup(addr string) ConsentInput {
	return ConsentInput{Sender: "shop", List: "news", Address: addr, Status: ConsentConfirmed, Method: SingleOptIn,
		Time: t0.Add(-time.Hour), IP: "192.0.2.7", UserAgent: "Mozilla/5.0", Source: "https://shop.example/signup",
		Text: signupText, Purposes: []string{"newsletter", "offers"}}
}

func mustRecord(t *testing.T, p *Policy, in ConsentInput) Consent {
	t.Helper()
	c, added, err := p.RecordConsent(in)
	if err != nil || !added {
		t.Fatalf("RecordConsent(%+v): %v, added %v", in, err, added)
	}
	return c
}

func history(t *testing.T, p *Policy, addr string) []Consent {
	t.Helper()
	cs, err := p.ConsentHistory(addr, "shop", "news")
	if err != nil {
		t.Fatal(err)
	}
	return cs
}

// countKeys counts the keys of one prefix.
func countKeys(t *testing.T, p *Policy, prefix string) int {
	t.Helper()
	db := p.cfg.Store.(*PebbleStore).db
	it, err := db.NewIter(&pebble.IterOptions{LowerBound: []byte(prefix), UpperBound: prefixEnd(prefix)})
	if err != nil {
		t.Fatal(err)
	}
	defer it.Close()
	n := 0
	for it.First(); it.Valid(); it.Next() {
		n++
	}
	return n
}

// A withdrawal after a confirmation is a record of its own: both stay,
// the first unchanged, the second repeating its proof.
func TestConsentHistoryIsAppendOnly(t *testing.T) {
	p, _ := newPolicy(t, nil)
	first := mustRecord(t, p, signup("Ann@Example.com"))
	if first.Seq != 1 || first.Address != "ann@example.com" || first.Proof.TextHash != TextHash(signupText) || first.Proof.Text != "" {
		t.Fatalf("first record %+v", first)
	}
	w, added, err := p.WithdrawConsent("shop", "news", "ann@example.com", ConsentAct{Source: "preference-center", IP: "2001:db8::1"})
	if err != nil || !added {
		t.Fatalf("withdraw: %v %v", added, err)
	}
	hs := history(t, p, "ANN@example.com")
	if len(hs) != 2 {
		t.Fatalf("history of %d records: %+v", len(hs), hs)
	}
	got0 := hs[0]
	got0.Proof.Text = ""
	if !sameConsent(got0, first) || got0.Seq != 1 || got0.Status != ConsentConfirmed {
		t.Errorf("the confirmation changed: %+v, was %+v", hs[0], first)
	}
	h := hs[1]
	if h.Seq != 2 || h.Status != ConsentWithdrawn || h.Method != SingleOptIn || h.Proof.ConsentAct != first.Proof.ConsentAct ||
		h.Proof.TextHash != first.Proof.TextHash || h.Ended == nil || h.Ended.Source != "preference-center" ||
		!h.Ended.Time.Equal(t0) || h.Ended.IP != "2001:db8::1" || w.Seq != 2 {
		t.Errorf("the withdrawal: %+v", h)
	}
	if hs[0].Proof.Text != signupText || hs[1].Proof.Text != signupText {
		t.Errorf("texts not resolved: %q %q", hs[0].Proof.Text, hs[1].Proof.Text)
	}
	// Withdrawing again, or recording the same consent twice, adds nothing.
	if _, added, err := p.WithdrawConsent("shop", "news", "ann@example.com", ConsentAct{Source: "one-click"}); err != nil || added {
		t.Errorf("second withdrawal: added %v, %v", added, err)
	}
	mustRecord(t, p, signup("bob@example.com"))
	if _, added, err := p.RecordConsent(signup("bob@example.com")); err != nil || added {
		t.Errorf("a replayed record: added %v, %v", added, err)
	}
	if n := len(history(t, p, "bob@example.com")); n != 1 {
		t.Errorf("bob has %d records", n)
	}
	if _, _, err := p.WithdrawConsent("shop", "news", "nobody@example.com", ConsentAct{Source: "api"}); !errors.Is(err, ErrNoConsent) {
		t.Errorf("withdrawing nothing: %v", err)
	}
	// A new consent after the withdrawal follows it.
	again := signup("ann@example.com")
	again.Time = t0
	if c := mustRecord(t, p, again); c.Seq != 3 {
		t.Errorf("consent after a withdrawal is record %d", c.Seq)
	}
}

// A text shown to many is stored once; records name it by its hash.
func TestConsentTextStoredOnce(t *testing.T) {
	p, _ := newPolicy(t, nil)
	for _, a := range []string{"a@example.com", "b@example.com", "c@example.com"} {
		mustRecord(t, p, signup(a))
	}
	if n := countKeys(t, p, prefixConsentText); n != 1 {
		t.Errorf("%d texts stored for one", n)
	}
	other := signup("d@example.com")
	other.Text = "Send me offers."
	mustRecord(t, p, other)
	if n := countKeys(t, p, prefixConsentText); n != 2 {
		t.Errorf("%d texts stored for two", n)
	}
	text, ok, err := p.cfg.Store.ConsentText(TextHash(signupText))
	if err != nil || !ok || text != signupText {
		t.Errorf("text by hash: %q %v %v", text, ok, err)
	}
}

// What a record needs: its proof, a confirmation for a double opt-in,
// an address no suppression forbids.
func TestConsentRefusals(t *testing.T) {
	p, _ := newPolicy(t, func(c *Config) { c.SpamTraps = []string{"traps.example"} })
	p.Add([]Entry{{Address: "gone@example.com", Reason: ConfirmedBounce},
		{Address: "angry@example.com", Scope: Scope{Sender: "shop"}, Reason: Complaint},
		{Address: "other@example.com", Scope: Scope{Sender: "bank"}, Reason: Complaint},
		{Address: "left@example.com", Scope: Scope{Sender: "shop", List: "news"}, Reason: Unsubscribed}})
	cases := []struct {
		name string
		mod  func(*ConsentInput)
		want string
	}{
		{"no text", func(in *ConsentInput) { in.Text = " " }, "needs its proof"},
		{"no source", func(in *ConsentInput) { in.Source = "" }, "needs its proof"},
		{"no time", func(in *ConsentInput) { in.Time = time.Time{} }, "needs its proof"},
		{"no proof at all", func(in *ConsentInput) {
			*in = ConsentInput{Sender: "shop", List: "news", Address: in.Address}
		}, "needs its proof"},
		{"future", func(in *ConsentInput) { in.Time = t0.Add(time.Hour) }, "in the future"},
		{"bad ip", func(in *ConsentInput) { in.IP = "10.0.0" }, "not an IP address"},
		{"bad purpose", func(in *ConsentInput) { in.Purposes = []string{"news letter"} }, "not a short name"},
		{"bad list", func(in *ConsentInput) { in.List = "a b" }, "not a list name"},
		{"any sender", func(in *ConsentInput) { in.Sender = Any }, "not a sender's name"},
		{"bad status", func(in *ConsentInput) { in.Status = "withdrawn" }, "pending or confirmed"},
		{"pending single", func(in *ConsentInput) { in.Status = ConsentPending }, "double opt-in's sign-up"},
		{"double without confirmation", func(in *ConsentInput) { in.Method = DoubleOptIn }, "needs its confirmation"},
		{"confirmation before sign-up", func(in *ConsentInput) {
			in.Method, in.Confirmation = DoubleOptIn, &ConsentAct{Time: in.Time.Add(-time.Minute)}
		}, "before the sign-up"},
		{"bad address", func(in *ConsentInput) { in.Address = "not an address" }, "address"},
	}
	for _, c := range cases {
		in := signup("new@example.com")
		c.mod(&in)
		_, _, err := p.RecordConsent(in)
		var ie *InvalidConsentError
		if !errors.As(err, &ie) || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: %v, want an InvalidConsentError with %q", c.name, err, c.want)
		}
	}
	for addr, want := range map[string]string{
		"gone@example.com":  "gone@example.com: Recipient address is suppressed for all senders: it hard-bounced (confirmed bounce); no consent is recorded for it",
		"angry@example.com": "Recipient complained about mail of sender shop",
		"x@traps.example":   "refused by policy",
	} {
		_, _, err := p.RecordConsent(signup(addr))
		var se *SuppressedError
		if !errors.As(err, &se) || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: %v, want a SuppressedError with %q", addr, err, want)
		}
	}
	// Another sender's complaint and a list unsubscribe (the recipient
	// signs up again) do not keep consent from being recorded.
	mustRecord(t, p, signup("other@example.com"))
	mustRecord(t, p, signup("left@example.com"))
	if n := countKeys(t, p, prefixConsentHistory); n != 2 {
		t.Errorf("%d records after the refusals, want 2", n)
	}
}

// A double opt-in: the sign-up is pending, the confirmation a record of
// its own that repeats the sign-up's proof.
func TestDoubleOptIn(t *testing.T) {
	p, _ := newPolicy(t, nil)
	in := signup("ann@example.com")
	in.Status, in.Method = ConsentPending, ""
	pending := mustRecord(t, p, in)
	if pending.Method != DoubleOptIn || pending.Status != ConsentPending {
		t.Fatalf("pending %+v", pending)
	}
	conf := mustRecord(t, p, ConsentInput{Sender: "shop", List: "news", Address: "ann@example.com", Status: ConsentConfirmed,
		Method: DoubleOptIn, Confirmation: &ConsentAct{Time: t0.Add(-time.Minute), IP: "198.51.100.2", UserAgent: "Mail/1.0"}})
	if conf.Seq != 2 || conf.Proof.ConsentAct != pending.Proof.ConsentAct || conf.Proof.TextHash != pending.Proof.TextHash ||
		conf.Confirmation == nil || conf.Confirmation.IP != "198.51.100.2" || !conf.Confirmation.Time.Equal(t0.Add(-time.Minute)) {
		t.Errorf("confirmation %+v", conf)
	}
	// Without confirmation fields, a pending sign-up is confirmed now.
	in.Address = "bob@example.com"
	mustRecord(t, p, in)
	c := mustRecord(t, p, ConsentInput{Sender: "shop", List: "news", Address: "bob@example.com", Method: DoubleOptIn})
	if c.Confirmation == nil || !c.Confirmation.Time.Equal(t0) || c.Proof.Source != in.Source {
		t.Errorf("confirmed without fields: %+v", c)
	}
	// Nothing pending and no proof: nothing to confirm.
	_, _, err := p.RecordConsent(ConsentInput{Sender: "shop", List: "news", Address: "carol@example.com", Method: DoubleOptIn})
	if err == nil || !strings.Contains(err.Error(), "needs its proof") {
		t.Errorf("confirming nothing: %v", err)
	}
	// A double opt-in confirmed elsewhere: the sign-up's proof and the
	// confirmation in one record.
	full := signup("dan@example.com")
	full.Method, full.Confirmation = DoubleOptIn, &ConsentAct{Time: t0.Add(-30 * time.Minute), IP: "::ffff:192.0.2.9"}
	if c := mustRecord(t, p, full); c.Seq != 1 || c.Confirmation.IP != "192.0.2.9" {
		t.Errorf("full double opt-in: %+v", c)
	}
}

// countingStore counts the reads the recipient check may make.
type countingStore struct {
	Store
	mu    sync.Mutex
	calls map[string]int
}

func (c *countingStore) count(name string) {
	c.mu.Lock()
	c.calls[name]++
	c.mu.Unlock()
}

func (c *countingStore) snapshot() map[string]int {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := map[string]int{}
	for k, v := range c.calls {
		out[k] = v
	}
	return out
}

func (c *countingStore) Lookup(addr string, buf []Brief) ([]Brief, error) {
	c.count("Lookup")
	return c.Store.Lookup(addr, buf)
}

func (c *countingStore) Suppressions(addr string) ([]Entry, error) {
	c.count("Suppressions")
	return c.Store.Suppressions(addr)
}

func (c *countingStore) LatestConsent(sender, list, addr string) (ConsentHead, bool, error) {
	c.count("LatestConsent")
	return c.Store.LatestConsent(sender, list, addr)
}

func (c *countingStore) ConsentRecord(sender, list, addr string, seq uint64) (Consent, bool, error) {
	c.count("ConsentRecord")
	return c.Store.ConsentRecord(sender, list, addr, seq)
}

func (c *countingStore) ConsentHistory(sender, list, addr string) ([]Consent, error) {
	c.count("ConsentHistory")
	return c.Store.ConsentHistory(sender, list, addr)
}

func (c *countingStore) ScanConsent(sender, list string, status ConsentStatus, from string, fn func(ConsentHead) error) error {
	c.count("ScanConsent")
	return c.Store.ScanConsent(sender, list, status, from, fn)
}

func (c *countingStore) ConsentText(hash string) (string, bool, error) {
	c.count("ConsentText")
	return c.Store.ConsentText(hash)
}

// consentPolicy is a policy whose sender shop requires consent for its
// list news, and sender club for all its mail, over a counting store.
func consentPolicy(t *testing.T, mod func(*Config)) (*Policy, *countingStore) {
	t.Helper()
	var cs *countingStore
	p, _ := newPolicy(t, func(c *Config) {
		cs = &countingStore{Store: c.Store, calls: map[string]int{}}
		c.Store = cs
		c.Senders = map[string]SenderRules{"shop": {ConsentRequired: []string{"news"}}, "club": {ConsentRequired: []string{"*"}}}
		if mod != nil {
			mod(c)
		}
	})
	return p, cs
}

// The check refuses marketing mail to a list that requires consent
// until the address's consent is confirmed, and again once it is
// withdrawn.
func TestCheckRequiresConsent(t *testing.T) {
	p, cs := consentPolicy(t, nil)
	const a = "ann@example.com"
	refused := func(what, sender, stream, list, text string, status ConsentStatus) {
		t.Helper()
		d := mustCheck(t, p, sender, stream, list, a)
		if !d.Suppressed || d.Text() != text || d.Entry.Reason != NoConsent || d.Consent != status {
			t.Errorf("%s: %+v %q, want a refusal %q (consent %q)", what, d, d.Text(), text, status)
		}
	}
	allowed := func(what, sender, stream, list string) {
		t.Helper()
		if d := mustCheck(t, p, sender, stream, list, a); d.Suppressed {
			t.Errorf("%s: refused %+v", what, d)
		}
	}
	refused("no record", "shop", "marketing", "news", "Recipient has no confirmed consent for list news", "")
	if d := mustCheck(t, p, "shop", "", "news", a); d.Entry.Kind != PerList || d.Entry.Sender != "shop" || d.Entry.List != "news" ||
		d.Entry.Source != "consent:none" {
		t.Errorf("the refusal's entry: %+v", d.Entry)
	}
	in := signup(a)
	in.Status, in.Method = ConsentPending, DoubleOptIn
	mustRecord(t, p, in)
	refused("pending", "shop", "marketing", "news", "Recipient has no confirmed consent for list news", ConsentPending)
	refused("a stream that follows marketing", "shop", "newsletter", "news", "Recipient has no confirmed consent for list news", ConsentPending)
	allowed("transactional", "shop", "transactional", "news")
	allowed("a list that requires none", "shop", "marketing", "offers")
	allowed("mail without a list", "shop", "marketing", "")
	allowed("another sender", "bank", "marketing", "news")
	mustRecord(t, p, ConsentInput{Sender: "shop", List: "news", Address: a, Method: DoubleOptIn})
	allowed("confirmed", "shop", "marketing", "news")
	if _, _, err := p.WithdrawConsent("shop", "news", a, ConsentAct{Source: "one-click"}); err != nil {
		t.Fatal(err)
	}
	refused("withdrawn", "shop", "marketing", "news", "Recipient has no confirmed consent for list news", ConsentWithdrawn)

	// "*": every list, and the sender's mail that names none.
	refused("club without a list", "club", "marketing", "", "Recipient has no confirmed consent for mail of sender club", "")
	refused("club's list", "club", "marketing", "events", "Recipient has no confirmed consent for list events", "")
	club := signup(a)
	club.Sender, club.List = "club", ""
	mustRecord(t, p, club)
	allowed("club's mail, consented", "club", "marketing", "")
	refused("club's list, which its mail's consent does not cover", "club", "marketing", "events",
		"Recipient has no confirmed consent for list events", "")

	// Each check where consent is required reads the latest record once.
	before := cs.snapshot()
	mustCheck(t, p, "shop", "marketing", "news", a)
	after := cs.snapshot()
	if after["LatestConsent"]-before["LatestConsent"] != 1 || after["ConsentRecord"] != before["ConsentRecord"] ||
		after["ConsentHistory"] != before["ConsentHistory"] {
		t.Errorf("a check read %v, then %v", before, after)
	}
}

// Where consent is not required, the check reads nothing of it: the
// index lookup of the suppressions is all.
func TestCheckReadsNoConsentWhereNoneIsRequired(t *testing.T) {
	p, cs := consentPolicy(t, nil)
	mustRecord(t, p, signup("ann@example.com"))
	before := cs.snapshot()
	for _, c := range [][3]string{{"shop", "marketing", "offers"}, {"shop", "marketing", ""}, {"shop", "transactional", "news"},
		{"bank", "marketing", "news"}, {"", "marketing", ""}, {"club", "transactional", "x"}} {
		if d := mustCheck(t, p, c[0], c[1], c[2], "ann@example.com"); d.Suppressed {
			t.Errorf("%v: refused %+v", c, d)
		}
	}
	after := cs.snapshot()
	if after["Lookup"]-before["Lookup"] != 6 {
		t.Errorf("lookups %d, want 6", after["Lookup"]-before["Lookup"])
	}
	delete(after, "Lookup")
	delete(before, "Lookup")
	for k, v := range after {
		if v != before[k] {
			t.Errorf("a check where no consent is required called %s", k)
		}
	}
}

// Suppressions apply first: a confirmed consent does not lift an
// unsubscribe, whose refusal is the one given.
func TestSuppressionsBeforeConsent(t *testing.T) {
	p, cs := consentPolicy(t, func(c *Config) {
		c.Senders["shop"] = SenderRules{ConsentRequired: []string{"news"}, DropSuppressed: true}
	})
	mustRecord(t, p, signup("ann@example.com"))
	if err := p.Unsubscribe(Recipient{Sender: "shop", List: "news", Address: "ann@example.com"}, "one-click"); err != nil {
		t.Fatal(err)
	}
	before := cs.snapshot()
	d := mustCheck(t, p, "shop", "marketing", "news", "ann@example.com")
	if !d.Suppressed || d.Entry.Reason != Unsubscribed || !d.Drop {
		t.Errorf("got %+v", d)
	}
	if after := cs.snapshot(); after["LatestConsent"] != before["LatestConsent"] {
		t.Error("a suppressed recipient's consent was read")
	}
	// Without consent, a sender that drops suppressed recipients drops
	// this one too.
	if d := mustCheck(t, p, "shop", "marketing", "news", "bob@example.com"); !d.Suppressed || !d.Drop || d.Entry.Reason != NoConsent {
		t.Errorf("no consent, drop: %+v", d)
	}
}

// Which streams need consent is configurable.
func TestConsentStreams(t *testing.T) {
	p, _ := consentPolicy(t, func(c *Config) {
		c.ConsentStreams = []string{"transactional"}
		c.Streams = map[string][]Reason{"marketing": Reasons, "transactional": {ConfirmedBounce}, "alerts": {ConfirmedBounce}}
	})
	for stream, want := range map[string]bool{"marketing": false, "transactional": true, "alerts": false, "other": false} {
		if d := mustCheck(t, p, "shop", stream, "news", "ann@example.com"); d.Suppressed != want {
			t.Errorf("stream %s: refused %v, want %v", stream, d.Suppressed, want)
		}
	}
	if _, err := New(Config{Store: p.cfg.Store, Senders: map[string]SenderRules{"x": {ConsentRequired: []string{"a b"}}}}); err == nil {
		t.Error("a bad list name in ConsentRequired was taken")
	}
}

// Every table written with each message sorts above every large, cold
// one, and below the spool's.
func TestKeyPrefixesHotAboveCold(t *testing.T) {
	all := append(slices.Clone(coldPrefixes), hotPrefixes...)
	for _, c := range coldPrefixes {
		for _, h := range hotPrefixes {
			if bytes.Compare(prefixEnd(c), []byte(h)) > 0 {
				t.Errorf("cold prefix %q reaches hot prefix %q", c, h)
			}
		}
	}
	for _, h := range hotPrefixes {
		if !strings.HasPrefix(h, "p") || h >= "q" {
			t.Errorf("hot prefix %q is not policy's, below the spool's", h)
		}
	}
	for i, a := range all {
		for _, b := range all[i+1:] {
			if strings.HasPrefix(a, b) || strings.HasPrefix(b, a) {
				t.Errorf("prefixes %q and %q overlap", a, b)
			}
		}
	}
	if len(all) != 13 {
		t.Errorf("%d prefixes listed: a new one must be hot or cold", len(all))
	}
}

// The latest records of a list, by status, a page at a time; an
// address's history across lists and senders.
func TestListConsent(t *testing.T) {
	p, _ := newPolicy(t, nil)
	for _, a := range []string{"a@example.com", "b@example.com", "c@example.com", "d@example.com"} {
		mustRecord(t, p, signup(a))
	}
	p.WithdrawConsent("shop", "news", "b@example.com", ConsentAct{Source: "api"})
	other := signup("a@example.com")
	other.List = "offers"
	mustRecord(t, p, other)
	other.Sender, other.List = "bank", ""
	mustRecord(t, p, other)
	cs, next, err := p.ListConsent("shop", "news", ConsentConfirmed, "", 2)
	if err != nil || len(cs) != 2 || cs[0].Address != "a@example.com" || cs[1].Address != "c@example.com" || next != "d@example.com" {
		t.Fatalf("page 1: %+v %q %v", cs, next, err)
	}
	cs, next, err = p.ListConsent("shop", "news", ConsentConfirmed, next, 2)
	if err != nil || len(cs) != 1 || cs[0].Address != "d@example.com" || next != "" {
		t.Fatalf("page 2: %+v %q %v", cs, next, err)
	}
	cs, _, _ = p.ListConsent("shop", "news", ConsentWithdrawn, "", 10)
	if len(cs) != 1 || cs[0].Address != "b@example.com" || cs[0].Seq != 2 {
		t.Errorf("withdrawn: %+v", cs)
	}
	for _, c := range []struct {
		sender, list string
		want         int
	}{{"shop", "news", 1}, {"shop", Any, 2}, {Any, Any, 3}, {"bank", "", 1}} {
		hs, err := p.ConsentHistory("a@example.com", c.sender, c.list)
		if err != nil || len(hs) != c.want {
			t.Errorf("history of a with %s/%s: %d records %v, want %d", c.sender, c.list, len(hs), err, c.want)
		}
	}
}

const consentCSV = `address,status,method,time,ip,user_agent,source,text,purposes,confirmation_time,confirmation_ip
ann@example.com,confirmed,single-opt-in,2026-11-01T10:00:00Z,192.0.2.1,Mozilla/5.0,https://shop.example/signup,"Send me the news.",newsletter offers,,
bob@example.com,pending,double-opt-in,2026-11-02T10:00:00Z,192.0.2.2,,https://shop.example/signup,"Send me the news.",,,
bob@example.com,confirmed,double-opt-in,2026-11-02T10:00:00Z,192.0.2.2,,https://shop.example/signup,"Send me the news.",,2026-11-02T11:00:00Z,192.0.2.3
carol@example.com,confirmed,,2026-11-03T10:00:00Z,,,,"Imported from the old shop.",,,
`

// An import appends its lines in order, all or nothing; an export is
// what an import reads, and importing it again adds nothing.
func TestImportConsent(t *testing.T) {
	p, _ := newPolicy(t, nil)
	opts := ConsentImportOptions{Format: CSV, Sender: "shop", List: "news", Source: "import:old.csv"}
	res, err := p.ImportConsent(strings.NewReader(consentCSV), opts)
	if err != nil || res.Read != 4 || res.Added != 4 || !res.Committed {
		t.Fatalf("import: %+v %v", res, err)
	}
	if hs := history(t, p, "bob@example.com"); len(hs) != 2 || hs[1].Confirmation == nil || hs[1].Confirmation.IP != "192.0.2.3" {
		t.Errorf("bob: %+v", hs)
	}
	if hs := history(t, p, "carol@example.com"); len(hs) != 1 || hs[0].Method != MethodImport || hs[0].Proof.Source != "import:old.csv" {
		t.Errorf("carol: %+v", hs)
	}
	if n := countKeys(t, p, prefixConsentText); n != 2 {
		t.Errorf("%d texts for 2", n)
	}
	p.WithdrawConsent("shop", "news", "ann@example.com", ConsentAct{Source: "one-click"})

	for _, format := range []Format{CSV, JSONLines} {
		var buf bytes.Buffer
		n, err := p.ExportConsent(&buf, format, "shop", "news")
		if err != nil || n != 5 {
			t.Fatalf("export %s: %d %v", format, n, err)
		}
		o := opts
		o.Format = format
		res, err := p.ImportConsent(&buf, o)
		if err != nil || res.Added != 0 || res.Duplicates != 5 {
			t.Errorf("the %s export imported again: %+v %v\n%s", format, res, err, buf.String())
		}
		if format == JSONLines {
			// Into another list, the same history.
			var again bytes.Buffer
			p.ExportConsent(&again, format, "shop", "news")
			o.List = "copy"
			text := strings.ReplaceAll(again.String(), `"list":"news"`, `"list":"copy"`)
			if res, err := p.ImportConsent(strings.NewReader(text), o); err != nil || res.Added != 5 {
				t.Errorf("into another list: %+v %v", res, err)
			}
			if hs, _ := p.ConsentHistory("ann@example.com", "shop", "copy"); len(hs) != 2 || hs[1].Status != ConsentWithdrawn {
				t.Errorf("ann's copied history: %+v", hs)
			}
		}
	}

	// A bad line: its number, and nothing committed.
	p.Add([]Entry{{Address: "gone@example.com", Reason: ConfirmedBounce}})
	bad := "address,time,source,text\n" +
		"dan@example.com,2026-11-01T10:00:00Z,form,Yes\n" +
		"eve@example.com,yesterday,form,Yes\n" +
		"gone@example.com,2026-11-01T10:00:00Z,form,Yes\n" +
		"fay@example.com,2026-11-01T10:00:00Z,form,\n"
	before := countKeys(t, p, prefixConsentHistory)
	res, err = p.ImportConsent(strings.NewReader(bad), opts)
	var ie *ImportError
	if !errors.As(err, &ie) || res.InvalidLines != 3 || res.Committed || len(res.Invalid) != 3 ||
		res.Invalid[0].Line != 3 || !strings.Contains(res.Invalid[0].Err, "RFC 3339") ||
		res.Invalid[1].Line != 4 || !strings.Contains(res.Invalid[1].Err, "suppressed for all senders") ||
		res.Invalid[2].Line != 5 || !strings.Contains(res.Invalid[2].Err, "proof") {
		t.Errorf("bad import: %+v %v", res, err)
	}
	if n := countKeys(t, p, prefixConsentHistory); n != before {
		t.Errorf("a refused import committed %d records", n-before)
	}
	o := opts
	o.SkipInvalid = true
	if res, err := p.ImportConsent(strings.NewReader(bad), o); err != nil || res.Added != 1 || res.InvalidLines != 3 {
		t.Errorf("skipping the invalid lines: %+v %v", res, err)
	}
}

// The history of an address over every list comes from the index by
// address, which follows appends and deletions.
func TestConsentIndexByAddress(t *testing.T) {
	p, _ := newPolicy(t, nil)
	for _, sl := range [][2]string{{"shop", "news"}, {"shop", "offers"}, {"bank", ""}} {
		if _, _, err := p.RecordConsent(ConsentInput{Sender: sl[0], List: sl[1], Address: "ann@example.com", Time: t0, Source: "form", Text: "Yes."}); err != nil {
			t.Fatal(err)
		}
	}
	p.RecordConsent(ConsentInput{Sender: "shop", List: "news", Address: "bob@example.com", Time: t0, Source: "form", Text: "Yes."})
	if h, err := p.ConsentHistory("ann@example.com", Any, Any); err != nil || len(h) != 3 {
		t.Fatalf("every sender: %d %v", len(h), err)
	}
	if h, err := p.ConsentHistory("ANN@example.com", "shop", Any); err != nil || len(h) != 2 {
		t.Fatalf("one sender: %d %v", len(h), err)
	}
	if err := p.cfg.Store.DeleteConsent("shop", "offers", "ann@example.com"); err != nil {
		t.Fatal(err)
	}
	if lists, _ := p.cfg.Store.ConsentLists("ann@example.com"); len(lists) != 2 {
		t.Errorf("after a deletion: %v", lists)
	}
}

// Erase leaves nothing of the address but its keyed hash: the check
// refuses it for every sender, across a restart; a consent record or an
// import of it is refused; its own new double opt-in lifts the erasure.
func TestErase(t *testing.T) {
	db := openDB(t)
	store, _ := NewPebbleStore(db)
	key := []byte("erasure key of this test")
	p, err := New(Config{Store: store, ErasureKey: key, Now: func() time.Time { return t0 }})
	if err != nil {
		t.Fatal(err)
	}
	a := "ann@example.com"
	p.Unsubscribe(Recipient{Sender: "shop", List: "news", Address: a}, "one-click")
	p.RecordConsent(ConsentInput{Sender: "shop", List: "offers", Address: a, Time: t0, Source: "form", Text: "Yes."})
	p.SetAttribute("shop", a, "name", "Ann")
	p.Observe(Outcome{Kind: KindDelivered, Sender: "shop", Address: a, Stream: "marketing"})
	p.Observe(bounced(a, "hard", "rejected", "m1"))
	p.Sync()
	if err := p.Erase("ANN@example.com"); err != nil {
		t.Fatal(err)
	}
	if err := p.Purge(); err != nil {
		t.Fatal(err)
	}
	h, err := p.Held(a, []string{"shop"})
	if err != nil || len(h.Consent)+len(h.Suppressions)+len(h.Engagement)+len(h.Attributes) != 0 || h.HardBounces.HardInARow != 0 {
		t.Fatalf("held after erasure: %+v %v", h, err)
	}
	it, _ := db.NewIter(&pebble.IterOptions{LowerBound: []byte("p"), UpperBound: []byte("q")})
	for it.First(); it.Valid(); it.Next() {
		if bytes.Contains(bytes.ToLower(append(it.Key(), it.Value()...)), []byte(a)) {
			t.Errorf("key %q still names the address", it.Key())
		}
	}
	it.Close()
	p.Close()
	store, _ = NewPebbleStore(db)
	p, _ = New(Config{Store: store, ErasureKey: key, Now: func() time.Time { return t0 }})
	defer p.Close()
	if d, _ := p.Check("bank", "transactional", "", "Ann@Example.com"); !d.Suppressed {
		t.Errorf("an erased address is mailed after a restart")
	}
	var se *SuppressedError
	if _, _, err := p.RecordConsent(ConsentInput{Sender: "shop", List: "news", Address: a, Time: t0, Source: "api", Text: "Yes."}); !errors.As(err, &se) {
		t.Errorf("consent for an erased address: %v", err)
	}
	if _, err := p.ImportConsent(strings.NewReader("address,status,time,source,text\n"+a+",confirmed,2026-12-01T10:00:00Z,import,Yes.\n"),
		ConsentImportOptions{Sender: "shop", List: "news", Format: CSV}); err == nil {
		t.Errorf("an import of an erased address was taken")
	}
	// The person's own double opt-in: a sign-up is taken, and its
	// confirmation lifts the erasure.
	if _, _, err := p.RecordConsent(ConsentInput{Sender: "shop", List: "news", Address: a, Status: ConsentPending, Method: DoubleOptIn,
		Time: t0, Source: "form", Text: "Yes."}); err != nil {
		t.Fatalf("a new sign-up: %v", err)
	}
	if _, _, err := p.RecordConsent(ConsentInput{Sender: "shop", List: "news", Address: a, Status: ConsentConfirmed, Method: DoubleOptIn,
		Confirmation: &ConsentAct{Time: t0, Source: "confirmation page"}}); err != nil {
		t.Fatalf("its confirmation: %v", err)
	}
	if d, _ := p.Check("bank", "transactional", "", a); d.Suppressed {
		t.Errorf("still erased after the person's double opt-in: %+v", d)
	}
}
