package web

import (
	"bytes"
	"encoding/base64"
	"errors"
	"io"
	"log/slog"
	"mime/multipart"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"drover/policy"
	"drover/testkit"
)

// fakeUnsubscriber records the unsubscribes it is asked for, and fails
// with err while err is set.
type fakeUnsubscriber struct {
	mu    sync.Mutex
	calls []unsubCall
	err   error
	hook  func() // called inside Unsubscribe, when set
}

type unsubCall struct {
	r      policy.Recipient
	source string
}

func (f *fakeUnsubscriber) Unsubscribe(r policy.Recipient, source string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.hook != nil {
		f.hook()
	}
	if f.err != nil {
		return f.err
	}
	f.calls = append(f.calls, unsubCall{r, source})
	return nil
}

func (f *fakeUnsubscriber) setErr(err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.err = err
}

func (f *fakeUnsubscriber) Calls() []unsubCall {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]unsubCall(nil), f.calls...)
}

var (
	testKey  = policy.Key{ID: 1, Secret: bytes.Repeat([]byte{0x42}, 32)}
	otherKey = policy.Key{ID: 7, Secret: bytes.Repeat([]byte{0x17}, 32)}
	testNow  = time.Date(2026, 3, 14, 9, 26, 53, 0, time.UTC)
	testRcpt = policy.Recipient{Sender: "Acme Outdoor", List: "Weekly deals", Address: "jane.doe@example.com", MsgID: "Q1234ABCD"}
)

const testMaxAge = 60 * 24 * time.Hour

// fixture is a handler on a real policy.Tokens with a fixed key and a
// fake clock, and the fake Unsubscriber behind it.
type fixture struct {
	tokens  *policy.Tokens
	unsub   *fakeUnsubscriber
	clock   *testkit.Clock
	handler http.Handler
}

func newFixture(t testing.TB, baseURL string) *fixture {
	t.Helper()
	f := &fixture{
		tokens: &policy.Tokens{Keys: []policy.Key{testKey}, MaxAge: testMaxAge},
		unsub:  &fakeUnsubscriber{},
		clock:  testkit.NewClock(testNow),
	}
	f.handler = Handler(Config{
		Tokens:       f.tokens,
		Unsubscriber: f.unsub,
		BaseURL:      baseURL,
		Now:          f.clock.Now,
		Logger:       slog.New(slog.NewTextHandler(io.Discard, nil)),
	})
	return f
}

// seal is a token for r made at testNow.
func (f *fixture) seal(r policy.Recipient) string { return f.tokens.Seal(r, testNow) }

// flipByte is tok with one byte of what it encodes changed.
func flipByte(t testing.TB, tok string, i int) string {
	raw, err := base64.RawURLEncoding.DecodeString(tok)
	if err != nil {
		t.Fatal(err)
	}
	raw[i%len(raw)] ^= 0x01
	return base64.RawURLEncoding.EncodeToString(raw)
}

// checkHeaders asserts the security headers of every response, and that
// no cookie is set.
func checkHeaders(t *testing.T, h http.Header) {
	t.Helper()
	want := map[string]string{
		"Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; frame-ancestors 'none'",
		"X-Content-Type-Options":  "nosniff",
		"Referrer-Policy":         "no-referrer",
		"Cache-Control":           "no-store",
	}
	for k, v := range want {
		if got := h.Get(k); got != v {
			t.Errorf("%s = %q, want %q", k, got, v)
		}
	}
	if c := h.Values("Set-Cookie"); len(c) > 0 {
		t.Errorf("Set-Cookie %q: the listener sets no cookie", c)
	}
}

func multipartBody(t testing.TB, fields ...string) (contentType string, body string) {
	var b bytes.Buffer
	mw := multipart.NewWriter(&b)
	for i := 0; i+1 < len(fields); i += 2 {
		if err := mw.WriteField(fields[i], fields[i+1]); err != nil {
			t.Fatal(err)
		}
	}
	if err := mw.Close(); err != nil {
		t.Fatal(err)
	}
	return mw.FormDataContentType(), b.String()
}

const formType = "application/x-www-form-urlencoded"

