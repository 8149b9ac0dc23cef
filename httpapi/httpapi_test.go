package httpapi

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"drover/queue"
	"drover/queue/engine"
)

type fakeQueue struct {
	calls []string
}

func (f *fakeQueue) Summaries(by string) ([]engine.Summary, error) {
	f.calls = append(f.calls, "summaries "+by)
	return []engine.Summary{{Summary: queue.Summary{Key: "google.com", Recipients: 3}}}, nil
}
func (f *fakeQueue) Show(id string) (*queue.Message, []queue.Recipient, error) {
	if id != "m1" {
		return nil, nil, queue.ErrNotFound
	}
	return &queue.Message{ID: "m1"}, nil, nil
}
func (f *fakeQueue) Suspend(kind, name string, until time.Time, reason string) (string, error) {
	f.calls = append(f.calls, "suspend "+kind+" "+name+" "+reason)
	if name == "nowhere.example" {
		return "no known site is named nowhere.example; the suspension is recorded", nil
	}
	return "", nil
}
func (f *fakeQueue) Suspensions() []engine.Suspension {
	return []engine.Suspension{{Kind: "domain", Name: "held.test", Reason: "maintenance"}}
}
func (f *fakeQueue) Resume(kind, name string) error {
	f.calls = append(f.calls, "resume "+kind+" "+name)
	return nil
}
func (f *fakeQueue) Flush(sel queue.Selector, _ func(queue.Progress)) (int, error) {
	f.calls = append(f.calls, "flush "+sel.Domain)
	return 2, nil
}
func (f *fakeQueue) Bounce(sel queue.Selector, reason string, dry bool, _ func(queue.Progress)) (int, error) {
	f.calls = append(f.calls, "bounce "+sel.Campaign+" "+reason)
	return 5, nil
}
func (f *fakeQueue) Delete(sel queue.Selector, dry bool, _ func(queue.Progress)) (int, error) {
	if dry {
		f.calls = append(f.calls, "delete dry "+sel.Sender)
	} else {
		f.calls = append(f.calls, "delete "+sel.Sender)
	}
	return 7, nil
}

func (f *fakeQueue) Hold(sel queue.Selector, _ func(queue.Progress)) (int, error) {
	f.calls = append(f.calls, "hold "+strings.Join(sel.IDs, ","))
	return 2, nil
}
func (f *fakeQueue) Release(sel queue.Selector, _ func(queue.Progress)) (int, error) {
	f.calls = append(f.calls, fmt.Sprintf("release %s all=%v", sel.Recipient, sel.All))
	return 2, nil
}
func (f *fakeQueue) List(o queue.ListOptions) (queue.ListPage, error) {
	f.calls = append(f.calls, fmt.Sprintf("list %s %s %v %v newest=%v limit=%d after=%s", strings.Join(o.Selector.IDs, ","), o.Selector.Recipient, o.OlderThan, o.NewerThan, o.Newest, o.Limit, o.After))
	return queue.ListPage{Messages: []queue.Listed{{ID: "0c0r3j1k2q8g0000", ReturnPath: "r@acme.test",
		Recipients: []queue.ListedRecipient{{Address: "a@b.example", Attempts: 1, LastError: "451 later"}}}}, Next: "0c0r3j1k2q8g0000"}, nil
}
func (f *fakeQueue) Body(id string) ([]byte, error) {
	if id != "m1" {
		return nil, queue.ErrNotFound
	}
	return []byte("Subject: hi\r\n\r\nhello\r\n"), nil
}

// testToken is the admin token of the tests' handlers.
const testToken = "s3cret"

// listenerAddr is where the tests' requests come in, as the server tells
// the handler (http.LocalAddrContextKey).
var listenerAddr = &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 8025}

// do sends a request as drover's CLI does: to 127.0.0.1:8025, with the
// token when given and, on POST, Content-Type application/json.
func do(t *testing.T, h http.Handler, method, path, token, body, remote string) (int, string) {
	t.Helper()
	hdr := http.Header{}
	if token != "" {
		hdr.Set("Authorization", "Bearer "+token)
	}
	if method != "GET" {
		hdr.Set("Content-Type", "application/json")
	}
	return send(t, h, method, path, "127.0.0.1:8025", hdr, body, remote)
}

