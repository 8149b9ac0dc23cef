package policy

import (
	"bytes"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cockroachdb/pebble"
	"github.com/cockroachdb/pebble/bloom"
)

func openDB(t testing.TB) *pebble.DB {
	t.Helper()
	opts := &pebble.Options{Levels: make([]pebble.LevelOptions, 7), Cache: pebble.NewCache(128 << 20)}
	for i := range opts.Levels {
		opts.Levels[i].FilterPolicy = bloom.FilterPolicy(10)
	}
	db, err := pebble.Open(t.TempDir(), opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

type events struct {
	mu sync.Mutex
	l  []Event
}

func (e *events) add(ev Event) { e.mu.Lock(); e.l = append(e.l, ev); e.mu.Unlock() }
func (e *events) kinds() []string {
	e.mu.Lock()
	defer e.mu.Unlock()
	var k []string
	for _, ev := range e.l {
		k = append(k, ev.Kind)
	}
	return k
}

var t0 = time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)

func newPolicy(t testing.TB, mod func(*Config)) (*Policy, *events) {
	t.Helper()
	ev := &events{}
	store, err := NewPebbleStore(openDB(t))
	if err != nil {
		t.Fatal(err)
	}
	cfg := Config{Store: store, OnEvent: ev.add, Now: func() time.Time { return t0 }}
	if mod != nil {
		mod(&cfg)
	}
	p, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(p.Close)
	return p, ev
}

func mustCheck(t *testing.T, p *Policy, sender, stream, list, addr string) Decision {
	t.Helper()
	d, err := p.Check(sender, stream, list, addr)
	if err != nil {
		t.Fatal(err)
	}
	return d
}

func TestScopesAndCase(t *testing.T) {
	p, _ := newPolicy(t, nil)
	if err := p.Unsubscribe(Recipient{Sender: "shop", List: "spring-news", Address: "John@Example.COM", MsgID: "q1"}, "one-click"); err != nil {
		t.Fatal(err)
	}
	d := mustCheck(t, p, "shop", "marketing", "spring-news", "john@example.com")
	if !d.Suppressed || d.Text() != "Recipient unsubscribed from list spring-news" {
		t.Fatalf("got %+v %q", d, d.Text())
	}
	if es, _ := p.Entries("JOHN@example.com"); len(es) != 1 || es[0].Source != "one-click:q1" || !es[0].Time.Equal(t0) {
		t.Errorf("entries %+v", es)
	}
	for _, c := range [][3]string{{"shop", "marketing", "autumn"}, {"shop", "marketing", ""}, {"other", "marketing", "spring-news"}} {
		if d := mustCheck(t, p, c[0], c[1], c[2], "JOHN@example.com"); d.Suppressed {
			t.Errorf("%v: suppressed by %+v", c, d.Entry)
		}
	}
	// A sender-wide unsubscribe and another sender's complaint.
	p.Unsubscribe(Recipient{Sender: "shop", Address: "ann@example.com"}, "mailto")
	p.Observe(Outcome{Kind: KindComplained, Sender: "bank", Address: "ann@example.com", MsgID: "q2"})
	p.Sync()
	if d := mustCheck(t, p, "shop", "marketing", "any", "ann@example.com"); d.Text() != "Recipient unsubscribed from all mail of sender shop" {
		t.Errorf("shop: %q", d.Text())
	}
	if d := mustCheck(t, p, "bank", "transactional", "", "ann@example.com"); d.Text() != "Recipient complained about mail of sender bank" {
		t.Errorf("bank: %q", d.Text())
	}
	if d := mustCheck(t, p, "shop", "transactional", "", "ann@example.com"); d.Suppressed {
		t.Errorf("transactional mail of shop honours a marketing unsubscribe: %+v", d)
	}
	if d := mustCheck(t, p, "third", "marketing", "", "ann@example.com"); d.Suppressed {
		t.Errorf("another sender's entries reach a third one: %+v", d)
	}
}

func TestUnsubscribeTwiceIsOneEntry(t *testing.T) {
	p, ev := newPolicy(t, nil)
	r := Recipient{Sender: "shop", List: "l", Address: "a@example.com"}
	for range 3 {
		if err := p.Unsubscribe(r, "one-click"); err != nil {
			t.Fatal(err)
		}
	}
	es, _ := p.Entries("a@example.com")
	if len(es) != 1 || len(ev.kinds()) != 1 {
		t.Fatalf("entries %v events %v", es, ev.kinds())
	}
	if got := p.Counts()[PerList][Unsubscribed]; got != 1 {
		t.Errorf("count %d", got)
	}
}

func bounced(addr, class, reason, id string) Outcome {
	return Outcome{Kind: KindBounced, Sender: "shop", Address: addr, Class: class, Reason: reason, MsgID: id, Stream: "marketing"}
}

func TestConfirmedBounce(t *testing.T) {
	p, ev := newPolicy(t, nil)
	a := "gone@example.com"
	p.Observe(bounced(a, "soft", "mailboxfull", "m0"))
	for i := 1; i <= 2; i++ {
		p.Observe(bounced(a, "hard", "rejected", fmt.Sprint("m", i)))
	}
	p.Sync()
	if d := mustCheck(t, p, "shop", "marketing", "", a); d.Suppressed {
		t.Fatalf("suppressed after two: %+v", d)
	}
	p.Observe(bounced(a, "hard", "rejected", "m3"))
	p.Sync()
	d := mustCheck(t, p, "other", "transactional", "", a)
	if !d.Suppressed || d.Entry.Reason != ConfirmedBounce || d.Entry.Kind != Global {
		t.Fatalf("after three: %+v", d)
	}
	if es, _ := p.Entries(a); len(es) != 1 || es[0].Source != "bounced:m3:rejected" {
		t.Fatalf("entries %+v", es)
	}
	if k := ev.kinds(); len(k) != 1 || k[0] != KindConfirmedBounce {
		t.Errorf("events %v", k)
	}

	// A delivery ends the run; soft bounces never suppress.
	b := "back@example.com"
	p.Observe(bounced(b, "hard", "rejected", "n1"))
	p.Observe(bounced(b, "hard", "rejected", "n2"))
	p.Observe(Outcome{Kind: KindDelivered, Sender: "shop", Address: b, Stream: "marketing"})
	p.Observe(bounced(b, "hard", "rejected", "n3"))
	for i := range 10 {
		p.Observe(bounced(b, "soft", "blocked", fmt.Sprint("s", i)))
	}
	p.Sync()
	if d := mustCheck(t, p, "shop", "marketing", "", b); d.Suppressed {
		t.Fatalf("run not ended by a delivery: %+v", d)
	}
	// An engagement ends it too.
	p.Observe(bounced(b, "hard", "rejected", "n4"))
	p.Engage([]Outcome{{Sender: "shop", Address: b, Reason: "opened"}})
	p.Observe(bounced(b, "hard", "rejected", "n5"))
	p.Sync()
	if h, _ := p.cfg.Store.Hygiene(b); h.HardInARow != 1 {
		t.Fatalf("run after an open: %+v", h)
	}
}

func TestUnambiguousBounceAtOnce(t *testing.T) {
	p, _ := newPolicy(t, nil)
	for _, r := range []string{"userunknown", "hostunknown", "notaccept"} {
		a := r + "@example.com"
		p.Observe(bounced(a, "hard", r, "x"))
		p.Sync()
		if d := mustCheck(t, p, "shop", "marketing", "", a); d.Entry.Reason != ConfirmedBounce {
			t.Errorf("%s: %+v", r, d)
		}
	}
	w, _ := newPolicy(t, func(c *Config) { c.WaitForRun = true })
	w.Observe(bounced("u@example.com", "hard", "userunknown", "x"))
	w.Sync()
	if d := mustCheck(t, w, "shop", "marketing", "", "u@example.com"); d.Suppressed {
		t.Errorf("WaitForRun: %+v", d)
	}
}

func TestSunset(t *testing.T) {
	p, _ := newPolicy(t, func(c *Config) { c.Senders = map[string]SenderRules{"shop": {SunsetAfter: 5}} })
	deliver := func(a, stream string, n int) {
		for range n {
			p.Observe(Outcome{Kind: KindDelivered, Sender: "shop", Address: a, Stream: stream})
		}
		p.Sync()
	}
	deliver("new@example.com", "marketing", 4)
	deliver("new@example.com", "transactional", 10)
	if d := mustCheck(t, p, "shop", "marketing", "", "new@example.com"); d.Suppressed {
		t.Fatalf("suppressed before 5 marketing messages: %+v", d)
	}
	deliver("new@example.com", "marketing", 1)
	d := mustCheck(t, p, "shop", "marketing", "", "new@example.com")
	if d.Entry.Reason != Inactive || d.Entry.Kind != PerSender {
		t.Fatalf("after 5: %+v", d)
	}
	if d := mustCheck(t, p, "shop", "transactional", "", "new@example.com"); d.Suppressed {
		t.Errorf("inactivity keeps transactional mail: %+v", d)
	}
	rep, _ := p.Report("shop", "", time.Time{})
	if rep.NonEngagers[5] != 1 || rep.NonEngagers[10] != 0 {
		t.Errorf("non-engagers %v", rep.NonEngagers)
	}
	p.Engage([]Outcome{{Sender: "shop", Address: "NEW@example.com", Reason: "clicked"}})
	if d := mustCheck(t, p, "shop", "marketing", "", "new@example.com"); d.Suppressed {
		t.Errorf("engagement does not lift inactivity: %+v", d)
	}
	if err := p.Engage([]Outcome{{Sender: "shop", Address: "a@b.c", Reason: "liked"}}); err == nil {
		t.Error("unknown engagement accepted")
	}
}

func TestSpamTrap(t *testing.T) {
	p, _ := newPolicy(t, func(c *Config) { c.SpamTraps = []string{"trap@example.com", "@traps.example.net"} })
	for _, a := range []string{"Trap@example.com", "any@TRAPS.example.net"} {
		d := mustCheck(t, p, "shop", "transactional", "", a)
		if !d.Suppressed || d.Entry.Reason != SpamTrap || strings.Contains(strings.ToLower(d.Text()), "trap") {
			t.Errorf("%s: %+v %q", a, d, d.Text())
		}
	}
	p.Sync()
	rep, _ := p.Report("shop", "", time.Time{})
	if rep.Total.SpamTrapHits != 2 {
		t.Errorf("hits %d", rep.Total.SpamTrapHits)
	}
}

func TestDropOption(t *testing.T) {
	p, _ := newPolicy(t, func(c *Config) { c.Senders = map[string]SenderRules{"app": {DropSuppressed: true}} })
	p.Unsubscribe(Recipient{Sender: "app", Address: "a@example.com"}, "admin")
	if d := mustCheck(t, p, "app", "marketing", "", "a@example.com"); !d.Suppressed || !d.Drop || d.Entry.Source != "admin" {
		t.Errorf("%+v", d)
	}
}

func TestRemoveNeedsForce(t *testing.T) {
	p, ev := newPolicy(t, nil)
	p.Unsubscribe(Recipient{Sender: "shop", List: "l", Address: "a@example.com"}, "one-click")
	p.Add([]Entry{{Address: "a@example.com", Reason: Manual}})
	if _, err := p.Remove("a@example.com", Scope{}, "", false, "admin"); !errors.Is(err, ErrNeedsForce) {
		t.Fatalf("err %v", err)
	}
	if rm, err := p.Remove("a@example.com", Scope{}, Manual, false, "admin"); err != nil || len(rm) != 1 {
		t.Fatalf("manual: %v %v", rm, err)
	}
	if rm, err := p.Remove("a@example.com", Scope{Kind: PerList}, "", true, "admin"); err != nil || len(rm) != 1 {
		t.Fatalf("forced: %v %v", rm, err)
	}
	if es, _ := p.Entries("a@example.com"); len(es) != 0 {
		t.Errorf("left %v", es)
	}
	n := 0
	for _, k := range ev.kinds() {
		if k == KindRemoved {
			n++
		}
	}
	if n != 2 {
		t.Errorf("removal events %d: %v", n, ev.kinds())
	}
}

func TestImportAllOrNothing(t *testing.T) {
	p, _ := newPolicy(t, nil)
	file := "address,reason\nA@example.com,manual\nnot-an-address,manual\nb@example.com,complaint\nc@example.com,bogus\n"
	_, err := p.Import(strings.NewReader(file), ImportOptions{Format: CSV, Default: Entry{Scope: Scope{Sender: "shop"}}})
	ie := (*ImportError)(nil)
	if !errors.As(err, &ie) || len(ie.Result.Invalid) != 2 || ie.Result.Invalid[0].Line != 3 || ie.Result.Invalid[1].Line != 5 {
		t.Fatalf("err %v", err)
	}
	if es, _, _ := p.List(Filter{}, "", 10); len(es) != 0 {
		t.Fatalf("partial import: %v", es)
	}
	res, err := p.Import(strings.NewReader(file), ImportOptions{Format: CSV, SkipInvalid: true, Default: Entry{Scope: Scope{Sender: "shop"}}})
	if err != nil || res.Added != 2 {
		t.Fatalf("%+v %v", res, err)
	}
	if d := mustCheck(t, p, "shop", "transactional", "", "a@EXAMPLE.com"); d.Entry.Reason != Manual || d.Entry.Kind != PerSender {
		t.Errorf("%+v", d)
	}
	// A read error half-way commits nothing.
	r := &failingReader{data: "address\nx@example.com\n", err: errors.New("connection reset")}
	if _, err := p.Import(r, ImportOptions{Format: CSV}); err == nil {
		t.Fatal("no error")
	}
	if es, _ := p.Entries("x@example.com"); len(es) != 0 {
		t.Errorf("partial: %v", es)
	}
	// JSON lines, and the export of what was imported.
	res, err = p.Import(strings.NewReader(`{"address":"j@example.com","scope":"list","sender":"shop","list":"l","reason":"unsubscribed"}`+"\n"), ImportOptions{Format: JSONLines})
	if err != nil || res.Added != 1 {
		t.Fatalf("%+v %v", res, err)
	}
	var out bytes.Buffer
	if n, err := p.Export(&out, CSV, Filter{Sender: "shop"}); err != nil || n != 3 {
		t.Fatalf("export %d %v", n, err)
	}
	if !strings.HasPrefix(out.String(), "address,scope,sender,list,reason,source,time\na@example.com,sender,shop,,manual,import,") {
		t.Errorf("export:\n%s", out.String())
	}
	again, _ := newPolicy(t, nil)
	if res, err := again.Import(&out, ImportOptions{Format: CSV}); err != nil || res.Added != 3 {
		t.Fatalf("re-import %+v %v", res, err)
	}
}

type failingReader struct {
	data string
	err  error
}

func (f *failingReader) Read(b []byte) (int, error) {
	if f.data == "" {
		return 0, f.err
	}
	n := copy(b, f.data)
	f.data = f.data[n:]
	return n, nil
}

func TestReport(t *testing.T) {
	p, _ := newPolicy(t, nil)
	p.Observe(Outcome{Kind: KindReceived, MsgID: "m1", Sender: "shop", Stream: "marketing", Campaign: "spring"})
	for i := range 97 {
		p.Observe(Outcome{Kind: KindDelivered, Sender: "shop", Address: fmt.Sprint(i, "@example.com"), Stream: "marketing", Campaign: "spring", MsgID: "m1"})
	}
	p.Observe(Outcome{Kind: KindBounced, MsgID: "m1", Address: "x@example.com", Class: "hard", Reason: "userunknown"}) // asynchronous: campaign from m1
	p.Observe(Outcome{Kind: KindBounced, MsgID: "m1", Address: "y@example.com", Class: "soft", Reason: "mailboxfull"})
	p.Observe(Outcome{Kind: KindComplained, MsgID: "m1", Address: "1@example.com"})
	p.Sync()
	p.Unsubscribe(Recipient{Sender: "shop", List: "news", Address: "2@example.com", MsgID: "m1"}, "one-click")
	p.Observe(Outcome{Kind: KindDelivered, Sender: "shop", Address: "z@example.com", Stream: "marketing", Campaign: "autumn"})
	p.Sync()
	rep, err := p.Report("shop", "", time.Time{})
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Campaigns) != 2 {
		t.Fatalf("%+v", rep.Campaigns)
	}
	s := rep.Campaigns[1]
	if s.Campaign != "spring" || s.Delivered != 97 || s.HardBounces != 1 || s.SoftBounces != 1 || s.ConfirmedBounces != 1 ||
		s.Complaints != 1 || s.Unsubscribes != 1 || !s.Flagged || s.BounceRate != 2.0/99 {
		t.Errorf("spring %+v", s)
	}
	if rep.Campaigns[0].Flagged {
		t.Errorf("autumn flagged")
	}
	var rm []Removal
	p.ToRemove("shop", 0, func(r Removal) error { rm = append(rm, r); return nil })
	if len(rm) != 2 {
		t.Errorf("to remove %+v", rm)
	}
	if rep, _ := p.Report("shop", "spring", t0.Add(24*time.Hour)); len(rep.Campaigns) != 0 {
		t.Errorf("since: %+v", rep.Campaigns)
	}
}

