package httpapi

import (
	"bytes"
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"drover/policy"
	"drover/testkit/testpolicy"
)

// hygieneNow is the clock of the list hygiene tests.
var hygieneNow = time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)

// policyEvents records what policy tells.
type policyEvents struct {
	mu sync.Mutex
	l  []policy.Event
}

func (e *policyEvents) add(ev policy.Event) { e.mu.Lock(); e.l = append(e.l, ev); e.mu.Unlock() }

func (e *policyEvents) of(kind string) []policy.Event {
	e.mu.Lock()
	defer e.mu.Unlock()
	var out []policy.Event
	for _, ev := range e.l {
		if ev.Kind == kind {
			out = append(out, ev)
		}
	}
	return out
}

// newHygiene is the admin API over a real policy on a fresh Pebble
// database: sender shop sunsets after 5 messages, trap@traps.example is
// a spam trap.
func newHygiene(t *testing.T) (http.Handler, *policy.Policy, *policyEvents) {
	t.Helper()
	evs := &policyEvents{}
	now := func() time.Time { return hygieneNow }
	p := testpolicy.New(t, policy.Config{OnEvent: evs.add, Now: now,
		Senders:   map[string]policy.SenderRules{"shop": {SunsetAfter: 5}},
		SpamTraps: []string{"trap@traps.example"}})
	h := Handler(Config{Gatherer: prometheus.NewRegistry(), Queue: &fakeQueue{}, AdminToken: testToken, Policy: p, Now: now})
	return h, p, evs
}

// call sends a request as the CLI does, with the body's Content-Type
// (application/json by default on anything but GET).
func call(t *testing.T, h http.Handler, method, path, contentType, body string) (int, string) {
	t.Helper()
	hdr := http.Header{"Authorization": {"Bearer " + testToken}}
	if contentType == "" && method != "GET" {
		contentType = "application/json"
	}
	if contentType != "" {
		hdr.Set("Content-Type", contentType)
	}
	return send(t, h, method, path, "127.0.0.1:8025", hdr, body, loopback)
}

// expect checks an answer's status and that its body holds want.
func expect(t *testing.T, what string, code int, body string, wantCode int, want ...string) {
	t.Helper()
	if code != wantCode {
		t.Errorf("%s: %d %s, want %d", what, code, body, wantCode)
		return
	}
	for _, w := range want {
		if !strings.Contains(body, w) {
			t.Errorf("%s: %s lacks %q", what, body, w)
		}
	}
	if code >= 400 {
		var e struct{ Error string }
		if json.Unmarshal([]byte(body), &e) != nil || e.Error == "" {
			t.Errorf("%s: the error is not {\"error\": ...}: %s", what, body)
		}
	}
}

// addresses lists the addresses of the entries of an answer.
func addresses(t *testing.T, body string) []string {
	t.Helper()
	var resp struct {
		Entries []policy.Entry `json:"entries"`
	}
	if err := json.Unmarshal([]byte(body), &resp); err != nil {
		t.Fatalf("%s: %v", body, err)
	}
	var out []string
	for _, e := range resp.Entries {
		out = append(out, e.Address)
	}
	return out
}

// Without a policy, every list hygiene endpoint says so.
func TestSuppressionsNotEnabled(t *testing.T) {
	var nilPolicy *policy.Policy
	for _, cfg := range []Config{{}, {Policy: nilPolicy}} {
		cfg.Gatherer, cfg.Queue, cfg.AdminToken = prometheus.NewRegistry(), &fakeQueue{}, testToken
		h := Handler(cfg)
		for _, c := range [][2]string{{"GET", "/v1/suppressions"}, {"GET", "/v1/suppressions/a@b.example"},
			{"POST", "/v1/suppressions"}, {"DELETE", "/v1/suppressions/a@b.example"}, {"POST", "/v1/suppressions/import"},
			{"GET", "/v1/suppressions/export"}, {"POST", "/v1/suppressions/check"}, {"POST", "/v1/events"},
			{"GET", "/v1/hygiene/report?sender=shop"}, {"GET", "/v1/hygiene/export?sender=shop"}} {
			code, body := call(t, h, c[0], c[1], "", "{}")
			expect(t, c[0]+" "+c[1], code, body, 404, "list hygiene is not enabled")
		}
	}
}

