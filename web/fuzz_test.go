package web

import (
	"bytes"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
)

// FuzzUnsubscribePath sends any method, path, Content-Type and body: the
// handler never panics, answers with the security headers, and calls the
// Unsubscriber only for a POST to /u/TOKEN whose TOKEN opens, with what
// that token names.
func FuzzUnsubscribePath(f *testing.F) {
	fx := newFixture(f, "")
	good := fx.seal(testRcpt)
	mpType, mpBody := multipartBody(f, "List-Unsubscribe", "One-Click", "confirm", "1")
	for _, seed := range []struct {
		method, path, contentType, body string
	}{
		{"POST", "/u/" + good, formType, "List-Unsubscribe=One-Click"},
		{"POST", "/u/" + good, formType, "List-Unsubscribe=One-Click&confirm=1"},
		{"POST", "/u/" + good, mpType, mpBody},
		{"POST", "/u/" + good, "", "List-Unsubscribe=One-Click"},
		{"GET", "/u/" + good, "", ""},
		{"HEAD", "/u/" + good, "", ""},
		{"PUT", "/u/" + good, formType, "List-Unsubscribe=One-Click"},
		{"POST", "/u/" + flipByte(f, good, 20), formType, "List-Unsubscribe=One-Click"},
		{"POST", "/u/" + good[:len(good)-1], formType, "List-Unsubscribe=One-Click"},
		{"POST", "/u/../u/" + good, formType, "List-Unsubscribe=One-Click"},
		{"POST", "//u/" + good, formType, "List-Unsubscribe=One-Click"},
		{"POST", "/u/" + good + "/", formType, "List-Unsubscribe=One-Click"},
		{"POST", "/u/%2e%2e/" + good, formType, "List-Unsubscribe=One-Click"},
		{"POST", "/u/", "multipart/form-data; boundary=x", "--x\r\nContent-Disposition: form-data; name=\"confirm\"\r\n\r\n1\r\n--x--\r\n"},
		{"GET", "/healthz", "", ""},
		{"GET", "/", "", ""},
		{"CONNECT", "/u/" + good, "", ""},
	} {
		f.Add(seed.method, seed.path, seed.contentType, []byte(seed.body))
	}
	f.Fuzz(func(t *testing.T, method, path, contentType string, body []byte) {
		if method == "" {
			method = http.MethodGet
		}
		fx := newFixture(t, "")
		req := &http.Request{
			Method:        method,
			URL:           &url.URL{Path: path},
			RequestURI:    path,
			Proto:         "HTTP/1.1",
			ProtoMajor:    1,
			ProtoMinor:    1,
			Host:          "unsubscribe.example.com",
			Header:        http.Header{},
			Body:          io.NopCloser(bytes.NewReader(body)),
			ContentLength: int64(len(body)),
		}
		if contentType != "" {
			req.Header.Set("Content-Type", contentType)
		}
		rec := httptest.NewRecorder()
		fx.handler.ServeHTTP(rec, req)

		res := rec.Result()
		for _, k := range []string{"Content-Security-Policy", "X-Content-Type-Options", "Referrer-Policy", "Cache-Control"} {
			if res.Header.Get(k) == "" {
				t.Errorf("%s %q: no %s", method, path, k)
			}
		}
		if res.StatusCode >= 500 && res.StatusCode != http.StatusServiceUnavailable {
			t.Errorf("%s %q: status %d", method, path, res.StatusCode)
		}
		calls := fx.unsub.Calls()
		if len(calls) == 0 {
			return
		}
		tok, isUnsub := strings.CutPrefix(path, "/u/")
		rcpt, err := fx.tokens.Open(tok, fx.clock.Now())
		switch {
		case method != http.MethodPost || !isUnsub || err != nil:
			t.Fatalf("%s %q (token opens: %v): %d Unsubscribe calls, want none", method, path, err, len(calls))
		case len(calls) != 1 || calls[0].r != rcpt:
			t.Fatalf("%s %q: calls %+v, want one for %+v", method, path, calls, rcpt)
		case res.StatusCode != http.StatusOK:
			t.Fatalf("%s %q: unsubscribed, but answered %d", method, path, res.StatusCode)
		}
	})
}
