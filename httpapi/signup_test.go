package httpapi

import (
	"net/http"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"drover/policy"
	"drover/web"
)

type fakeSignup struct {
	reqs []web.SignupRequest
	err  error
}

func (f *fakeSignup) SignUp(req web.SignupRequest) (bool, error) {
	f.reqs = append(f.reqs, req)
	return f.err == nil, f.err
}

// POST /v1/subscribe takes an application's sign-up with its proof: the
// checkbox's tick, the client's IP and the form's page are required.
func TestSubscribeEndpoint(t *testing.T) {
	f := &fakeSignup{}
	h := Handler(Config{Gatherer: prometheus.NewRegistry(), Queue: &fakeQueue{}, AdminToken: testToken, Signup: f})
	for _, tc := range []struct {
		name, body string
		err        error
		code       int
		want       string
	}{
		{"no tick", `{"email":"a@example.com","ip":"192.0.2.1","source":"https://app.example/join"}`, nil, 400, "consent"},
		{"no proof", `{"email":"a@example.com","consent":true}`, nil, 400, "ip"},
		{"unknown field", `{"email":"a@example.com","consent":true,"ip":"192.0.2.1","source":"x","pre_ticked":true}`, nil, 400, "unknown field"},
		{"unknown list", `{"email":"a@example.com","consent":true,"ip":"192.0.2.1","source":"x"}`, web.ErrUnknownList, 404, "takes no sign-ups"},
		{"suppressed", `{"email":"a@example.com","consent":true,"ip":"192.0.2.1","source":"x"}`, &policy.SuppressedError{Entry: policy.Entry{Reason: policy.Complaint}}, 409, "nothing recorded"},
		{"ok", `{"email":"a@example.com","consent":true,"ip":"192.0.2.1","user_agent":"UA","source":"https://app.example/join","lang":"zh-Hans"}`, nil, 200, `"pending": true`},
	} {
		f.err = tc.err
		code, body := call(t, h, "POST", "/v1/subscribe/shop/news", "application/json", tc.body)
		if code != tc.code || !strings.Contains(body, tc.want) {
			t.Errorf("%s: %d %s", tc.name, code, body)
		}
	}
	last := f.reqs[len(f.reqs)-1]
	if len(f.reqs) != 3 || last != (web.SignupRequest{Sender: "shop", List: "news", Address: "a@example.com", IP: "192.0.2.1", UserAgent: "UA",
		Source: "https://app.example/join", Lang: "zh-Hans"}) {
		t.Errorf("requests %+v", f.reqs)
	}
	if code, _ := call(t, Handler(Config{Gatherer: prometheus.NewRegistry(), Queue: &fakeQueue{}, AdminToken: testToken}),
		"POST", "/v1/subscribe/shop/news", "application/json", `{}`); code != http.StatusNotFound {
		t.Errorf("without sign-ups: %d", code)
	}
}

type fakeGDPR struct{ erased []string }

func (f *fakeGDPR) Export(addr string) (any, error) { return map[string]string{"address": addr}, nil }
func (f *fakeGDPR) Erase(addr string) (any, error) {
	if addr == "not an address" {
		return nil, &policy.InvalidConsentError{Msg: "bad address"}
	}
	f.erased = append(f.erased, addr)
	return map[string]any{"erased": true}, nil
}

// POST /v1/gdpr/erase takes {"address"}; a bad body or address is 400
// and erases nothing; GET /v1/gdpr/export needs its address.
func TestGDPREndpoints(t *testing.T) {
	g := &fakeGDPR{}
	h := Handler(Config{Gatherer: prometheus.NewRegistry(), Queue: &fakeQueue{}, AdminToken: testToken, GDPR: g})
	for _, tc := range []struct {
		method, path, body string
		code               int
	}{
		{"POST", "/v1/gdpr/erase", `{}`, 400},
		{"POST", "/v1/gdpr/erase", `not json`, 400},
		{"POST", "/v1/gdpr/erase", `{"address":"not an address"}`, 400},
		{"POST", "/v1/gdpr/erase", `{"address":"ann@example.com"}`, 200},
		{"GET", "/v1/gdpr/export", "", 400},
		{"GET", "/v1/gdpr/export?address=ann@example.com", "", 200},
	} {
		if code, body := call(t, h, tc.method, tc.path, "", tc.body); code != tc.code {
			t.Errorf("%s %s %s: %d %s", tc.method, tc.path, tc.body, code, body)
		}
	}
	if len(g.erased) != 1 || g.erased[0] != "ann@example.com" {
		t.Errorf("erased %v", g.erased)
	}
}