// An admin adds entries (one, or several at once), lists them a page at
// a time, shows one address, and removes them: an unsubscribe only with
// force. A bad entry names itself and adds nothing.
func TestSuppressionsAddListShowRemove(t *testing.T) {
	h, _, evs := newHygiene(t)

	code, body := call(t, h, "POST", "/v1/suppressions", "", `{"address":"John@Example.COM","sender":"shop","reason":"unsubscribed"}`)
	expect(t, "add one", code, body, 200, `"added": 1`, `"address": "john@example.com"`, `"scope": "sender"`, `"source": "admin"`)
	code, body = call(t, h, "POST", "/v1/suppressions", "", `{"entries":[
		{"address":"x@example.com"},
		{"address":"y@example.com","sender":"shop","list":"news","reason":"hard-bounce","source":"crm"},
		{"address":"john@example.com","scope":"sender","sender":"shop","reason":"unsubscribed"}]}`)
	expect(t, "add three", code, body, 200, `"added": 2`, `"duplicates": 1`, `"scope": "global"`, `"reason": "manual"`, `"source": "crm"`)

	for _, c := range []struct{ body, want string }{
		{`{"entries":[{"address":"ok@example.com"},{"address":"not an address"}]}`, `entry 2 (\"not an address\")`},
		{`{"entries":[{"address":"ok@example.com"},{"address":"z@example.com","scope":"global","sender":"shop"}]}`, "a global entry names no sender"},
		{`{"entries":[{"address":"ok@example.com","list":"news"}]}`, "a list entry names a sender and a list"},
		{`{"entries":[{"address":"ok@example.com","reason":"tired"}]}`, `reason \"tired\"`},
		{`{"entries":[{"address":"ok@example.com","scope":"planet"}]}`, `scope \"planet\"`},
		{`{"address":"ok@example.com","entries":[{"address":"z@example.com"}]}`, "not both"},
		{`{"adress":"ok@example.com"}`, "unknown field"},
		{`{"entries":[]}`, "no entries"},
	} {
		code, body := call(t, h, "POST", "/v1/suppressions", "", c.body)
		expect(t, "add "+c.body, code, body, 400, c.want)
	}
	code, body = call(t, h, "GET", "/v1/suppressions/ok@example.com", "", "")
	expect(t, "show an address a bad call named", code, body, 404, "ok@example.com is not suppressed")

	code, body = call(t, h, "GET", "/v1/suppressions", "", "")
	expect(t, "list", code, body, 200)
	if got := addresses(t, body); !slices.Equal(got, []string{"john@example.com", "x@example.com", "y@example.com"}) || strings.Contains(body, `"next"`) {
		t.Errorf("list: %v\n%s", got, body)
	}
	// A page at a time.
	var pages [][]string
	for from := ""; ; {
		code, body := call(t, h, "GET", "/v1/suppressions?limit=1&from="+from, "", "")
		expect(t, "page", code, body, 200)
		pages = append(pages, addresses(t, body))
		var resp struct{ Next string }
		json.Unmarshal([]byte(body), &resp)
		if from = resp.Next; from == "" || len(pages) > 5 {
			break
		}
	}
	if fmt.Sprint(pages) != "[[john@example.com] [x@example.com] [y@example.com]]" {
		t.Errorf("pages %v", pages)
	}
	code, body = call(t, h, "GET", "/v1/suppressions?sender=shop&scope=list", "", "")
	if expect(t, "filtered", code, body, 200); !slices.Equal(addresses(t, body), []string{"y@example.com"}) {
		t.Errorf("filtered list: %s", body)
	}
	for _, q := range []string{"reason=tired", "scope=planet", "limit=0", "limit=1001", "sendr=shop"} {
		code, body := call(t, h, "GET", "/v1/suppressions?"+q, "", "")
		expect(t, "list "+q, code, body, 400)
	}

	code, body = call(t, h, "GET", "/v1/suppressions/JOHN@example.com", "", "")
	expect(t, "show", code, body, 200, `"address": "john@example.com"`, `"reason": "unsubscribed"`)
	code, body = call(t, h, "GET", "/v1/suppressions/nobody@example.com", "", "")
	expect(t, "show none", code, body, 404, "not suppressed")
	code, body = call(t, h, "GET", "/v1/suppressions/nobody", "", "")
	expect(t, "show a bad address", code, body, 400, "nobody")

	// An unsubscribe needs force.
	code, body = call(t, h, "DELETE", "/v1/suppressions/john@example.com", "", "")
	expect(t, "remove an unsubscribe", code, body, 409, policy.ErrNeedsForce.Error())
	if code, _ := call(t, h, "GET", "/v1/suppressions/john@example.com", "", ""); code != 200 {
		t.Errorf("a refused removal removed the entry")
	}
	code, body = call(t, h, "DELETE", "/v1/suppressions/john@example.com?sender=shop&force=true", "", "")
	expect(t, "remove with force", code, body, 200, `"removed": [`, `"reason": "unsubscribed"`)
	if rm := evs.of(policy.KindRemoved); len(rm) != 1 || rm[0].Detail != "admin" || rm[0].Entry.Address != "john@example.com" {
		t.Errorf("removal events %+v", rm)
	}
	code, body = call(t, h, "DELETE", "/v1/suppressions/john@example.com?force=true", "", "")
	expect(t, "remove again", code, body, 404, "no suppression of john@example.com matches")
	code, body = call(t, h, "DELETE", "/v1/suppressions/y@example.com?reason=manual", "", "")
	expect(t, "remove another reason", code, body, 404)
	code, body = call(t, h, "DELETE", "/v1/suppressions/x@example.com", "", "")
	expect(t, "remove a manual entry", code, body, 200, `"x@example.com"`)
	for _, q := range []string{"?scope=planet", "?force=maybe", "?why=1"} {
		code, body := call(t, h, "DELETE", "/v1/suppressions/y@example.com"+q, "", "")
		expect(t, "remove "+q, code, body, 400)
	}
	code, body = call(t, h, "DELETE", "/v1/suppressions/y@example.com", "", "")
	expect(t, "remove y", code, body, 200)

	// An address with a slash goes escaped in the path.
	code, body = call(t, h, "POST", "/v1/suppressions", "", `{"address":"a/b@example.com"}`)
	expect(t, "add a/b", code, body, 200, `"added": 1`)
	code, body = call(t, h, "GET", "/v1/suppressions/a%2Fb@example.com", "", "")
	expect(t, "show a/b", code, body, 200, `"address": "a/b@example.com"`)
}

