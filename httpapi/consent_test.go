package httpapi

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"drover/policy"
	"drover/testkit/testpolicy"
)

// newConsentAPI is the admin API over a real policy on a fresh Pebble
// database, whose sender shop requires consent for its list news;
// gone@example.com bounced, angry@example.com complained about shop's
// mail, bank@example.com about bank's.
func newConsentAPI(t *testing.T) http.Handler {
	t.Helper()
	now := func() time.Time { return hygieneNow }
	p := testpolicy.New(t, policy.Config{Now: now,
		Senders: map[string]policy.SenderRules{"shop": {ConsentRequired: []string{"news"}}}})
	if _, err := p.Add([]policy.Entry{{Address: "gone@example.com", Reason: policy.ConfirmedBounce},
		{Address: "angry@example.com", Scope: policy.Scope{Sender: "shop"}, Reason: policy.Complaint},
		{Address: "bank@example.com", Scope: policy.Scope{Sender: "bank"}, Reason: policy.Complaint}}); err != nil {
		t.Fatal(err)
	}
	return Handler(Config{Gatherer: prometheus.NewRegistry(), Queue: &fakeQueue{}, AdminToken: testToken, Policy: p, Now: now})
}

// signupJSON is a sign-up's record with its proof, for addr.
func signupJSON(addr, status, method string) string {
	return `{"sender":"shop","list":"news","address":"` + addr + `","status":"` + status + `","method":"` + method + `",
		"time":"2026-11-30T09:00:00Z","ip":"192.0.2.7","user_agent":"Mozilla/5.0","source":"https://shop.example/signup",
		"text":"Yes, send me the Spring News.","purposes":["newsletter"]}`
}

// records reads the records of an answer.
func records(t *testing.T, body string) []policy.Consent {
	t.Helper()
	var resp struct {
		Records []policy.Consent `json:"records"`
	}
	if err := json.Unmarshal([]byte(body), &resp); err != nil {
		t.Fatalf("%s: %v", body, err)
	}
	return resp.Records
}

// checkRefusal is what the suppression check says of addr for shop's
// news ("" when it would be sent).
func checkRefusal(t *testing.T, h http.Handler, addr string) string {
	t.Helper()
	code, body := call(t, h, "POST", "/v1/suppressions/check", "", `{"sender":"shop","list":"news","addresses":["`+addr+`"]}`)
	var resp struct{ Suppressed map[string]string }
	if code != 200 || json.Unmarshal([]byte(body), &resp) != nil {
		t.Fatalf("check: %d %s", code, body)
	}
	return resp.Suppressed[addr]
}

// Without a policy, every consent endpoint says so.
func TestConsentNotEnabled(t *testing.T) {
	h := Handler(Config{Gatherer: prometheus.NewRegistry(), Queue: &fakeQueue{}, AdminToken: testToken})
	for _, c := range [][2]string{{"POST", "/v1/consent"}, {"POST", "/v1/consent/withdraw"}, {"GET", "/v1/consent/a@b.example"},
		{"GET", "/v1/consent?sender=shop&list=news"}, {"POST", "/v1/consent/import"}, {"GET", "/v1/consent/export?sender=shop"}} {
		code, body := call(t, h, c[0], c[1], "", "{}")
		expect(t, c[0]+" "+c[1], code, body, 404, "list hygiene is not enabled")
	}
}

