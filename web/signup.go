package web

import (
	"errors"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"golang.org/x/time/rate"

	"drover/policy"
)

// Sign-up and double opt-in (the hosted form's endpoint and the
// confirmation page):
//
//	POST /subscribe/SENDER/LIST   email=ADDR&consent=yes: a sign-up from a
//	                              form on any site (drover form html)
//	GET  /c/TOKEN                 the confirmation page: one button
//	POST /c/TOKEN                 its button: the consent is confirmed
//
// A sign-up needs the consent checkbox ticked (an affirmative act; the
// form never pre-ticks it); without it nothing is recorded. It records the
// proof: time, client IP, user agent, the form's page (Referer) and the
// list's consent text. For a double opt-in list the consent is pending and
// the confirmation message is queued, whose link opens the confirmation
// page; its GET changes nothing (link scanners prefetch), its button
// records the confirmation's time, IP and user agent. Sign-ups are
// limited per client IP (Config.SignupsPerHour); the client IP is the
// connection's, or the last X-Forwarded-For hop when the connection comes
// from a loopback address (the TLS proxy in front).

// SignupPath is the sign-up endpoint; the confirmation page is at
// policy.ConfirmPath.
const SignupPath = "/subscribe/"

// Consents records sign-ups and confirmations (policy.Policy).
type Consents interface {
	RecordConsent(in policy.ConsentInput) (policy.Consent, bool, error)
}

// Confirmer queues a double opt-in confirmation (mta.Confirmations).
type Confirmer interface {
	Send(sender, list, addr, lang, url string) (string, error)
}

// SignupList is a list that takes sign-ups.
type SignupList struct {
	DoubleOptIn bool
	ConsentText string
	Purposes    []string
}

// signups is the sign-up side of the server.
type signups struct {
	consents  Consents
	confirmer Confirmer
	lists     map[string]map[string]SignupList // by sender, then list
	baseURL   string
	perIP     rate.Limit
	burst     int

	mu       sync.Mutex
	limiters map[string]*rate.Limiter
}

// maxLimiters bounds the client IPs tracked; when full, all are forgotten.
const maxLimiters = 100000

func (s *server) allow(ip string) bool {
	su := s.signup
	su.mu.Lock()
	defer su.mu.Unlock()
	l := su.limiters[ip]
	if l == nil {
		if len(su.limiters) >= maxLimiters {
			clear(su.limiters)
		}
		l = rate.NewLimiter(su.perIP, su.burst)
		su.limiters[ip] = l
	}
	return l.AllowN(s.now(), 1)
}

// clientIP is the sign-up's client address (see above).
func clientIP(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		host = r.RemoteAddr
	}
	if ip := net.ParseIP(host); ip != nil && ip.IsLoopback() {
		if xff := r.Header.Get("X-Forwarded-For"); xff != "" {
			hops := strings.Split(xff, ",")
			if last := strings.TrimSpace(hops[len(hops)-1]); net.ParseIP(last) != nil {
				return last
			}
		}
	}
	return host
}

// clip bounds what a client sends before it is recorded.
func clip(s string, n int) string {
	if len(s) > n {
		return s[:n]
	}
	return s
}

// subscribe serves POST /subscribe/SENDER/LIST.
func (s *server) subscribe(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", "POST")
		s.errorPage(w, r, http.StatusMethodNotAllowed, "method")
		return
	}
	sender, list, ok := strings.Cut(strings.TrimPrefix(r.URL.Path, SignupPath), "/")
	if _, known := s.signup.lists[sender][list]; !ok || !known {
		s.errorPage(w, r, http.StatusNotFound, "not_found")
		return
	}
	ip := clientIP(r)
	if !s.allow(ip) {
		w.Header().Set("Retry-After", "600")
		s.errorPage(w, r, http.StatusTooManyRequests, "rate_limited")
		return
	}
	r.Body = http.MaxBytesReader(w, r.Body, s.maxBody)
	if err := r.ParseForm(); err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			s.errorPage(w, r, http.StatusRequestEntityTooLarge, "too_large")
			return
		}
		s.errorPage(w, r, http.StatusBadRequest, "unreadable")
		return
	}
	if r.PostForm.Get("consent") != "yes" {
		s.errorPage(w, r, http.StatusBadRequest, "consent_missing")
		return
	}
	addr, err := policy.Canonical(r.PostForm.Get("email"))
	if err != nil {
		s.errorPage(w, r, http.StatusBadRequest, "bad_address")
		return
	}
	lang := s.loc.pick(r).Tag
	pending, err := s.signup.signUp(s.tokens, s.now(), SignupRequest{Sender: sender, List: list, Address: addr, IP: ip,
		UserAgent: r.UserAgent(), Source: "form:" + formSource(r), Lang: lang})
	var queueErr *confirmationError
	switch {
	case errors.As(err, &queueErr):
		s.log.Error("web: queueing a confirmation failed", "sender", sender, "list", list, "err", err)
		w.Header().Set("Retry-After", "120")
		s.errorPage(w, r, http.StatusServiceUnavailable, "unavailable")
		return
	case err != nil:
		s.consentError(w, r, sender, list, err)
		return
	}
	p := page{Sender: sender, List: list, Address: maskAddress(addr)}
	if !pending {
		s.log.Info("web: signed up", "sender", sender, "list", list)
		s.render(w, r, http.StatusOK, "subscribed.html", "subscribed.title", p)
		return
	}
	s.log.Info("web: sign-up pending, confirmation queued", "sender", sender, "list", list)
	s.render(w, r, http.StatusOK, "check_inbox.html", "check_inbox.title", p)
}