const importCSV = "address,reason,sender\n" +
	"one@example.com,,\n" +
	"not an address,,\n" +
	"two@example.com,unsubscribed,shop\n" +
	"three@example.com,tired,\n" +
	"Four@Example.com,hard-bounce,\n"

// An import with invalid lines is refused whole, naming each line; with
// skip_invalid the valid lines go in. Lines take the defaults of the
// query and the source import:NAME.
func TestSuppressionsImport(t *testing.T) {
	h, _, _ := newHygiene(t)

	code, body := call(t, h, "POST", "/v1/suppressions/import?source=list.csv", "text/csv", importCSV)
	expect(t, "import with invalid lines", code, body, 422, `"committed": false`, `"line": 3`, `"line": 5`, "invalid line")
	var refusal struct {
		Error     string
		Invalid   []policy.LineError
		Committed bool
	}
	if err := json.Unmarshal([]byte(body), &refusal); err != nil || len(refusal.Invalid) != 2 || refusal.Invalid[0].Line != 3 || refusal.Invalid[1].Line != 5 {
		t.Errorf("refusal %+v %v", refusal, err)
	}
	code, body = call(t, h, "GET", "/v1/suppressions", "", "")
	if expect(t, "after a refused import", code, body, 200); len(addresses(t, body)) != 0 {
		t.Errorf("a refused import committed: %s", body)
	}

	code, body = call(t, h, "POST", "/v1/suppressions/import?source=list.csv&skip_invalid=true", "text/csv; charset=utf-8", importCSV)
	expect(t, "import skipping", code, body, 200, `"added": 3`, `"committed": true`, `"line": 3`)
	var res policy.ImportResult
	json.Unmarshal([]byte(body), &res)
	if res.Read != 5 || res.Added != 3 || res.Duplicates != 0 || len(res.Invalid) != 2 {
		t.Errorf("result %+v", res)
	}
	code, body = call(t, h, "GET", "/v1/suppressions/four@example.com", "", "")
	expect(t, "imported entry", code, body, 200, `"source": "import:list.csv"`, `"reason": "hard-bounce"`, `"scope": "global"`)
	code, body = call(t, h, "GET", "/v1/suppressions/two@example.com", "", "")
	expect(t, "imported sender entry", code, body, 200, `"scope": "sender"`, `"sender": "shop"`)

	// JSON lines, with the defaults of the query.
	jsonl := `{"address":"five@example.com"}` + "\n\n" + `{"address":"six@example.com","reason":"complaint"}` + "\n" + `{"address":"one@example.com","scope":"global","sender":"","list":"","reason":"manual"}` + "\n"
	code, body = call(t, h, "POST", "/v1/suppressions/import?format=jsonl&sender=shop&list=news&reason=unsubscribed&source=crm.jsonl", "application/x-ndjson", jsonl)
	expect(t, "import jsonl", code, body, 200, `"read": 3`, `"added": 2`, `"duplicates": 1`)
	code, body = call(t, h, "GET", "/v1/suppressions/five@example.com", "", "")
	expect(t, "jsonl entry", code, body, 200, `"scope": "list"`, `"list": "news"`, `"reason": "unsubscribed"`, `"source": "import:crm.jsonl"`)

	for _, c := range []struct {
		query, ctype, body string
		code               int
		want               string
	}{
		{"?format=csv", "application/x-ndjson", jsonl, 400, "format=csv"},
		{"?format=xml", "text/csv", importCSV, 400, "unknown format"},
		{"?scope=planet", "text/csv", importCSV, 400, "planet"},
		{"?reason=tired", "text/csv", importCSV, 400, "tired"},
		{"?skip_invalid=perhaps", "text/csv", importCSV, 400, "skip_invalid"},
		{"?file=x", "text/csv", importCSV, 400, "unknown parameter"},
		{"", "application/json", "address\nseven@example.com\n", 422, "not a JSON entry"},
		{"", "text/csv", "mail,name\nseven@example.com,Seven\n", 422, "address"},
		{"", "text/plain", importCSV, 415, "text/csv"},
	} {
		code, body := call(t, h, "POST", "/v1/suppressions/import"+c.query, c.ctype, c.body)
		expect(t, "import "+c.query+" "+c.ctype, code, body, c.code, c.want)
	}
	if code, _ := call(t, h, "GET", "/v1/suppressions/seven@example.com", "", ""); code != 404 {
		t.Errorf("a refused import added seven@")
	}
}

