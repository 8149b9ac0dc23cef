package main

import (
	"context"
	"fmt"
	"io"
	"mime"
	"mime/multipart"
	"net/http"
	"net/mail"
	"net/url"
	"os"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

const chromium = "/usr/bin/chromium"

// withChromium runs fn with a fresh headless Chromium's context; it skips
// when Chromium is missing, and fails under CI, which installs it.
func withChromium(t *testing.T, fn func(ctx context.Context)) {
	t.Helper()
	if _, err := os.Stat(chromium); err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("needs headless Chromium at %s (.ci/run installs it)", chromium)
		}
		t.Skipf("needs headless Chromium at %s", chromium)
	}
	opts := []chromedp.ExecAllocatorOption{chromedp.ExecPath(chromium), chromedp.Headless, chromedp.NoSandbox, chromedp.DisableGPU,
		chromedp.NoFirstRun, chromedp.NoDefaultBrowserCheck, chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-background-networking", true), chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true), chromedp.Flag("disable-dev-shm-usage", true), chromedp.UserDataDir(t.TempDir())}
	ctx, cancel := context.WithTimeout(t.Context(), 90*time.Second)
	defer cancel()
	ctx, cancelAlloc := chromedp.NewExecAllocator(ctx, opts...)
	defer cancelAlloc()
	ctx, cancelBrowser := chromedp.NewContext(ctx)
	defer cancelBrowser()
	fn(ctx)
}

// browse runs a in the browser and returns its value, or fails the test.
func browse[T any](t *testing.T, ctx context.Context, a chromedp.Action[T]) T {
	t.Helper()
	v, err := chromedp.Run(ctx, a)
	if err != nil {
		t.Fatalf("chromium: %v", err)
	}
	return v
}

// textPart is the text/plain part of a multipart message, decoded.
func textPart(t *testing.T, raw []byte) string {
	t.Helper()
	m, err := mail.ReadMessage(strings.NewReader(string(raw)))
	if err != nil {
		t.Fatal(err)
	}
	_, params, _ := mime.ParseMediaType(m.Header.Get("Content-Type"))
	mr := multipart.NewReader(m.Body, params["boundary"])
	for {
		p, err := mr.NextPart()
		if err != nil {
			t.Fatalf("no text part: %v\n%s", err, raw)
		}
		if strings.HasPrefix(p.Header.Get("Content-Type"), "text/plain") {
			b, _ := io.ReadAll(p)
			return string(b)
		}
	}
}