func TestTokens(t *testing.T) {
	tk := &Tokens{Keys: []Key{{ID: 7, Secret: bytes.Repeat([]byte{1}, 32)}}, MaxAge: 24 * time.Hour}
	r := Recipient{Sender: "shop", List: "spring-news", Address: "john@example.com", MsgID: "0123456789abcdef"}
	tok := tk.Seal(r, t0)
	if strings.Contains(tok, "john") || strings.ContainsAny(tok, "+/=") {
		t.Errorf("token %s", tok)
	}
	if got, err := tk.Open(tok, t0.Add(time.Hour)); err != nil || got != r {
		t.Fatalf("%+v %v", got, err)
	}
	if _, err := tk.Open(tok, t0.Add(25*time.Hour)); !errors.Is(err, ErrExpiredToken) {
		t.Errorf("expired: %v", err)
	}
	raw := []byte(tok)
	for i := 1; i < len(raw); i += 7 {
		bad := bytes.Clone(raw)
		bad[i] ^= 1
		if bad[i] == raw[i] || !strings.Contains("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_", string(bad[i])) {
			continue
		}
		if _, err := tk.Open(string(bad), t0); err == nil {
			t.Errorf("tampered at %d accepted", i)
		}
	}
	for _, n := range []int{0, 5, 40, len(tok) - 1} {
		if _, err := tk.Open(tok[:n], t0); err == nil {
			t.Errorf("truncated to %d accepted", n)
		}
	}
	other := &Tokens{Keys: []Key{{ID: 8, Secret: bytes.Repeat([]byte{2}, 32)}}}
	if _, err := other.Open(tok, t0); !errors.Is(err, ErrUnknownKey) {
		t.Errorf("unknown key: %v", err)
	}
	forged := &Tokens{Keys: []Key{{ID: 7, Secret: bytes.Repeat([]byte{2}, 32)}}}
	if _, err := tk.Open(forged.Seal(r, t0), t0); !errors.Is(err, ErrBadToken) {
		t.Errorf("forged: %v", err)
	}
}