// What export writes, import reads back the same: CSV and JSON lines,
// filters applied.
func TestSuppressionsExportRoundTrip(t *testing.T) {
	h, _, _ := newHygiene(t)
	code, body := call(t, h, "POST", "/v1/suppressions", "", `{"entries":[
		{"address":"a@example.com"},
		{"address":"b@example.com","sender":"shop","reason":"complaint","source":"complained:x"},
		{"address":"c@example.com","sender":"shop","list":"news","reason":"unsubscribed"},
		{"address":"d@example.com","sender":"other","reason":"inactive"}]}`)
	expect(t, "add", code, body, 200, `"added": 4`)

	export := func(h http.Handler, query string) (string, http.Header) {
		t.Helper()
		req := httptest.NewRequest("GET", "/v1/suppressions/export"+query, nil)
		req.Host = "127.0.0.1"
		req.Header.Set("Authorization", "Bearer "+testToken)
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if rec.Code != 200 {
			t.Fatalf("export %s: %d %s", query, rec.Code, rec.Body)
		}
		return rec.Body.String(), rec.Header()
	}
	for _, c := range []struct{ format, ctype, importType string }{
		{"csv", "text/csv", "text/csv"},
		{"jsonl", "application/x-ndjson", "application/x-ndjson"},
	} {
		file, hdr := export(h, "?format="+c.format)
		if !strings.HasPrefix(hdr.Get("Content-Type"), c.ctype) || !strings.Contains(hdr.Get("Content-Disposition"), "suppressions."+c.format) {
			t.Errorf("%s export headers %v", c.format, hdr)
		}
		if n := strings.Count(file, "@example.com"); n != 4 {
			t.Errorf("%s export has %d addresses:\n%s", c.format, n, file)
		}
		h2, _, _ := newHygiene(t)
		code, body := call(t, h2, "POST", "/v1/suppressions/import", c.importType, file)
		expect(t, "import the "+c.format+" export", code, body, 200, `"added": 4`, `"committed": true`)
		if again, _ := export(h2, "?format="+c.format); again != file {
			t.Errorf("%s round trip differs:\n%s\nthen\n%s", c.format, file, again)
		}
	}
	file, _ := export(h, "?sender=shop")
	rows, err := csv.NewReader(strings.NewReader(file)).ReadAll()
	if err != nil || len(rows) != 3 || strings.Join(rows[0], ",") != "address,scope,sender,list,reason,source,time" || rows[1][0] != "b@example.com" || rows[1][5] != "complained:x" {
		t.Errorf("export of shop: %q %v", rows, err)
	}
	if file, _ := export(h, "?format=jsonl&reason=spam-trap"); file != "" {
		t.Errorf("empty export: %q", file)
	}
	for _, q := range []string{"?format=xml", "?reason=tired", "?to=file"} {
		code, body := call(t, h, "GET", "/v1/suppressions/export"+q, "", "")
		expect(t, "export "+q, code, body, 400)
	}
}

