package web

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"html/template"
	"maps"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"drover/policy"
)

// The manage-subscription page (policy.ManagePath + TOKEN, from a
// message's [manage: ...] link):
//
//	GET  /m/TOKEN             what is held about the address with the
//	                          sender: the address, its name, its lists
//	                          with each one's latest consent and proof,
//	                          its suppressions, when it was last mailed;
//	                          a form per change
//	GET  /m/TOKEN/data.json   the same as JSON, to download (the sender's
//	                          part of policy.Held)
//	POST /m/TOKEN             one change, by the form's action: name
//	                          (name=NEW), unsubscribe (list=LIST),
//	                          unsubscribe_all, withdraw (list=LIST); 303
//	                          to the page with ?done=ACTION
//
// Only a token whose MsgID is policy.ManageMarker opens it. The address
// is shown in full: whoever opens the link holds the mailbox. A POST
// carries the page's csrf field (an HMAC of the token under a key derived
// from the token key ring) and, when the browser sends them, an Origin
// of the base URL and a Sec-Fetch-Site of same-origin; anything else is
// 403 and changes nothing.

// Manager is what the manage page reads and changes (policy.Policy).
// Eraser erases an address from every store (the admin API's GDPR
// side: policy, queue, mail log, the database's files).
type Eraser interface {
	Erase(addr string) (any, error)
}

type Manager interface {
	HeldBy(addr, sender string) (*policy.Held, error)
	SetAttribute(sender, addr, name, value string) error
	WithdrawConsent(sender, list, addr string, act policy.ConsentAct) (policy.Consent, bool, error)
}

// The manage page's changes (the form's action, the page's ?done=).
const (
	actName           = "name"
	actUnsubscribe    = "unsubscribe"
	actUnsubscribeAll = "unsubscribe_all"
	actErase          = "erase"           // asks to confirm
	actEraseConfirmed = "erase_confirmed" // erases
	actWithdraw       = "withdraw"
)

// sourceManage is the source of what the manage page records.
const sourceManage = "manage page"

var managePageTemplate = template.Must(template.New("layout.html").Funcs(template.FuncMap{"listName": listName}).
	ParseFS(templateFiles, "templates/layout.html", "templates/manage.html"))

// listName is how the page names a list: "" is the sender's mail that
// names no list.
func listName(c *catalog, name string) string {
	if name == "" {
		return c.T("manage.list.general")
	}
	return name
}

// managePage is what manage.html shows.
type managePage struct {
	page
	CSRF       string
	DataURL    string // relative to the page
	Name       string
	Done       string // the catalog key of what was just done, "" for none
	DoneList   string
	Lists      []manageList
	Suppressed []manageEntry
	LastMailed string
	AllOff     bool // unsubscribed from all of the sender's mail
	CanErase   bool // Config.Eraser is set
}

// manageList is one list of the sender's the address has a record with.
type manageList struct {
	Name         string // "" is the sender's mail that names no list
	Status       string // the latest consent's status, "" for none
	Time, Source string
	Text         string
	Unsubscribed bool
	CanWithdraw  bool
}

// manageEntry is one suppression, in the words of the RCPT refusal.
type manageEntry struct {
	Text, Time string
}

// csrf is the value of the page's csrf field for tok.
func (s *server) csrf(tok string) string {
	m := hmac.New(sha256.New, s.tokens.Keys[0].Secret)
	m.Write([]byte("manage-csrf"))
	m.Write([]byte(tok))
	return base64.RawURLEncoding.EncodeToString(m.Sum(nil))
}

// manage serves policy.ManagePath + TOKEN[/data.json].
func (s *server) manage(w http.ResponseWriter, r *http.Request) {
	tok := strings.TrimPrefix(r.URL.Path, policy.ManagePath)
	tok, data := strings.CutSuffix(tok, "/data.json")
	switch {
	case r.Method == http.MethodGet || r.Method == http.MethodHead:
		rcpt, ok := s.openMarked(w, r, tok, policy.ManageMarker)
		if !ok {
			return
		}
		h, err := s.manager.HeldBy(rcpt.Address, rcpt.Sender)
		if err != nil {
			s.manageFailed(w, r, rcpt, "reading", err)
			return
		}
		if data {
			b, _ := json.MarshalIndent(h, "", "  ")
			w.Header().Set("Content-Type", "application/json; charset=utf-8")
			w.Header().Set("Content-Disposition", `attachment; filename="my-data.json"`)
			if r.Method != http.MethodHead {
				w.Write(append(b, '\n'))
			}
			return
		}
		s.renderManage(w, r, rcpt, tok, h)
	case r.Method == http.MethodPost && !data:
		s.managePost(w, r, tok)
	default:
		w.Header().Set("Allow", "GET, HEAD, POST")
		if data {
			w.Header().Set("Allow", "GET, HEAD")
		}
		s.errorPage(w, r, http.StatusMethodNotAllowed, "method")
	}
}

