package web

import (
	"embed"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"

	"golang.org/x/text/language"
)

// The pages' words come from message catalogs, one JSON file per
// language named by its BCP 47 tag (en.json, zh-Hans.json): each maps a
// key to a text with {name} placeholders. English and Simplified Chinese
// ship in locales/; LoadLocales adds or replaces languages with
// files of its own, no build needed. A language missing a key shows that
// key's English text. A page speaks the language its URL names (?lang=),
// else the best match of the browser's Accept-Language, else English; no
// cookie remembers it. Every page links to itself in the other languages.

//go:embed locales/*.json
var localeFiles embed.FS

// catalog is one language's texts.
type catalog struct {
	Tag  string // BCP 47, as the file is named: "zh-Hans"
	msgs map[string]string
	en   *catalog // the fallback, nil for English itself
}

// T is the text of key with its placeholders filled from kv (name,
// value, name, value, ...). Values are plain text: the templates escape
// the result.
func (c *catalog) T(key string, kv ...string) string {
	s, ok := c.msgs[key]
	if !ok && c.en != nil {
		s, ok = c.en.msgs[key]
	}
	if !ok {
		return key
	}
	for i := 0; i+1 < len(kv); i += 2 {
		s = strings.ReplaceAll(s, "{"+kv[i]+"}", kv[i+1])
	}
	return s
}

// Locales are the languages the pages speak.
type Locales struct {
	list    []*catalog // English first
	matcher language.Matcher
}

// shippedLocales are the catalogs of locales/ alone.
var shippedLocales = func() *Locales {
	l, err := LoadLocales("")
	if err != nil {
		panic(err)
	}
	return l
}()

// LoadLocales reads the shipped catalogs and the *.json files of dir
// ("" for none), which add languages or replace shipped ones.
func LoadLocales(dir string) (*Locales, error) {
	files := map[string][]byte{}
	shipped, _ := localeFiles.ReadDir("locales")
	for _, e := range shipped {
		b, _ := localeFiles.ReadFile("locales/" + e.Name())
		files[strings.TrimSuffix(e.Name(), ".json")] = b
	}
	if dir != "" {
		extra, err := filepath.Glob(filepath.Join(dir, "*.json"))
		if err != nil {
			return nil, err
		}
		for _, f := range extra {
			b, err := os.ReadFile(f)
			if err != nil {
				return nil, fmt.Errorf("locale %s: %w", f, err)
			}
			files[strings.TrimSuffix(filepath.Base(f), ".json")] = b
		}
	}
	names := make([]string, 0, len(files))
	for name := range files {
		names = append(names, name)
	}
	sort.Slice(names, func(i, j int) bool { return names[i] == "en" || (names[j] != "en" && names[i] < names[j]) })
	if len(names) == 0 || names[0] != "en" {
		return nil, fmt.Errorf("no English catalog (en.json)")
	}
	l := &Locales{}
	var tags []language.Tag
	for _, name := range names {
		tag, err := language.Parse(name)
		if err != nil {
			return nil, fmt.Errorf("locale file %s.json: %q is not a BCP 47 language tag", name, name)
		}
		c := &catalog{Tag: name}
		if err := json.Unmarshal(files[name], &c.msgs); err != nil {
			return nil, fmt.Errorf("locale %s.json: %w", name, err)
		}
		if name != "en" {
			c.en = l.list[0]
		}
		l.list = append(l.list, c)
		tags = append(tags, tag)
	}
	l.matcher = language.NewMatcher(tags)
	return l, nil
}

// pick is the catalog of r: its ?lang=, else its Accept-Language.
func (l *Locales) pick(r *http.Request) *catalog {
	if want := r.URL.Query().Get("lang"); want != "" {
		if i := slices.IndexFunc(l.list, func(c *catalog) bool { return strings.EqualFold(c.Tag, want) }); i >= 0 {
			return l.list[i]
		}
	}
	tags, _, _ := language.ParseAcceptLanguage(r.Header.Get("Accept-Language"))
	_, i, conf := l.matcher.Match(tags...)
	if conf == language.No {
		return l.list[0]
	}
	return l.list[i]
}

// langLink is a link of the language switch.
type langLink struct {
	Tag, Name, URL string
}

// switchLinks are the links to r's page in the languages other than c.
func (l *Locales) switchLinks(r *http.Request, c *catalog) []langLink {
	var out []langLink
	for _, o := range l.list {
		if o == c {
			continue
		}
		q := url.Values{"lang": {o.Tag}}
		out = append(out, langLink{Tag: o.Tag, Name: o.T("lang.name"), URL: r.URL.EscapedPath() + "?" + q.Encode()})
	}
	return out
}