// A check tells which addresses a message would be refused to, and why,
// as the sender (and list, and stream) asking would see it; without a
// sender only the global entries count.
func TestSuppressionsCheck(t *testing.T) {
	h, _, _ := newHygiene(t)
	code, body := call(t, h, "POST", "/v1/suppressions", "", `{"entries":[
		{"address":"gone@example.com","reason":"confirmed-bounce"},
		{"address":"unsub@example.com","sender":"shop","reason":"unsubscribed"},
		{"address":"news@example.com","sender":"shop","list":"news","reason":"unsubscribed"},
		{"address":"other@example.com","sender":"other","reason":"complaint"}]}`)
	expect(t, "add", code, body, 200, `"added": 4`)
	all := `"addresses":["Gone@example.com","unsub@example.com","news@example.com","other@example.com","fine@example.com","trap@traps.example"]`
	check := func(req string) map[string]string {
		t.Helper()
		code, body := call(t, h, "POST", "/v1/suppressions/check", "", req)
		expect(t, "check "+req, code, body, 200)
		var resp struct{ Suppressed map[string]string }
		if err := json.Unmarshal([]byte(body), &resp); err != nil || resp.Suppressed == nil {
			t.Fatalf("check: %s %v", body, err)
		}
		return resp.Suppressed
	}
	keys := func(m map[string]string) []string {
		var k []string
		for a := range m {
			k = append(k, a)
		}
		slices.Sort(k)
		return k
	}
	got := check(`{` + all + `}`)
	if k := keys(got); !slices.Equal(k, []string{"Gone@example.com", "trap@traps.example"}) {
		t.Errorf("check without a sender: %v", got)
	}
	if !strings.Contains(got["Gone@example.com"], "confirmed bounce") || got["trap@traps.example"] != "Recipient address is refused by policy" {
		t.Errorf("check's words: %v", got)
	}
	got = check(`{"sender":"shop",` + all + `}`)
	if k := keys(got); !slices.Equal(k, []string{"Gone@example.com", "trap@traps.example", "unsub@example.com"}) {
		t.Errorf("check as shop: %v", got)
	}
	if !strings.Contains(got["unsub@example.com"], "unsubscribed from all mail of sender shop") {
		t.Errorf("check's words: %v", got)
	}
	got = check(`{"sender":"shop","list":"news",` + all + `}`)
	if k := keys(got); !slices.Equal(k, []string{"Gone@example.com", "news@example.com", "trap@traps.example", "unsub@example.com"}) {
		t.Errorf("check as shop's news: %v", got)
	}
	got = check(`{"sender":"shop","list":"news","stream":"transactional",` + all + `}`)
	if k := keys(got); !slices.Equal(k, []string{"Gone@example.com", "trap@traps.example"}) {
		t.Errorf("transactional check: %v", got)
	}
	if got := check(`{"addresses":[]}`); len(got) != 0 {
		t.Errorf("empty check: %v", got)
	}

	many := make([]string, MaxCheckAddresses+1)
	for i := range many {
		many[i] = fmt.Sprintf("r%d@example.com", i)
	}
	tooMany, _ := json.Marshal(map[string]any{"addresses": many})
	for _, c := range []struct{ body, want string }{
		{string(tooMany), "at most 10000"},
		{`{"addresses":["fine@example.com","bad address"]}`, `addresses[1]`},
		{`{"list":"news","addresses":["fine@example.com"]}`, "give the sender too"},
		{`{"adresses":["fine@example.com"]}`, "unknown field"},
	} {
		code, body := call(t, h, "POST", "/v1/suppressions/check", "", c.body)
		expect(t, "check", code, body, 400, c.want)
	}
}

