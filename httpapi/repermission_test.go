package httpapi

import (
	"encoding/json"
	"net/http"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"drover/policy"
	"drover/testkit"
	"drover/testkit/testpolicy"
)

// newRepermissionAPI is the admin API over a real policy on a
// controlled clock, whose sender shop requires consent for its list
// news: ann, bob and cat confirmed it before the clock's time.
func newRepermissionAPI(t *testing.T) (http.Handler, *testkit.Clock) {
	t.Helper()
	clock := testkit.NewClock(hygieneNow)
	p := testpolicy.New(t, policy.Config{Now: clock.Now,
		Senders: map[string]policy.SenderRules{"shop": {ConsentRequired: []string{"news"}}}})
	h := Handler(Config{Gatherer: prometheus.NewRegistry(), Queue: &fakeQueue{}, AdminToken: testToken, Policy: p, Now: clock.Now})
	for _, a := range []string{"ann@example.com", "bob@example.com", "cat@example.com"} {
		code, body := call(t, h, "POST", "/v1/consent", "", signupJSON(a, "confirmed", "single-opt-in"))
		expect(t, "record "+a, code, body, 200, `"recorded": true`)
	}
	return h, clock
}

// campaigns reads the campaigns of an answer.
func campaigns(t *testing.T, body, field string) []policy.Repermission {
	t.Helper()
	var resp map[string][]policy.Repermission
	if err := json.Unmarshal([]byte(body), &resp); err != nil {
		t.Fatalf("%s: %v", body, err)
	}
	return resp[field]
}

// listedAs is each record's address, status and repermission, as GET
// /v1/consent lists them for status.
func listedAs(t *testing.T, h http.Handler, status string) []string {
	t.Helper()
	code, body := call(t, h, "GET", "/v1/consent?sender=shop&list=news&status="+status, "", "")
	if code != 200 {
		t.Fatalf("list %s: %d %s", status, code, body)
	}
	var out []string
	for _, c := range records(t, body) {
		s := c.Address + " " + string(c.Status)
		if c.Repermission != "" {
			s += " " + c.Repermission
		}
		out = append(out, s)
	}
	return out
}

func wantListedAs(t *testing.T, h http.Handler, status string, want ...string) {
	t.Helper()
	got := listedAs(t, h, status)
	if len(got) != len(want) {
		t.Errorf("status=%s: %q, want %q", status, got, want)
		return
	}
	for i := range got {
		if got[i] != want[i] {
			t.Errorf("status=%s: %q, want %q", status, got, want)
			return
		}
	}
}