func TestKeyRotation(t *testing.T) {
	path := t.TempDir() + "/link-keys"
	write := func(p string, d []byte) error { return osWriteFile(p, d) }
	keys, err := LoadKeys(path, true, write)
	if err != nil || len(keys) != 1 {
		t.Fatal(keys, err)
	}
	old := &Tokens{Keys: keys}
	tok := old.Seal(Recipient{Sender: "s", Address: "a@b.c"}, t0)
	keys, err = RotateKeys(path, 3, write)
	if err != nil || len(keys) != 2 || keys[0].ID != 2 {
		t.Fatal(keys, err)
	}
	loaded, err := LoadKeys(path, false, nil)
	if err != nil || len(loaded) != 2 {
		t.Fatal(loaded, err)
	}
	cur := &Tokens{Keys: loaded}
	if _, err := cur.Open(tok, t0); err != nil {
		t.Errorf("old link after rotation: %v", err)
	}
	if k := cur.Seal(Recipient{}, t0); k[:2] == tok[:2] {
		t.Error("new links sealed with the old key")
	}
	if _, err := parseKeys("f", []byte("1 abcd\n")); err == nil || !strings.Contains(err.Error(), "f:1:") {
		t.Errorf("bad key file: %v", err)
	}
}

func TestIndexSurvivesRestart(t *testing.T) {
	db := openDB(t)
	store, _ := NewPebbleStore(db)
	p, _ := New(Config{Store: store})
	p.Unsubscribe(Recipient{Sender: "shop", List: "l", Address: "a@example.com"}, "one-click")
	p.Add([]Entry{{Address: "a@example.com", Reason: Manual}, {Address: "b@example.com", Scope: Scope{Sender: "shop"}}})
	p.Remove("b@example.com", Scope{}, "", false, "admin")
	p.Close()
	store, err := NewPebbleStore(db)
	if err != nil {
		t.Fatal(err)
	}
	p, _ = New(Config{Store: store})
	defer p.Close()
	if d := mustCheck(t, p, "shop", "marketing", "l", "a@example.com"); d.Entry.Reason != Manual {
		t.Errorf("a: %+v", d)
	}
	if d := mustCheck(t, p, "shop", "marketing", "", "b@example.com"); d.Suppressed {
		t.Errorf("b: %+v", d)
	}
	if c := p.Counts(); c[PerList][Unsubscribed] != 1 || c[Global][Manual] != 1 || c[PerSender][Manual] != 0 {
		t.Errorf("counts %v", c)
	}
}