// Engagement reported by the sender's tracking resets a recipient's
// count of messages without one and lifts its sunset; a malformed line
// applies nothing, naming its line.
func TestEventsResetSunset(t *testing.T) {
	h, p, _ := newHygiene(t)
	for _, addr := range []string{"quiet@example.com", "asleep@example.com"} {
		for i := 0; i < 5; i++ {
			p.Observe(policy.Outcome{Kind: policy.KindDelivered, Time: hygieneNow, Sender: "shop", Address: addr, Stream: "marketing", Campaign: "spring"})
		}
	}
	p.Sync()
	for _, addr := range []string{"quiet@example.com", "asleep@example.com"} {
		code, body := call(t, h, "GET", "/v1/suppressions/"+addr, "", "")
		expect(t, "sunset", code, body, 200, `"reason": "inactive"`, `"source": "sunset:5"`)
	}

	for _, c := range []struct {
		ctype, body string
		code        int
		want        string
	}{
		{"", `{"event":"opened","sender":"shop","rcpt":"asleep@example.com"}` + "\n" + `{"event":"bought","sender":"shop","rcpt":"quiet@example.com"}`, 400, `line 2: event \"bought\"`},
		{"", "\n" + `{"event":"opened","rcpt":"quiet@example.com"}`, 400, "line 2: sender is required"},
		{"", `{"event":"clicked","sender":"shop","rcpt":"nobody"}`, 400, "line 1: rcpt"},
		{"", `{"event":"clicked","sender":"shop","rcpt":"quiet@example.com","time":"yesterday"}`, 400, "RFC 3339"},
		{"", `{"event":"clicked","sender":"shop","rcpt":"quiet@example.com","id":"?"}`, 400, "not a message ID"},
		{"", `{"event":"clicked","sender":"shop","recipient":"quiet@example.com"}`, 400, "unknown field"},
		{"", `not json`, 400, "line 1: not a JSON event"},
		{"text/csv", `{"event":"opened","sender":"shop","rcpt":"quiet@example.com"}`, 415, "JSON lines"},
	} {
		code, body := call(t, h, "POST", "/v1/events", c.ctype, c.body)
		expect(t, "events "+c.body, code, body, c.code, c.want)
	}
	code, body := call(t, h, "GET", "/v1/suppressions/asleep@example.com", "", "")
	expect(t, "after refused events", code, body, 200, `"reason": "inactive"`)

	events := `{"event":"opened","time":"2026-12-01T11:00:00Z","sender":"shop","rcpt":"Quiet@Example.com","campaign":"spring"}` + "\n" +
		`{"event":"clicked","sender":"other","rcpt":"asleep@example.com"}` + "\n"
	code, body = call(t, h, "POST", "/v1/events", "application/x-ndjson", events)
	expect(t, "events", code, body, 200, `"accepted": 2`)
	code, body = call(t, h, "GET", "/v1/suppressions/quiet@example.com", "", "")
	expect(t, "sunset lifted", code, body, 404)
	code, body = call(t, h, "GET", "/v1/suppressions/asleep@example.com", "", "")
	expect(t, "another sender's engagement", code, body, 200, `"reason": "inactive"`)
	code, body = call(t, h, "GET", "/v1/hygiene/report?sender=shop", "", "")
	expect(t, "report", code, body, 200, `"5": 1`, `"recipients": 2`)
}