// A consent recorded with its proof: the history shows it with its
// text, the check lets the address through; a replay records nothing;
// a withdrawal is a record of its own, after which the check refuses.
func TestConsentRecordShowWithdraw(t *testing.T) {
	h := newConsentAPI(t)
	if got := checkRefusal(t, h, "ann@example.com"); got != "Recipient has no confirmed consent for list news" {
		t.Errorf("before consent: %q", got)
	}
	code, body := call(t, h, "POST", "/v1/consent", "", signupJSON("Ann@Example.com", "confirmed", "single-opt-in"))
	expect(t, "record", code, body, 200, `"recorded": true`, `"seq": 1`, `"address": "ann@example.com"`,
		`"text_sha256": "`+policy.TextHash("Yes, send me the Spring News.")+`"`)
	if strings.Contains(body, `"text":`) {
		t.Errorf("a record holds its text: %s", body)
	}
	code, body = call(t, h, "POST", "/v1/consent", "", signupJSON("ann@example.com", "confirmed", "single-opt-in"))
	expect(t, "replay", code, body, 200, `"recorded": false`, `"seq": 1`)
	if got := checkRefusal(t, h, "ann@example.com"); got != "" {
		t.Errorf("after consent: %q", got)
	}

	code, body = call(t, h, "POST", "/v1/consent/withdraw", "", `{"sender":"shop","list":"news","address":"ann@example.com","source":"preference-center"}`)
	expect(t, "withdraw", code, body, 200, `"withdrawn": true`, `"seq": 2`, `"status": "withdrawn"`, `"source": "preference-center"`)
	code, body = call(t, h, "POST", "/v1/consent/withdraw", "", `{"sender":"shop","list":"news","address":"ann@example.com"}`)
	expect(t, "withdraw again", code, body, 200, `"withdrawn": false`, `"seq": 2`)
	code, body = call(t, h, "POST", "/v1/consent/withdraw", "", `{"sender":"shop","list":"news","address":"nobody@example.com"}`)
	expect(t, "withdraw nothing", code, body, 404, "no consent is recorded")
	if got := checkRefusal(t, h, "ann@example.com"); got != "Recipient has no confirmed consent for list news" {
		t.Errorf("after the withdrawal: %q", got)
	}

	code, body = call(t, h, "GET", "/v1/consent/ANN@example.com?sender=shop&list=news", "", "")
	expect(t, "history", code, body, 200, `"text": "Yes, send me the Spring News."`)
	rs := records(t, body)
	if len(rs) != 2 || rs[0].Status != policy.ConsentConfirmed || rs[1].Status != policy.ConsentWithdrawn ||
		rs[1].Proof.Source != "https://shop.example/signup" || rs[1].Ended == nil || rs[1].Ended.Source != "preference-center" {
		t.Errorf("history %+v", rs)
	}
	for _, q := range []string{"?sender=shop", ""} {
		code, body = call(t, h, "GET", "/v1/consent/ann@example.com"+q, "", "")
		if expect(t, "history "+q, code, body, 200); len(records(t, body)) != 2 {
			t.Errorf("history %s: %s", q, body)
		}
	}
	code, body = call(t, h, "GET", "/v1/consent/ann@example.com?sender=bank", "", "")
	expect(t, "another sender's", code, body, 404, "no consent is recorded for ann@example.com")
	code, body = call(t, h, "GET", "/v1/consent/ann@example.com?list=news", "", "")
	expect(t, "a list without its sender", code, body, 400, "give the sender too")
	code, body = call(t, h, "GET", "/v1/consent/not%20an%20address", "", "")
	expect(t, "bad address", code, body, 400, "address")
}

// A double opt-in: pending, then confirmed; a confirmation needs one of
// its fields or a pending sign-up.
func TestConsentDoubleOptIn(t *testing.T) {
	h := newConsentAPI(t)
	code, body := call(t, h, "POST", "/v1/consent", "", signupJSON("ann@example.com", "pending", ""))
	expect(t, "pending", code, body, 200, `"status": "pending"`, `"method": "double-opt-in"`)
	if got := checkRefusal(t, h, "ann@example.com"); got == "" {
		t.Error("a pending sign-up lets mail through")
	}
	code, body = call(t, h, "POST", "/v1/consent", "", `{"sender":"shop","list":"news","address":"ann@example.com",
		"status":"confirmed","method":"double-opt-in","confirmation":{"time":"2026-11-30T09:30:00Z","ip":"198.51.100.4","user_agent":"Mail/1.0"}}`)
	expect(t, "confirm", code, body, 200, `"seq": 2`, `"status": "confirmed"`, `"source": "https://shop.example/signup"`, `"ip": "198.51.100.4"`)
	if got := checkRefusal(t, h, "ann@example.com"); got != "" {
		t.Errorf("confirmed: %q", got)
	}
	code, body = call(t, h, "POST", "/v1/consent", "", `{"sender":"shop","list":"news","address":"bob@example.com","status":"confirmed","method":"double-opt-in"}`)
	expect(t, "confirm nothing", code, body, 400, "needs its proof", "nothing recorded")
	code, body = call(t, h, "POST", "/v1/consent", "", signupJSON("bob@example.com", "confirmed", "double-opt-in"))
	expect(t, "double opt-in without its confirmation", code, body, 400, "needs its confirmation")
}