func TestUnsubscribeRoute(t *testing.T) {
	f0 := newFixture(t, "")
	good := f0.seal(testRcpt)
	noList := testRcpt
	noList.List = ""
	goodNoList := f0.seal(noList)
	hostile := policy.Recipient{Sender: `<script>alert("s")</script>`, List: `"><img src=x onerror=alert(1)>`, Address: `<b>x</b>@example.com`, MsgID: "Q9"}
	goodHostile := f0.seal(hostile)
	unknownKey := (&policy.Tokens{Keys: []policy.Key{otherKey}}).Seal(testRcpt, testNow)
	expired := f0.tokens.Seal(testRcpt, testNow.Add(-testMaxAge-time.Hour))
	mpType, mpOneClick := multipartBody(t, "List-Unsubscribe", "One-Click")
	mpOtherType, mpOther := multipartBody(t, "List-Unsubscribe", "Later")
	big := "List-Unsubscribe=One-Click&pad=" + strings.Repeat("x", DefaultMaxBody)

	type want struct {
		status      int
		contentType string   // prefix
		body        []string // substrings of the body
		notBody     []string // strings the body must not hold
		calls       int
		source      string
		allow       string
	}
	html := "text/html; charset=utf-8"
	text := "text/plain; charset=utf-8"
	notValid := []string{"This link is not valid", "Nothing was changed"}
	for _, tc := range []struct {
		name        string
		method      string
		path        string
		contentType string
		body        string
		chunked     bool // no Content-Length: the body's size is found reading it
		want        want
	}{
		// RFC 8058's POST exactly as Gmail sends it (curl -d): form
		// encoded, no cookie, no other field.
		{"one-click as Gmail sends it", "POST", "/u/" + good, formType, "List-Unsubscribe=One-Click", false,
			want{status: 200, contentType: text, body: []string{"You are unsubscribed"}, calls: 1, source: "one-click"}},
		{"one-click multipart/form-data", "POST", "/u/" + good, mpType, mpOneClick, false,
			want{status: 200, contentType: text, body: []string{"You are unsubscribed"}, calls: 1, source: "one-click"}},
		{"one-click bare body without Content-Type", "POST", "/u/" + good, "", "List-Unsubscribe=One-Click", false,
			want{status: 200, contentType: text, calls: 1, source: "one-click"}},
		{"one-click chunked", "POST", "/u/" + good, formType, "List-Unsubscribe=One-Click", true,
			want{status: 200, contentType: text, calls: 1, source: "one-click"}},
		{"confirm button", "POST", "/u/" + good, formType, "List-Unsubscribe=One-Click&confirm=1", false,
			want{status: 200, contentType: html, calls: 1, source: "page",
				body:    []string{`lang="en"`, "You are unsubscribed from Weekly deals (of Acme Outdoor)", "j***@example.com"},
				notBody: []string{"jane.doe"}}},
		{"confirm field alone", "POST", "/u/" + good, formType, "confirm=1", false,
			want{status: 200, contentType: html, calls: 1, source: "page", body: []string{"You are unsubscribed from Weekly deals"}}},
		{"confirm button, no list", "POST", "/u/" + goodNoList, formType, "List-Unsubscribe=One-Click&confirm=1", false,
			want{status: 200, contentType: html, calls: 1, source: "page", body: []string{"You are unsubscribed from all mail of Acme Outdoor"}}},

		// GET shows the page and never unsubscribes.
		{"GET shows the confirm page", "GET", "/u/" + good, "", "", false,
			want{status: 200, contentType: html, calls: 0,
				body: []string{`<html lang="en">`, "<title>Unsubscribe from Weekly deals</title>", `name="viewport"`, `<form method="post">`,
					`name="List-Unsubscribe" value="One-Click"`, `<button type="submit"`,
					"Unsubscribe from Weekly deals?", "Acme Outdoor", "j***@example.com"},
				notBody: []string{"jane.doe", "<script", "You are unsubscribed"}}},
		{"HEAD", "HEAD", "/u/" + good, "", "", false, want{status: 200, contentType: html, calls: 0}},
		{"GET, no list", "GET", "/u/" + goodNoList, "", "", false,
			want{status: 200, contentType: html, body: []string{"Unsubscribe from all mail of Acme Outdoor?"}}},
		{"GET escapes what the token names", "GET", "/u/" + goodHostile, "", "", false,
			want{status: 200, contentType: html, body: []string{"&lt;script&gt;", "&lt;img src=x"},
				notBody: []string{"<script", "<img", "<b>x"}}},
		{"confirm page escapes what the token names", "POST", "/u/" + goodHostile, formType, "confirm=1", false,
			want{status: 200, contentType: html, calls: 1, source: "page", body: []string{"&lt;script&gt;"},
				notBody: []string{"<script", "<img", "<b>x"}}},

		// Tokens that do not open change nothing.
		{"forged token (one byte flipped), POST", "POST", "/u/" + flipByte(t, good, 40), formType, "List-Unsubscribe=One-Click", false,
			want{status: 400, contentType: html, body: notValid}},
		{"forged key id byte, POST", "POST", "/u/" + flipByte(t, good, 0), formType, "List-Unsubscribe=One-Click", false,
			want{status: 400, contentType: html, body: notValid}},
		{"forged token, GET", "GET", "/u/" + flipByte(t, good, 30), "", "", false,
			want{status: 400, contentType: html, body: notValid, notBody: []string{"<form"}}},
		{"truncated token", "POST", "/u/" + good[:len(good)-6], formType, "List-Unsubscribe=One-Click", false,
			want{status: 400, contentType: html, body: notValid}},
		{"token cut short in half", "GET", "/u/" + good[:len(good)/2], "", "", false,
			want{status: 400, contentType: html, body: notValid}},
		{"token sealed with an unknown key", "POST", "/u/" + unknownKey, formType, "List-Unsubscribe=One-Click", false,
			want{status: 400, contentType: html, body: notValid}},
		{"expired token, POST", "POST", "/u/" + expired, formType, "List-Unsubscribe=One-Click", false,
			want{status: 410, contentType: html, body: []string{"This link has expired", "Nothing was changed"}}},
		{"expired token, GET", "GET", "/u/" + expired, "", "", false,
			want{status: 410, contentType: html, body: []string{"This link has expired"}, notBody: []string{"<form"}}},
		{"no token", "POST", "/u/", formType, "List-Unsubscribe=One-Click", false,
			want{status: 400, contentType: html, body: notValid}},
		{"token with a path after it", "POST", "/u/" + good + "/x", formType, "List-Unsubscribe=One-Click", false,
			want{status: 400, contentType: html, body: notValid}},
		{"huge token", "GET", "/u/" + strings.Repeat("A", 10000), "", "", false,
			want{status: 400, contentType: html, body: notValid}},

		// Bodies.
		{"oversized body", "POST", "/u/" + good, formType, big, false,
			want{status: 413, contentType: html, body: []string{"Nothing was changed"}}},
		{"oversized chunked body", "POST", "/u/" + good, formType, big, true,
			want{status: 413, contentType: html, body: []string{"Nothing was changed"}}},
		{"empty body", "POST", "/u/" + good, formType, "", false,
			want{status: 400, contentType: html, body: []string{"not an unsubscribe request", "Nothing was changed"}}},
		{"other field", "POST", "/u/" + good, formType, "foo=bar", false, want{status: 400, contentType: html}},
		{"other value", "POST", "/u/" + good, formType, "List-Unsubscribe=Later", false, want{status: 400, contentType: html}},
		{"other value, multipart", "POST", "/u/" + good, mpOtherType, mpOther, false, want{status: 400, contentType: html}},
		{"confirm=0", "POST", "/u/" + good, formType, "confirm=0", false, want{status: 400, contentType: html}},
		{"form body as text/plain", "POST", "/u/" + good, "text/plain", "confirm=1", false, want{status: 400, contentType: html}},
		{"JSON", "POST", "/u/" + good, "application/json", `{"List-Unsubscribe":"One-Click"}`, false, want{status: 400, contentType: html}},
		{"multipart without boundary", "POST", "/u/" + good, "multipart/form-data", mpOneClick, false, want{status: 400, contentType: html}},
		{"broken form encoding", "POST", "/u/" + good, formType, "List-Unsubscribe=One-Click%zz", false, want{status: 400, contentType: html}},

		// Methods and paths.
		{"PUT", "PUT", "/u/" + good, formType, "List-Unsubscribe=One-Click", false,
			want{status: 405, contentType: html, allow: "GET, HEAD, POST"}},
		{"DELETE", "DELETE", "/u/" + good, "", "", false, want{status: 405, contentType: html, allow: "GET, HEAD, POST"}},
		{"OPTIONS", "OPTIONS", "/u/" + good, "", "", false, want{status: 405, contentType: html, allow: "GET, HEAD, POST"}},
		{"unknown path", "GET", "/unsubscribe/" + good, "", "", false,
			want{status: 404, contentType: html, body: []string{"Page not found"}}},
		{"root", "GET", "/", "", "", false, want{status: 404, contentType: html, body: []string{"Page not found"}}},
		{"unknown path, POST", "POST", "/v1/queue", formType, "List-Unsubscribe=One-Click", false, want{status: 404, contentType: html}},
		{"healthz", "GET", "/healthz", "", "", false, want{status: 200, contentType: text, body: []string{"ok"}}},
		{"healthz POST", "POST", "/healthz", "", "", false, want{status: 405, allow: "GET, HEAD"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t, "")
			var body io.Reader = strings.NewReader(tc.body)
			if tc.chunked {
				body = io.MultiReader(body) // hides the length from NewRequest
			}
			req := httptest.NewRequest(tc.method, tc.path, body)
			if tc.contentType != "" {
				req.Header.Set("Content-Type", tc.contentType)
			}
			rec := httptest.NewRecorder()
			f.handler.ServeHTTP(rec, req)
			res := rec.Result()
			got := rec.Body.String()

			if res.StatusCode != tc.want.status {
				t.Errorf("status %d, want %d; body:\n%s", res.StatusCode, tc.want.status, got)
			}
			checkHeaders(t, res.Header)
			if ct := res.Header.Get("Content-Type"); !strings.HasPrefix(ct, tc.want.contentType) {
				t.Errorf("Content-Type %q, want %q", ct, tc.want.contentType)
			}
			if tc.want.allow != "" && res.Header.Get("Allow") != tc.want.allow {
				t.Errorf("Allow %q, want %q", res.Header.Get("Allow"), tc.want.allow)
			}
			for _, s := range tc.want.body {
				if !strings.Contains(got, s) {
					t.Errorf("body lacks %q:\n%s", s, got)
				}
			}
			for _, s := range tc.want.notBody {
				if strings.Contains(got, s) {
					t.Errorf("body holds %q:\n%s", s, got)
				}
			}
			if tc.method == "HEAD" && got != "" {
				t.Errorf("HEAD answered a body: %q", got)
			}
			calls := f.unsub.Calls()
			if len(calls) != tc.want.calls {
				t.Fatalf("%d Unsubscribe calls, want %d: %+v", len(calls), tc.want.calls, calls)
			}
			for _, c := range calls {
				if c.source != tc.want.source {
					t.Errorf("source %q, want %q", c.source, tc.want.source)
				}
				if c.r != testRcpt && c.r != noList && c.r != hostile {
					t.Errorf("unsubscribed %+v, not what the token names", c.r)
				}
			}
		})
	}
}

