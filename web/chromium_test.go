package web

import (
	"bytes"
	"context"
	"net/http/httptest"
	"os"
	"sync"
	"testing"

	"github.com/chromedp/chromedp"
)

// chromiumPath is Debian's chromium package's browser, which .ci/run
// installs.
const chromiumPath = "/usr/bin/chromium"

// needChromium skips the test when Chromium is missing, or fails it under
// CI, which installs it.
func needChromium(t *testing.T) {
	t.Helper()
	if fi, err := os.Stat(chromiumPath); err != nil || fi.Mode()&0o111 == 0 {
		msg := "needs headless Chromium at " + chromiumPath + ": apt-get install chromium"
		if os.Getenv("CI") != "" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
}

// TestConfirmPageInChromium loads the GET page in a real browser, which
// must not unsubscribe, then presses its button as a recipient does:
// exactly one unsubscribe, and the confirmation page names the list and
// the sender. The page's style must survive the Content-Security-Policy,
// and the browser must report no violation of it.
func TestConfirmPageInChromium(t *testing.T) {
	needChromium(t)
	f := newFixture(t, "")
	srv := httptest.NewServer(f.handler) // 127.0.0.1
	defer srv.Close()
	pageURL := srv.URL + "/u/" + f.seal(testRcpt)

	ctx, violations := newBrowser(t)

	if err := chromedp.Do(ctx,
		chromedp.Navigate(pageURL),
		chromedp.WaitVisible(chromedp.ID("confirm")),
	); err != nil {
		t.Fatalf("loading %s: %v", pageURL, err)
	}
	heading := run(t, ctx, chromedp.Text(chromedp.CSS("h1")))
	buttonText := run(t, ctx, chromedp.Text(chromedp.ID("confirm")))
	if heading != "Unsubscribe from Weekly deals?" || buttonText != "Unsubscribe" {
		t.Errorf("page shows %q with button %q", heading, buttonText)
	}
	bg := run(t, ctx, chromedp.Evaluate[string](`getComputedStyle(document.getElementById("confirm")).backgroundColor`))
	if bg != "rgb(11, 83, 148)" {
		t.Errorf("button background %q: the page's style did not apply", bg)
	}
	if calls := f.unsub.Calls(); len(calls) != 0 {
		t.Fatalf("loading the page unsubscribed: %+v", calls)
	}

	resp, err := chromedp.RunResponse(ctx, chromedp.Click(chromedp.ID("confirm")))
	if err != nil {
		t.Fatalf("pressing the button: %v", err)
	}
	if resp.Status != 200 {
		t.Errorf("pressing the button: status %d, want 200", resp.Status)
	}
	done := run(t, ctx, chromedp.Text(chromedp.ID("done")))
	if done != "You are unsubscribed from Weekly deals (of Acme Outdoor)" {
		t.Errorf("confirmation page shows %q", done)
	}
	if loc := run(t, ctx, chromedp.Location()); loc != pageURL {
		t.Errorf("the button posted to %s, want %s", loc, pageURL)
	}
	calls := f.unsub.Calls()
	if len(calls) != 1 || calls[0].r != testRcpt || calls[0].source != "page" {
		t.Fatalf("calls %+v, want one page unsubscribe of %+v", calls, testRcpt)
	}
	if v := violations(); len(v) > 0 {
		t.Errorf("Chromium reports Content-Security-Policy violations: %q", v)
	}
}

// run runs a in the browser and returns its value, or fails the test.
func run[T any](t *testing.T, ctx context.Context, a chromedp.Action[T]) T {
	t.Helper()
	v, err := chromedp.Run(ctx, a)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// syncBuffer lets the browser's output goroutine and the test share a
// buffer.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