// A record without its proof, or for a suppressed address, records
// nothing.
func TestConsentRefusedRecords(t *testing.T) {
	h := newConsentAPI(t)
	base := signupJSON("new@example.com", "confirmed", "api")
	for _, c := range []struct {
		name, body string
		code       int
		want       string
	}{
		{"no text", strings.Replace(base, `"text":"Yes, send me the Spring News."`, `"text":""`, 1), 400, "at least the time, the source and the consent text"},
		{"no source", strings.Replace(base, `"source":"https://shop.example/signup"`, `"source":""`, 1), 400, "needs its proof"},
		{"no time", strings.Replace(base, `"time":"2026-11-30T09:00:00Z",`, ``, 1), 400, "needs its proof"},
		{"bad method", strings.Replace(base, `"method":"api"`, `"method":"telepathy"`, 1), 400, "telepathy"},
		{"withdrawn status", strings.Replace(base, `"status":"confirmed"`, `"status":"withdrawn"`, 1), 400, "pending or confirmed"},
		{"unknown field", strings.Replace(base, `"ip"`, `"ip_address"`, 1), 400, "unknown field"},
		{"no sender", strings.Replace(base, `"sender":"shop"`, `"sender":""`, 1), 400, "names a sender"},
		{"bounced", strings.Replace(base, "new@example.com", "gone@example.com", 1), 409,
			"gone@example.com: Recipient address is suppressed for all senders: it hard-bounced (confirmed bounce); no consent is recorded for it"},
		{"complained", strings.Replace(base, "new@example.com", "angry@example.com", 1), 409, "Recipient complained about mail of sender shop"},
	} {
		code, body := call(t, h, "POST", "/v1/consent", "", c.body)
		expect(t, c.name, code, body, c.code, c.want)
	}
	for _, addr := range []string{"new@example.com", "gone@example.com", "angry@example.com"} {
		code, body := call(t, h, "GET", "/v1/consent/"+addr, "", "")
		expect(t, "after the refusals", code, body, 404)
	}
	// Another sender's complaint does not stand in shop's way.
	code, body := call(t, h, "POST", "/v1/consent", "", strings.Replace(base, "new@example.com", "bank@example.com", 1))
	expect(t, "bank's complainant", code, body, 200, `"recorded": true`)
}

// The latest records of a list, by status, a page at a time.
func TestConsentList(t *testing.T) {
	h := newConsentAPI(t)
	for _, a := range []string{"a@example.com", "b@example.com", "c@example.com"} {
		code, body := call(t, h, "POST", "/v1/consent", "", signupJSON(a, "confirmed", "single-opt-in"))
		expect(t, "record "+a, code, body, 200)
	}
	code, body := call(t, h, "POST", "/v1/consent", "", signupJSON("d@example.com", "pending", ""))
	expect(t, "pending", code, body, 200)
	code, body = call(t, h, "POST", "/v1/consent/withdraw", "", `{"sender":"shop","list":"news","address":"b@example.com"}`)
	expect(t, "withdraw", code, body, 200)

	code, body = call(t, h, "GET", "/v1/consent?sender=shop&list=news&status=confirmed&limit=1", "", "")
	expect(t, "page 1", code, body, 200, `"next": "c@example.com"`)
	if rs := records(t, body); len(rs) != 1 || rs[0].Address != "a@example.com" {
		t.Errorf("page 1: %+v", rs)
	}
	code, body = call(t, h, "GET", "/v1/consent?sender=shop&list=news&status=confirmed&from=c@example.com", "", "")
	if expect(t, "page 2", code, body, 200); strings.Contains(body, `"next"`) || len(records(t, body)) != 1 {
		t.Errorf("page 2: %s", body)
	}
	for status, want := range map[string]string{"pending": "d@example.com", "withdrawn": "b@example.com"} {
		code, body = call(t, h, "GET", "/v1/consent?sender=shop&list=news&status="+status, "", "")
		if expect(t, status, code, body, 200); len(records(t, body)) != 1 || records(t, body)[0].Address != want {
			t.Errorf("%s: %s", status, body)
		}
	}
	code, body = call(t, h, "GET", "/v1/consent?sender=shop&list=", "", "")
	if expect(t, "the mail without a list", code, body, 200, `"records": []`); len(records(t, body)) != 0 {
		t.Errorf("no-list records: %s", body)
	}
	for _, c := range []struct{ query, want string }{
		{"?list=news", "sender= is required"},
		{"?sender=shop", "list= is required"},
		{"?sender=shop&list=news&status=happy", "status="},
		{"?sender=shop&list=news&limit=1001", "limit="},
		{"?sender=shop&list=news&order=up", "unknown parameter"},
		{"?sender=shop&list=a%20b", "not a list name"},
	} {
		code, body := call(t, h, "GET", "/v1/consent"+c.query, "", "")
		expect(t, c.query, code, body, 400, c.want)
	}
}

