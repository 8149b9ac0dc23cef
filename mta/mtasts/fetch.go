package mtasts

import (
	"context"
	"fmt"
	"io"
	"mime"
	"net/http"
	"time"
)

// Fetcher fetches the policy file of a domain (RFC 8461 §3.3) and returns
// its body, unparsed.
type Fetcher interface {
	Fetch(ctx context.Context, domain string) ([]byte, error)
}

// FetchTimeout bounds one policy fetch by HTTPSFetcher.
const FetchTimeout = 10 * time.Second

// HTTPSFetcher is the Fetcher of RFC 8461 §3.3: it GETs
// https://mta-sts.<domain>/.well-known/mta-sts.txt, verifying the server's
// certificate, following no redirect, and accepting only a 200 answer of
// type text/plain of at most MaxPolicySize bytes, within FetchTimeout.
type HTTPSFetcher struct {
	// Client makes the request; nil means a client on a clone of
	// http.DefaultTransport (Go's system roots). Tests set one whose
	// transport trusts their own CA and dials their server. Whatever its
	// settings, redirects are not followed, and a zero Timeout becomes
	// FetchTimeout.
	Client *http.Client
}

var defaultFetchClient = &http.Client{Transport: http.DefaultTransport.(*http.Transport).Clone()}

// Fetch implements Fetcher.
func (f *HTTPSFetcher) Fetch(ctx context.Context, domain string) ([]byte, error) {
	domain = normalizeName(domain)
	if !validHostname(domain) {
		return nil, fmt.Errorf("mtasts: fetch: invalid domain %q", domain)
	}
	client := defaultFetchClient
	if f.Client != nil {
		client = f.Client
	}
	c := *client
	c.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	if c.Timeout == 0 {
		c.Timeout = FetchTimeout
	}
	url := "https://mta-sts." + domain + "/.well-known/mta-sts.txt"
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, fmt.Errorf("mtasts: fetch %s: %w", url, err)
	}
	resp, err := c.Do(req)
	if err != nil {
		return nil, fmt.Errorf("mtasts: fetch: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("mtasts: fetch %s: status %s (redirects are not followed)", url, resp.Status)
	}
	if mt, _, err := mime.ParseMediaType(resp.Header.Get("Content-Type")); err != nil || mt != "text/plain" {
		return nil, fmt.Errorf("mtasts: fetch %s: Content-Type %q is not text/plain", url, resp.Header.Get("Content-Type"))
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, MaxPolicySize+1))
	if err != nil {
		return nil, fmt.Errorf("mtasts: fetch %s: reading body: %w", url, err)
	}
	if len(body) > MaxPolicySize {
		return nil, fmt.Errorf("mtasts: fetch %s: body over %d bytes", url, MaxPolicySize)
	}
	return body, nil
}