// TestOneClickOverTheWire posts as a mailbox provider does, to a real
// listener: one request, no cookie, the RFC 8058 body.
func TestOneClickOverTheWire(t *testing.T) {
	f := newFixture(t, "")
	srv := httptest.NewServer(f.handler)
	defer srv.Close()
	res, err := http.Post(srv.URL+"/u/"+f.seal(testRcpt), formType, strings.NewReader("List-Unsubscribe=One-Click"))
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(res.Body)
	res.Body.Close()
	if res.StatusCode != 200 || !strings.Contains(string(body), "You are unsubscribed") {
		t.Fatalf("%s %q, want 200 You are unsubscribed", res.Status, body)
	}
	checkHeaders(t, res.Header)
	calls := f.unsub.Calls()
	if len(calls) != 1 || calls[0].r != testRcpt || calls[0].source != "one-click" {
		t.Fatalf("calls %+v, want one one-click unsubscribe of %+v", calls, testRcpt)
	}
}

// watchedWriter records whether anything of the response was written.
type watchedWriter struct {
	*httptest.ResponseRecorder
	written bool
}

func (w *watchedWriter) WriteHeader(code int) { w.written = true; w.ResponseRecorder.WriteHeader(code) }
func (w *watchedWriter) Write(b []byte) (int, error) {
	w.written = true
	return w.ResponseRecorder.Write(b)
}