// send sends a request with the given Host and headers.
func send(t *testing.T, h http.Handler, method, path, host string, hdr http.Header, body, remote string) (int, string) {
	t.Helper()
	req := httptest.NewRequest(method, path, strings.NewReader(body))
	req = req.WithContext(context.WithValue(req.Context(), http.LocalAddrContextKey, net.Addr(listenerAddr)))
	req.RemoteAddr = remote
	req.Host = host
	for k, v := range hdr {
		req.Header[k] = v
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	b, _ := io.ReadAll(rec.Body)
	return rec.Code, string(b)
}

func TestAdminAPI(t *testing.T) {
	q := &fakeQueue{}
	reloads := 0
	h := Handler(Config{Gatherer: prometheus.NewRegistry(), Queue: q, AdminToken: testToken,
		Reload: func() error { reloads++; return errors.New("bad file: line 3") }})
	local, remote := "127.0.0.1:5000", "192.0.2.1:5000"

	cases := []struct {
		method, path, token, body, remote string
		code                              int
		want                              string
	}{
		{"GET", "/v1/queue", "", "", local, 401, "bearer token"},
		{"GET", "/v1/queue", "wrong", "", local, 401, "bearer token"},
		{"GET", "/v1/queue?by=domain", "s3cret", "", remote, 200, `"key": "google.com"`},
		{"GET", "/v1/queue?by=color", "s3cret", "", local, 400, "group by site"},
		{"GET", "/v1/queue/m1", "s3cret", "", local, 200, `"ID": "m1"`},
		{"GET", "/v1/queue/nope", "s3cret", "", local, 404, "not found"},
		{"POST", "/v1/queue/suspend", "s3cret", `{"site":"google.com","for":"30m","reason":"maintenance"}`, local, 200, `"affected": 0`},
		{"POST", "/v1/queue/suspend", "s3cret", `{"site":"nowhere.example"}`, local, 200, `"warning": "no known site is named nowhere.example`},
		{"POST", "/v1/queue/suspend", "s3cret", `{"site":"a","domain":"b"}`, local, 400, "exactly one of site and domain"},
		{"POST", "/v1/queue/suspend", "s3cret", `{"site":"a","for":"soon"}`, local, 400, "not a positive duration"},
		{"POST", "/v1/queue/resume", "s3cret", `{"domain":"x.example"}`, local, 200, ""},
		{"POST", "/v1/queue/flush", "s3cret", `{"domain":"x.example"}`, local, 202, `"state": "running"`},
		{"POST", "/v1/queue/flush", "s3cret", `{"dry_run":true}`, local, 400, "no dry run"},
		{"POST", "/v1/queue/bounce", "s3cret", `{}`, local, 400, "at least one of"},
		{"POST", "/v1/queue/bounce", "s3cret", `{"campaign":"c1"}`, local, 202, `"op": "bounce"`},
		{"POST", "/v1/queue/delete", "s3cret", `{"sender":"shop","dry_run":true}`, local, 202, `"dry_run": true`},
		{"POST", "/v1/queue/delete", "s3cret", `{"sendr":"shop"}`, local, 400, "unknown field"},
		{"POST", "/v1/queue/explode", "s3cret", `{}`, local, 404, "no queue operation"},
		{"POST", "/v1/reload", "s3cret", ``, local, 400, "line 3"},
		{"GET", "/healthz", "", "", remote, 200, "ok"},
	}
	for _, c := range cases {
		code, body := do(t, h, c.method, c.path, c.token, c.body, c.remote)
		if code != c.code || !strings.Contains(body, c.want) {
			t.Errorf("%s %s %s: %d %s, want %d with %q", c.method, c.path, c.body, code, body, c.code, c.want)
		}
		if code == http.StatusAccepted {
			// One job at a time, for the order of the calls.
			waitJob(t, h, "s3cret", body)
		}
	}
	want := []string{"summaries domain", "suspend site google.com maintenance", "suspend site nowhere.example suspended by operator", "resume domain x.example", "flush x.example", "bounce c1 bounced by operator", "delete dry shop"}
	if strings.Join(q.calls, "|") != strings.Join(want, "|") {
		t.Errorf("calls %q, want %q", q.calls, want)
	}
	if reloads != 1 {
		t.Errorf("reloads = %d", reloads)
	}
}

// A web page open in a browser on the operator's machine attacks the
// admin API: a cross-site POST (Content-Type text/plain, a foreign
// Origin) or one to a rebound name (Host rebind.evil.example), with no
// token or a guessed one. Every part of the attack alone is refused, with
// a JSON error, and nothing is deleted; what drover's CLI and curl send
// passes.
func TestAdminRefusesBrowserAttacks(t *testing.T) {
	const body = `{"sender":"shop"}`
	type headers = map[string]string
	good := headers{"Authorization": "Bearer " + testToken, "Content-Type": "application/json"}
	with := func(h headers, kv ...string) headers {
		out := headers{}
		for k, v := range good {
			out[k] = v
		}
		for k, v := range h {
			out[k] = v
		}
		for i := 0; i < len(kv); i += 2 {
			if kv[i+1] == "" {
				delete(out, kv[i])
			} else {
				out[kv[i]] = kv[i+1]
			}
		}
		return out
	}
	attack := headers{"Content-Type": "text/plain", "Origin": "http://evil.example", "Authorization": ""}
	cases := []struct {
		name, token, host string
		hdr               headers
		code              int
		want              string
	}{
		// What the browser sends: no token, or a guessed one.
		{"browser attack", testToken, "rebind.evil.example", with(attack), 403, "DNS rebinding"},
		{"browser attack, guessed token", testToken, "rebind.evil.example:8025", with(attack, "Authorization", "Bearer guess"), 403, "rebind.evil.example"},
		{"browser attack, no token configured", "", "rebind.evil.example:8025", with(attack), 403, "DNS rebinding"},
		{"browser attack at 127.0.0.1, no token configured", "", "127.0.0.1:8025", with(attack), 403, "Origin"},
		{"cross-site form, no token configured", "", "127.0.0.1:8025", with(nil, "Content-Type", "application/x-www-form-urlencoded", "Authorization", ""), 401, "bearer token"},
		// Each defence alone, the rest of the request right.
		{"no token", testToken, "127.0.0.1:8025", with(nil, "Authorization", ""), 401, "bearer token"},
		{"wrong token", testToken, "127.0.0.1:8025", with(nil, "Authorization", "Bearer guess"), 401, "bearer token"},
		{"token as a prefix", testToken, "127.0.0.1:8025", with(nil, "Authorization", "Bearer "+testToken+"x"), 401, "bearer token"},
		{"other scheme", testToken, "127.0.0.1:8025", with(nil, "Authorization", "Basic "+testToken), 401, "bearer token"},
		{"empty token configured", "", "127.0.0.1:8025", with(nil, "Authorization", "Bearer "), 401, "bearer token"},
		{"rebound name", testToken, "rebind.evil.example:8025", with(nil), 403, "DNS rebinding"},
		{"rebound name, no port", testToken, "rebind.evil.example", with(nil), 403, "DNS rebinding"},
		{"localhost subdomain", testToken, "evil.localhost:8025", with(nil), 403, "DNS rebinding"},
		{"no Host", testToken, "", with(nil), 403, "DNS rebinding"},
		{"other port", testToken, "127.0.0.1:9999", with(nil), 403, "another port than 8025"},
		{"foreign Origin", testToken, "127.0.0.1:8025", with(nil, "Origin", "http://evil.example"), 403, "Origin"},
		{"null Origin", testToken, "127.0.0.1:8025", with(nil, "Origin", "null"), 403, "Origin"},
		{"Origin of another port", testToken, "127.0.0.1:8025", with(nil, "Origin", "http://127.0.0.1:3000"), 403, "Origin"},
		{"text/plain", testToken, "127.0.0.1:8025", with(nil, "Content-Type", "text/plain"), 415, "application/json"},
		{"form", testToken, "127.0.0.1:8025", with(nil, "Content-Type", "application/x-www-form-urlencoded"), 415, "application/json"},
		{"multipart", testToken, "127.0.0.1:8025", with(nil, "Content-Type", "multipart/form-data; boundary=x"), 415, "application/json"},
		{"no Content-Type", testToken, "127.0.0.1:8025", with(nil, "Content-Type", ""), 415, "application/json"},
		// What an operator's tool sends.
		{"good", testToken, "127.0.0.1:8025", with(nil), 202, `"op": "delete"`},
		{"bearer in lower case", testToken, "127.0.0.1:8025", with(nil, "Authorization", "bearer "+testToken), 202, `"op": "delete"`},
		{"BEARER", testToken, "127.0.0.1:8025", with(nil, "Authorization", "BEARER "+testToken), 202, `"op": "delete"`},
		{"JSON with charset", testToken, "127.0.0.1:8025", with(nil, "Content-Type", "application/json; charset=utf-8"), 202, `"op": "delete"`},
		{"IP without port", testToken, "127.0.0.1", with(nil), 202, `"op": "delete"`},
		{"localhost", testToken, "LocalHost:8025", with(nil), 202, `"op": "delete"`},
		{"IPv6", testToken, "[::1]:8025", with(nil), 202, `"op": "delete"`},
		{"listener on 0.0.0.0 called by its IP", testToken, "192.0.2.10:8025", with(nil), 202, `"op": "delete"`},
		{"allowed name", testToken, "drover.internal.example", with(nil), 202, `"op": "delete"`},
		{"allowed name, any port, any case", testToken, "Drover.Internal.Example:443", with(nil), 202, `"op": "delete"`},
		{"own Origin", testToken, "127.0.0.1:8025", with(nil, "Origin", "http://127.0.0.1:8025"), 202, `"op": "delete"`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			q := &fakeQueue{}
			h := Handler(Config{Gatherer: prometheus.NewRegistry(), Queue: q, AdminToken: c.token, AllowedHosts: []string{"drover.internal.example"}})
			hdr := http.Header{}
			for k, v := range c.hdr {
				if v != "" {
					hdr.Set(k, v)
				}
			}
			code, got := send(t, h, "POST", "/v1/queue/delete", c.host, hdr, body, "127.0.0.1:5000")
			if code != c.code || !strings.Contains(got, c.want) {
				t.Fatalf("%d %s, want %d with %q", code, got, c.code, c.want)
			}
			if code != http.StatusAccepted {
				var e struct{ Error string }
				if json.Unmarshal([]byte(got), &e) != nil || e.Error == "" {
					t.Errorf("refusal is not a JSON error: %s", got)
				}
				if len(q.calls) != 0 {
					t.Errorf("refused, yet the queue was called: %q", q.calls)
				}
				return
			}
			waitJob(t, h, testToken, got)
			if strings.Join(q.calls, "|") != "delete shop" {
				t.Errorf("calls %q, want a delete of shop", q.calls)
			}
		})
	}
}

