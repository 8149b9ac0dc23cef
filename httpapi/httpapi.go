// Package httpapi is Drover's one HTTP listener: /metrics (Prometheus),
// /healthz, and the admin API under /v1/. It is its own folder because it
// is a surface over several packages (queue today; policy and reputation
// pages later) and belongs to none of them.
//
// The admin API requires "Authorization: Bearer <token>" when a token is
// configured; without one it answers only clients on a loopback address.
//
//	GET /v1/queue        destinations: recipients, oldest, last error
//	GET /v1/queue/{id}   one message and its recipients
//	GET /debug/pprof/    Go's profiler (admin only)
package httpapi

import (
	"crypto/subtle"
	"encoding/json"
	"errors"
	"net"
	"net/http"
	"net/http/pprof"
	"strings"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"drover/queue"
)

// QueueView is what the admin API reads from the spool.
type QueueView interface {
	Destinations() ([]queue.DestSummary, error)
	Show(id string) (*queue.Message, []queue.Recipient, error)
}

// Config wires the handler.
type Config struct {
	Gatherer   prometheus.Gatherer
	Queue      QueueView
	AdminToken string
	// Healthy reports whether the server is serving; nil = always.
	Healthy func() error
}

// Handler returns the HTTP handler of the listener.
func Handler(cfg Config) http.Handler {
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(cfg.Gatherer, promhttp.HandlerOpts{}))
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		if cfg.Healthy != nil {
			if err := cfg.Healthy(); err != nil {
				http.Error(w, err.Error(), http.StatusServiceUnavailable)
				return
			}
		}
		w.Write([]byte("ok\n"))
	})
	admin := http.NewServeMux()
	admin.HandleFunc("GET /v1/queue", func(w http.ResponseWriter, r *http.Request) {
		dests, err := cfg.Queue.Destinations()
		if err != nil {
			writeError(w, http.StatusInternalServerError, err)
			return
		}
		writeJSON(w, map[string]any{"destinations": dests})
	})
	admin.HandleFunc("GET /v1/queue/{id}", func(w http.ResponseWriter, r *http.Request) {
		msg, rcpts, err := cfg.Queue.Show(r.PathValue("id"))
		if errors.Is(err, queue.ErrNotFound) {
			writeError(w, http.StatusNotFound, err)
			return
		} else if err != nil {
			writeError(w, http.StatusInternalServerError, err)
			return
		}
		writeJSON(w, map[string]any{"message": msg, "recipients": rcpts})
	})
	mux.Handle("/v1/", requireAdmin(cfg.AdminToken, admin))
	// Go's profiler, for operators chasing CPU or memory; admin only.
	mux.Handle("/debug/pprof/", requireAdmin(cfg.AdminToken, http.HandlerFunc(pprof.Index)))
	mux.Handle("/debug/pprof/profile", requireAdmin(cfg.AdminToken, http.HandlerFunc(pprof.Profile)))
	return mux
}

func requireAdmin(token string, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if token == "" {
			host, _, _ := net.SplitHostPort(r.RemoteAddr)
			if ip := net.ParseIP(host); ip == nil || !ip.IsLoopback() {
				writeError(w, http.StatusForbidden, errors.New("the admin API answers only loopback clients when no admin_token is configured"))
				return
			}
		} else {
			got, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
			if !ok || subtle.ConstantTimeCompare([]byte(got), []byte(token)) != 1 {
				w.Header().Set("WWW-Authenticate", `Bearer realm="drover"`)
				writeError(w, http.StatusUnauthorized, errors.New("missing or wrong bearer token"))
				return
			}
		}
		next.ServeHTTP(w, r)
	})
}

func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.Encode(v)
}

func writeError(w http.ResponseWriter, code int, err error) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	json.NewEncoder(w).Encode(map[string]string{"error": err.Error()})
}
