package httpapi

import (
	"bufio"
	"bytes"
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"mime"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
	"unicode"

	"drover/policy"
	"drover/queue"
)

// Policy is what the admin API uses of list hygiene (*policy.Policy).
type Policy interface {
	Add(es []policy.Entry) ([]policy.Entry, error)
	Remove(addr string, scope policy.Scope, reason policy.Reason, force bool, source string) ([]policy.Entry, error)
	Entries(addr string) ([]policy.Entry, error)
	List(f policy.Filter, from string, limit int) ([]policy.Entry, string, error)
	Import(r io.Reader, opts policy.ImportOptions) (*policy.ImportResult, error)
	Export(w io.Writer, format policy.Format, f policy.Filter) (int, error)
	Check(sender, stream, list, addr string) (policy.Decision, error)
	Engage(events []policy.Outcome) error
	Report(sender, campaign string, since time.Time) (*policy.Report, error)
	ToRemove(sender string, inactive int, fn func(policy.Removal) error) error
}

// Bounds of the list hygiene endpoints.
const (
	// MaxSuppressionPage bounds limit= of GET /v1/suppressions.
	MaxSuppressionPage = 1000
	// MaxAddEntries bounds the entries of one POST /v1/suppressions (a
	// file goes through import).
	MaxAddEntries = 10000
	// MaxCheckAddresses bounds the addresses of one check.
	MaxCheckAddresses = 10000
	// MaxEvents bounds the events of one POST /v1/events.
	MaxEvents = 100000
	// maxImportBody is the largest import: a file of tens of millions of
	// addresses.
	maxImportBody = 1 << 30
	maxEventsBody = 32 << 20
	maxJSONBody   = 8 << 20
)

// Content types of the bodies the admin API takes besides JSON.
const (
	typeJSON   = "application/json"
	typeCSV    = "text/csv"
	typeNDJSON = "application/x-ndjson"
)

var errHygieneOff = errors.New("list hygiene is not enabled")

// hygieneAPI serves the suppression list, engagement events and the
// hygiene reports.
type hygieneAPI struct {
	p   Policy
	now func() time.Time
}

// registerHygiene adds the list hygiene endpoints to the admin mux.
// Without a policy they answer 404.
func registerHygiene(admin *http.ServeMux, p Policy, now func() time.Time) {
	p = livePolicy(p)
	h := &hygieneAPI{p: p, now: now}
	registerRoutes(admin, p != nil, map[string]http.HandlerFunc{
		"GET /v1/suppressions":              h.list,
		"POST /v1/suppressions":             h.add,
		"GET /v1/suppressions/{address}":    h.show,
		"DELETE /v1/suppressions/{address}": h.remove,
		"POST /v1/suppressions/import":      h.importFile,
		"GET /v1/suppressions/export":       h.export,
		"POST /v1/suppressions/check":       h.check,
		"POST /v1/events":                   h.events,
		"GET /v1/hygiene/report":            h.report,
		"GET /v1/hygiene/export":            h.removals,
	})
}

// livePolicy is p, or nil for a nil *policy.Policy (no policy either).
func livePolicy(p Policy) Policy {
	if pp, ok := p.(*policy.Policy); ok && pp == nil {
		return nil
	}
	return p
}

// registerRoutes adds routes to the admin mux, each answering 404
// {"error": "list hygiene is not enabled"} unless on.
func registerRoutes(admin *http.ServeMux, on bool, routes map[string]http.HandlerFunc) {
	for pattern, fn := range routes {
		admin.HandleFunc(pattern, func(w http.ResponseWriter, r *http.Request) {
			if !on {
				writeError(w, http.StatusNotFound, errHygieneOff)
				return
			}
			fn(w, r)
		})
	}
}

// knownParams refuses a query parameter not named.
func knownParams(q url.Values, names ...string) error {
	for k := range q {
		found := false
		for _, n := range names {
			if k == n {
				found = true
				break
			}
		}
		if !found {
			return fmt.Errorf("unknown parameter %q (%s)", k, strings.Join(names, ", "))
		}
	}
	return nil
}

