package httpapi

import (
	"errors"
	"io"
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
	}
	return 7, nil
}

func do(t *testing.T, h http.Handler, method, path, token, body, remote string) (int, string) {
	t.Helper()
	req := httptest.NewRequest(method, path, strings.NewReader(body))
	req.RemoteAddr = remote
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	b, _ := io.ReadAll(rec.Body)
	return rec.Code, string(b)
}

func TestAdminAPI(t *testing.T) {
	q := &fakeQueue{}
	reloads := 0
	h := Handler(Config{Gatherer: prometheus.NewRegistry(), Queue: q, AdminToken: "s3cret",
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

// Without a token, the admin API answers loopback clients only.
func TestAdminLoopbackOnly(t *testing.T) {
	h := Handler(Config{Gatherer: prometheus.NewRegistry(), Queue: &fakeQueue{}})
	if code, _ := do(t, h, "GET", "/v1/queue", "", "", "127.0.0.1:1"); code != 200 {
		t.Errorf("loopback: %d", code)
	}
	if code, body := do(t, h, "GET", "/v1/queue", "", "", "192.0.2.1:1"); code != 403 || !strings.Contains(body, "loopback") {
		t.Errorf("remote: %d %s", code, body)
	}
	if code, _ := do(t, h, "GET", "/debug/pprof/", "", "", "192.0.2.1:1"); code != 403 {
		t.Errorf("pprof remote: %d", code)
	}
}

// The suspensions in force are listed for an admin.
func TestSuspensionsList(t *testing.T) {
	h := Handler(Config{Gatherer: prometheus.NewRegistry(), Queue: &fakeQueue{}, AdminToken: "tok"})
	req := httptest.NewRequest("GET", "/v1/queue/suspensions", nil)
	req.Header.Set("Authorization", "Bearer tok")
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	if rec.Code != 200 || !strings.Contains(rec.Body.String(), `"held.test"`) || !strings.Contains(rec.Body.String(), `"maintenance"`) {
		t.Errorf("%d %s", rec.Code, rec.Body)
	}
}
