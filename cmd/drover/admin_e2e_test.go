package main

import (
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"drover/testkit"
)

// call sends one request to d's HTTP listener, as curl would, and returns
// the status and body.
func (d *drover) call(t *testing.T, method, path, host, body string, hdr map[string]string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(method, "http://"+d.http+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if host != "" {
		req.Host = host
	}
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func (d *drover) waitHTTP(t *testing.T) {
	t.Helper()
	testkit.WaitFor(t, 20*time.Second, "the HTTP listener", func() bool {
		resp, err := http.Get("http://" + d.http + "/healthz")
		if err == nil {
			resp.Body.Close()
		}
		return err == nil && resp.StatusCode == 200
	})
}

var tokenChars = regexp.MustCompile(`^[A-Za-z0-9_-]{43}$`)

// With no http.admin_token, the first start makes a token file (0600, 256
// random bits, not logged) that the admin API requires and that the CLI
// reads by itself; a restart keeps it. The attacks of a web page are
// refused by the running server.
func TestAdminTokenMadeAtFirstStart(t *testing.T) {
	t.Setenv("DROVER_ADMIN_TOKEN", "")
	d := startDroverHTTP(t, t.TempDir(), "", "")
	d.waitHTTP(t)
	path := filepath.Join(d.dir, "data", "admin-token")
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatalf("no token file after the first start: %v", err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("token file mode %v, want 0600", fi.Mode().Perm())
	}
	data, _ := os.ReadFile(path)
	tok := strings.TrimSpace(string(data))
	if !tokenChars.MatchString(tok) {
		t.Fatalf("token %q is not 256 bits of URL-safe base64", tok)
	}
	if strings.Contains(d.out.String(), tok) {
		t.Error("the token is in the log")
	}

	bearer := map[string]string{"Authorization": "Bearer " + tok}
	asJSON := map[string]string{"Authorization": "Bearer " + tok, "Content-Type": "application/json"}
	for _, c := range []struct {
		method, path, host, body string
		hdr                      map[string]string
		code                     int
	}{
		{"GET", "/v1/queue", "", "", nil, 401},
		{"GET", "/v1/queue", "", "", map[string]string{"Authorization": "Bearer wrong"}, 401},
		{"GET", "/debug/pprof/", "", "", nil, 401},
		{"POST", "/v1/queue/delete", "rebind.evil.example", `{"domain":"x.test"}`,
			map[string]string{"Content-Type": "text/plain", "Origin": "http://rebind.evil.example"}, 403},
		{"POST", "/v1/queue/delete", "", `{"domain":"x.test"}`, map[string]string{"Content-Type": "text/plain"}, 401},
		{"POST", "/v1/queue/delete", "", `{"domain":"x.test"}`, map[string]string{"Authorization": "Bearer " + tok, "Content-Type": "text/plain"}, 415},
		{"POST", "/v1/queue/delete", "", `{"domain":"x.test"}`, map[string]string{"Authorization": "Bearer " + tok, "Content-Type": "application/json", "Origin": "http://evil.example"}, 403},
		{"GET", "/v1/queue", "rebind.evil.example:8025", "", bearer, 403},
		{"GET", "/v1/queue", "", "", map[string]string{"Authorization": "bearer " + tok}, 200},
		{"GET", "/debug/pprof/", "", "", bearer, 200},
		{"POST", "/v1/queue/delete", "", `{"domain":"x.test","dry_run":true}`, asJSON, 202},
		{"GET", "/metrics", "rebind.evil.example", "", nil, 200},
	} {
		code, body := d.call(t, c.method, c.path, c.host, c.body, c.hdr)
		if code != c.code {
			t.Errorf("%s %s (Host %q, %v): %d %.300s, want %d", c.method, c.path, c.host, c.hdr, code, body, c.code)
		}
		if code/100 == 4 && !strings.HasPrefix(body, `{"error":`) {
			t.Errorf("%s %s: refusal is not a JSON error: %s", c.method, c.path, body)
		}
	}

	// The CLI finds the token in the data directory of --config.
	if out, err := d.cli("queue", "ls", "--config", d.cfgPath); err != nil || !strings.Contains(out, "RECIPIENTS") {
		t.Errorf("queue ls without --token: %v\n%s", err, out)
	}
	if out, err := d.cli("queue", "suspend", "--domain", "x.test", "--for", "1m", "--config", d.cfgPath); err != nil || !strings.Contains(out, "suspend: ok") {
		t.Errorf("queue suspend without --token: %v\n%s", err, out)
	}
	if out, err := d.cli("queue", "suspensions", "--config", d.cfgPath); err != nil || !strings.Contains(out, "x.test") {
		t.Errorf("queue suspensions: %v\n%s", err, out)
	}
	if out, err := d.cli("queue", "ls", "--config", d.cfgPath, "--token", "wrong"); err == nil || !strings.Contains(out, "wrong bearer token") || strings.Contains(out, "401") {
		t.Errorf("--token wrong: %v\n%s", err, out)
	}

	d.stop()
	d.start()
	d.waitHTTP(t)
	if again, _ := os.ReadFile(path); string(again) != string(data) {
		t.Errorf("token changed at a restart: %q, then %q", data, again)
	}
	if out, err := d.cli("queue", "ls", "--config", d.cfgPath); err != nil || !strings.Contains(out, "RECIPIENTS") {
		t.Errorf("queue ls after a restart: %v\n%s", err, out)
	}
}

// The CLI without a token to read says which file it tried.
func TestAdminCLIWithoutToken(t *testing.T) {
	t.Setenv("DROVER_ADMIN_TOKEN", "")
	dir := t.TempDir()
	cfg := filepath.Join(dir, "drover.yaml")
	if err := os.WriteFile(cfg, []byte("data_dir: "+filepath.Join(dir, "data")+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	out, err := (&drover{}).cli("queue", "ls", "--config", cfg)
	want := filepath.Join(dir, "data", "admin-token")
	if err == nil || !strings.Contains(out, "no admin token") || !strings.Contains(out, want) {
		t.Errorf("queue ls with no token anywhere: %v\n%s\nwant an error naming %s", err, out, want)
	}
	// A configured token comes before the file, which stays unread.
	os.WriteFile(cfg, []byte("data_dir: "+filepath.Join(dir, "data")+"\nhttp:\n  address: 127.0.0.1:1\n  admin_token: configured\n"), 0o600)
	if out, _ := (&drover{}).cli("queue", "ls", "--config", cfg); strings.Contains(out, "no admin token") {
		t.Errorf("http.admin_token not used:\n%s", out)
	}
}
