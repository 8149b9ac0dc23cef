package httpapi

import (
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"

	"drover/policy"
)

// Consents is what the admin API uses of consent records
// (*policy.Policy). The Policy of Config serves them when it has these
// methods too.
type Consents interface {
	RecordConsent(in policy.ConsentInput) (policy.Consent, bool, error)
	WithdrawConsent(sender, list, addr string, act policy.ConsentAct) (policy.Consent, bool, error)
	ConsentHistory(addr, sender, list string) ([]policy.Consent, error)
	ListConsent(sender, list string, status policy.ConsentStatus, from string, limit int) ([]policy.Consent, string, error)
	ImportConsent(r io.Reader, opts policy.ConsentImportOptions) (*policy.ImportResult, error)
	ExportConsent(w io.Writer, format policy.Format, sender, list string) (int, error)
}

// MaxConsentPage bounds limit= of GET /v1/consent.
const MaxConsentPage = 1000

// consentAPI serves the consent records and their proof.
type consentAPI struct{ c Consents }

// registerConsent adds the consent endpoints to the admin mux. Without a
// policy (or one without consent records) they answer 404.
func registerConsent(admin *http.ServeMux, p Policy) {
	c, _ := livePolicy(p).(Consents)
	h := &consentAPI{c: c}
	registerRoutes(admin, c != nil, map[string]http.HandlerFunc{
		"POST /v1/consent":          h.record,
		"POST /v1/consent/withdraw": h.withdraw,
		"GET /v1/consent/{address}": h.show,
		"GET /v1/consent":           h.list,
		"POST /v1/consent/import":   h.importFile,
		"GET /v1/consent/export":    h.export,
	})
}

// consentError answers a failed consent call: 400 for a record refused
// for what it says, 409 for an address suppressed, 404 for nothing to
// withdraw, else 500.
func consentError(w http.ResponseWriter, err error) {
	var ie *policy.InvalidConsentError
	var se *policy.SuppressedError
	switch {
	case errors.As(err, &ie):
		writeError(w, http.StatusBadRequest, fmt.Errorf("%w; nothing recorded", err))
	case errors.As(err, &se):
		writeError(w, http.StatusConflict, err)
	case errors.Is(err, policy.ErrNoConsent):
		writeError(w, http.StatusNotFound, err)
	default:
		writeError(w, http.StatusInternalServerError, err)
	}
}

// senderList reads sender= (required) and list=, which must be given
// (list= empty: the sender's mail that names no list) unless anyList: it
// is then policy.Any when absent.
func senderList(q url.Values, anyList bool) (string, string, error) {
	sender := q.Get("sender")
	if sender == "" {
		return "", "", errors.New("sender= is required: consent is given to a sender")
	}
	if !q.Has("list") {
		if anyList {
			return sender, policy.Any, nil
		}
		return "", "", errors.New(`list= is required ("list=" with no value: the sender's mail that names no list)`)
	}
	return sender, q.Get("list"), nil
}

// consentStatus reads status= ("" for any).
func consentStatus(s string) (policy.ConsentStatus, error) {
	if st := policy.ConsentStatus(s); st == "" || st.Valid() {
		return st, nil
	}
	return "", fmt.Errorf("status=%q: confirmed, pending, withdrawn or lapsed", s)
}

// POST /v1/consent
func (h *consentAPI) record(w http.ResponseWriter, r *http.Request) {
	var in policy.ConsentInput
	if err := decodeJSON(w, r, maxJSONBody, &in); err != nil {
		bodyError(w, err)
		return
	}
	c, added, err := h.c.RecordConsent(in)
	if err != nil {
		consentError(w, err)
		return
	}
	writeJSON(w, map[string]any{"consent": c, "recorded": added})
}

// POST /v1/consent/withdraw
func (h *consentAPI) withdraw(w http.ResponseWriter, r *http.Request) {
	var req struct {
		Sender  string `json:"sender"`
		List    string `json:"list"`
		Address string `json:"address"`
		policy.ConsentAct
	}
	if err := decodeJSON(w, r, maxJSONBody, &req); err != nil {
		bodyError(w, err)
		return
	}
	if req.Source == "" {
		req.Source = "api"
	}
	c, added, err := h.c.WithdrawConsent(req.Sender, req.List, req.Address, req.ConsentAct)
	if err != nil {
		consentError(w, err)
		return
	}
	writeJSON(w, map[string]any{"consent": c, "withdrawn": added})
}