// SignupRequest is a sign-up with its proof: the form's consent checkbox
// was ticked (the hosted form checks it; an application that hosts its
// own form says so), from the client's IP and user agent, on the form's
// page (Source), in language Lang (the confirmation's).
type SignupRequest struct {
	Sender, List, Address string
	IP, UserAgent, Source string
	Lang                  string
}

// ErrUnknownList is a sign-up for a list that takes none.
var ErrUnknownList = errors.New("this list takes no sign-ups")

// confirmationError is a confirmation that could not be queued.
type confirmationError struct{ err error }

func (e *confirmationError) Error() string { return "queueing the confirmation: " + e.err.Error() }
func (e *confirmationError) Unwrap() error { return e.err }

// signUp records the sign-up of a list that takes them (pending for a
// double opt-in, whose confirmation it queues; confirmed else) and
// reports whether it is pending.
func (su *signups) signUp(tokens *policy.Tokens, now time.Time, req SignupRequest) (pending bool, err error) {
	cfg, known := su.lists[req.Sender][req.List]
	if !known {
		return false, ErrUnknownList
	}
	addr, err := policy.Canonical(req.Address)
	if err != nil {
		return false, &policy.InvalidConsentError{Msg: err.Error()}
	}
	now = now.UTC()
	in := policy.ConsentInput{Sender: req.Sender, List: req.List, Address: addr, Status: policy.ConsentConfirmed, Method: policy.SingleOptIn,
		Time: now, IP: clip(req.IP, 64), UserAgent: clip(req.UserAgent, 512), Source: clip(req.Source, 512), Text: cfg.ConsentText, Purposes: cfg.Purposes}
	if cfg.DoubleOptIn {
		in.Status, in.Method = policy.ConsentPending, policy.DoubleOptIn
	}
	if _, _, err := su.consents.RecordConsent(in); err != nil {
		return false, err
	}
	if !cfg.DoubleOptIn {
		return false, nil
	}
	tok := tokens.Seal(policy.Recipient{Sender: req.Sender, List: req.List, Address: addr, MsgID: policy.ConfirmMarker}, now)
	link := strings.TrimRight(su.baseURL, "/") + policy.ConfirmPath + tok
	if req.Lang != "" && req.Lang != "en" {
		link += "?" + url.Values{"lang": {req.Lang}}.Encode()
	}
	if _, err := su.confirmer.Send(req.Sender, req.List, addr, req.Lang, link); err != nil {
		return true, &confirmationError{err}
	}
	return true, nil
}

// Signup is the sign-up of the hosted form for an application that hosts
// its own form (the admin API): the same lists, proof and confirmation.
type Signup struct {
	su     *signups
	tokens *policy.Tokens
	now    func() time.Time
}

// NewSignup makes the sign-up of cfg's lists (cfg as for Handler).
func NewSignup(cfg Config) *Signup {
	now := cfg.Now
	if now == nil {
		now = time.Now
	}
	return &Signup{su: newSignups(cfg), tokens: cfg.Tokens, now: now}
}

// SignUp records req (see signUp); an error wraps ErrUnknownList,
// *policy.InvalidConsentError or *policy.SuppressedError when the request
// is at fault.
func (s *Signup) SignUp(req SignupRequest) (pending bool, err error) {
	return s.su.signUp(s.tokens, s.now(), req)
}

// formSource is the page the form was on (Referer, without its query),
// else the endpoint.
func formSource(r *http.Request) string {
	if u, err := url.Parse(r.Referer()); err == nil && u.Host != "" && (u.Scheme == "https" || u.Scheme == "http") {
		u.RawQuery, u.Fragment, u.User = "", "", nil
		return clip(u.String(), 512)
	}
	return clip(r.URL.Path, 512)
}

