package web

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// The shipped catalogs have the same keys: a language misses no text.
func TestShippedCatalogsComplete(t *testing.T) {
	keys := func(name string) []string {
		b, err := localeFiles.ReadFile("locales/" + name)
		if err != nil {
			t.Fatal(err)
		}
		var m map[string]string
		if err := json.Unmarshal(b, &m); err != nil {
			t.Fatal(err)
		}
		var k []string
		for key, v := range m {
			if strings.TrimSpace(v) == "" {
				t.Errorf("%s: %s is empty", name, key)
			}
			k = append(k, key)
		}
		slices.Sort(k)
		return k
	}
	en, zh := keys("en.json"), keys("zh-Hans.json")
	if !slices.Equal(en, zh) {
		t.Errorf("keys differ:\nen %v\nzh %v", en, zh)
	}
}

// A page speaks ?lang=, else the best match of Accept-Language, else
// English; it links to itself in the other languages and says its
// language in lang= and Content-Language.
func TestPageLanguage(t *testing.T) {
	f := newFixture(t, "")
	path := "/u/" + f.seal(testRcpt)
	for _, tc := range []struct {
		name, accept, query, lang, heading string
	}{
		{"default", "", "", "en", "Unsubscribe from Weekly deals?"},
		{"accept zh", "zh-CN,zh;q=0.9,en;q=0.5", "", "zh-Hans", "要退订 Weekly deals 吗？"},
		{"accept zh-TW falls to zh-Hans", "zh-TW", "", "zh-Hans", "要退订 Weekly deals 吗？"},
		{"accept unknown", "fr-FR,de;q=0.8", "", "en", "Unsubscribe from Weekly deals?"},
		{"switch wins", "zh-CN", "?lang=en", "en", "Unsubscribe from Weekly deals?"},
		{"switch to zh", "", "?lang=zh-Hans", "zh-Hans", "要退订 Weekly deals 吗？"},
		{"unknown switch", "", "?lang=xx", "en", "Unsubscribe from Weekly deals?"},
	} {
		req := httptest.NewRequest("GET", path+tc.query, nil)
		if tc.accept != "" {
			req.Header.Set("Accept-Language", tc.accept)
		}
		rec := httptest.NewRecorder()
		f.handler.ServeHTTP(rec, req)
		body := rec.Body.String()
		if rec.Code != 200 || !strings.Contains(body, `<html lang="`+tc.lang+`">`) || rec.Header().Get("Content-Language") != tc.lang ||
			!strings.Contains(body, "<h1>"+tc.heading+"</h1>") {
			t.Errorf("%s: %d %q\n%s", tc.name, rec.Code, rec.Header().Get("Content-Language"), body)
		}
		other := map[string]string{"en": "zh-Hans", "zh-Hans": "en"}[tc.lang]
		if !strings.Contains(body, `href="`+path+`?lang=`+other+`"`) {
			t.Errorf("%s: no link to %s:\n%s", tc.name, other, body)
		}
	}
	// The one-click answer and the error pages speak it too.
	req := httptest.NewRequest("POST", path, strings.NewReader("List-Unsubscribe=One-Click"))
	req.Header.Set("Accept-Language", "zh")
	rec := httptest.NewRecorder()
	f.handler.ServeHTTP(rec, req)
	if rec.Body.String() != "您已退订。\n" {
		t.Errorf("one-click in Chinese: %q", rec.Body.String())
	}
	req = httptest.NewRequest("GET", "/u/forged", nil)
	req.Header.Set("Accept-Language", "zh-Hans")
	rec = httptest.NewRecorder()
	f.handler.ServeHTTP(rec, req)
	if rec.Code != http.StatusBadRequest || !strings.Contains(rec.Body.String(), "此链接无效") {
		t.Errorf("error page in Chinese: %d\n%s", rec.Code, rec.Body.String())
	}
}

// A language added as a file is offered, its missing keys in English; a
// file that is not a catalog, or not named by a language tag, is refused.
func TestAddedLanguage(t *testing.T) {
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "fr.json"), []byte(`{"lang.name": "Français", "unsubscribe.button": "Se désabonner"}`), 0o600)
	loc, err := LoadLocales(dir)
	if err != nil {
		t.Fatal(err)
	}
	f := newFixture(t, "")
	f.handler = Handler(Config{Tokens: f.tokens, Unsubscriber: f.unsub, Now: f.clock.Now, Locales: loc})
	req := httptest.NewRequest("GET", "/u/"+f.seal(testRcpt), nil)
	req.Header.Set("Accept-Language", "fr")
	rec := httptest.NewRecorder()
	f.handler.ServeHTTP(rec, req)
	body := rec.Body.String()
	if !strings.Contains(body, `<html lang="fr">`) || !strings.Contains(body, "Se désabonner") || !strings.Contains(body, "Nothing changes until you press the button.") ||
		!strings.Contains(body, ">Français<") && !strings.Contains(body, "简体中文") {
		t.Errorf("French page:\n%s", body)
	}
	for name, content := range map[string]string{"de.json": "{not json", "not a tag!.json": "{}"} {
		bad := t.TempDir()
		os.WriteFile(filepath.Join(bad, name), []byte(content), 0o600)
		if _, err := LoadLocales(bad); err == nil || !strings.Contains(err.Error(), strings.TrimSuffix(name, ".json")) {
			t.Errorf("%s: error %v", name, err)
		}
	}
}