// scopeKind reads a scope's name ("" for any).
func scopeKind(s string) (policy.ScopeKind, error) {
	switch k := policy.ScopeKind(s); k {
	case "", policy.Global, policy.PerSender, policy.PerList:
		return k, nil
	}
	return "", fmt.Errorf("scope %q: global, sender or list", s)
}

// reason reads a reason's name ("" for any).
func reason(s string) (policy.Reason, error) {
	if r := policy.Reason(s); r == "" || r.Valid() {
		return r, nil
	}
	return "", fmt.Errorf("reason %q: one of %s", s, policy.ReasonNames())
}

// filter reads the scope, sender, list and reason parameters.
func filter(q url.Values) (policy.Filter, error) {
	kind, err := scopeKind(q.Get("scope"))
	if err != nil {
		return policy.Filter{}, err
	}
	r, err := reason(q.Get("reason"))
	if err != nil {
		return policy.Filter{}, err
	}
	return policy.Filter{Scope: kind, Sender: q.Get("sender"), List: q.Get("list"), Reason: r}, nil
}

// boolParam reads a boolean parameter (absent: false).
func boolParam(q url.Values, name string) (bool, error) {
	v := q.Get(name)
	if v == "" {
		return false, nil
	}
	b, err := strconv.ParseBool(v)
	if err != nil {
		return false, fmt.Errorf("%s=%q: true or false", name, v)
	}
	return b, nil
}

// mediaType is a request's Content-Type without its parameters.
func mediaType(r *http.Request) string {
	mt, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type"))
	return mt
}

// decodeJSON reads a request's JSON body, refusing unknown fields and
// anything after the value.
func decodeJSON(w http.ResponseWriter, r *http.Request, limit int64, v any) error {
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, limit))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return fmt.Errorf("request body: %w", err)
	}
	if dec.More() {
		return errors.New("request body: more than one JSON value")
	}
	return nil
}

// bodyError answers a request body that could not be read: 413 when it
// was too large.
func bodyError(w http.ResponseWriter, err error) {
	if mbe := (*http.MaxBytesError)(nil); errors.As(err, &mbe) {
		writeError(w, http.StatusRequestEntityTooLarge, fmt.Errorf("request body larger than %d bytes", mbe.Limit))
		return
	}
	writeError(w, http.StatusBadRequest, err)
}

// canonical checks an address given in a path or a body.
func canonical(addr string) (string, error) {
	return policy.Canonical(addr)
}

// limitParam reads a page's limit= (default 100, at most max).
func limitParam(q url.Values, max int) (int, error) {
	v := q.Get("limit")
	if v == "" {
		return 100, nil
	}
	n, err := strconv.Atoi(v)
	if err != nil || n <= 0 || n > max {
		return 0, fmt.Errorf("limit=%q: a number from 1 to %d", v, max)
	}
	return n, nil
}

// GET /v1/suppressions
func (h *hygieneAPI) list(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	if err := knownParams(q, "scope", "sender", "list", "reason", "from", "limit"); err != nil {
		writeError(w, http.StatusBadRequest, err)
		return
	}
	f, err := filter(q)
	if err != nil {
		writeError(w, http.StatusBadRequest, err)
		return
	}
	limit, err := limitParam(q, MaxSuppressionPage)
	if err != nil {
		writeError(w, http.StatusBadRequest, err)
		return
	}
	es, next, err := h.p.List(f, q.Get("from"), limit)
	if err != nil {
		writeError(w, http.StatusInternalServerError, err)
		return
	}
	if es == nil {
		es = []policy.Entry{}
	}
	resp := map[string]any{"entries": es}
	if next != "" {
		resp["next"] = next
	}
	writeJSON(w, resp)
}

// GET /v1/suppressions/{address}
func (h *hygieneAPI) show(w http.ResponseWriter, r *http.Request) {
	addr, err := canonical(r.PathValue("address"))
	if err != nil {
		writeError(w, http.StatusBadRequest, err)
		return
	}
	es, err := h.p.Entries(addr)
	if err != nil {
		writeError(w, http.StatusInternalServerError, err)
		return
	}
	if len(es) == 0 {
		writeError(w, http.StatusNotFound, fmt.Errorf("%s is not suppressed", addr))
		return
	}
	writeJSON(w, map[string]any{"address": addr, "entries": es})
}