// consentError answers a refused consent record.
func (s *server) consentError(w http.ResponseWriter, r *http.Request, sender, list string, err error) {
	var supp *policy.SuppressedError
	var invalid *policy.InvalidConsentError
	switch {
	case errors.As(err, &supp):
		s.errorPage(w, r, http.StatusConflict, "cannot_subscribe")
	case errors.As(err, &invalid):
		s.log.Info("web: consent refused", "sender", sender, "list", list, "err", err)
		s.errorPage(w, r, http.StatusBadRequest, "confirm_invalid")
	default:
		s.log.Error("web: recording a consent failed", "sender", sender, "list", list, "err", err)
		w.Header().Set("Retry-After", "120")
		s.errorPage(w, r, http.StatusServiceUnavailable, "unavailable")
	}
}

// confirm serves policy.ConfirmPath + TOKEN. The button confirms the
// pending sign-up the link was sent for; a link with no sign-up pending
// (a re-permission message's [opt-in: ...] link) records a confirmed
// consent with fresh proof, the list's consent text, when the list takes
// sign-ups.
func (s *server) confirm(w http.ResponseWriter, r *http.Request) {
	tok := strings.TrimPrefix(r.URL.Path, policy.ConfirmPath)
	switch r.Method {
	case http.MethodGet, http.MethodHead:
		rcpt, ok := s.openMarked(w, r, tok, policy.ConfirmMarker)
		if !ok {
			return
		}
		s.render(w, r, http.StatusOK, "confirm.html", "confirm.title", newRecipientPage(rcpt))
	case http.MethodPost:
		if _, err := s.readBody(w, r); err != nil {
			s.errorPage(w, r, http.StatusRequestEntityTooLarge, "too_large")
			return
		}
		rcpt, ok := s.openMarked(w, r, tok, policy.ConfirmMarker)
		if !ok {
			return
		}
		act := &policy.ConsentAct{Time: s.now().UTC(), IP: clientIP(r), UserAgent: clip(r.UserAgent(), 512), Source: "confirmation page"}
		in := policy.ConsentInput{Sender: rcpt.Sender, List: rcpt.List, Address: rcpt.Address,
			Status: policy.ConsentConfirmed, Method: policy.DoubleOptIn, Confirmation: act}
		_, _, err := s.signup.consents.RecordConsent(in)
		var invalid *policy.InvalidConsentError
		if cfg, ok := s.signup.lists[rcpt.Sender][rcpt.List]; ok && errors.As(err, &invalid) {
			in.Time, in.IP, in.UserAgent, in.Source = act.Time, act.IP, act.UserAgent, "opt-in link"
			in.Text, in.Purposes = cfg.ConsentText, cfg.Purposes
			_, _, err = s.signup.consents.RecordConsent(in)
		}
		if err != nil {
			s.consentError(w, r, rcpt.Sender, rcpt.List, err)
			return
		}
		s.log.Info("web: sign-up confirmed", "sender", rcpt.Sender, "list", rcpt.List)
		s.render(w, r, http.StatusOK, "confirmed.html", "confirmed.title", newRecipientPage(rcpt))
	default:
		w.Header().Set("Allow", "GET, HEAD, POST")
		s.errorPage(w, r, http.StatusMethodNotAllowed, "method")
	}
}

// openMarked opens the token of a link made for one page only (its MsgID
// is marker: policy.ConfirmMarker, policy.ManageMarker); another link's
// token is not valid there.
func (s *server) openMarked(w http.ResponseWriter, r *http.Request, tok, marker string) (policy.Recipient, bool) {
	rcpt, ok := s.open(w, r, tok)
	if ok && rcpt.MsgID != marker {
		s.errorPage(w, r, http.StatusBadRequest, "invalid")
		return policy.Recipient{}, false
	}
	return rcpt, ok
}

// signupDefaults: 20 sign-ups an hour per client IP, 5 at once.
const (
	defaultSignupsPerHour = 20
	signupBurst           = 5
)

func newSignups(cfg Config) *signups {
	perHour := cfg.SignupsPerHour
	if perHour <= 0 {
		perHour = defaultSignupsPerHour
	}
	return &signups{consents: cfg.Consents, confirmer: cfg.Confirmer, lists: cfg.Signups, baseURL: cfg.BaseURL,
		perIP: rate.Limit(float64(perHour) / time.Hour.Seconds()), burst: signupBurst, limiters: map[string]*rate.Limiter{}}
}
