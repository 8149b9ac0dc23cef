package web

import (
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"

	"drover/policy"
	"drover/testkit"
	"drover/testkit/testpolicy"
)

type fakeConfirmer struct {
	mu    sync.Mutex
	links []string
	langs []string
}

func (f *fakeConfirmer) Send(sender, list, addr, lang, link string) (string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.links = append(f.links, link)
	f.langs = append(f.langs, lang)
	return "Q1", nil
}

func newSignupFixture(t *testing.T) (http.Handler, *policy.Policy, *fakeConfirmer, *testkit.Clock) {
	t.Helper()
	clock := testkit.NewClock(testNow)
	p := testpolicy.New(t, policy.Config{Now: clock.Now, Logger: slog.New(slog.DiscardHandler),
		Senders: map[string]policy.SenderRules{"shop": {ConsentRequired: []string{"news", "weekly"}}}})
	conf := &fakeConfirmer{}
	h := Handler(Config{Tokens: &policy.Tokens{Keys: []policy.Key{testKey}}, Unsubscriber: p, BaseURL: "https://u.test", Now: clock.Now,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), Consents: p, Confirmer: conf,
		Signups: map[string]map[string]SignupList{"shop": {
			"news":   {DoubleOptIn: true, ConsentText: "Yes, send me the news.", Purposes: []string{"newsletter"}},
			"weekly": {ConsentText: "Yes, weekly."},
		}}})
	return h, p, conf, clock
}

func post(h http.Handler, path, body string, hdr map[string]string) *httptest.ResponseRecorder {
	req := httptest.NewRequest("POST", path, strings.NewReader(body))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.RemoteAddr = "192.0.2.7:5555"
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	return rec
}

func latest(t *testing.T, p *policy.Policy, list, addr string) []policy.Consent {
	t.Helper()
	h, err := p.ConsentHistory(addr, "shop", list)
	if err != nil && err != policy.ErrNoConsent {
		t.Fatal(err)
	}
	return h
}

// A double opt-in sign-up: the checkbox is required; the consent is
// pending with its proof and the confirmation queued; the link's GET
// changes nothing, its button confirms with the confirmation's proof.
func TestDoubleOptInSignup(t *testing.T) {
	h, p, conf, _ := newSignupFixture(t)
	ua := map[string]string{"User-Agent": "Browser/1.0", "Referer": "https://shop.example/join?utm=x", "Accept-Language": "zh-CN"}
	if rec := post(h, "/subscribe/shop/news", "email=ann@example.com", ua); rec.Code != 400 || !strings.Contains(rec.Body.String(), "请勾选同意框") {
		t.Fatalf("no checkbox: %d\n%s", rec.Code, rec.Body.String())
	}
	if rec := post(h, "/subscribe/shop/news", "email=ann@example.com&consent=on", ua); rec.Code != 400 {
		t.Fatalf("checkbox not yes: %d", rec.Code)
	}
	if hist := latest(t, p, "news", "ann@example.com"); len(hist) != 0 {
		t.Fatalf("recorded without the checkbox: %+v", hist)
	}
	rec := post(h, "/subscribe/shop/news", "email=Ann@Example.com&consent=yes", ua)
	if rec.Code != 200 || !strings.Contains(rec.Body.String(), "请查收邮件") {
		t.Fatalf("sign-up: %d\n%s", rec.Code, rec.Body.String())
	}
	hist := latest(t, p, "news", "ann@example.com")
	if len(hist) != 1 || hist[0].Status != policy.ConsentPending || hist[0].Proof.IP != "192.0.2.7" || hist[0].Proof.UserAgent != "Browser/1.0" ||
		hist[0].Proof.Source != "form:https://shop.example/join" || hist[0].Proof.Text != "Yes, send me the news." {
		t.Fatalf("pending record %+v", hist)
	}
	if d, _ := p.Check("shop", "marketing", "news", "ann@example.com"); !d.Suppressed {
		t.Errorf("pending consent lets mail through")
	}
	if len(conf.links) != 1 || conf.langs[0] != "zh-Hans" || !strings.HasPrefix(conf.links[0], "https://u.test/c/") {
		t.Fatalf("confirmations %v %v", conf.links, conf.langs)
	}
	u, _ := url.Parse(conf.links[0])
	get := httptest.NewRequest("GET", u.RequestURI(), nil)
	grec := httptest.NewRecorder()
	h.ServeHTTP(grec, get)
	if grec.Code != 200 || !strings.Contains(grec.Body.String(), `id="confirm"`) {
		t.Fatalf("confirm page: %d\n%s", grec.Code, grec.Body.String())
	}
	if hist := latest(t, p, "news", "ann@example.com"); len(hist) != 1 {
		t.Fatalf("the GET changed the history: %+v", hist)
	}
	rec = post(h, u.RequestURI(), "confirm=1", map[string]string{"User-Agent": "Phone/2.0"})
	if rec.Code != 200 || !strings.Contains(rec.Body.String(), "订阅已确认") && !strings.Contains(rec.Body.String(), "已确认") {
		t.Fatalf("confirm: %d\n%s", rec.Code, rec.Body.String())
	}
	hist = latest(t, p, "news", "ann@example.com")
	last := hist[len(hist)-1]
	if len(hist) != 2 || last.Status != policy.ConsentConfirmed || last.Confirmation == nil || last.Confirmation.UserAgent != "Phone/2.0" ||
		last.Confirmation.IP != "192.0.2.7" || last.Proof.Text != "Yes, send me the news." {
		t.Fatalf("confirmed record %+v", hist)
	}
	if d, _ := p.Check("shop", "marketing", "news", "ann@example.com"); d.Suppressed {
		t.Errorf("confirmed consent refused: %+v", d)
	}
}