// POST /v1/suppressions
func (h *hygieneAPI) add(w http.ResponseWriter, r *http.Request) {
	var req struct {
		Entries []policy.Entry `json:"entries"`
		policy.Entry
	}
	if err := decodeJSON(w, r, maxJSONBody, &req); err != nil {
		bodyError(w, err)
		return
	}
	es := req.Entries
	switch {
	case es != nil && req.Entry != (policy.Entry{}):
		writeError(w, http.StatusBadRequest, errors.New(`give one entry, or "entries", not both`))
		return
	case es == nil:
		es = []policy.Entry{req.Entry}
	}
	if len(es) == 0 {
		writeError(w, http.StatusBadRequest, errors.New("no entries"))
		return
	}
	if len(es) > MaxAddEntries {
		writeError(w, http.StatusBadRequest, fmt.Errorf("%d entries: at most %d a call (import takes a file of any size)", len(es), MaxAddEntries))
		return
	}
	added, err := h.p.Add(es)
	if err != nil {
		writeError(w, http.StatusBadRequest, fmt.Errorf("%w; nothing added", err))
		return
	}
	if added == nil {
		added = []policy.Entry{}
	}
	writeJSON(w, map[string]any{"added": len(added), "duplicates": len(es) - len(added), "entries": added})
}

// DELETE /v1/suppressions/{address}
func (h *hygieneAPI) remove(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	if err := knownParams(q, "scope", "sender", "list", "reason", "force"); err != nil {
		writeError(w, http.StatusBadRequest, err)
		return
	}
	addr, err := canonical(r.PathValue("address"))
	if err != nil {
		writeError(w, http.StatusBadRequest, err)
		return
	}
	f, err := filter(q)
	if err != nil {
		writeError(w, http.StatusBadRequest, err)
		return
	}
	force, err := boolParam(q, "force")
	if err != nil {
		writeError(w, http.StatusBadRequest, err)
		return
	}
	removed, err := h.p.Remove(addr, policy.Scope{Kind: f.Scope, Sender: f.Sender, List: f.List}, f.Reason, force, "admin")
	switch {
	case errors.Is(err, policy.ErrNeedsForce):
		writeError(w, http.StatusConflict, err)
		return
	case err != nil:
		writeError(w, http.StatusInternalServerError, err)
		return
	case len(removed) == 0:
		writeError(w, http.StatusNotFound, fmt.Errorf("no suppression of %s matches", addr))
		return
	}
	writeJSON(w, map[string]any{"removed": removed})
}

// readTracker remembers the error of a request body's reads other than
// io.EOF: a connection cut, or a body over its limit.
type readTracker struct {
	r   io.Reader
	err error
}

func (t *readTracker) Read(p []byte) (int, error) {
	n, err := t.r.Read(p)
	if err != nil && err != io.EOF {
		t.err = err
	}
	return n, err
}

// POST /v1/suppressions/import
func (h *hygieneAPI) importFile(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	if err := knownParams(q, "format", "scope", "sender", "list", "reason", "source", "skip_invalid"); err != nil {
		writeError(w, http.StatusBadRequest, err)
		return
	}
	imp, ok := importParams(w, r)
	if !ok {
		return
	}
	f, err := filter(q)
	if err != nil {
		writeError(w, http.StatusBadRequest, err)
		return
	}
	def := policy.Entry{Scope: policy.Scope{Kind: f.Scope, Sender: f.Sender, List: f.List}, Reason: f.Reason, Source: imp.source}
	body := &readTracker{r: http.MaxBytesReader(w, r.Body, maxImportBody)}
	res, err := h.p.Import(body, policy.ImportOptions{Format: imp.format, Default: def, SkipInvalid: imp.skip})
	answerImport(w, body, res, err)
}

// importParams are what every import takes from its request.
type importParamSet struct {
	format policy.Format // from the Content-Type; format= must agree
	skip   bool          // skip_invalid=
	source string        // "import" or "import:NAME" (source=NAME)
}

