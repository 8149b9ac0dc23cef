package web

import (
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"time"

	"drover/policy"
)

// DefaultMaxBody is the largest request body taken when Config.MaxBody is
// 0: RFC 8058's body is 26 bytes, the confirm form's under 50.
const DefaultMaxBody = 4 << 10

// Config is what the public web listener needs. Tokens and Unsubscriber
// are required.
type Config struct {
	Tokens       *policy.Tokens      // opens the tokens of recipient links
	Unsubscriber policy.Unsubscriber // records the unsubscribes
	// BaseURL is the listener's public https base URL, as policy.Links
	// uses it; its path, if any, is where the pages are mounted.
	BaseURL string
	Now     func() time.Time // default time.Now
	Logger  *slog.Logger     // default slog.Default()
	MaxBody int64            // largest request body; 0: DefaultMaxBody
	// Locales are the languages of the pages (LoadLocales); nil: the
	// shipped ones, English and Simplified Chinese.
	Locales *Locales
	// Sign-up and double opt-in (signup.go): the lists that take sign-ups
	// (by sender, then list), where consents are recorded, who queues the
	// confirmations, and the sign-ups allowed an hour per client IP (0:
	// 20). Without Signups, /subscribe/ and /c/ are 404.
	Signups        map[string]map[string]SignupList
	Consents       Consents
	Confirmer      Confirmer
	SignupsPerHour int
	// Manager reads and changes what the manage-subscription page shows
	// (manage.go; policy.Policy). Without it, /m/ is 404.
	Manager Manager
	// Eraser erases an address from every store: the manage page's
	// erasure (two steps); nil: the page offers none.
	Eraser Eraser
}

// The security headers of every response (see the package doc).
var securityHeaders = map[string]string{
	"Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; frame-ancestors 'none'",
	"X-Content-Type-Options":  "nosniff",
	"Referrer-Policy":         "no-referrer",
	"Cache-Control":           "no-store",
}

// server holds the configuration the pages share.
type server struct {
	tokens  *policy.Tokens
	unsub   policy.Unsubscriber
	now     func() time.Time
	log     *slog.Logger
	maxBody int64
	loc     *Locales
	signup  *signups
	manager Manager
	eraser  Eraser
	origin  string // the base URL's origin (scheme://host), "" without one
}

// Handler returns the public web listener's handler. It panics when
// cfg.Tokens or cfg.Unsubscriber is nil, or cfg.BaseURL does not parse:
// those are wiring mistakes, found at start.
func Handler(cfg Config) http.Handler {
	if cfg.Tokens == nil || cfg.Unsubscriber == nil {
		panic("web: Config.Tokens and Config.Unsubscriber are required")
	}
	s := &server{tokens: cfg.Tokens, unsub: cfg.Unsubscriber, now: cfg.Now, log: cfg.Logger, maxBody: cfg.MaxBody, loc: cfg.Locales, manager: cfg.Manager, eraser: cfg.Eraser}
	if s.loc == nil {
		s.loc = shippedLocales
	}
	if s.now == nil {
		s.now = time.Now
	}
	if s.log == nil {
		s.log = slog.Default()
	}
	if s.maxBody <= 0 {
		s.maxBody = DefaultMaxBody
	}
	prefix := ""
	if cfg.BaseURL != "" {
		u, err := url.Parse(cfg.BaseURL)
		if err != nil {
			panic("web: Config.BaseURL: " + err.Error())
		}
		prefix = strings.TrimRight(u.Path, "/")
		if u.Scheme != "" && u.Host != "" {
			s.origin = strings.ToLower(u.Scheme + "://" + u.Host)
		}
	}

	mux := http.NewServeMux()
	mux.HandleFunc(policy.UnsubscribePath, s.unsubscribe)
	if len(cfg.Signups) > 0 {
		if cfg.Consents == nil || cfg.Confirmer == nil {
			panic("web: Config.Signups needs Consents and Confirmer")
		}
		s.signup = newSignups(cfg)
		mux.HandleFunc(SignupPath, s.subscribe)
		mux.HandleFunc(policy.ConfirmPath, s.confirm)
	}
	if s.manager != nil {
		mux.HandleFunc(policy.ManagePath, s.manage)
	}
	mux.HandleFunc("/healthz", healthz)
	mux.HandleFunc("/", s.notFound)

	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		for k, v := range securityHeaders {
			h.Set(k, v)
		}
		if prefix != "" && strings.HasPrefix(r.URL.Path, prefix+"/") {
			r2 := new(http.Request)
			*r2 = *r
			r2.URL = new(url.URL)
			*r2.URL = *r.URL
			r2.URL.Path = strings.TrimPrefix(r.URL.Path, prefix)
			r2.URL.RawPath = ""
			r = r2
		}
		mux.ServeHTTP(w, r)
	})
}

// healthz answers that the listener is up.
func healthz(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	io.WriteString(w, "ok\n")
}

func (s *server) notFound(w http.ResponseWriter, r *http.Request) {
	s.errorPage(w, r, http.StatusNotFound, "not_found")
}