// Single opt-in, the bad inputs and the limits.
func TestSignupRefusals(t *testing.T) {
	h, p, conf, _ := newSignupFixture(t)
	if rec := post(h, "/subscribe/shop/weekly", "email=bob@example.com&consent=yes", nil); rec.Code != 200 {
		t.Fatalf("single opt-in: %d", rec.Code)
	}
	if d, _ := p.Check("shop", "marketing", "weekly", "bob@example.com"); d.Suppressed || len(conf.links) != 0 {
		t.Errorf("single opt-in: %+v, confirmations %v", d, conf.links)
	}
	p.Add([]policy.Entry{{Address: "gone@example.com", Reason: policy.ConfirmedBounce}})
	for _, tc := range []struct {
		name, path, body string
		code             int
	}{
		{"unknown list", "/subscribe/shop/other", "email=a@example.com&consent=yes", 404},
		{"unknown sender", "/subscribe/bank/news", "email=a@example.com&consent=yes", 404},
		{"bad address", "/subscribe/shop/news", "email=not+an+address&consent=yes", 400},
		{"header injection", "/subscribe/shop/news", "email=" + url.QueryEscape("a@example.com\r\nBcc: x@evil.test") + "&consent=yes", 400},
		{"suppressed", "/subscribe/shop/news", "email=gone@example.com&consent=yes", 409},
		{"oversized", "/subscribe/shop/news", "email=a@example.com&consent=yes&x=" + strings.Repeat("a", 8000), 413},
	} {
		if rec := post(h, tc.path, tc.body, nil); rec.Code != tc.code {
			t.Errorf("%s: %d, want %d\n%s", tc.name, rec.Code, tc.code, rec.Body.String())
		}
	}
	if hist := latest(t, p, "news", "gone@example.com"); len(hist) != 0 || len(conf.links) != 0 {
		t.Errorf("refused sign-ups recorded: %+v %v", hist, conf.links)
	}
	// An unsubscribe link cannot confirm.
	unsub := (&policy.Tokens{Keys: []policy.Key{testKey}}).Seal(policy.Recipient{Sender: "shop", List: "news", Address: "x@example.com"}, testNow)
	if rec := post(h, "/c/"+unsub, "confirm=1", nil); rec.Code != 400 {
		t.Errorf("an unsubscribe token confirmed: %d", rec.Code)
	}
	// Bursts from one IP are limited; another IP is not.
	codes := map[int]int{}
	for i := range 10 {
		codes[post(h, "/subscribe/shop/weekly", "email=u"+string(rune('a'+i))+"@example.com&consent=yes", map[string]string{"X-Forwarded-For": "198.51.100.9"}).Code]++
	}
	if codes[429] == 0 {
		t.Errorf("no rate limit: %v", codes)
	}
	req := httptest.NewRequest("POST", "/subscribe/shop/weekly", strings.NewReader("email=z@example.com&consent=yes"))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.RemoteAddr = "127.0.0.1:4000"
	req.Header.Set("X-Forwarded-For", "203.0.113.5")
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	if rec.Code != 200 {
		t.Errorf("another client behind the proxy: %d", rec.Code)
	}
	if hist := latest(t, p, "weekly", "z@example.com"); len(hist) != 1 || hist[0].Proof.IP != "203.0.113.5" {
		t.Errorf("proxied sign-up's IP: %+v", hist)
	}
}
