package web

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	cdplog "github.com/chromedp/cdproto/log"
	"github.com/chromedp/chromedp"

	"drover/policy"
)

// TestManagePageInChromium uses the manage page in a real browser, as a
// recipient does, in English and in Chinese: open it, correct the name,
// unsubscribe from one list, download the data, erase; the page says what was
// done after each step, the browser's posts pass the cross-site checks,
// and it reports no violation of the Content-Security-Policy.
func TestManagePageInChromium(t *testing.T) {
	needChromium(t)
	for _, c := range []struct {
		lang, heading, nameDone, unsubDone, unsubscribed, erased string
	}{
		{"en", "Your subscription with shop", "Your name is saved.", "You are unsubscribed from news.", "You are unsubscribed from this list.", "Your data is erased"},
		{"zh-Hans", "您在 shop 的订阅", "您的姓名已保存。", "您已退订 news。", "您已退订此列表。", "您的数据已删除"},
	} {
		t.Run(c.lang, func(t *testing.T) {
			var f *manageFixture
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { f.h.ServeHTTP(w, r) }))
			defer srv.Close()
			f = newManageFixture(t, srv.URL)
			pageURL := srv.URL + "/m/" + f.tok + "?lang=" + c.lang

			ctx, violations := newBrowser(t)
			if err := chromedp.Do(ctx, chromedp.Navigate(pageURL), chromedp.WaitVisible(chromedp.ID("name"))); err != nil {
				t.Fatalf("loading %s: %v", pageURL, err)
			}
			if h := run(t, ctx, chromedp.Text(chromedp.CSS("h1"))); h != c.heading {
				t.Errorf("heading %q, want %q", h, c.heading)
			}
			if a := run(t, ctx, chromedp.Text(chromedp.ID("address"))); !strings.Contains(a, manageAddr) {
				t.Errorf("address shown as %q", a)
			}
			label := run(t, ctx, chromedp.Evaluate[string](`document.querySelector("label[for=name]").textContent`))
			if label == "" {
				t.Error("the name field has no label")
			}

			const name = "Ann <i>Lee</i>"
			if err := chromedp.Do(ctx, chromedp.SetValue(chromedp.ID("name"), name)); err != nil {
				t.Fatal(err)
			}
			resp, err := chromedp.RunResponse(ctx, chromedp.Click(chromedp.ID("save-name")))
			if err != nil || resp.Status != 200 {
				t.Fatalf("saving the name: %v %v", resp, err)
			}
			if d := run(t, ctx, chromedp.Text(chromedp.ID("done"))); d != c.nameDone {
				t.Errorf("after saving the name the page says %q", d)
			}
			if v := run(t, ctx, chromedp.Value(chromedp.ID("name"))); v != name {
				t.Errorf("the name field shows %q", v)
			}
			if n := run(t, ctx, chromedp.Evaluate[int](`document.getElementsByTagName("i").length`)); n != 0 || f.name(t) != name {
				t.Errorf("the name made %d elements; stored %q", n, f.name(t))
			}

			resp, err = chromedp.RunResponse(ctx, chromedp.Click(chromedp.ID("unsubscribe-0")))
			if err != nil || resp.Status != 200 {
				t.Fatalf("unsubscribing: %v %v", resp, err)
			}
			if d := run(t, ctx, chromedp.Text(chromedp.ID("done"))); d != c.unsubDone {
				t.Errorf("after unsubscribing the page says %q", d)
			}
			if s := run(t, ctx, chromedp.Text(chromedp.CSS("#list-0 p"))); s != c.unsubscribed {
				t.Errorf("the list news shows %q", s)
			}
			if !f.refused(t, "news") || f.refused(t, "weekly") {
				t.Errorf("news refused %v, weekly refused %v: want only news", f.refused(t, "news"), f.refused(t, "weekly"))
			}
			if loc := run(t, ctx, chromedp.Location()); !strings.HasPrefix(loc, srv.URL+"/m/"+f.tok+"?") || !strings.Contains(loc, "lang="+c.lang) {
				t.Errorf("the page is at %s", loc)
			}

			href := run(t, ctx, chromedp.Evaluate[string](`document.getElementById("data").href`))
			if !strings.HasPrefix(href, srv.URL+"/m/"+f.tok+"/data.json") {
				t.Fatalf("the data link is %q", href)
			}
			dl, err := http.Get(href)
			if err != nil {
				t.Fatal(err)
			}
			defer dl.Body.Close()
			var h policy.Held
			if err := json.NewDecoder(dl.Body).Decode(&h); err != nil || len(h.Attributes) != 1 || h.Attributes[0].Attributes["name"] != name {
				t.Errorf("data.json: %+v %v", h, err)
			}
			if !strings.HasPrefix(dl.Header.Get("Content-Disposition"), "attachment") {
				t.Errorf("data.json is not a download: %v", dl.Header)
			}

			// Erasure: a button, then a second one that confirms.
			resp, err = chromedp.RunResponse(ctx, chromedp.Click(chromedp.ID("erase")))
			if err != nil || resp.Status != 200 || len(f.eraser.calls) != 0 {
				t.Fatalf("asking to erase: %v %v, calls %v", resp, err, f.eraser.calls)
			}
			resp, err = chromedp.RunResponse(ctx, chromedp.Click(chromedp.ID("erase-confirm")))
			if err != nil || resp.Status != 200 {
				t.Fatalf("confirming the erasure: %v %v", resp, err)
			}
			if d := run(t, ctx, chromedp.Text(chromedp.ID("done"))); d != c.erased || len(f.eraser.calls) != 1 {
				t.Errorf("after the erasure the page says %q, calls %v", d, f.eraser.calls)
			}
			if v := violations(); len(v) > 0 {
				t.Errorf("Chromium reports Content-Security-Policy violations: %q", v)
			}
		})
	}
}

// newBrowser starts a headless Chromium for t, and returns its context
// and the Content-Security-Policy violations it reported so far.
func newBrowser(t *testing.T) (context.Context, func() []string) {
	t.Helper()
	browserOut := &syncBuffer{}
	opts := []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(chromiumPath),
		chromedp.Headless,
		chromedp.NoSandbox, // the tests run as root
		chromedp.DisableGPU,
		chromedp.NoFirstRun,
		chromedp.NoDefaultBrowserCheck,
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-dev-shm-usage", true),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.CombinedOutput(browserOut),
	}
	ctx, cancel := context.WithTimeout(t.Context(), 90*time.Second)
	ctx, cancelAlloc := chromedp.NewExecAllocator(ctx, opts...)
	ctx, cancelBrowser := chromedp.NewContext(ctx)
	t.Cleanup(func() {
		cancelBrowser()
		cancelAlloc()
		cancel()
	})
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("Chromium's output:\n%s", browserOut.String())
		}
	})
	var mu sync.Mutex
	var violations []string
	err := chromedp.Listen(ctx, func(ev any) {
		if e, ok := ev.(*cdplog.EventEntryAdded); ok && strings.Contains(e.Entry.Text, "Content Security Policy") {
			mu.Lock()
			violations = append(violations, e.Entry.Text)
			mu.Unlock()
		}
	})
	if err != nil {
		t.Fatalf("starting Chromium: %v", err)
	}
	return ctx, func() []string {
		mu.Lock()
		defer mu.Unlock()
		return append([]string(nil), violations...)
	}
}
