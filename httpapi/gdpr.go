package httpapi

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"

	"drover/policy"
)

// GDPR answers the data subject requests (art. 15 and on) for one
// address, over every store Drover keeps.
type GDPR interface {
	// Export is everything held about addr, as JSON.
	Export(addr string) (any, error)
	// Erase erases addr from every store; it answers what it did.
	Erase(addr string) (any, error)
}

// registerGDPR adds GET /v1/gdpr/export?address=A and POST
// /v1/gdpr/erase {"address": A}. Without a GDPR they answer 404.
func registerGDPR(admin *http.ServeMux, g GDPR) {
	admin.HandleFunc("POST /v1/gdpr/erase", func(w http.ResponseWriter, r *http.Request) {
		if g == nil {
			writeError(w, http.StatusNotFound, errHygieneOff)
			return
		}
		var req struct {
			Address string `json:"address"`
		}
		if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, 4096)).Decode(&req); err != nil || req.Address == "" {
			writeError(w, http.StatusBadRequest, errors.New(`the body is {"address": "..."}`))
			return
		}
		res, err := g.Erase(req.Address)
		var ie *policy.InvalidConsentError
		switch {
		case errors.As(err, &ie):
			writeError(w, http.StatusBadRequest, err)
		case err != nil:
			writeError(w, http.StatusInternalServerError, fmt.Errorf("erase: %w", err))
		default:
			writeJSON(w, res)
		}
	})
	admin.HandleFunc("GET /v1/gdpr/export", func(w http.ResponseWriter, r *http.Request) {
		if g == nil {
			writeError(w, http.StatusNotFound, errHygieneOff)
			return
		}
		if err := knownParams(r.URL.Query(), "address"); err != nil {
			writeError(w, http.StatusBadRequest, err)
			return
		}
		addr := r.URL.Query().Get("address")
		if addr == "" {
			writeError(w, http.StatusBadRequest, errors.New("address= is required"))
			return
		}
		data, err := g.Export(addr)
		var ie *policy.InvalidConsentError
		switch {
		case errors.As(err, &ie):
			writeError(w, http.StatusBadRequest, err)
		case err != nil:
			writeError(w, http.StatusInternalServerError, fmt.Errorf("export: %w", err))
		default:
			w.Header().Set("Content-Disposition", `attachment; filename="drover-data.json"`)
			writeJSON(w, data)
		}
	})
}