// A campaign through the API: started (a second one refused), bob
// re-confirms, cat signs up again; the list shows who is pending; the
// run after the deadline lapses ann, after which the check refuses her.
func TestRepermissionAPI(t *testing.T) {
	h, clock := newRepermissionAPI(t)
	code, body := call(t, h, "POST", "/v1/consent/repermission", "", `{"sender":"shop","list":"news","deadline":"30d"}`)
	expect(t, "start", code, body, 200, `"state": "running"`, `"started": "2026-12-01T10:00:00Z"`,
		`"deadline": "2026-12-31T10:00:00Z"`, `"confirmed_before_start": 3`)
	code, body = call(t, h, "POST", "/v1/consent/repermission", "", `{"sender":"shop","list":"news","deadline":"2027-01-01T00:00:00Z"}`)
	expect(t, "a second campaign", code, body, 409, "a re-permission campaign of the list is running", "2026-12-31T10:00:00Z")

	clock.Advance(24 * time.Hour)
	code, body = call(t, h, "POST", "/v1/consent", "", `{"sender":"shop","list":"news","address":"bob@example.com",
		"time":"2026-12-02T10:00:00Z","source":"opt-in link","text":"Yes, send me the Spring News."}`)
	expect(t, "bob re-confirms", code, body, 200, `"recorded": true`, `"seq": 2`)
	code, body = call(t, h, "POST", "/v1/consent", "", `{"sender":"shop","list":"news","address":"cat@example.com","status":"pending",
		"time":"2026-12-02T10:00:00Z","source":"https://shop.example/signup","text":"Yes, send me the Spring News."}`)
	expect(t, "cat signs up again", code, body, 200, `"recorded": true`)
	wantListedAs(t, h, "confirmed", "bob@example.com confirmed reconfirmed")
	wantListedAs(t, h, "pending", "ann@example.com pending pending", "cat@example.com pending")
	if got := checkRefusal(t, h, "ann@example.com"); got != "" {
		t.Errorf("while it runs, ann is refused: %q", got)
	}
	code, body = call(t, h, "GET", "/v1/consent/repermission?sender=shop&list=news", "", "")
	expect(t, "status", code, body, 200)
	if cs := campaigns(t, body, "repermissions"); len(cs) != 1 || cs[0].State != policy.RepermissionRunning ||
		cs[0].Confirmed != 3 || cs[0].Reconfirmed != 1 || cs[0].Pending != 1 || cs[0].Lapsed != 0 {
		t.Errorf("while it runs: %s", body)
	}
	code, body = call(t, h, "POST", "/v1/consent/repermission/run", "", "{}")
	expect(t, "run before the deadline", code, body, 200, `"ended": []`)

	clock.Advance(30 * 24 * time.Hour)
	code, body = call(t, h, "POST", "/v1/consent/repermission/run", "", "{}")
	expect(t, "run", code, body, 200)
	if cs := campaigns(t, body, "ended"); len(cs) != 1 || cs[0].State != policy.RepermissionEnded || cs[0].Reconfirmed != 1 || cs[0].Lapsed != 1 {
		t.Errorf("run: %s", body)
	}
	if got := checkRefusal(t, h, "ann@example.com"); got != "Recipient has no confirmed consent for list news" {
		t.Errorf("after the deadline, ann: %q", got)
	}
	if got := checkRefusal(t, h, "bob@example.com"); got != "" {
		t.Errorf("after the deadline, bob: %q", got)
	}
	wantListedAs(t, h, "lapsed", "ann@example.com lapsed lapsed")
	wantListedAs(t, h, "pending", "cat@example.com pending")
	code, body = call(t, h, "GET", "/v1/consent/repermission?sender=shop", "", "")
	expect(t, "status after", code, body, 200, `"state": "ended"`, `"ended": "2027-01-01T10:00:00Z"`, `"lapsed": 1`, `"reconfirmed": 1`)
	code, body = call(t, h, "GET", "/v1/consent/repermission?sender=shop&list=offers", "", "")
	expect(t, "another list", code, body, 200, `"repermissions": []`)
	code, body = call(t, h, "POST", "/v1/consent/repermission", "", `{"sender":"shop","list":"news","deadline":"72h"}`)
	expect(t, "a campaign after the first", code, body, 200, `"deadline": "2027-01-04T10:00:00Z"`, `"confirmed_before_start": 1`)
}

// What the endpoints refuse.
func TestRepermissionAPIRefusals(t *testing.T) {
	h, _ := newRepermissionAPI(t)
	for _, c := range []struct{ body, want string }{
		{`{"sender":"shop","deadline":"30d"}`, `\"list\" is required`},
		{`{"sender":"shop","list":"news"}`, `\"deadline\" is required`},
		{`{"sender":"shop","list":"news","deadline":"soon"}`, `deadline \"soon\": a duration from now`},
		{`{"sender":"shop","list":"news","deadline":"0d"}`, `deadline \"0d\"`},
		{`{"sender":"shop","list":"news","deadline":"2026-11-01T00:00:00Z"}`, "not after now"},
		{`{"sender":"shop","list":"news","deadline":"400d"}`, "more than a year away"},
		{`{"sender":"shop","list":"no such list","deadline":"30d"}`, "is not a list name"},
		{`{"list":"news","deadline":"30d"}`, "names a sender"},
		{`{"sender":"shop","list":"news","deadline":"30d","extra":1}`, "unknown field"},
	} {
		code, body := call(t, h, "POST", "/v1/consent/repermission", "", c.body)
		expect(t, c.body, code, body, 400, c.want)
	}
	code, body := call(t, h, "GET", "/v1/consent/repermission?list=news", "", "")
	expect(t, "no sender", code, body, 400, "sender= is required")
	code, body = call(t, h, "GET", "/v1/consent/repermission?sender=shop&state=running", "", "")
	expect(t, "unknown parameter", code, body, 400, `unknown parameter \"state\"`)

	off := Handler(Config{Gatherer: prometheus.NewRegistry(), Queue: &fakeQueue{}, AdminToken: testToken})
	for _, c := range [][2]string{{"POST", "/v1/consent/repermission"}, {"GET", "/v1/consent/repermission?sender=shop"},
		{"POST", "/v1/consent/repermission/run"}} {
		code, body := call(t, off, c[0], c[1], "", "{}")
		expect(t, "without policy: "+c[0]+" "+c[1], code, body, 404, "list hygiene is not enabled")
	}
}