func (s *server) manageFailed(w http.ResponseWriter, r *http.Request, rcpt policy.Recipient, what string, err error) {
	s.log.Error("web: manage page: "+what+" failed", "sender", rcpt.Sender, "err", err)
	w.Header().Set("Retry-After", "120")
	s.errorPage(w, r, http.StatusServiceUnavailable, "manage_unavailable")
}

// sameOrigin reports whether a POST comes from the page itself, as far
// as the browser says: its Origin, when present, is the base URL's (or,
// without a base URL, the request's host); "null", what a browser sends
// under Referrer-Policy: no-referrer, says nothing and is left to the
// csrf field. A Sec-Fetch-Site, when present, is same-origin.
func (s *server) sameOrigin(r *http.Request) bool {
	if site := r.Header.Get("Sec-Fetch-Site"); site != "" && site != "same-origin" && site != "none" {
		return false
	}
	o := r.Header.Get("Origin")
	if o == "" || o == "null" {
		return true
	}
	if s.origin != "" {
		return o == s.origin
	}
	u, err := url.Parse(o)
	return err == nil && u.Host == r.Host
}

func (s *server) managePost(w http.ResponseWriter, r *http.Request, tok string) {
	body, err := s.readBody(w, r)
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			s.errorPage(w, r, http.StatusRequestEntityTooLarge, "too_large")
			return
		}
		s.errorPage(w, r, http.StatusBadRequest, "unreadable")
		return
	}
	rcpt, ok := s.openMarked(w, r, tok, policy.ManageMarker)
	if !ok {
		return
	}
	form, err := url.ParseQuery(string(body))
	if !s.sameOrigin(r) || !hmac.Equal([]byte(form.Get("csrf")), []byte(s.csrf(tok))) {
		s.log.Info("web: manage page: a post from elsewhere refused", "sender", rcpt.Sender)
		s.errorPage(w, r, http.StatusForbidden, "forbidden")
		return
	}
	if err != nil {
		s.errorPage(w, r, http.StatusBadRequest, "unreadable")
		return
	}
	action, list := form.Get("action"), form.Get("list")
	switch action {
	case actName:
		name := strings.TrimSpace(form.Get("name"))
		if !validName(name) {
			s.errorPage(w, r, http.StatusBadRequest, "bad_name")
			return
		}
		err = s.manager.SetAttribute(rcpt.Sender, rcpt.Address, "name", name)
		var invalid *policy.InvalidAttributeError
		if errors.As(err, &invalid) {
			s.errorPage(w, r, http.StatusBadRequest, "bad_name")
			return
		}
	case actUnsubscribe:
		if list == "" {
			s.errorPage(w, r, http.StatusBadRequest, "unreadable")
			return
		}
		err = s.unsub.Unsubscribe(policy.Recipient{Sender: rcpt.Sender, List: list, Address: rcpt.Address}, sourceManage)
	case actUnsubscribeAll:
		list = ""
		err = s.unsub.Unsubscribe(policy.Recipient{Sender: rcpt.Sender, Address: rcpt.Address}, sourceManage)
	case actWithdraw:
		_, _, err = s.manager.WithdrawConsent(rcpt.Sender, list, rcpt.Address,
			policy.ConsentAct{Time: s.now().UTC(), IP: clientIP(r), UserAgent: clip(r.UserAgent(), 512), Source: sourceManage})
		if errors.Is(err, policy.ErrNoConsent) {
			s.errorPage(w, r, http.StatusBadRequest, "unreadable")
			return
		}
	case actErase, actEraseConfirmed:
		if s.eraser == nil {
			s.errorPage(w, r, http.StatusBadRequest, "unreadable")
			return
		}
		p := page{Sender: rcpt.Sender, Address: rcpt.Address, CSRF: s.csrf(tok)}
		if action == actErase {
			// A second step: erasure cannot be undone.
			s.render(w, r, http.StatusOK, "erase_confirm.html", "erase_confirm.title", p)
			return
		}
		if _, err := s.eraser.Erase(rcpt.Address); err != nil {
			s.manageFailed(w, r, rcpt, action, err)
			return
		}
		s.log.Info("web: manage page: address erased", "sender", rcpt.Sender)
		p.CSRF = ""
		s.render(w, r, http.StatusOK, "erased.html", "erased.title", p)
		return
	default:
		s.errorPage(w, r, http.StatusBadRequest, "unreadable")
		return
	}
	if err != nil {
		s.manageFailed(w, r, rcpt, action, err)
		return
	}
	s.log.Info("web: manage page: changed", "sender", rcpt.Sender, "list", list, "action", action)
	q := url.Values{"done": {action}}
	if list != "" {
		q.Set("list", list)
	}
	if lang := r.URL.Query().Get("lang"); lang != "" {
		q.Set("lang", lang)
	}
	// Relative to the page's own URL, so it holds under any mount path.
	w.Header().Set("Location", tok+"?"+q.Encode())
	w.WriteHeader(http.StatusSeeOther)
}

