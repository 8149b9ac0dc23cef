package httpapi

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"

	"drover/policy"
	"drover/web"
)

// Signup records a sign-up as the hosted form does (web.Signup).
type Signup interface {
	SignUp(req web.SignupRequest) (pending bool, err error)
}

// registerSignup adds POST /v1/subscribe/{sender}/{list}: the hosted
// form's sign-up for an application that hosts its own form and passes
// the client's IP and user agent. Without a Signup it answers 404.
func registerSignup(admin *http.ServeMux, s Signup) {
	admin.HandleFunc("POST /v1/subscribe/{sender}/{list}", func(w http.ResponseWriter, r *http.Request) {
		if s == nil {
			writeError(w, http.StatusNotFound, errors.New("no list takes sign-ups (senders.NAME.signup)"))
			return
		}
		var req struct {
			Email     string `json:"email"`
			Consent   bool   `json:"consent"`
			IP        string `json:"ip"`
			UserAgent string `json:"user_agent"`
			Source    string `json:"source"`
			Lang      string `json:"lang"`
		}
		dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, 16<<10))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&req); err != nil {
			writeError(w, http.StatusBadRequest, fmt.Errorf("the body: %w", err))
			return
		}
		if !req.Consent {
			writeError(w, http.StatusBadRequest, errors.New(`"consent": true is required: the person ticked the consent checkbox (an affirmative act); nothing recorded`))
			return
		}
		if req.IP == "" || req.Source == "" {
			writeError(w, http.StatusBadRequest, errors.New(`"ip" and "source" (the form's page) are the sign-up's proof: both are required; nothing recorded`))
			return
		}
		pending, err := s.SignUp(web.SignupRequest{Sender: r.PathValue("sender"), List: r.PathValue("list"), Address: req.Email,
			IP: req.IP, UserAgent: req.UserAgent, Source: req.Source, Lang: req.Lang})
		var invalid *policy.InvalidConsentError
		var supp *policy.SuppressedError
		switch {
		case errors.Is(err, web.ErrUnknownList):
			writeError(w, http.StatusNotFound, err)
		case errors.As(err, &invalid):
			writeError(w, http.StatusBadRequest, fmt.Errorf("%w; nothing recorded", err))
		case errors.As(err, &supp):
			writeError(w, http.StatusConflict, fmt.Errorf("%w; nothing recorded", err))
		case err != nil && pending:
			writeError(w, http.StatusServiceUnavailable, fmt.Errorf("the sign-up is pending but its confirmation was not queued: %w", err))
		case err != nil:
			writeError(w, http.StatusInternalServerError, err)
		default:
			writeJSON(w, map[string]bool{"pending": pending})
		}
	})
}