// importParams reads an import's format, skip_invalid and source, or
// answers the error and reports false.
func importParams(w http.ResponseWriter, r *http.Request) (importParamSet, bool) {
	q := r.URL.Query()
	var imp importParamSet
	switch mt := mediaType(r); mt {
	case typeCSV:
		imp.format = policy.CSV
	case typeNDJSON, typeJSON:
		imp.format = policy.JSONLines
	default:
		writeError(w, http.StatusUnsupportedMediaType, fmt.Errorf("Content-Type %q: an import is text/csv or application/x-ndjson", mt))
		return imp, false
	}
	if v := q.Get("format"); v != "" {
		f, err := policy.ParseFormat(v)
		if err != nil {
			writeError(w, http.StatusBadRequest, err)
			return imp, false
		}
		if f != imp.format {
			writeError(w, http.StatusBadRequest, fmt.Errorf("format=%s, but the body is %s", v, mediaType(r)))
			return imp, false
		}
	}
	var err error
	if imp.skip, err = boolParam(q, "skip_invalid"); err != nil {
		writeError(w, http.StatusBadRequest, err)
		return imp, false
	}
	imp.source = "import"
	if name := q.Get("source"); name != "" {
		if len(name) > 255 || strings.ContainsFunc(name, unicode.IsControl) {
			writeError(w, http.StatusBadRequest, errors.New("source: a file name of at most 255 characters"))
			return imp, false
		}
		imp.source = "import:" + name
	}
	return imp, true
}

// answerImport answers an import: its result, or 422 with its invalid
// lines, or why the body could not be read; nothing was committed but
// for the 200.
func answerImport(w http.ResponseWriter, body *readTracker, res *policy.ImportResult, err error) {
	var ie *policy.ImportError
	switch {
	case errors.As(err, &ie):
		writeJSONStatus(w, http.StatusUnprocessableEntity, importRefusal{Error: err.Error(), ImportResult: *ie.Result})
	case body.err != nil:
		bodyError(w, fmt.Errorf("reading the import: %w (nothing imported)", body.err))
	case errors.Is(err, bufio.ErrTooLong):
		writeError(w, http.StatusUnprocessableEntity, errors.New("a line is longer than 1 MiB (nothing imported)"))
	case err != nil:
		writeError(w, http.StatusInternalServerError, err)
	default:
		writeJSON(w, res)
	}
}

// importRefusal is the answer to an import refused for its lines: the
// error, and what was read, with "committed": false.
type importRefusal struct {
	Error string `json:"error"`
	policy.ImportResult
}

// streamWriter is the body of a streamed answer: it knows whether any of
// it went out, so that a failure before the first byte can still be a
// JSON error.
type streamWriter struct {
	w       http.ResponseWriter
	started bool
	header  func()
}

func (s *streamWriter) Write(p []byte) (int, error) {
	if !s.started {
		s.started = true
		s.header()
	}
	return s.w.Write(p)
}

// fail ends a streamed answer that failed: a JSON error when nothing was
// sent, else a cut connection, so that the client sees a truncated body
// as an error rather than a short file.
func (s *streamWriter) fail(what string, err error) {
	if !s.started {
		writeError(s.w, http.StatusInternalServerError, err)
		return
	}
	slog.Error("httpapi: "+what+" failed part-way; the connection is cut", "err", err)
	panic(http.ErrAbortHandler)
}

func newStream(w http.ResponseWriter, contentType, filename string) *streamWriter {
	return &streamWriter{w: w, header: func() {
		w.Header().Set("Content-Type", contentType)
		if cd := mime.FormatMediaType("attachment", map[string]string{"filename": filename}); cd != "" {
			w.Header().Set("Content-Disposition", cd)
		}
		w.Header().Set("Cache-Control", "no-store")
		w.WriteHeader(http.StatusOK)
	}}
}

