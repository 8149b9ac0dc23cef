package httpapi

import (
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"drover/policy"
)

// Repermissions is what the admin API uses of re-permission campaigns
// (*policy.Policy). The Policy of Config serves them when it has these
// methods too.
type Repermissions interface {
	StartRepermission(in policy.RepermissionStart) (policy.Repermission, error)
	Repermissions(sender, list string) ([]policy.Repermission, error)
	RunRepermissionDeadlines() ([]policy.Repermission, error)
}

// repermissionAPI serves the re-permission campaigns of lists.
type repermissionAPI struct{ r Repermissions }

// registerRepermission adds the re-permission endpoints to the admin
// mux. Without a policy they answer 404.
func registerRepermission(admin *http.ServeMux, p Policy) {
	r, _ := livePolicy(p).(Repermissions)
	h := &repermissionAPI{r: r}
	registerRoutes(admin, r != nil, map[string]http.HandlerFunc{
		"POST /v1/consent/repermission":     h.start,
		"GET /v1/consent/repermission":      h.list,
		"POST /v1/consent/repermission/run": h.run,
	})
}

// repermissionError answers a failed campaign call: 409 for a list with
// a campaign running, else as consentError.
func repermissionError(w http.ResponseWriter, err error) {
	if errors.Is(err, policy.ErrRepermissionRunning) {
		writeError(w, http.StatusConflict, err)
		return
	}
	consentError(w, err)
}

// deadline reads a campaign's deadline: a duration from now, in days
// (30d) or as Go writes durations (72h), or a time (RFC 3339).
func deadline(s string) (policy.RepermissionStart, error) {
	var in policy.RepermissionStart
	if n, err := strconv.Atoi(strings.TrimSuffix(s, "d")); err == nil && strings.HasSuffix(s, "d") && n > 0 {
		in.Within = time.Duration(n) * 24 * time.Hour
		return in, nil
	}
	if d, err := time.ParseDuration(s); err == nil && d > 0 {
		in.Within = d
		return in, nil
	}
	if t, err := time.Parse(time.RFC3339, s); err == nil {
		in.Deadline = t
		return in, nil
	}
	return in, fmt.Errorf("deadline %q: a duration from now (30d, 72h) or a time (2026-12-31T00:00:00Z)", s)
}

// POST /v1/consent/repermission
func (h *repermissionAPI) start(w http.ResponseWriter, r *http.Request) {
	var req struct {
		Sender   string  `json:"sender"`
		List     *string `json:"list"`
		Deadline string  `json:"deadline"`
	}
	if err := decodeJSON(w, r, maxJSONBody, &req); err != nil {
		bodyError(w, err)
		return
	}
	if req.List == nil {
		writeError(w, http.StatusBadRequest, errors.New(`"list" is required ("" for the sender's mail that names no list)`))
		return
	}
	if req.Deadline == "" {
		writeError(w, http.StatusBadRequest, errors.New(`"deadline" is required: a duration (30d) or a time (RFC 3339)`))
		return
	}
	in, err := deadline(req.Deadline)
	if err != nil {
		writeError(w, http.StatusBadRequest, err)
		return
	}
	in.Sender, in.List = req.Sender, *req.List
	c, err := h.r.StartRepermission(in)
	if err != nil {
		repermissionError(w, err)
		return
	}
	writeJSON(w, map[string]any{"repermission": c})
}

// GET /v1/consent/repermission
func (h *repermissionAPI) list(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	if err := knownParams(q, "sender", "list"); err != nil {
		writeError(w, http.StatusBadRequest, err)
		return
	}
	sender, list, err := senderList(q, true)
	if err != nil {
		writeError(w, http.StatusBadRequest, err)
		return
	}
	cs, err := h.r.Repermissions(sender, list)
	if err != nil {
		repermissionError(w, err)
		return
	}
	if cs == nil {
		cs = []policy.Repermission{}
	}
	writeJSON(w, map[string]any{"repermissions": cs})
}

// POST /v1/consent/repermission/run
func (h *repermissionAPI) run(w http.ResponseWriter, r *http.Request) {
	ended, err := h.r.RunRepermissionDeadlines()
	if err != nil {
		writeError(w, http.StatusInternalServerError, err)
		return
	}
	if ended == nil {
		ended = []policy.Repermission{}
	}
	writeJSON(w, map[string]any{"ended": ended})
}