// GET /v1/consent/{address}
func (h *consentAPI) show(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	if err := knownParams(q, "sender", "list"); err != nil {
		writeError(w, http.StatusBadRequest, err)
		return
	}
	addr, err := canonical(r.PathValue("address"))
	if err != nil {
		writeError(w, http.StatusBadRequest, err)
		return
	}
	sender, list := policy.Any, policy.Any
	if q.Has("sender") {
		sender = q.Get("sender")
	}
	if q.Has("list") {
		if !q.Has("sender") {
			writeError(w, http.StatusBadRequest, errors.New("a list belongs to a sender: give the sender too"))
			return
		}
		list = q.Get("list")
	}
	cs, err := h.c.ConsentHistory(addr, sender, list)
	if err != nil {
		consentError(w, err)
		return
	}
	if len(cs) == 0 {
		writeError(w, http.StatusNotFound, fmt.Errorf("no consent is recorded for %s", addr))
		return
	}
	writeJSON(w, map[string]any{"address": addr, "records": cs})
}

// GET /v1/consent
func (h *consentAPI) list(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	if err := knownParams(q, "sender", "list", "status", "from", "limit"); err != nil {
		writeError(w, http.StatusBadRequest, err)
		return
	}
	sender, list, err := senderList(q, false)
	if err != nil {
		writeError(w, http.StatusBadRequest, err)
		return
	}
	status, err := consentStatus(q.Get("status"))
	if err != nil {
		writeError(w, http.StatusBadRequest, err)
		return
	}
	limit, err := limitParam(q, MaxConsentPage)
	if err != nil {
		writeError(w, http.StatusBadRequest, err)
		return
	}
	cs, next, err := h.c.ListConsent(sender, list, status, q.Get("from"), limit)
	if err != nil {
		consentError(w, err)
		return
	}
	resp := map[string]any{"records": cs}
	if next != "" {
		resp["next"] = next
	}
	writeJSON(w, resp)
}

// POST /v1/consent/import
func (h *consentAPI) importFile(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	if err := knownParams(q, "format", "sender", "list", "source", "skip_invalid"); err != nil {
		writeError(w, http.StatusBadRequest, err)
		return
	}
	imp, ok := importParams(w, r)
	if !ok {
		return
	}
	sender, list, err := senderList(q, false)
	if err != nil {
		writeError(w, http.StatusBadRequest, err)
		return
	}
	body := &readTracker{r: http.MaxBytesReader(w, r.Body, maxImportBody)}
	res, err := h.c.ImportConsent(body, policy.ConsentImportOptions{Format: imp.format, Sender: sender, List: list, Source: imp.source, SkipInvalid: imp.skip})
	answerImport(w, body, res, err)
}

// GET /v1/consent/export
func (h *consentAPI) export(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	if err := knownParams(q, "format", "sender", "list"); err != nil {
		writeError(w, http.StatusBadRequest, err)
		return
	}
	format := policy.CSV
	if v := q.Get("format"); v != "" {
		var err error
		if format, err = policy.ParseFormat(v); err != nil {
			writeError(w, http.StatusBadRequest, err)
			return
		}
	}
	sender, list, err := senderList(q, true)
	if err != nil {
		writeError(w, http.StatusBadRequest, err)
		return
	}
	name := "consent-" + sender
	if list != policy.Any && list != "" {
		name += "-" + list
	}
	ct := typeCSV + "; charset=utf-8"
	if format == policy.JSONLines {
		ct, name = typeNDJSON, name+".jsonl"
	} else {
		name += ".csv"
	}
	sw := newStream(w, ct, name)
	if _, err := h.c.ExportConsent(sw, format, sender, list); err != nil {
		var ie *policy.InvalidConsentError
		if !sw.started && errors.As(err, &ie) {
			writeError(w, http.StatusBadRequest, err)
			return
		}
		sw.fail("consent export", err)
		return
	}
	if !sw.started {
		sw.Write(nil)
	}
}