// validName reports whether name may be stored: at most
// policy.MaxAttribute characters of UTF-8, no control character.
func validName(name string) bool {
	if !utf8.ValidString(name) || utf8.RuneCountInString(name) > policy.MaxAttribute {
		return false
	}
	return !strings.ContainsFunc(name, unicode.IsControl)
}

// renderManage answers the page.
func (s *server) renderManage(w http.ResponseWriter, r *http.Request, rcpt policy.Recipient, tok string, h *policy.Held) {
	c := s.loc.pick(r)
	p := managePage{page: page{Sender: rcpt.Sender, Address: h.Address, L: c, Langs: s.loc.switchLinks(r, c)}, CSRF: s.csrf(tok), DataURL: tok + "/data.json",
		CanErase: s.eraser != nil}
	p.Title = c.T("manage.title", "sender", rcpt.Sender)
	for _, a := range h.Attributes {
		p.Name = a.Attributes["name"]
	}
	when := func(t time.Time) string { return t.UTC().Format("2006-01-02 15:04 UTC") }
	lists := map[string]*manageList{}
	get := func(name string) *manageList {
		if l := lists[name]; l != nil {
			return l
		}
		l := &manageList{Name: name}
		lists[name] = l
		return l
	}
	if rcpt.List != "" {
		get(rcpt.List)
	}
	for _, cr := range h.Consent { // oldest first: the last one is the latest
		l := get(cr.List)
		l.Status = string(cr.Status)
		l.Time, l.Source, l.Text = when(cr.Proof.Time), cr.Proof.Source, cr.Proof.Text
		if cr.Ended != nil {
			l.Time, l.Source = when(cr.Ended.Time), cr.Ended.Source
		}
		l.CanWithdraw = cr.Status == policy.ConsentConfirmed || cr.Status == policy.ConsentPending
	}
	for _, e := range h.Suppressions {
		switch {
		case e.Kind == policy.PerList:
			get(e.List).Unsubscribed = e.Reason == policy.Unsubscribed || get(e.List).Unsubscribed
		case e.Kind == policy.PerSender && e.Reason == policy.Unsubscribed:
			p.AllOff = true
		}
		text := policy.Decision{Entry: e}.Text()
		if e.Kind != policy.Global {
			text = c.T("manage.suppressed."+string(e.Kind), "list", e.List, "sender", e.Sender, "reason", c.T("manage.reason."+string(e.Reason)))
		}
		p.Suppressed = append(p.Suppressed, manageEntry{Text: text, Time: when(e.Time)})
	}
	for _, name := range slices.Sorted(maps.Keys(lists)) {
		p.Lists = append(p.Lists, *lists[name])
	}
	for _, e := range h.Engagement {
		if !e.LastMailed.IsZero() {
			p.LastMailed = when(e.LastMailed)
		}
	}
	// The message names only a list of the page: the URL's text is not
	// shown as the site's words.
	if d, l := r.URL.Query().Get("done"), r.URL.Query().Get("list"); slices.Contains([]string{actName, actUnsubscribe, actUnsubscribeAll, actWithdraw}, d) &&
		(l == "" || lists[l] != nil) {
		p.Done, p.DoneList = "manage.done."+d, l
	}
	var b bytes.Buffer
	if err := managePageTemplate.Execute(&b, p); err != nil {
		s.log.Error("web: rendering a page", "page", "manage.html", "err", err)
		http.Error(w, "internal error", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Content-Language", c.Tag)
	w.WriteHeader(http.StatusOK)
	if r.Method != http.MethodHead {
		w.Write(b.Bytes())
	}
}