// The profiler is the admin's: a token and this listener's Host. /metrics
// and /healthz answer anyone.
func TestProfilerNeedsToken(t *testing.T) {
	h := Handler(Config{Gatherer: prometheus.NewRegistry(), Queue: &fakeQueue{}, AdminToken: testToken})
	auth := func(v string) http.Header { return http.Header{"Authorization": {v}} }
	for _, c := range []struct {
		path, host string
		hdr        http.Header
		code       int
	}{
		{"/debug/pprof/", "127.0.0.1:8025", nil, 401},
		{"/debug/pprof/heap", "127.0.0.1:8025", nil, 401},
		{"/debug/pprof/profile?seconds=1", "127.0.0.1:8025", nil, 401},
		{"/debug/pprof/", "127.0.0.1:8025", auth("Bearer wrong"), 401},
		{"/debug/pprof/", "rebind.evil.example:8025", auth("Bearer " + testToken), 403},
		{"/debug/pprof/", "127.0.0.1:8025", auth("bearer " + testToken), 200},
		{"/metrics", "rebind.evil.example:8025", nil, 200},
		{"/healthz", "rebind.evil.example:8025", nil, 200},
	} {
		if code, body := send(t, h, "GET", c.path, c.host, c.hdr, "", "192.0.2.1:5000"); code != c.code {
			t.Errorf("GET %s (Host %s, %v): %d %.200s, want %d", c.path, c.host, c.hdr, code, body, c.code)
		}
	}
}