// TestAnswerAfterCommit: nothing of the answer is written while the
// Unsubscriber has not returned.
func TestAnswerAfterCommit(t *testing.T) {
	for _, body := range []string{"List-Unsubscribe=One-Click", "confirm=1"} {
		f := newFixture(t, "")
		w := &watchedWriter{ResponseRecorder: httptest.NewRecorder()}
		f.unsub.hook = func() {
			if w.written {
				t.Errorf("%s: the answer was written before the unsubscribe was committed", body)
			}
		}
		req := httptest.NewRequest("POST", "/u/"+f.seal(testRcpt), strings.NewReader(body))
		req.Header.Set("Content-Type", formType)
		f.handler.ServeHTTP(w, req)
		if w.Code != 200 || len(f.unsub.Calls()) != 1 {
			t.Errorf("%s: %d, %d calls; want 200 and 1", body, w.Code, len(f.unsub.Calls()))
		}
	}
}

func TestReplayIsHarmless(t *testing.T) {
	f := newFixture(t, "")
	path := "/u/" + f.seal(testRcpt)
	for i := range 3 {
		req := httptest.NewRequest("POST", path, strings.NewReader("List-Unsubscribe=One-Click"))
		req.Header.Set("Content-Type", formType)
		rec := httptest.NewRecorder()
		f.handler.ServeHTTP(rec, req)
		if rec.Code != 200 {
			t.Fatalf("POST %d: %d %s, want 200", i+1, rec.Code, rec.Body)
		}
	}
	if n := len(f.unsub.Calls()); n != 3 {
		t.Fatalf("%d calls, want 3 (the Unsubscriber makes them one)", n)
	}
}