// Held gathers what policy holds about an address: consent, entries, the
// run of hard bounces and the engagement with the senders asked about.
func TestHeld(t *testing.T) {
	p, _ := newPolicy(t, nil)
	p.Observe(bounced("ann@example.com", "hard", "rejected", "m1"))
	p.Observe(Outcome{Kind: KindDelivered, Sender: "shop", Address: "ann@example.com", Stream: "marketing"})
	p.Observe(bounced("ann@example.com", "hard", "rejected", "m2"))
	p.Sync()
	p.Unsubscribe(Recipient{Sender: "shop", List: "news", Address: "ann@example.com"}, "one-click")
	if _, _, err := p.RecordConsent(ConsentInput{Sender: "shop", List: "offers", Address: "Ann@example.com", Time: t0, Source: "form", Text: "Yes."}); err != nil {
		t.Fatal(err)
	}
	h, err := p.Held("ANN@example.com", []string{"shop", "bank"})
	if err != nil {
		t.Fatal(err)
	}
	if h.Address != "ann@example.com" || len(h.Consent) != 1 || h.Consent[0].Proof.Text != "Yes." || len(h.Suppressions) != 1 ||
		h.HardBounces.HardInARow != 1 || len(h.Engagement) != 1 || h.Engagement[0].Sender != "shop" || h.Engagement[0].Delivered != 1 {
		t.Errorf("held %+v", h)
	}
	if h, err := p.Held("nobody@example.com", nil); err != nil || len(h.Consent)+len(h.Suppressions)+len(h.Engagement) != 0 {
		t.Errorf("nobody: %+v %v", h, err)
	}
	if _, err := p.Held("not an address", nil); err == nil {
		t.Error("a bad address was looked up")
	}
}