// The suspensions in force are listed for an admin.
func TestSuspensionsList(t *testing.T) {
	h := Handler(Config{Gatherer: prometheus.NewRegistry(), Queue: &fakeQueue{}, AdminToken: testToken})
	code, body := do(t, h, "GET", "/v1/queue/suspensions", testToken, "", "127.0.0.1:5000")
	if code != 200 || !strings.Contains(body, `"held.test"`) || !strings.Contains(body, `"maintenance"`) {
		t.Errorf("%d %s", code, body)
	}
}

// The per-message listing, a message's body, hold and release, and
// selectors by id and recipient, with the token and JSON as the CLI sends
// them.
func TestAdminMessages(t *testing.T) {
	q := &fakeQueue{}
	h := Handler(Config{Gatherer: prometheus.NewRegistry(), Queue: q, AdminToken: testToken})
	local := "127.0.0.1:5000"
	cases := []struct {
		method, path, token, body string
		code                      int
		want                      string
	}{
		{"GET", "/v1/queue/messages", "", "", 401, "bearer token"},
		{"GET", "/v1/queue/messages?recipient=@b.example&older_than=1h&order=newest&limit=5&after=0C0R3J1K2Q8G0000", testToken, "", 200, `"last_error": "451 later"`},
		{"GET", "/v1/queue/messages?id=0C0R3J1K2Q8G0000&newer_than=10m", testToken, "", 200, `"return_path": "r@acme.test"`},
		{"GET", "/v1/queue/messages?id=nope", testToken, "", 400, `not a message ID`},
		{"GET", "/v1/queue/messages?older_than=soon", testToken, "", 400, `not a positive duration`},
		{"GET", "/v1/queue/messages?order=random", testToken, "", 400, `oldest or newest`},
		{"GET", "/v1/queue/messages?limit=0", testToken, "", 400, `limit`},
		{"GET", "/v1/queue/messages?rcpt=x", testToken, "", 400, `unknown parameter`},
		{"GET", "/v1/queue/m1/body", testToken, "", 200, "Subject: hi"},
		{"GET", "/v1/queue/m2/body", testToken, "", 404, "not found"},
		{"POST", "/v1/queue/hold", testToken, `{"ids":["0C0R3J1K2Q8G0000"]}`, 202, `"op": "hold"`},
		{"POST", "/v1/queue/hold", testToken, `{}`, 400, `at least one of id, recipient`},
		{"POST", "/v1/queue/hold", testToken, `{"ids":["bad"]}`, 400, `not a message ID`},
		{"POST", "/v1/queue/release", testToken, `{"all":true}`, 202, `"op": "release"`},
		{"POST", "/v1/queue/release", testToken, `{"recipient":"a@b.example"}`, 202, `"recipient": "a@b.example"`},
		{"POST", "/v1/queue/delete", testToken, `{"all":false}`, 400, `at least one of id, recipient`},
		{"POST", "/v1/queue/delete", testToken, `{"ids":["0c0r3j1k2q8g0000"]}`, 202, `"op": "delete"`},
		{"POST", "/v1/queue/suspend", testToken, `{"recipient":"a@b.example"}`, 400, "hold them"},
	}
	for _, c := range cases {
		code, body := do(t, h, c.method, c.path, c.token, c.body, local)
		if code != c.code || !strings.Contains(body, c.want) {
			t.Errorf("%s %s %s: %d %s, want %d with %q", c.method, c.path, c.body, code, body, c.code, c.want)
		}
		if code == http.StatusAccepted {
			waitJob(t, h, testToken, body)
		}
	}
	want := []string{
		"list  @b.example 1h0m0s 0s newest=true limit=5 after=0C0R3J1K2Q8G0000",
		"list 0C0R3J1K2Q8G0000  0s 10m0s newest=false limit=0 after=",
		"hold 0C0R3J1K2Q8G0000", "release  all=true", "release a@b.example all=false", "delete ",
	}
	if strings.Join(q.calls, "|") != strings.Join(want, "|") {
		t.Errorf("calls %q\nwant %q", q.calls, want)
	}
	// A hold without the JSON content type changes nothing.
	code, _ := send(t, h, "POST", "/v1/queue/hold", "127.0.0.1:8025", http.Header{"Authorization": {"Bearer " + testToken}}, `{"all":true}`, local)
	if code != http.StatusUnsupportedMediaType {
		t.Errorf("hold as text: %d", code)
	}
}