// TestStoreError: while the Unsubscriber fails, the answer is a 503 that
// claims nothing; once it works again the same link unsubscribes.
func TestStoreError(t *testing.T) {
	f := newFixture(t, "")
	f.unsub.setErr(errors.New("pebble: disk full"))
	path := "/u/" + f.seal(testRcpt)
	for _, body := range []string{"List-Unsubscribe=One-Click", "List-Unsubscribe=One-Click&confirm=1"} {
		req := httptest.NewRequest("POST", path, strings.NewReader(body))
		req.Header.Set("Content-Type", formType)
		rec := httptest.NewRecorder()
		f.handler.ServeHTTP(rec, req)
		got := rec.Body.String()
		if rec.Code != 503 {
			t.Errorf("%s: status %d, want 503", body, rec.Code)
		}
		if strings.Contains(got, "You are unsubscribed") || !strings.Contains(got, "Nothing was changed") {
			t.Errorf("%s: the 503 page must claim nothing:\n%s", body, got)
		}
		if strings.Contains(got, "pebble") {
			t.Errorf("%s: the 503 page shows the store's error:\n%s", body, got)
		}
		if rec.Header().Get("Retry-After") == "" {
			t.Errorf("%s: no Retry-After", body)
		}
		checkHeaders(t, rec.Result().Header)
	}
	f.unsub.setErr(nil)
	req := httptest.NewRequest("POST", path, strings.NewReader("List-Unsubscribe=One-Click"))
	req.Header.Set("Content-Type", formType)
	rec := httptest.NewRecorder()
	f.handler.ServeHTTP(rec, req)
	if rec.Code != 200 || len(f.unsub.Calls()) != 1 {
		t.Fatalf("after the store recovered: %d, %d calls; want 200 and 1", rec.Code, len(f.unsub.Calls()))
	}
}

// TestBaseURLPath: with a base URL under a path, the pages answer both
// under it (a proxy that forwards the path) and bare (one that strips it).
func TestBaseURLPath(t *testing.T) {
	f := newFixture(t, "https://mail.example.com/drover/")
	links := &policy.Links{Tokens: f.tokens, BaseURL: "https://mail.example.com/drover", Now: f.clock.Now}
	link, _ := links.Unsubscribe(testRcpt)
	full := strings.TrimPrefix(link, "https://mail.example.com")
	bare := strings.TrimPrefix(full, "/drover")
	for i, path := range []string{full, bare} {
		req := httptest.NewRequest("POST", path, strings.NewReader("List-Unsubscribe=One-Click"))
		req.Header.Set("Content-Type", formType)
		rec := httptest.NewRecorder()
		f.handler.ServeHTTP(rec, req)
		if rec.Code != 200 || len(f.unsub.Calls()) != i+1 {
			t.Errorf("POST %s: %d, %d calls; want 200 and %d", path, rec.Code, len(f.unsub.Calls()), i+1)
		}
	}
	rec := httptest.NewRecorder()
	f.handler.ServeHTTP(rec, httptest.NewRequest("GET", "/drover/nothing", nil))
	if rec.Code != 404 {
		t.Errorf("GET /drover/nothing: %d, want 404", rec.Code)
	}
}

func TestMaskAddress(t *testing.T) {
	for in, want := range map[string]string{
		"jane.doe@example.com":    "j***@example.com",
		"J@example.com":           "J***@example.com",
		"élodie@exemple.fr":       "é***@exemple.fr",
		`"a@b"@example.com`:       `"***@example.com`,
		"@example.com":            "***@example.com",
		"\xffbad@example.com":     "***@example.com",
		"no-at-sign":              "",
		"":                        "",
		"x@":                      "***@",
		"first.last+tag@mail.org": "f***@mail.org",
	} {
		if got := maskAddress(in); got != want {
			t.Errorf("maskAddress(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestHandlerNeedsItsParts(t *testing.T) {
	defer func() {
		if recover() == nil {
			t.Error("Handler without Tokens and Unsubscriber did not panic")
		}
	}()
	Handler(Config{})
}