const consentImportCSV = `address,status,method,time,ip,user_agent,source,text,purposes,confirmation_time
one@example.com,confirmed,single-opt-in,2026-11-01T10:00:00Z,192.0.2.1,Mozilla/5.0,https://shop.example/signup,Send me the news.,newsletter offers,
two@example.com,pending,double-opt-in,2026-11-02T10:00:00Z,,,https://shop.example/signup,Send me the news.,,
two@example.com,confirmed,double-opt-in,2026-11-02T10:00:00Z,,,https://shop.example/signup,Send me the news.,,2026-11-02T11:00:00Z
three@example.com,confirmed,,2026-11-03T10:00:00Z,,,,Imported from the old shop.,,
`

// An import is one atomic commit: with a malformed line, or one for a
// suppressed address, nothing is committed and the lines are named.
func TestConsentImport(t *testing.T) {
	h := newConsentAPI(t)
	bad := consentImportCSV + "four@example.com,confirmed,,last tuesday,,,,Yes,,\n" + "gone@example.com,confirmed,,2026-11-03T10:00:00Z,,,,Yes,,\n"
	code, body := call(t, h, "POST", "/v1/consent/import?sender=shop&list=news&source=old.csv", "text/csv", bad)
	expect(t, "import with invalid lines", code, body, 422, `"committed": false`, `"line": 6`, `"line": 7`, "RFC 3339", "suppressed for all senders")
	code, body = call(t, h, "GET", "/v1/consent?sender=shop&list=news", "", "")
	if expect(t, "after a refused import", code, body, 200); len(records(t, body)) != 0 {
		t.Errorf("a refused import committed: %s", body)
	}

	code, body = call(t, h, "POST", "/v1/consent/import?sender=shop&list=news&source=old.csv", "text/csv", consentImportCSV)
	expect(t, "import", code, body, 200, `"read": 4`, `"added": 4`, `"committed": true`)
	code, body = call(t, h, "GET", "/v1/consent/three@example.com?sender=shop&list=news", "", "")
	expect(t, "imported record", code, body, 200, `"method": "import"`, `"source": "import:old.csv"`, `"text": "Imported from the old shop."`)
	code, body = call(t, h, "GET", "/v1/consent/two@example.com?sender=shop&list=news", "", "")
	if expect(t, "imported double opt-in", code, body, 200); len(records(t, body)) != 2 {
		t.Errorf("two's history: %s", body)
	}
	if got := checkRefusal(t, h, "two@example.com"); got != "" {
		t.Errorf("imported consent: %q", got)
	}
	code, body = call(t, h, "POST", "/v1/consent/import?sender=shop&list=news&source=old.csv", "text/csv", consentImportCSV)
	expect(t, "import again", code, body, 200, `"added": 0`, `"duplicates": 4`)

	jsonl := `{"address":"five@example.com","time":"2026-11-04T10:00:00Z","source":"crm","text":"Yes."}` + "\n\n" +
		`{"address":"five@example.com","status":"withdrawn","time":"2026-11-05T10:00:00Z","source":"crm"}` + "\n"
	code, body = call(t, h, "POST", "/v1/consent/import?sender=shop&list=news&format=jsonl", "application/x-ndjson", jsonl)
	expect(t, "import jsonl", code, body, 200, `"read": 2`, `"added": 2`)
	code, body = call(t, h, "GET", "/v1/consent/five@example.com?sender=shop&list=news", "", "")
	if rs := records(t, body); len(rs) != 2 || rs[1].Status != policy.ConsentWithdrawn || rs[0].Method != policy.MethodImport {
		t.Errorf("five's history: %s", body)
	}

	for _, c := range []struct {
		query, ctype, body string
		code               int
		want               string
	}{
		{"?sender=shop&list=news&format=csv", "application/x-ndjson", jsonl, 400, "format=csv"},
		{"?list=news", "text/csv", consentImportCSV, 400, "sender= is required"},
		{"?sender=shop", "text/csv", consentImportCSV, 400, "list= is required"},
		{"?sender=shop&list=news&skip_invalid=perhaps", "text/csv", consentImportCSV, 400, "skip_invalid"},
		{"?sender=shop&list=news&scope=list", "text/csv", consentImportCSV, 400, "unknown parameter"},
		{"?sender=shop&list=news", "application/json", "address\nsix@example.com\n", 422, "not a JSON consent record"},
		{"?sender=shop&list=news", "text/csv", "mail,name\nsix@example.com,Six\n", 422, "address"},
		{"?sender=shop&list=news", "text/plain", consentImportCSV, 415, "text/csv"},
	} {
		code, body := call(t, h, "POST", "/v1/consent/import"+c.query, c.ctype, c.body)
		expect(t, "import "+c.query+" "+c.ctype, code, body, c.code, c.want)
	}
	code, body = call(t, h, "POST", "/v1/consent/import?sender=shop&list=news&source=old.csv&skip_invalid=true", "text/csv", bad)
	expect(t, "import skipping", code, body, 200, `"added": 0`, `"duplicates": 4`, `"invalid_lines": 2`, `"committed": true`)
}

