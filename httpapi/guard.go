package httpapi

import (
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"fmt"
	"mime"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"strings"
)

// guard lets through to the admin API and the profiler only what an
// operator's tool sends, never what a web page can make a browser send:
// it checks Host, Origin, the bearer token and Content-Type, in that
// order, as the package doc says. DNS rebinding always arrives under a
// name, hence IP literals pass the Host check; only a browser sends
// Origin, and no page of this listener's origin exists (it serves none).
type guard struct {
	token        [sha256.Size]byte
	noToken      bool
	allowedHosts map[string]bool
}

// adminTypes are the Content-Types the admin API takes on POST, DELETE
// and the like. None is one that CORS safelists (text/plain,
// application/x-www-form-urlencoded, multipart/form-data): a page of
// another origin can send them only after a preflight, which this API
// never grants, so a cross-site request never reaches a handler.
var adminTypes = map[string]bool{typeJSON: true, typeCSV: true, typeNDJSON: true}

func newGuard(token string, allowedHosts []string) *guard {
	g := &guard{token: sha256.Sum256([]byte(token)), noToken: token == "", allowedHosts: map[string]bool{}}
	for _, h := range allowedHosts {
		g.allowedHosts[normalHost(h)] = true
	}
	return g
}

func (g *guard) wrap(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if err := g.checkHost(r); err != nil {
			writeError(w, http.StatusForbidden, err)
			return
		}
		if err := checkOrigin(r); err != nil {
			writeError(w, http.StatusForbidden, err)
			return
		}
		if !g.authorized(r) {
			w.Header().Set("WWW-Authenticate", `Bearer realm="drover"`)
			writeError(w, http.StatusUnauthorized, errors.New("missing or wrong bearer token (Authorization: Bearer <token>)"))
			return
		}
		switch r.Method {
		case http.MethodGet, http.MethodHead, http.MethodOptions:
		default:
			ct := r.Header.Get("Content-Type")
			if mt, _, err := mime.ParseMediaType(ct); err != nil || !adminTypes[mt] {
				writeError(w, http.StatusUnsupportedMediaType, fmt.Errorf("Content-Type %q: %s takes application/json (or, for files, text/csv or application/x-ndjson)", ct, r.Method))
				return
			}
		}
		next.ServeHTTP(w, r)
	})
}

// checkHost refuses a Host that is not this listener's own (see guard).
func (g *guard) checkHost(r *http.Request) error {
	host, port := r.Host, ""
	if h, p, err := net.SplitHostPort(r.Host); err == nil {
		host, port = h, p
	}
	host = normalHost(host)
	if g.allowedHosts[host] {
		return nil
	}
	refuse := func(why string) error {
		return fmt.Errorf("Host %q %s: the admin API answers requests to this listener's IP address or localhost, with its port, or to a name in http.allowed_hosts (this stops DNS rebinding)", r.Host, why)
	}
	if _, err := netip.ParseAddr(host); err != nil && host != "localhost" {
		return refuse("is not an IP address, localhost or an allowed name")
	}
	if local, ok := r.Context().Value(http.LocalAddrContextKey).(net.Addr); ok && port != "" {
		if _, lport, err := net.SplitHostPort(local.String()); err == nil && lport != port {
			return refuse("names another port than " + lport)
		}
	}
	return nil
}

// normalHost is a host name as compared: lower case, without brackets
// (IPv6) or a final dot.
func normalHost(h string) string {
	h = strings.TrimSuffix(strings.TrimPrefix(h, "["), "]")
	return strings.TrimSuffix(strings.ToLower(h), ".")
}

// checkOrigin refuses an Origin other than the request's own.
func checkOrigin(r *http.Request) error {
	o := r.Header.Get("Origin")
	if o == "" {
		return nil
	}
	u, err := url.Parse(o)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || !strings.EqualFold(u.Host, r.Host) {
		return fmt.Errorf("Origin %q is not this listener: the admin API takes no requests from web pages", o)
	}
	return nil
}

// authorized reports whether r carries the bearer token.
func (g *guard) authorized(r *http.Request) bool {
	scheme, cred, ok := strings.Cut(r.Header.Get("Authorization"), " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") || g.noToken {
		return false
	}
	// Hashing both sides makes the comparison constant in time whatever
	// the lengths.
	got := sha256.Sum256([]byte(strings.TrimLeft(cred, " ")))
	return subtle.ConstantTimeCompare(got[:], g.token[:]) == 1
}
