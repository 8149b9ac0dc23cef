package mtasts

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"testing"
)

const enforcePolicy = "version: STSv1\nmode: enforce\nmx: *.mx.example.com\nmax_age: 604800\n"

func TestHTTPSFetcher(t *testing.T) {
	ps, client := newPolicyServer(t, "mta-sts.example.com", "mta-sts.example.net", "mta-sts.example.org", "mta-sts.example.edu", "mta-sts.example.info")
	ps.set("mta-sts.example.com", response{body: enforcePolicy})
	ps.set("mta-sts.example.net", response{body: "version: STSv1\nmode: testing\nmx: mx.example.net\nmax_age: 60\n", contentType: "text/plain; charset=utf-8"})
	ps.set("mta-sts.example.org", response{status: http.StatusFound, location: "https://mta-sts.example.com/.well-known/mta-sts.txt"})
	ps.set("mta-sts.example.edu", response{body: enforcePolicy, contentType: "text/html"})
	ps.set("mta-sts.example.info", response{body: strings.Repeat("x", MaxPolicySize+1)})
	f := &HTTPSFetcher{Client: client}
	ctx := context.Background()

	// Each domain gets its own policy, from its own mta-sts host.
	for domain, want := range map[string]string{"example.com": "mode: enforce", "EXAMPLE.net.": "mode: testing"} {
		body, err := f.Fetch(ctx, domain)
		if err != nil || !strings.Contains(string(body), want) {
			t.Errorf("Fetch(%q) = %q, %v; want a body with %q", domain, body, err, want)
		}
	}

	failures := []struct{ domain, want string }{
		{"example.org", "302 Found (redirects are not followed)"},
		{"example.edu", `Content-Type "text/html" is not text/plain`},
		{"example.info", "body over 65536 bytes"},
		{"missing.example.com", "certificate"}, // a host the certificate does not name
		{"x/../../etc", `invalid domain "x/../../etc"`},
	}
	for _, tt := range failures {
		if _, err := f.Fetch(ctx, tt.domain); err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("Fetch(%q): err = %v, want one containing %q", tt.domain, err, tt.want)
		}
	}
	if _, err := f.Fetch(ctx, "example.com"); err != nil {
		t.Errorf("fetch after failures: %v", err)
	}
	if got := ps.gets.Load(); got != 6 {
		t.Errorf("server saw %d GETs, want 6 (no redirect followed, no request past a bad certificate)", got)
	}
}

func TestHTTPSFetcherStatusAndTrust(t *testing.T) {
	ps, client := newPolicyServer(t, "mta-sts.example.com")
	ctx := context.Background()
	if _, err := (&HTTPSFetcher{Client: client}).Fetch(ctx, "example.com"); err == nil || !strings.Contains(err.Error(), "404") {
		t.Errorf("no policy served: err = %v, want a 404", err)
	}
	ps.set("mta-sts.example.com", response{body: enforcePolicy})
	// The same server, but a client that does not trust its CA (Go's
	// default roots, as in production).
	untrusting := ps.client(nil)
	_, err := (&HTTPSFetcher{Client: untrusting}).Fetch(ctx, "example.com")
	if err == nil || !strings.Contains(err.Error(), "certificate") {
		t.Errorf("untrusted certificate: err = %v", err)
	}
	// A canceled context stops the fetch.
	canceled, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := (&HTTPSFetcher{Client: client}).Fetch(canceled, "example.com"); !errors.Is(err, context.Canceled) {
		t.Errorf("canceled: err = %v", err)
	}
}