// Double opt-in through the real binary: drover form html prints the
// form; a sign-up through the hosted endpoint queues the confirmation,
// delivered to the fake MX; its link opened in headless Chromium changes
// nothing until the button is pressed; then marketing mail to the list is
// accepted, and refused to an address without consent.
func TestDoubleOptInEndToEnd(t *testing.T) {
	dir := t.TempDir()
	mx := startMX(t)
	webAddr := freePort(t)
	d := startDrover(t, dir, fmt.Sprintf(`web:
  address: %q
  base_url: http://%s
senders:
  default:
    from_domains: [shop.test]
    dsn: false
    consent_required: [news]
    privacy_policy_url: https://shop.test/privacy
    signup:
      news:
        double_opt_in: true
        consent_text: "Yes, send me the news of Shop (twice a month)."
        purposes: [newsletter]
    confirmation:
      from: "Shop <news@shop.test>"
      subject: {en: "Confirm your subscription to {list}"}
      text: {en: "Please confirm your subscription to {list}: {link}"}
      html: {en: "<p><a href=\"{link}\">Confirm</a></p>"}
routes:
  "*.test": %q
`, webAddr, webAddr, mx.Addr))

	form, err := d.cli("form", "html", "--sender", "default", "--list", "news", "--config", d.cfgPath)
	if err != nil || !strings.Contains(form, `action="http://`+webAddr+`/subscribe/default/news"`) ||
		!strings.Contains(form, `type="checkbox" value="yes" required>`) || strings.Contains(form, "checked") ||
		!strings.Contains(form, `<a href="https://shop.test/privacy">`) {
		t.Fatalf("form html: %v\n%s", err, form)
	}

	resp, err := http.PostForm("http://"+webAddr+"/subscribe/default/news", url.Values{"email": {"ann@dest.test"}, "consent": {"yes"}})
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("sign-up: %s", resp.Status)
	}
	c := dialSMTP(t, d.smtp)
	if r := c.rcptReply(" X-DROVER-LIST=news", "ann@dest.test"); r != "550 5.7.1 Recipient has no confirmed consent for list news" {
		t.Errorf("RCPT before the confirmation: %q", r)
	}
	msg := mx.Wait(t, 1, 20*time.Second)[0]
	if msg.Rcpts[0] != "ann@dest.test" {
		t.Fatalf("confirmation sent to %v", msg.Rcpts)
	}
	link := regexp.MustCompile(`http://\S+/c/\S+`).FindString(textPart(t, msg.Data))
	if link == "" {
		t.Fatalf("no confirmation link:\n%s", msg.Data)
	}

	var heading, done string
	withChromium(t, func(ctx context.Context) {
		if err := chromedp.Do(ctx, chromedp.Navigate(link), chromedp.WaitVisible(chromedp.ID("confirm"))); err != nil {
			t.Fatalf("loading %s: %v", link, err)
		}
		heading = browse(t, ctx, chromedp.Text(chromedp.CSS("h1")))
		// The page is open: nothing is confirmed yet.
		if r := c.rcptReply(" X-DROVER-LIST=news", "ann@dest.test"); !strings.HasPrefix(r, "550") {
			t.Errorf("the page's GET confirmed: %s", r)
		}
		resp, err := chromedp.RunResponse(ctx, chromedp.Click(chromedp.ID("confirm")))
		if err != nil || resp.Status != 200 {
			t.Fatalf("pressing the button: %v %v", resp, err)
		}
		done = browse(t, ctx, chromedp.Text(chromedp.ID("done")))
	})
	if heading != "Confirm your subscription to news?" || !strings.Contains(done, "is confirmed") {
		t.Errorf("pages: %q, %q", heading, done)
	}
	if r := c.rcptReply(" X-DROVER-LIST=news", "ann@dest.test"); !strings.HasPrefix(r, "250") {
		t.Errorf("RCPT after the confirmation: %q", r)
	}
	if r := c.rcptReply(" X-DROVER-LIST=news", "bob@dest.test"); r != "550 5.7.1 Recipient has no confirmed consent for list news" {
		t.Errorf("RCPT without consent: %q", r)
	}
	// An application that hosts its own form signs up through the admin
	// API, with the client's IP and user agent: pending, confirmation
	// queued.
	code, body := d.call(t, "POST", "/v1/subscribe/default/news", "",
		`{"email":"carl@dest.test","consent":true,"ip":"198.51.100.4","user_agent":"App/1.0","source":"https://shop.test/app-form"}`,
		map[string]string{"Authorization": "Bearer t0ken", "Content-Type": "application/json"})
	if code != 200 || !strings.Contains(body, `"pending": true`) {
		t.Fatalf("admin API sign-up: %d %s", code, body)
	}
	if got := mx.Wait(t, 2, 20*time.Second); got[1].Rcpts[0] != "carl@dest.test" || !strings.Contains(textPart(t, got[1].Data), "/c/") {
		t.Errorf("the second confirmation: %v", got[1].Rcpts)
	}
	hist, err := d.cli("consent", "show", "ann@dest.test", "--sender", "default", "--list", "news", "--json", "--config", d.cfgPath)
	if err != nil || !strings.Contains(hist, `"status": "pending"`) && !strings.Contains(hist, `"status":"pending"`) || !strings.Contains(hist, "HeadlessChrome") {
		t.Errorf("consent history: %v\n%s", err, hist)
	}
	d.stop()
}