// GET /v1/suppressions/export
func (h *hygieneAPI) export(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	if err := knownParams(q, "format", "scope", "sender", "list", "reason"); err != nil {
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
	f, err := filter(q)
	if err != nil {
		writeError(w, http.StatusBadRequest, err)
		return
	}
	ct, name := typeCSV+"; charset=utf-8", "suppressions.csv"
	if format == policy.JSONLines {
		ct, name = typeNDJSON, "suppressions.jsonl"
	}
	sw := newStream(w, ct, name)
	if _, err := h.p.Export(sw, format, f); err != nil {
		sw.fail("export", err)
		return
	}
	if !sw.started {
		sw.Write(nil) // nothing matched, in JSON lines: an empty file
	}
}

// POST /v1/suppressions/check
func (h *hygieneAPI) check(w http.ResponseWriter, r *http.Request) {
	var req struct {
		Sender    string   `json:"sender"`
		List      string   `json:"list"`
		Stream    string   `json:"stream"`
		Addresses []string `json:"addresses"`
	}
	if err := decodeJSON(w, r, maxJSONBody, &req); err != nil {
		bodyError(w, err)
		return
	}
	if len(req.Addresses) > MaxCheckAddresses {
		writeError(w, http.StatusBadRequest, fmt.Errorf("%d addresses: at most %d a call", len(req.Addresses), MaxCheckAddresses))
		return
	}
	if req.List != "" && req.Sender == "" {
		writeError(w, http.StatusBadRequest, errors.New("a list belongs to a sender: give the sender too"))
		return
	}
	for i, a := range req.Addresses {
		if _, err := canonical(a); err != nil {
			writeError(w, http.StatusBadRequest, fmt.Errorf("addresses[%d]: %w; nothing checked", i, err))
			return
		}
	}
	sender := req.Sender // "": only the global entries (policy.Policy.Check)
	stream := req.Stream
	if stream == "" {
		stream = "marketing"
	}
	out := map[string]string{}
	for _, a := range req.Addresses {
		d, err := h.p.Check(sender, stream, req.List, a)
		if err != nil {
			writeError(w, http.StatusInternalServerError, err)
			return
		}
		if d.Suppressed {
			out[a] = d.Text()
		}
	}
	writeJSON(w, map[string]any{"suppressed": out})
}

// event is one line of POST /v1/events.
type event struct {
	Event    string `json:"event"`
	Time     string `json:"time"`
	Sender   string `json:"sender"`
	Rcpt     string `json:"rcpt"`
	ID       string `json:"id"`
	Campaign string `json:"campaign"`
}

// POST /v1/events
func (h *hygieneAPI) events(w http.ResponseWriter, r *http.Request) {
	if mt := mediaType(r); mt != typeNDJSON && mt != typeJSON {
		writeError(w, http.StatusUnsupportedMediaType, fmt.Errorf("Content-Type %q: events are JSON lines (application/x-ndjson)", mt))
		return
	}
	sc := bufio.NewScanner(http.MaxBytesReader(w, r.Body, maxEventsBody))
	sc.Buffer(make([]byte, 0, 64<<10), 64<<10)
	var outcomes []policy.Outcome
	for line := 1; sc.Scan(); line++ {
		text := bytes.TrimSpace(sc.Bytes())
		if len(text) == 0 {
			continue
		}
		if len(outcomes) == MaxEvents {
			writeError(w, http.StatusBadRequest, fmt.Errorf("more than %d events: send them in several calls; none applied", MaxEvents))
			return
		}
		o, err := readEvent(text)
		if err != nil {
			writeError(w, http.StatusBadRequest, fmt.Errorf("line %d: %w; none applied", line, err))
			return
		}
		outcomes = append(outcomes, o)
	}
	if err := sc.Err(); err != nil {
		if errors.Is(err, bufio.ErrTooLong) {
			err = errors.New("a line is longer than 64 KiB")
		}
		bodyError(w, fmt.Errorf("reading the events: %w; none applied", err))
		return
	}
	if len(outcomes) > 0 {
		if err := h.p.Engage(outcomes); err != nil {
			writeError(w, http.StatusInternalServerError, err)
			return
		}
	}
	writeJSON(w, map[string]any{"accepted": len(outcomes)})
}

// readEvent reads one engagement event.
func readEvent(line []byte) (policy.Outcome, error) {
	var ev event
	dec := json.NewDecoder(bytes.NewReader(line))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&ev); err != nil {
		return policy.Outcome{}, fmt.Errorf("not a JSON event: %v", err)
	}
	if dec.More() {
		return policy.Outcome{}, errors.New("more than one JSON value on the line")
	}
	o := policy.Outcome{Reason: ev.Event, Sender: ev.Sender, Campaign: ev.Campaign}
	if ev.Event != "opened" && ev.Event != "clicked" {
		return o, fmt.Errorf(`event %q: "opened" or "clicked"`, ev.Event)
	}
	if ev.Sender == "" {
		return o, errors.New("sender is required")
	}
	if ev.Rcpt == "" {
		return o, errors.New("rcpt is required")
	}
	addr, err := canonical(ev.Rcpt)
	if err != nil {
		return o, fmt.Errorf("rcpt: %w", err)
	}
	o.Address = addr
	if ev.ID != "" {
		id, ok := queue.NormalizeID(ev.ID)
		if !ok {
			return o, fmt.Errorf("id %q is not a message ID", ev.ID)
		}
		o.MsgID = id
	}
	if ev.Time != "" {
		t, err := time.Parse(time.RFC3339, ev.Time)
		if err != nil {
			return o, fmt.Errorf("time %q is not RFC 3339 (2026-11-30T14:05:00Z)", ev.Time)
		}
		o.Time = t
	}
	return o, nil
}

