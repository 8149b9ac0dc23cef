package web

import (
	"bytes"
	"errors"
	"io"
	"mime"
	"net/http"
	"strings"

	"drover/policy"
)

// The sources an unsubscribe is recorded with (policy.Entry.Source).
const (
	sourceOneClick = "one-click" // RFC 8058's POST, as mailbox providers send it
	sourcePage     = "page"      // the confirm button of the GET page
)

// oneClickBody is RFC 8058's POST body (section 3.1).
const oneClickBody = "List-Unsubscribe=One-Click"

// maxToken bounds the token looked at: a real one is under 200
// characters for the longest addresses; a longer one is refused unread.
const maxToken = 2048

// unsubscribe serves policy.UnsubscribePath + TOKEN (see the package doc).
func (s *server) unsubscribe(w http.ResponseWriter, r *http.Request) {
	tok := strings.TrimPrefix(r.URL.Path, policy.UnsubscribePath)
	switch r.Method {
	case http.MethodGet, http.MethodHead:
		rcpt, ok := s.open(w, r, tok)
		if !ok {
			return
		}
		title := "unsubscribe.all.title"
		if rcpt.List != "" {
			title = "unsubscribe.list.title"
		}
		s.render(w, r, http.StatusOK, "unsubscribe.html", title, newRecipientPage(rcpt))
	case http.MethodPost:
		s.unsubscribePost(w, r, tok)
	default:
		w.Header().Set("Allow", "GET, HEAD, POST")
		s.errorPage(w, r, http.StatusMethodNotAllowed, "method")
	}
}

func (s *server) unsubscribePost(w http.ResponseWriter, r *http.Request, tok string) {
	body, err := s.readBody(w, r)
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			s.errorPage(w, r, http.StatusRequestEntityTooLarge, "too_large")
			return
		}
		s.log.Info("web: unsubscribe: reading the request body", "err", err)
		s.errorPage(w, r, http.StatusBadRequest, "unreadable")
		return
	}
	rcpt, ok := s.open(w, r, tok)
	if !ok {
		return
	}
	source, ok := unsubscribeForm(r.Header.Get("Content-Type"), body)
	if !ok {
		s.errorPage(w, r, http.StatusBadRequest, "not_unsubscribe")
		return
	}
	if err := s.unsub.Unsubscribe(rcpt, source); err != nil {
		s.log.Error("web: unsubscribe failed", "sender", rcpt.Sender, "list", rcpt.List, "msgid", rcpt.MsgID, "source", source, "err", err)
		w.Header().Set("Retry-After", "120")
		s.errorPage(w, r, http.StatusServiceUnavailable, "unavailable")
		return
	}
	s.log.Info("web: unsubscribed", "sender", rcpt.Sender, "list", rcpt.List, "msgid", rcpt.MsgID, "source", source)
	if source == sourceOneClick {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		io.WriteString(w, s.loc.pick(r).T("unsubscribed.plain")+"\n")
		return
	}
	s.render(w, r, http.StatusOK, "unsubscribed.html", "unsubscribed.title", newRecipientPage(rcpt))
}

// readBody reads r's body, at most s.maxBody bytes: more is a
// *http.MaxBytesError, found before any byte beyond is read when the
// request declares its length.
func (s *server) readBody(w http.ResponseWriter, r *http.Request) ([]byte, error) {
	if r.ContentLength > s.maxBody {
		return nil, &http.MaxBytesError{Limit: s.maxBody}
	}
	return io.ReadAll(http.MaxBytesReader(w, r.Body, s.maxBody))
}

// open opens tok, or answers the error page and reports false.
func (s *server) open(w http.ResponseWriter, r *http.Request, tok string) (policy.Recipient, bool) {
	err := policy.ErrBadToken
	var rcpt policy.Recipient
	if tok != "" && len(tok) <= maxToken {
		rcpt, err = s.tokens.Open(tok, s.now())
	}
	switch {
	case err == nil:
		return rcpt, true
	case errors.Is(err, policy.ErrExpiredToken):
		s.errorPage(w, r, http.StatusGone, "expired")
	default: // policy.ErrBadToken, policy.ErrUnknownKey
		s.errorPage(w, r, http.StatusBadRequest, "invalid")
	}
	return policy.Recipient{}, false
}

// unsubscribeForm reports whether body is an unsubscribe request and from
// where: the page's confirm form (confirm=1, "page") or RFC 8058's
// List-Unsubscribe=One-Click ("one-click"), as a form of either encoding
// RFC 8058 names. Under any other Content-Type, or none, only the exact
// one-click body is taken: it cannot be mistaken.
func unsubscribeForm(contentType string, body []byte) (source string, ok bool) {
	mt, params, err := mime.ParseMediaType(contentType)
	var form map[string][]string
	switch {
	case err == nil && mt == "application/x-www-form-urlencoded":
		r, _ := http.NewRequest(http.MethodPost, "/", bytes.NewReader(body))
		r.Header.Set("Content-Type", mt)
		if r.ParseForm() != nil {
			return "", false
		}
		form = r.PostForm
	case err == nil && mt == "multipart/form-data" && params["boundary"] != "":
		r, _ := http.NewRequest(http.MethodPost, "/", bytes.NewReader(body))
		r.Header.Set("Content-Type", contentType)
		// The body is already bounded by MaxBody: it all fits in memory.
		if r.ParseMultipartForm(int64(len(body))+1) != nil {
			return "", false
		}
		form = r.MultipartForm.Value
	default:
		if strings.TrimSpace(string(body)) == oneClickBody {
			return sourceOneClick, true
		}
		return "", false
	}
	first := func(k string) string {
		if v := form[k]; len(v) > 0 {
			return strings.TrimSpace(v[0])
		}
		return ""
	}
	switch {
	case first("confirm") == "1":
		return sourcePage, true
	case strings.EqualFold(first("List-Unsubscribe"), "One-Click"):
		return sourceOneClick, true
	}
	return "", false
}
