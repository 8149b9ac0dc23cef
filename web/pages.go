package web

import (
	"bytes"
	"embed"
	"html/template"
	"net/http"
	"strings"
	"unicode/utf8"

	"drover/policy"
)

//go:embed templates/*.html
var templateFiles embed.FS

// pages are the HTML pages, each templates/layout.html around one page's
// "content". A page added to the package is one file and one name here.
var pages = func() map[string]*template.Template {
	m := map[string]*template.Template{}
	for _, name := range []string{"unsubscribe.html", "unsubscribed.html", "error.html", "subscribed.html", "check_inbox.html", "confirm.html", "confirmed.html", "erase_confirm.html", "erased.html"} {
		m[name] = template.Must(template.ParseFS(templateFiles, "templates/layout.html", "templates/"+name))
	}
	return m
}()

// page is what the templates show. Every field is text, escaped by
// html/template. render sets L and Langs.
type page struct {
	Title   string
	Message string // error.html
	// A recipient link's: the sender's and the list's names ("" for all
	// of the sender's mail), and the address masked.
	Sender, List, Address string
	L                     *catalog   // the page's language
	Langs                 []langLink // the page in the other languages
	CSRF                  string     // a form's csrf field (the manage page's erasure)
}

func newRecipientPage(r policy.Recipient) page {
	return page{Sender: r.Sender, List: r.List, Address: maskAddress(r.Address)}
}

// maskAddress shows enough of addr for its owner to know it and no more:
// the local part's first character and the domain, j***@example.com.
func maskAddress(addr string) string {
	at := strings.LastIndexByte(addr, '@')
	if at < 0 {
		return ""
	}
	local, domain := addr[:at], addr[at+1:]
	first, _ := utf8.DecodeRuneInString(local)
	if local == "" || first == utf8.RuneError || domain == "" {
		return "***@" + domain
	}
	return string(first) + "***@" + domain
}

// render answers the page name with status, in r's language; title is
// the key of the page's title, its placeholders filled from p. The page is
// made in full before the status is written, so a template error is a
// plain 500.
func (s *server) render(w http.ResponseWriter, r *http.Request, status int, name, title string, p page) {
	p.L = s.loc.pick(r)
	p.Langs = s.loc.switchLinks(r, p.L)
	p.Title = p.L.T(title, "list", p.List, "sender", p.Sender)
	if p.Message != "" {
		p.Message = p.L.T(p.Message)
	}
	var b bytes.Buffer
	if err := pages[name].Execute(&b, p); err != nil {
		s.log.Error("web: rendering a page", "page", name, "err", err)
		http.Error(w, "internal error", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Content-Language", p.L.Tag)
	w.WriteHeader(status)
	if r.Method != http.MethodHead {
		w.Write(b.Bytes())
	}
}

// errorPage answers status with a page saying what went wrong and what it
// means for the recipient: the catalog's error.KEY.title and .message.
func (s *server) errorPage(w http.ResponseWriter, r *http.Request, status int, key string) {
	s.render(w, r, status, "error.html", "error."+key+".title", page{Message: "error." + key + ".message"})
}