// since reads a report's since=: a date (2026-11-01), a time (RFC 3339)
// or a duration back from now, in days (30d) or as Go writes durations
// (12h).
func since(s string, now time.Time) (time.Time, error) {
	if s == "" {
		return time.Time{}, nil
	}
	if n, err := strconv.Atoi(strings.TrimSuffix(s, "d")); err == nil && strings.HasSuffix(s, "d") && n >= 0 {
		return now.AddDate(0, 0, -n), nil
	}
	if d, err := time.ParseDuration(s); err == nil && d >= 0 {
		return now.Add(-d), nil
	}
	if t, err := time.Parse(time.DateOnly, s); err == nil {
		return t, nil
	}
	if t, err := time.Parse(time.RFC3339, s); err == nil {
		return t, nil
	}
	return time.Time{}, fmt.Errorf("since=%q: a date (2026-11-01) or a duration back from now (30d, 12h)", s)
}

// GET /v1/hygiene/report
func (h *hygieneAPI) report(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	if err := knownParams(q, "sender", "campaign", "since"); err != nil {
		writeError(w, http.StatusBadRequest, err)
		return
	}
	sender := q.Get("sender")
	if sender == "" {
		writeError(w, http.StatusBadRequest, errors.New("sender= is required: a report is one sender's"))
		return
	}
	from, err := since(q.Get("since"), h.now())
	if err != nil {
		writeError(w, http.StatusBadRequest, err)
		return
	}
	rep, err := h.p.Report(sender, q.Get("campaign"), from)
	if err != nil {
		writeError(w, http.StatusInternalServerError, err)
		return
	}
	writeJSON(w, rep)
}

// GET /v1/hygiene/export
func (h *hygieneAPI) removals(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	if err := knownParams(q, "sender", "inactive"); err != nil {
		writeError(w, http.StatusBadRequest, err)
		return
	}
	sender := q.Get("sender")
	if sender == "" {
		writeError(w, http.StatusBadRequest, errors.New("sender= is required: the addresses to remove are one sender's"))
		return
	}
	inactive := 0
	if v := q.Get("inactive"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 0 {
			writeError(w, http.StatusBadRequest, fmt.Errorf("inactive=%q: a number of messages (0: suppressed addresses only)", v))
			return
		}
		inactive = n
	}
	sw := newStream(w, typeCSV+"; charset=utf-8", sender+"-to-remove.csv")
	bw := bufio.NewWriterSize(sw, 64<<10)
	cw := csv.NewWriter(bw)
	cw.Write([]string{"address", "reason", "scope", "list"})
	err := h.p.ToRemove(sender, inactive, func(x policy.Removal) error {
		return cw.Write([]string{x.Address, x.Reason, x.Scope, x.List})
	})
	if err == nil {
		cw.Flush()
		err = cw.Error()
	}
	if err == nil {
		err = bw.Flush()
	}
	if err != nil {
		sw.fail("hygiene export", err)
	}
}
