package web

import (
	"encoding/json"
	"html/template"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	"drover/policy"
	"drover/testkit"
	"drover/testkit/testpolicy"
)

// manageFixture is the listener on a real policy whose address
// ann@example.com has confirmed consents to shop's lists news and weekly
// and was mailed once; tok opens ann's manage page.
type manageFixture struct {
	h      http.Handler
	eraser *policyEraser
	p      *policy.Policy
	tok    string
	csrf   string
}

const manageAddr = "ann@example.com"

func newManageFixture(t testing.TB, baseURL string) *manageFixture {
	t.Helper()
	clock := testkit.NewClock(testNow)
	p := testpolicy.New(t, policy.Config{Now: clock.Now, Logger: slog.New(slog.DiscardHandler),
		Senders: map[string]policy.SenderRules{"shop": {ConsentRequired: []string{"news", "weekly"}}}})
	for _, l := range []string{"news", "weekly"} {
		if _, _, err := p.RecordConsent(policy.ConsentInput{Sender: "shop", List: l, Address: manageAddr, Time: testNow.Add(-48 * 3600e9),
			Source: "form:https://shop.example/join", Text: "Yes, send me " + l + "."}); err != nil {
			t.Fatal(err)
		}
	}
	p.Observe(policy.Outcome{Kind: policy.KindDelivered, Time: testNow.Add(-3600e9), Sender: "shop", Address: manageAddr, Stream: "marketing", List: "news"})
	p.Sync()
	tokens := &policy.Tokens{Keys: []policy.Key{testKey}, MaxAge: testMaxAge}
	f := &manageFixture{p: p}
	f.eraser = &policyEraser{p: p}
	f.h = Handler(Config{Tokens: tokens, Unsubscriber: p, Manager: p, Eraser: f.eraser, BaseURL: baseURL, Now: clock.Now,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	links := &policy.Links{Tokens: tokens, BaseURL: "https://u.test", Now: clock.Now}
	f.tok = strings.TrimPrefix(links.Manage(policy.Recipient{Sender: "shop", List: "news", Address: manageAddr, MsgID: "Q1"}), "https://u.test/m/")
	f.csrf = (&server{tokens: tokens}).csrf(f.tok)
	return f
}

func (f *manageFixture) get(t *testing.T, path string, header ...string) (*http.Response, string) {
	t.Helper()
	req := httptest.NewRequest(http.MethodGet, "https://u.test"+path, nil)
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	w := httptest.NewRecorder()
	f.h.ServeHTTP(w, req)
	checkHeaders(t, w.Result().Header)
	return w.Result(), w.Body.String()
}

// post posts form (csrf added unless it holds one, "" to leave it out)
// to the page, with the headers given.
func (f *manageFixture) post(t *testing.T, tok string, form url.Values, header ...string) (*http.Response, string) {
	t.Helper()
	if _, ok := form["csrf"]; !ok {
		form.Set("csrf", f.csrf)
	} else if form.Get("csrf") == "" {
		form.Del("csrf")
	}
	req := httptest.NewRequest(http.MethodPost, "https://u.test/m/"+tok, strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	w := httptest.NewRecorder()
	f.h.ServeHTTP(w, req)
	checkHeaders(t, w.Result().Header)
	return w.Result(), w.Body.String()
}

func (f *manageFixture) name(t *testing.T) string {
	t.Helper()
	a, err := f.p.Attributes("shop", manageAddr)
	if err != nil {
		t.Fatal(err)
	}
	return a["name"]
}

func (f *manageFixture) latest(t *testing.T, list string) policy.ConsentStatus {
	t.Helper()
	cs, err := f.p.ConsentHistory(manageAddr, "shop", list)
	if err != nil || len(cs) == 0 {
		t.Fatalf("history of %s: %v %v", list, cs, err)
	}
	return cs[len(cs)-1].Status
}

func (f *manageFixture) refused(t *testing.T, list string) bool {
	t.Helper()
	d, err := f.p.Check("shop", "marketing", list, manageAddr)
	if err != nil {
		t.Fatal(err)
	}
	return d.Suppressed
}

// The page shows what is held about the address with the sender, and
// each change, posted from the page, is made and answered by the page
// saying what was done.
func TestManagePage(t *testing.T) {
	f := newManageFixture(t, "https://u.test")
	resp, body := f.get(t, "/m/"+f.tok)
	if resp.StatusCode != 200 {
		t.Fatalf("GET: %d\n%s", resp.StatusCode, body)
	}
	for _, want := range []string{"Your subscription with shop", manageAddr, "news", "weekly", "Yes, send me news.", "Yes, send me weekly.",
		"form:https://shop.example/join", "Consent given on 2026-03-12 09:26 UTC", "The last message was sent to you on 2026-03-14 08:26 UTC",
		`<label for="name">Name</label>`, `name="csrf" value="` + f.csrf + `"`, "Unsubscribe from all mail of shop", "data.json"} {
		if !strings.Contains(body, want) {
			t.Errorf("page lacks %q", want)
		}
	}
	if strings.Contains(body, "<script") {
		t.Error("the page has a script")
	}

	steps := []struct {
		name  string
		form  url.Values
		done  string
		check func() string
	}{
		{"name", url.Values{"action": {"name"}, "name": {"<b>Ann</b> & Co"}}, "Your name is saved.", func() string {
			if n := f.name(t); n != "<b>Ann</b> & Co" {
				return "name stored " + n
			}
			return ""
		}},
		{"unsubscribe", url.Values{"action": {"unsubscribe"}, "list": {"news"}}, "You are unsubscribed from news.", func() string {
			if !f.refused(t, "news") || f.refused(t, "weekly") {
				return "news should be refused, weekly not"
			}
			return ""
		}},
		{"withdraw", url.Values{"action": {"withdraw"}, "list": {"weekly"}}, "Your consent to weekly is withdrawn.", func() string {
			if s := f.latest(t, "weekly"); s != policy.ConsentWithdrawn {
				return "weekly's latest status " + string(s)
			}
			return ""
		}},
	}
	for _, s := range steps {
		resp, body := f.post(t, f.tok, s.form, "Origin", "https://u.test", "Sec-Fetch-Site", "same-origin")
		loc := resp.Header.Get("Location")
		if resp.StatusCode != http.StatusSeeOther || !strings.HasPrefix(loc, f.tok+"?done="+s.form.Get("action")) {
			t.Fatalf("%s: %d Location %q\n%s", s.name, resp.StatusCode, loc, body)
		}
		if msg := s.check(); msg != "" {
			t.Errorf("%s: %s", s.name, msg)
		}
		_, page := f.get(t, "/m/"+loc)
		if !strings.Contains(page, `role="status" class="done">`+template.HTMLEscapeString(s.done)) {
			t.Errorf("%s: the page does not say %q", s.name, s.done)
		}
		if strings.Contains(page, "<b>Ann</b>") || !strings.Contains(page, `value="&lt;b&gt;Ann&lt;/b&gt; &amp; Co"`) {
			t.Errorf("%s: the name is not shown escaped", s.name)
		}
	}
	_, page := f.get(t, "/m/"+f.tok)
	for _, want := range []string{"You are unsubscribed from this list.", "List news: you unsubscribed", "Consent withdrawn on 2026-03-14 09:26 UTC, through manage page."} {
		if !strings.Contains(page, want) {
			t.Errorf("page after the changes lacks %q", want)
		}
	}

	if _, page := f.get(t, "/m/"+f.tok+"?done=unsubscribe&list=Your+account+is+closed"); strings.Contains(page, "account is closed") {
		t.Error("the page shows a list named by the URL alone")
	}

	resp, body = f.get(t, "/m/"+f.tok+"/data.json")
	if resp.StatusCode != 200 || !strings.HasPrefix(resp.Header.Get("Content-Disposition"), "attachment") ||
		!strings.HasPrefix(resp.Header.Get("Content-Type"), "application/json") {
		t.Fatalf("data.json: %d %v", resp.StatusCode, resp.Header)
	}
	var h policy.Held
	if err := json.Unmarshal([]byte(body), &h); err != nil {
		t.Fatal(err)
	}
	if h.Address != manageAddr || len(h.Attributes) != 1 || h.Attributes[0].Attributes["name"] != "<b>Ann</b> & Co" ||
		len(h.Consent) != 3 || len(h.Suppressions) != 1 || len(h.Engagement) != 1 || h.Engagement[0].Delivered != 1 {
		t.Errorf("data.json: %s", body)
	}

	resp, _ = f.post(t, f.tok, url.Values{"action": {"unsubscribe_all"}})
	if resp.StatusCode != http.StatusSeeOther || !f.refused(t, "weekly") || !f.refused(t, "") {
		t.Errorf("unsubscribe from all: %d; weekly refused %v", resp.StatusCode, f.refused(t, "weekly"))
	}
}

// Refusals change nothing: a link that is not a manage link, a post
// from elsewhere, an oversized one, a name that is not one line.
func TestManageRefusals(t *testing.T) {
	f := newManageFixture(t, "https://u.test")
	unsubTok := (&policy.Tokens{Keys: []policy.Key{testKey}}).Seal(policy.Recipient{Sender: "shop", List: "news", Address: manageAddr, MsgID: "Q1"}, testNow)
	for name, tok := range map[string]string{"forged": flipByte(t, f.tok, 30), "truncated": f.tok[:len(f.tok)-5], "unsubscribe token": unsubTok, "empty": ""} {
		if resp, _ := f.get(t, "/m/"+tok); resp.StatusCode != http.StatusBadRequest {
			t.Errorf("GET %s: %d, want 400", name, resp.StatusCode)
		}
		if resp, _ := f.get(t, "/m/"+tok+"/data.json"); tok != "" && resp.StatusCode != http.StatusBadRequest {
			t.Errorf("GET data.json %s: %d, want 400", name, resp.StatusCode)
		}
		if resp, _ := f.post(t, tok, url.Values{"action": {"name"}, "name": {"X"}}); resp.StatusCode != http.StatusBadRequest {
			t.Errorf("POST %s: %d, want 400", name, resp.StatusCode)
		}
	}
	setName := url.Values{"action": {"name"}, "name": {"Mallory"}}
	for _, c := range []struct {
		name   string
		form   url.Values
		header []string
		want   int
	}{
		{"no csrf", url.Values{"action": {"name"}, "name": {"Mallory"}, "csrf": {""}}, nil, 403},
		{"wrong csrf", url.Values{"action": {"name"}, "name": {"Mallory"}, "csrf": {"AAAA"}}, nil, 403},
		{"another page's csrf", url.Values{"action": {"name"}, "name": {"Mallory"}, "csrf": {(&server{tokens: &policy.Tokens{Keys: []policy.Key{testKey}}}).csrf(unsubTok)}}, nil, 403},
		{"foreign Origin", setName, []string{"Origin", "https://evil.example"}, 403},
		{"cross-site fetch", setName, []string{"Sec-Fetch-Site", "cross-site"}, 403},
		{"CR/LF in the name", url.Values{"action": {"name"}, "name": {"Ann\r\nBcc: x@evil.example"}}, nil, 400},
		{"a control character", url.Values{"action": {"name"}, "name": {"Ann\x07"}}, nil, 400},
		{"a name too long", url.Values{"action": {"name"}, "name": {strings.Repeat("n", 101)}}, nil, 400},
		{"oversized", url.Values{"action": {"name"}, "name": {strings.Repeat("n", DefaultMaxBody)}}, nil, 413},
		{"unknown action", url.Values{"action": {"delete_everything"}}, nil, 400},
	} {
		resp, body := f.post(t, f.tok, c.form, c.header...)
		if resp.StatusCode != c.want {
			t.Errorf("%s: %d, want %d\n%s", c.name, resp.StatusCode, c.want, body)
		}
		if n := f.name(t); n != "" {
			t.Fatalf("%s: the name became %q", c.name, n)
		}
	}
	if f.refused(t, "news") {
		t.Error("a refused post unsubscribed")
	}
	if resp, body := f.post(t, f.tok, url.Values{"action": {"name"}, "name": {"Ann"}}, "Origin", "null"); resp.StatusCode != http.StatusSeeOther || f.name(t) != "Ann" {
		t.Errorf("Origin null (Referrer-Policy no-referrer) with the csrf field: %d\n%s", resp.StatusCode, body)
	}
	without := Handler(Config{Tokens: &policy.Tokens{Keys: []policy.Key{testKey}}, Unsubscriber: f.p, Logger: slog.New(slog.DiscardHandler)})
	w := httptest.NewRecorder()
	without.ServeHTTP(w, httptest.NewRequest(http.MethodGet, "/m/"+f.tok, nil))
	if w.Code != http.StatusNotFound {
		t.Errorf("without a Manager: %d, want 404", w.Code)
	}
}

// The page speaks Chinese to a browser that asks for it.
func TestManageChinese(t *testing.T) {
	f := newManageFixture(t, "https://u.test")
	resp, body := f.get(t, "/m/"+f.tok, "Accept-Language", "zh-CN,zh;q=0.9,en;q=0.5")
	if resp.StatusCode != 200 || resp.Header.Get("Content-Language") != "zh-Hans" {
		t.Fatalf("%d %q", resp.StatusCode, resp.Header.Get("Content-Language"))
	}
	for _, want := range []string{`<html lang="zh-Hans">`, "您在 shop 的订阅", "保存姓名", "退订 news", `hreflang="en"`} {
		if !strings.Contains(body, want) {
			t.Errorf("Chinese page lacks %q", want)
		}
	}
	resp, _ = f.post(t, f.tok+"?lang=zh-Hans", url.Values{"action": {"name"}, "name": {"安"}})
	loc := resp.Header.Get("Location")
	if _, page := f.get(t, "/m/"+loc); !strings.Contains(loc, "lang=zh-Hans") || !strings.Contains(page, "您的姓名已保存。") {
		t.Errorf("after a change in Chinese: %q", loc)
	}
}

// policyEraser erases from policy alone (the real one, in cmd/drover,
// erases from the queue and the mail log too), counting its calls.
type policyEraser struct {
	p     *policy.Policy
	calls []string
}

func (e *policyEraser) Erase(addr string) (any, error) {
	e.calls = append(e.calls, addr)
	return nil, e.p.Erase(addr)
}

// Erasure from the page takes two steps, each with the page's csrf; after
// it, the page's link shows nothing held.
func TestManageErase(t *testing.T) {
	f := newManageFixture(t, "https://u.test")
	if resp, body := f.get(t, "/m/"+f.tok); resp.StatusCode != 200 || !strings.Contains(body, `id="erase"`) {
		t.Fatalf("no erase button: %d\n%s", resp.StatusCode, body)
	}
	resp, body := f.post(t, f.tok, url.Values{"action": {"erase"}})
	if resp.StatusCode != 200 || !strings.Contains(body, `id="erase-confirm"`) || !strings.Contains(body, `value="`+f.csrf+`"`) || len(f.eraser.calls) != 0 {
		t.Fatalf("first step: %d, calls %v\n%s", resp.StatusCode, f.eraser.calls, body)
	}
	if resp, _ := f.post(t, f.tok, url.Values{"action": {"erase_confirmed"}, "csrf": {""}}); resp.StatusCode != 403 || len(f.eraser.calls) != 0 {
		t.Fatalf("without csrf: %d, calls %v", resp.StatusCode, f.eraser.calls)
	}
	resp, body = f.post(t, f.tok, url.Values{"action": {"erase_confirmed"}}, "Accept-Language", "zh-CN")
	if resp.StatusCode != 200 || !strings.Contains(body, "您的数据已删除") || len(f.eraser.calls) != 1 || f.eraser.calls[0] != manageAddr {
		t.Fatalf("second step: %d, calls %v\n%s", resp.StatusCode, f.eraser.calls, body)
	}
	if !f.refused(t, "news") {
		t.Error("an erased address is not refused")
	}
	// The link still opens, and shows that nothing is held.
	resp, body = f.get(t, "/m/"+f.tok)
	if resp.StatusCode != 200 || strings.Contains(body, "Yes, send me news.") {
		t.Errorf("the page after the erasure: %d\n%s", resp.StatusCode, body)
	}
}