// A sender's report: per campaign its outcomes and bounce rate, flagged
// above 2 %, from a day or a duration back; and the addresses to take
// off its list, as CSV.
func TestHygieneReportAndExport(t *testing.T) {
	h, p, _ := newHygiene(t)
	out := func(kind, addr, campaign, class string) {
		p.Observe(policy.Outcome{Kind: kind, Time: hygieneNow, Sender: "shop", Address: addr, Stream: "marketing", Campaign: campaign, Class: class, Reason: "other"})
	}
	for i := 0; i < 97; i++ {
		out(policy.KindDelivered, fmt.Sprintf("r%d@example.com", i), "spring", "")
	}
	out(policy.KindBounced, "b1@example.com", "spring", "hard")
	out(policy.KindBounced, "b2@example.com", "spring", "soft")
	out(policy.KindBounced, "b3@example.com", "spring", "soft")
	for i := 0; i < 5; i++ {
		out(policy.KindDelivered, "quiet@example.com", "fall", "")
	}
	out(policy.KindComplained, "r1@example.com", "fall", "")
	p.Sync()

	code, body := call(t, h, "GET", "/v1/hygiene/report?sender=shop&since=30d", "", "")
	expect(t, "report", code, body, 200, `"sender": "shop"`, `"campaign": "spring"`, `"bounce_rate": 0.03`, `"flagged": true`, `"complaints": 1`)
	var rep policy.Report
	if err := json.Unmarshal([]byte(body), &rep); err != nil || len(rep.Campaigns) != 2 || rep.Campaigns[0].Campaign != "fall" ||
		rep.Campaigns[0].Flagged || rep.Campaigns[1].Delivered != 97 || rep.NonEngagers[5] != 1 || rep.Total.Delivered != 102 {
		t.Errorf("report %+v %v", rep, err)
	}
	code, body = call(t, h, "GET", "/v1/hygiene/report?sender=shop&campaign=fall&since=2026-11-01", "", "")
	expect(t, "report of one campaign", code, body, 200, `"campaign": "fall"`)
	if strings.Contains(body, `"spring"`) {
		t.Errorf("report of fall names spring: %s", body)
	}
	code, body = call(t, h, "GET", "/v1/hygiene/report?sender=shop&since=2026-12-02", "", "")
	expect(t, "report since tomorrow", code, body, 200, `"campaigns": []`)
	for _, q := range []string{"", "?sender=shop&since=last+week", "?sender=shop&from=x"} {
		code, body := call(t, h, "GET", "/v1/hygiene/report"+q, "", "")
		expect(t, "report "+q, code, body, 400)
	}

	code, body = call(t, h, "GET", "/v1/hygiene/export?sender=shop&inactive=5", "", "")
	expect(t, "export", code, body, 200)
	rows, err := csv.NewReader(strings.NewReader(body)).ReadAll()
	if err != nil || len(rows) != 3 || strings.Join(rows[0], ",") != "address,reason,scope,list" {
		t.Fatalf("export %q %v", rows, err)
	}
	got := map[string]string{}
	for _, r := range rows[1:] {
		got[r[0]] = r[1] + " " + r[2]
	}
	if got["quiet@example.com"] != "inactive sender" || got["r1@example.com"] != "complaint sender" {
		t.Errorf("to remove: %v", got)
	}
	code, body = call(t, h, "GET", "/v1/hygiene/export?sender=shop", "", "")
	if expect(t, "export without inactive", code, body, 200); strings.Count(body, "\n") != 3 {
		// quiet@ is suppressed (sunset after 5) as well as inactive.
		t.Errorf("export without inactive:\n%s", body)
	}
	for _, q := range []string{"", "?sender=shop&inactive=-1", "?sender=shop&inactive=x"} {
		code, body := call(t, h, "GET", "/v1/hygiene/export"+q, "", "")
		expect(t, "export "+q, code, body, 400)
	}
}