// The export is what the import reads: the whole history, texts
// included.
func TestConsentExport(t *testing.T) {
	h := newConsentAPI(t)
	code, body := call(t, h, "POST", "/v1/consent/import?sender=shop&list=news&source=old.csv", "text/csv", consentImportCSV)
	expect(t, "import", code, body, 200, `"added": 4`)
	code, body = call(t, h, "POST", "/v1/consent/withdraw", "", `{"sender":"shop","list":"news","address":"one@example.com","source":"one-click"}`)
	expect(t, "withdraw", code, body, 200)

	code, body = call(t, h, "GET", "/v1/consent/export?sender=shop&list=news", "", "")
	expect(t, "export csv", code, body, 200, "sender,list,address,status,method,time,ip,user_agent,source,text,purposes,confirmation_time",
		"shop,news,one@example.com,confirmed,single-opt-in,2026-11-01T10:00:00Z,192.0.2.1,Mozilla/5.0,https://shop.example/signup,Send me the news.,newsletter offers",
		"shop,news,one@example.com,withdrawn,single-opt-in,2026-12-01T10:00:00Z,,,one-click,,",
		"2026-11-02T11:00:00Z")
	if n := strings.Count(body, "\n"); n != 6 {
		t.Errorf("%d lines, want a header and 5 records:\n%s", n, body)
	}
	code, jsonl := call(t, h, "GET", "/v1/consent/export?sender=shop&format=jsonl", "", "")
	expect(t, "export jsonl", code, jsonl, 200, `"text":"Imported from the old shop."`)
	for _, file := range []struct{ ctype, body string }{{"text/csv", body}, {"application/x-ndjson", jsonl}} {
		code, res := call(t, h, "POST", "/v1/consent/import?sender=shop&list=news", file.ctype, file.body)
		expect(t, "the export imported again", code, res, 200, `"added": 0`, `"duplicates": 5`)
	}
	code, body = call(t, h, "GET", "/v1/consent/export?sender=bank&list=news&format=jsonl", "", "")
	if expect(t, "empty export", code, body, 200); body != "" {
		t.Errorf("empty export: %q", body)
	}
	code, body = call(t, h, "GET", "/v1/consent/export?list=news", "", "")
	expect(t, "export without sender", code, body, 400, "sender= is required")
	code, body = call(t, h, "GET", "/v1/consent/export?sender=shop&format=xml", "", "")
	expect(t, "export xml", code, body, 400, "unknown format")
}