// The guard takes, besides JSON, the two file types (neither is
// CORS-safelisted, so a browser cannot send them cross-site without a
// preflight); a type that a web page can send (text/plain, forms) is
// still refused before the body is read, and changes nothing.
func TestGuardContentTypes(t *testing.T) {
	h, _, _ := newHygiene(t)
	const file = "address\nalice@example.com\n"
	for _, ct := range []string{"text/plain", "application/x-www-form-urlencoded", "multipart/form-data; boundary=x", "text/csv; oops", "application/xml"} {
		code, body := call(t, h, "POST", "/v1/suppressions/import", ct, file)
		expect(t, "import as "+ct, code, body, 415, "text/csv or application/x-ndjson")
		code, body = call(t, h, "POST", "/v1/suppressions", ct, `{"address":"alice@example.com"}`)
		expect(t, "add as "+ct, code, body, 415)
		code, body = call(t, h, "POST", "/v1/events", ct, `{"event":"opened","sender":"shop","rcpt":"alice@example.com"}`)
		expect(t, "events as "+ct, code, body, 415)
	}
	code, body := send(t, h, "DELETE", "/v1/suppressions/alice@example.com", "127.0.0.1:8025", http.Header{"Authorization": {"Bearer " + testToken}}, "", loopback)
	expect(t, "delete without a type", code, body, 415)
	code, body = call(t, h, "GET", "/v1/suppressions/alice@example.com", "", "")
	expect(t, "after refusals", code, body, 404)

	code, body = call(t, h, "POST", "/v1/suppressions/import", "text/csv", file)
	expect(t, "import as text/csv", code, body, 200, `"added": 1`)
	code, body = call(t, h, "POST", "/v1/suppressions/import", "application/x-ndjson", `{"address":"bob@example.com"}`)
	expect(t, "import as application/x-ndjson", code, body, 200, `"added": 1`)
}

// failingExport is a policy whose export fails after it wrote part of
// the file.
type failingExport struct {
	*policy.Policy
	after int // bytes written before the failure; 0: fails at once
}

func (f failingExport) Export(w io.Writer, _ policy.Format, _ policy.Filter) (int, error) {
	if f.after > 0 {
		w.Write(bytes.Repeat([]byte("x@example.com,global,,,manual,admin,2026-12-01T10:00:00Z\n"), f.after/56+1))
	}
	return 0, errors.New("pebble: disk on fire")
}

// An export that fails before writing anything is a JSON error; one that
// fails part-way cuts the connection, so the client never takes a
// truncated file for a whole one.
func TestSuppressionsExportFailure(t *testing.T) {
	_, p, _ := newHygiene(t)
	for _, after := range []int{0, 1 << 20} {
		h := Handler(Config{Gatherer: prometheus.NewRegistry(), Queue: &fakeQueue{}, AdminToken: testToken, Policy: failingExport{p, after}})
		srv := httptest.NewServer(h)
		req, _ := http.NewRequest("GET", srv.URL+"/v1/suppressions/export", nil)
		req.Header.Set("Authorization", "Bearer "+testToken)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		srv.Close()
		if after == 0 {
			if resp.StatusCode != 500 || !strings.Contains(string(body), "disk on fire") {
				t.Errorf("failure at once: %d %s", resp.StatusCode, body)
			}
			continue
		}
		if err == nil {
			t.Errorf("failure part-way: the client read %d bytes without an error", len(body))
		}
	}
}
