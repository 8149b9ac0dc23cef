// Package httpapi is Drover's one HTTP listener: /metrics (Prometheus),
// /healthz, and the admin API under /v1/. It is its own folder because it
// is a surface over several packages (queue and policy today; reputation
// later) and belongs to none of them.
//
// /healthz runs the configured checks (Config.Checks) and answers, to
// anyone, 200 with {"status":"ok","checks":{"spool":"ok",...}}, or 503
// with "status":"fail" and each failing check's error in place of its
// "ok". While the server drains for shutdown it answers 503 with
// "status":"draining" and "checks":{"draining":"draining",...}, so that
// a load balancer stops sending mail before the listeners close. A check
// with a Cache duration is run at most once per that duration, however
// often /healthz is asked.
//
// The admin API and the profiler obey only an operator's tool, never a
// web page that a browser on the same machine has open (a cross-site
// request, or DNS rebinding of a name to this listener's address). Each
// request to them, from any client address, must:
//
//   - give as Host an IP address or "localhost", with the port the request
//     came in on or none, or one of Config.AllowedHosts (any port): else
//     403;
//   - send no Origin header, or the request's own origin ("http://" or
//     "https://" + Host): else 403;
//   - carry "Authorization: Bearer <token>" (the scheme in any case), the
//     token compared in constant time: else 401 (Config.AdminToken ""
//     refuses everyone);
//   - for POST, DELETE and any other method than GET, HEAD and OPTIONS,
//     send "Content-Type: application/json", or for the endpoints that
//     take files "text/csv" or "application/x-ndjson": else 415. None of
//     the three is a CORS-safelisted type (text/plain, form data and
//     multipart are), so a browser sends them cross-site only after a
//     CORS preflight, which this API never grants.
//
// Each refusal is {"error": "..."}, given before the body is read: it
// changes nothing. /metrics and /healthz answer anyone.
//
//	GET  /v1/queue?by=site|domain|sender|campaign
//	                         recipients, messages, oldest, last error (and
//	                         shaping state by site) per group
//	GET  /v1/queue/suspensions  the operator suspensions in force
//	GET  /v1/queue/messages?recipient=a@b.example|@b.example&id=ID&site=&domain=
//	     &sender=&campaign=&older_than=1h&newer_than=10m&order=oldest|newest
//	     &limit=100&after=ID
//	                         one entry per queued message (id, received,
//	                         size, sender, return_path, recipients with
//	                         their attempts and last_error), a page at a
//	                         time: {"messages": [...], "next": ID} where
//	                         next, when given, is the after of the next page
//	GET  /v1/queue/{id}      one message and its recipients
//	GET  /v1/queue/{id}/body the stored message (message/rfc822)
//	POST /v1/queue/suspend   {"site"|"domain": name, "for": "1h", "reason": "..."}
//	POST /v1/queue/resume    {"site"|"domain": name}
//	POST /v1/queue/flush     {selector}: retry now (a job)
//	POST /v1/queue/bounce    {selector, "reason": "...", "dry_run": true} (a job)
//	POST /v1/queue/delete    {selector, "dry_run": true} (a job)
//	POST /v1/queue/hold      {selector}: keep from delivery, across
//	                         restarts (a job)
//	POST /v1/queue/release   {selector}: deliver held recipients now (a job)
//	GET  /v1/jobs            the queue operations started, newest first
//	GET  /v1/jobs/{id}?wait=2s
//	                         one, once it finished or after wait (at most 30s)
//	POST /v1/reload          reload the configuration (as SIGHUP)
//
// A selector is any of "ids" (message IDs, in any case), "recipient" (an
// address or "@domain"), "site", "domain", "sender", "campaign";
// recipients matching all the given fields are affected. Bounce, delete,
// hold and release refuse an empty selector: everything is "all": true. Bad input gets 400 at once
// and changes nothing. Suspend and resume change memory only: they answer
// when done, {"affected": 0, "dry_run": false}, even while a job runs.
//
// Flush, bounce, delete, hold and release scan the whole queue (seconds
// for a million recipients; with "ids", only those messages' records), so they always run as a job, dry runs included: the answer
// is 202 Accepted at once, with {"job": {"id", "op", "selector", "reason",
// "dry_run", "state": "running", "total", "scanned", "affected",
// "started"}}. The spool runs them one at a time; a job waiting its turn
// shows total 0. The job then ends "done" or "failed" (with "error" and the
// count of what was changed before), with "finished". At most 8 run or wait
// at once (429 beyond); finished jobs are kept an hour, the last 64 at
// most, and all are forgotten at a restart.
//
// List hygiene (Config.Policy; without it these answer 404 {"error":
// "list hygiene is not enabled"}). An entry is {"address", "scope":
// "global"|"sender"|"list", "sender", "list", "reason", "source",
// "time"}; the reasons are policy's (unsubscribed, confirmed-bounce,
// hard-bounce, complaint, spam-trap, manual, inactive). Addresses in a
// path are escaped (a/b@x.example is a%2Fb@x.example). As everywhere,
// bad input gets 400 with {"error": "..."} naming what is wrong, and
// changes nothing.
//
//	GET  /v1/suppressions?scope=&sender=&list=&reason=&from=ADDR&limit=100
//	                         the entries that match every filter given, in
//	                         address order, a page at a time (limit at most
//	                         1000; a page ends with an address's last
//	                         entry): {"entries": [...], "next": ADDR} where
//	                         next, when given, is the from of the next page
//	GET  /v1/suppressions/{address}
//	                         {"address", "entries": [...]}; 404 when none
//	POST /v1/suppressions    {"entries": [entry, ...]} or one entry (reason
//	                         default manual, source default admin, scope
//	                         from the sender and list named), at most 10000:
//	                         {"added": n, "duplicates": n, "entries": [the
//	                         new ones]}; a bad entry is 400 naming it, and
//	                         nothing is added
//	DELETE /v1/suppressions/{address}?scope=&sender=&list=&reason=&force=true
//	                         remove the address's entries that match (an
//	                         event each, source "admin"): {"removed": [...]};
//	                         an unsubscribe or a complaint among them without
//	                         force is 409 and removes nothing; none matching
//	                         is 404
//	POST /v1/suppressions/import?format=csv|jsonl&scope=&sender=&list=&reason=
//	     &source=NAME&skip_invalid=true
//	                         the file as the body (text/csv or
//	                         application/x-ndjson, up to 1 GiB; format
//	                         defaults to the Content-Type's): lines that do
//	                         not name a scope, sender, list or reason take
//	                         the parameters', source "import:NAME". One
//	                         atomic commit: 200 with {"read", "added",
//	                         "duplicates", "invalid": [{"line", "error"}],
//	                         "committed": true}; with invalid lines and no
//	                         skip_invalid, 422 with the same and "error",
//	                         "committed": false, and nothing is imported
//	GET  /v1/suppressions/export?format=csv|jsonl&scope=&sender=&list=&reason=
//	                         the matching entries as a file (text/csv, the
//	                         default, or application/x-ndjson), streamed; a
//	                         failure part-way cuts the connection, so the
//	                         file never looks whole
//	POST /v1/suppressions/check  {"sender", "list", "stream" (default
//	                         marketing), "addresses": [...]} (at most 10000):
//	                         {"suppressed": {"addr": "why, in the words of
//	                         an SMTP refusal"}} for those a message would be
//	                         refused to; without a sender, only the global
//	                         entries count
//	POST /v1/events          JSON lines (application/x-ndjson), each
//	                         {"event": "opened"|"clicked", "time": RFC 3339
//	                         (default now), "sender", "rcpt", "id": queue ID,
//	                         "campaign"}, at most 100000: the sender's
//	                         tracking reports engagement, which ends a
//	                         recipient's run of messages without one and
//	                         lifts its inactivity entry: {"accepted": n}; a
//	                         malformed line is 400 naming its number, and
//	                         none is applied
//	GET  /v1/hygiene/report?sender=S&campaign=C&since=2026-11-01|30d
//	                         the sender's outcomes per campaign (bounce rate,
//	                         flagged above 2 %) and its non-engagers for 5,
//	                         10, 20 and 30 messages (policy.Report); since is
//	                         a date, or a duration back from now (30d, 12h)
//	GET  /v1/hygiene/export?sender=S&inactive=N
//	                         CSV "address,reason,scope,list": the addresses
//	                         the sender should take off its list, suppressed
//	                         for it or, with inactive, without engagement
//	                         with its last N marketing messages
//
// Consent records (Config.Policy too; 404 without it). A record is
// {"sender", "list" ("" for the sender's mail that names no list),
// "address", "seq", "recorded", "status": "pending"|"confirmed"|
// "withdrawn"|"lapsed", "method": "single-opt-in"|"double-opt-in"|
// "import"|"api", "proof": {"time", "ip", "user_agent", "source",
// "text_sha256", "text" (in a history), "purposes"}, "confirmation":
// {"time", "ip", "user_agent"} (a double opt-in's), "ended": {"time",
// "ip", "user_agent", "source"} (a withdrawal's)}. The history is
// append-only: each change is a new record. A record for an address
// suppressed for every sender, or for the sender for a complaint, is
// 409 with the suppression in words; a record refused for what it says
// is 400; neither records anything.
//
//	POST /v1/consent         {"sender", "list", "address", "status":
//	                         "pending"|"confirmed" (default), "method"
//	                         (default api; double-opt-in for pending),
//	                         "time", "ip", "user_agent", "source", "text"
//	                         (the consent text shown: stored once, named
//	                         by its SHA-256), "purposes": [...],
//	                         "confirmation": {"time", "ip", "user_agent"}}:
//	                         {"consent": record, "recorded": true}, or
//	                         "recorded": false and the latest record when
//	                         it says the same. The proof (time, source and
//	                         text) is required, but for a confirmed double
//	                         opt-in that confirms a pending sign-up: that
//	                         repeats the sign-up's proof (confirmed now
//	                         without "confirmation" or its "time"); a
//	                         confirmed double opt-in needs its
//	                         confirmation or a pending sign-up
//	POST /v1/consent/withdraw  {"sender", "list", "address", "source"
//	                         (default api), "time" (default now), "ip",
//	                         "user_agent"}: a withdrawn record repeating the
//	                         consent's proof: {"consent": record,
//	                         "withdrawn": true}; false when it had ended
//	                         already; 404 without a record
//	GET  /v1/consent/{address}?sender=S&list=L
//	                         {"address", "records": [...]}: the history,
//	                         oldest first, texts resolved; without list,
//	                         every list of the sender, without sender every
//	                         sender's (through the index by address); 404
//	                         when none
//	GET  /v1/consent?sender=S&list=L&status=confirmed|pending|withdrawn|lapsed
//	     &from=ADDR&limit=100
//	                         the latest record of each address of the list
//	                         (list= empty: the mail that names no list),
//	                         in address order, a page at a time (limit at
//	                         most 1000): {"records": [...], "next": ADDR}.
//	                         While a re-permission campaign of the list
//	                         runs, a confirmation from before its start is
//	                         listed, and selected, as "status": "pending"
//	                         with "repermission": "pending" (a double
//	                         opt-in's sign-up has no "repermission"), one
//	                         given since with "repermission":
//	                         "reconfirmed"; a record lapsed at a
//	                         campaign's deadline has "repermission":
//	                         "lapsed"
//	POST /v1/consent/import?sender=S&list=L&format=csv|jsonl&source=NAME
//	     &skip_invalid=true
//	                         the file as the body, as for the suppression
//	                         import: CSV columns address, status, method,
//	                         time, ip, user_agent, source (default
//	                         import:NAME), text, purposes (separated by
//	                         spaces), confirmation_time, confirmation_ip,
//	                         confirmation_user_agent, and optionally
//	                         sender and list; or JSON lines of POST
//	                         /v1/consent's body. Lines are appended in
//	                         order (a line may confirm or withdraw an
//	                         earlier one's), in one atomic commit; a line
//	                         that repeats a record of its history is a
//	                         duplicate. An invalid line (bad proof, a
//	                         suppressed address) is reported with its
//	                         number: 422 and nothing committed, unless
//	                         skip_invalid
//	GET  /v1/consent/export?sender=S&list=L&format=csv|jsonl
//	                         the history of the list (without list: of
//	                         every list of the sender) as the import reads
//	                         it, texts included, streamed
//	GET  /v1/gdpr/export?address=A
//	                         everything Drover holds about the address
//	                         (GDPR art. 15), as drover-data.json: its
//	                         consent history with proof, suppressions,
//	                         hard-bounce run, engagement per sender, the
//	                         queued messages to it and the mail-log lines
//	                         that name it
//	POST /v1/subscribe/{sender}/{list}
//	                         {"email", "consent": true, "ip", "user_agent",
//	                         "source" (the form's page), "lang"}: the
//	                         hosted form's sign-up for an application that
//	                         hosts its own form: the list's consent text
//	                         recorded as the proof, and for a double
//	                         opt-in list the confirmation queued:
//	                         {"pending": true|false}; 404 for a list that
//	                         takes no sign-ups, 409 for a suppressed or
//	                         erased address
//	POST /v1/gdpr/erase      {"address": A}: erases it from every store
//	                         (art. 17): policy's records (a keyed hash
//	                         keeps it suppressed), its queued recipients,
//	                         the mail-log lines (redacted in place), then
//	                         a compaction of the database:
//	                         {"erased": true, "queued_deleted": n}
//
// Re-permission campaigns (Config.Policy too; 404 without it). A
// campaign is {"sender", "list", "state": "running"|"ended", "started",
// "deadline", "ended", "confirmed_before_start" (the addresses asked to
// re-confirm), "reconfirmed" (latest record a confirmation given since
// the start), "pending" (while it runs: still a confirmation from
// before the start), "lapsed" (the lapsed records its deadline
// appended)}. While it runs nothing changes for the recipient check;
// at its deadline every address still pending gets a lapsed record
// (source "repermission:STARTED"), and mail to the list is refused to
// it from then on.
//
//	POST /v1/consent/repermission  {"sender", "list", "deadline": "30d"|
//	                         "72h"|RFC 3339}: starts a campaign of the
//	                         list: {"repermission": campaign}; 409 while
//	                         one of the list runs, 400 for a deadline not
//	                         after now or more than a year away
//	GET  /v1/consent/repermission?sender=S&list=L
//	                         {"repermissions": [...]}: the list's
//	                         campaigns (without list, those of every list
//	                         of the sender), by start; a running one's
//	                         counts are read now (about a second a million)
//	POST /v1/consent/repermission/run
//	                         ends now the campaigns whose deadline has
//	                         passed, as the server does at start and every
//	                         hour: {"ended": [...]}
//
//	GET /debug/pprof/    Go's profiler (admin only)
package httpapi

import (
	"cmp"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/pprof"
	"net/url"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"drover/queue"
	"drover/queue/engine"
)

// Queue is what the admin API uses of the spool.
type Queue interface {
	Summaries(groupBy string) ([]engine.Summary, error)
	Show(id string) (*queue.Message, []queue.Recipient, error)
	// Suspend answers a warning when the suspension may hold nothing
	// (engine.Engine.Suspend); the API passes it on.
	Suspend(kind, name string, until time.Time, reason string) (warning string, err error)
	Suspensions() []engine.Suspension
	Resume(kind, name string) error
	// Flush, Bounce and Delete run as jobs: report, which they call as
	// they go (see queue.Spool.Flush), updates the job's progress.
	Flush(sel queue.Selector, report func(queue.Progress)) (int, error)
	Bounce(sel queue.Selector, reason string, dryRun bool, report func(queue.Progress)) (int, error)
	Delete(sel queue.Selector, dryRun bool, report func(queue.Progress)) (int, error)
	// Hold and Release run as jobs too (see queue.Spool.Hold).
	Hold(sel queue.Selector, report func(queue.Progress)) (int, error)
	Release(sel queue.Selector, report func(queue.Progress)) (int, error)
	// List lists queued messages one page at a time (queue.Spool.List).
	List(opts queue.ListOptions) (queue.ListPage, error)
	// Body returns a queued message as stored.
	Body(id string) ([]byte, error)
}

// Config wires the handler.
type Config struct {
	Gatherer prometheus.Gatherer
	Queue    Queue
	// AdminToken is the bearer token of the admin API and the profiler;
	// "" refuses every request to them.
	AdminToken string
	// AllowedHosts are names, besides IP addresses and localhost, that
	// requests to the admin API may give as Host (see the package doc).
	AllowedHosts []string
	// Reload re-reads the configuration; nil = not offered.
	Reload func() error
	// Checks are what /healthz reports on; none: it answers ok.
	Checks []Check
	// Draining reports that shutdown has begun; nil = never.
	Draining func() bool
	// Now is the clock of cached checks and of reports' since= (default
	// time.Now).
	Now func() time.Time
	// Policy is list hygiene: the suppression list, engagement events and
	// hygiene reports under /v1/suppressions, /v1/events, /v1/hygiene.
	// Unset (or a nil *policy.Policy), those answer 404 {"error": "list
	// hygiene is not enabled"}.
	Policy Policy
	// GDPR answers GET /v1/gdpr/export; nil: 404.
	GDPR GDPR
	// Signup answers POST /v1/subscribe/{sender}/{list}; nil: 404.
	Signup Signup
}

// Check is one part of /healthz.
type Check struct {
	// Name is the check's key in the report, in snake_case: "spool".
	Name string
	// Run returns nil when healthy, else what is wrong.
	Run func() error
	// Cache reuses Run's answer for this long (0: run on every request),
	// for a check that costs a disk sync or a round trip. Concurrent
	// requests wait for one run rather than starting their own.
	Cache time.Duration
}

// cachedCheck is a Check with its last answer.
type cachedCheck struct {
	Check
	mu  sync.Mutex
	ran bool
	at  time.Time // when the last run ended
	err error
}

func (c *cachedCheck) run(now func() time.Time) error {
	if c.Cache <= 0 {
		return c.Run()
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.ran && now().Sub(c.at) < c.Cache {
		return c.err
	}
	c.err = c.Run()
	c.ran, c.at = true, now()
	return c.err
}

// healthz answers /healthz from checks.
func healthz(cfg Config) http.HandlerFunc {
	now := cfg.Now
	if now == nil {
		now = time.Now
	}
	checks := make([]*cachedCheck, len(cfg.Checks))
	for i, c := range cfg.Checks {
		checks[i] = &cachedCheck{Check: c}
	}
	return func(w http.ResponseWriter, r *http.Request) {
		status, code := "ok", http.StatusOK
		report := map[string]string{}
		for _, c := range checks {
			report[c.Name] = "ok"
			if err := c.run(now); err != nil {
				report[c.Name] = err.Error()
				status, code = "fail", http.StatusServiceUnavailable
			}
		}
		if cfg.Draining != nil {
			report["draining"] = "ok"
			if cfg.Draining() {
				report["draining"] = "draining"
				status, code = "draining", http.StatusServiceUnavailable
			}
		}
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Cache-Control", "no-store")
		w.WriteHeader(code)
		json.NewEncoder(w).Encode(map[string]any{"status": status, "checks": report})
	}
}

// Handler returns the HTTP handler of the listener.
func Handler(cfg Config) http.Handler {
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(cfg.Gatherer, promhttp.HandlerOpts{}))
	mux.HandleFunc("GET /healthz", healthz(cfg))
	admin := http.NewServeMux()
	jobs := newJobs(time.Now)
	jobs.register(admin)
	now := cfg.Now
	if now == nil {
		now = time.Now
	}
	registerHygiene(admin, cfg.Policy, now)
	registerConsent(admin, cfg.Policy)
	registerGDPR(admin, cfg.GDPR)
	registerSignup(admin, cfg.Signup)
	registerRepermission(admin, cfg.Policy)
	admin.HandleFunc("GET /v1/queue", func(w http.ResponseWriter, r *http.Request) {
		by := r.URL.Query().Get("by")
		if by == "" {
			by = "site"
		}
		if !slices.Contains([]string{"site", "domain", "sender", "campaign"}, by) {
			writeError(w, http.StatusBadRequest, fmt.Errorf("by=%q: group by site, domain, sender or campaign", by))
			return
		}
		sums, err := cfg.Queue.Summaries(by)
		if err != nil {
			writeError(w, http.StatusInternalServerError, err)
			return
		}
		writeJSON(w, map[string]any{"by": by, "groups": sums})
	})
	admin.HandleFunc("POST /v1/queue/{op}", func(w http.ResponseWriter, r *http.Request) {
		var req struct {
			queue.Selector
			For    string `json:"for"`
			Reason string `json:"reason"`
			DryRun bool   `json:"dry_run"`
		}
		dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, 1<<16))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&req); err != nil {
			writeError(w, http.StatusBadRequest, fmt.Errorf("request body: %w", err))
			return
		}
		sel := req.Selector
		op := r.PathValue("op")
		if req.DryRun && (op == "flush" || op == "suspend" || op == "resume") {
			writeError(w, http.StatusBadRequest, fmt.Errorf("%s has no dry run (bounce and delete have)", op))
			return
		}
		var err error
		var warning string
		switch op {
		case "suspend", "resume":
			kind, name, kerr := siteOrDomain(sel)
			if kerr != nil {
				writeError(w, http.StatusBadRequest, kerr)
				return
			}
			if op == "resume" {
				err = cfg.Queue.Resume(kind, name)
				break
			}
			d := time.Hour
			if req.For != "" {
				if d, err = time.ParseDuration(req.For); err != nil || d <= 0 {
					writeError(w, http.StatusBadRequest, fmt.Errorf("for=%q: not a positive duration (e.g. 30m, 4h)", req.For))
					return
				}
			}
			warning, err = cfg.Queue.Suspend(kind, name, time.Now().Add(d), cmp.Or(req.Reason, "suspended by operator"))
		case "flush":
			if err := checkIDs(sel); err != nil {
				writeError(w, http.StatusBadRequest, err)
				return
			}
			jobs.startJob(w, Job{Op: op, Selector: sel}, func(report func(queue.Progress)) (int, error) {
				return cfg.Queue.Flush(sel, report)
			})
			return
		case "hold", "release":
			if err := checkSelector(sel); err != nil {
				writeError(w, http.StatusBadRequest, err)
				return
			}
			jobs.startJob(w, Job{Op: op, Selector: sel}, func(report func(queue.Progress)) (int, error) {
				if op == "hold" {
					return cfg.Queue.Hold(sel, report)
				}
				return cfg.Queue.Release(sel, report)
			})
			return
		case "bounce", "delete":
			if err := checkSelector(sel); err != nil {
				writeError(w, http.StatusBadRequest, err)
				return
			}
			j := Job{Op: op, Selector: sel, DryRun: req.DryRun}
			if op == "bounce" {
				j.Reason = cmp.Or(req.Reason, "bounced by operator")
				jobs.startJob(w, j, func(report func(queue.Progress)) (int, error) {
					return cfg.Queue.Bounce(sel, j.Reason, req.DryRun, report)
				})
			} else {
				jobs.startJob(w, j, func(report func(queue.Progress)) (int, error) {
					return cfg.Queue.Delete(sel, req.DryRun, report)
				})
			}
			return
		default:
			writeError(w, http.StatusNotFound, fmt.Errorf("no queue operation %q", op))
			return
		}
		if err != nil {
			writeError(w, http.StatusBadRequest, err)
			return
		}
		resp := map[string]any{"affected": 0, "dry_run": false}
		if warning != "" {
			resp["warning"] = warning
		}
		writeJSON(w, resp)
	})
	admin.HandleFunc("POST /v1/reload", func(w http.ResponseWriter, r *http.Request) {
		if cfg.Reload == nil {
			writeError(w, http.StatusNotImplemented, errors.New("reload not available"))
			return
		}
		if err := cfg.Reload(); err != nil {
			writeError(w, http.StatusBadRequest, err)
			return
		}
		writeJSON(w, map[string]any{"reloaded": true})
	})
	admin.HandleFunc("GET /v1/queue/suspensions", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, map[string]any{"suspensions": cfg.Queue.Suspensions()})
	})
	admin.HandleFunc("GET /v1/queue/messages", func(w http.ResponseWriter, r *http.Request) {
		opts, err := listOptions(r.URL.Query())
		if err != nil {
			writeError(w, http.StatusBadRequest, err)
			return
		}
		page, err := cfg.Queue.List(opts)
		if err != nil {
			writeError(w, http.StatusInternalServerError, err)
			return
		}
		writeJSON(w, page)
	})
	admin.HandleFunc("GET /v1/queue/{id}/body", func(w http.ResponseWriter, r *http.Request) {
		body, err := cfg.Queue.Body(r.PathValue("id"))
		if err != nil {
			writeLookupError(w, err)
			return
		}
		w.Header().Set("Content-Type", "message/rfc822")
		w.Write(body)
	})
	admin.HandleFunc("GET /v1/queue/{id}", func(w http.ResponseWriter, r *http.Request) {
		msg, rcpts, err := cfg.Queue.Show(r.PathValue("id"))
		if err != nil {
			writeLookupError(w, err)
			return
		}
		writeJSON(w, map[string]any{"message": msg, "recipients": rcpts})
	})
	g := newGuard(cfg.AdminToken, cfg.AllowedHosts)
	mux.Handle("/v1/", g.wrap(admin))
	// Go's profiler, for operators chasing CPU or memory; admin only.
	mux.Handle("/debug/pprof/", g.wrap(http.HandlerFunc(pprof.Index)))
	mux.Handle("/debug/pprof/profile", g.wrap(http.HandlerFunc(pprof.Profile)))
	return mux
}

// checkSelector refuses an empty selector (everything is "all": true)
// and malformed message IDs.
func checkSelector(sel queue.Selector) error {
	if sel.Empty() {
		return errors.New(`name at least one of id, recipient, site, domain, sender, campaign, or "all": true`)
	}
	return checkIDs(sel)
}

func checkIDs(sel queue.Selector) error {
	for _, id := range sel.IDs {
		if _, ok := queue.NormalizeID(id); !ok {
			return fmt.Errorf("%q is not a message ID", id)
		}
	}
	if sel.Recipient == "@" {
		return errors.New(`recipient "@" names no domain`)
	}
	return nil
}

// listOptions reads the query of GET /v1/queue/messages.
func listOptions(q url.Values) (queue.ListOptions, error) {
	var o queue.ListOptions
	for k := range q {
		switch k {
		case "id", "recipient", "site", "domain", "sender", "campaign", "older_than", "newer_than", "order", "limit", "after":
		default:
			return o, fmt.Errorf("unknown parameter %q", k)
		}
	}
	o.Selector = queue.Selector{IDs: q["id"], Recipient: q.Get("recipient"), Site: q.Get("site"), Domain: q.Get("domain"),
		Sender: q.Get("sender"), Campaign: q.Get("campaign")}
	if err := checkIDs(o.Selector); err != nil {
		return o, err
	}
	for _, d := range []struct {
		name string
		to   *time.Duration
	}{{"older_than", &o.OlderThan}, {"newer_than", &o.NewerThan}} {
		if v := q.Get(d.name); v != "" {
			dur, err := time.ParseDuration(v)
			if err != nil || dur <= 0 {
				return o, fmt.Errorf("%s=%q: not a positive duration (e.g. 10m, 4h)", d.name, v)
			}
			*d.to = dur
		}
	}
	switch q.Get("order") {
	case "", "oldest":
	case "newest":
		o.Newest = true
	default:
		return o, fmt.Errorf("order=%q: oldest or newest", q.Get("order"))
	}
	if v := q.Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n <= 0 || n > queue.MaxListLimit {
			return o, fmt.Errorf("limit=%q: a number from 1 to %d", v, queue.MaxListLimit)
		}
		o.Limit = n
	}
	if v := q.Get("after"); v != "" {
		if _, ok := queue.NormalizeID(v); !ok {
			return o, fmt.Errorf("after=%q is not a message ID", v)
		}
		o.After = v
	}
	return o, nil
}

// siteOrDomain reads the target of suspend and resume: exactly one of
// site and domain.
func siteOrDomain(sel queue.Selector) (kind, name string, err error) {
	switch {
	case sel.Sender != "" || sel.Campaign != "" || len(sel.IDs) > 0 || sel.Recipient != "" || sel.All:
		return "", "", errors.New("suspend and resume take a site or a domain (to keep single messages, hold them)")
	case sel.Site != "" && sel.Domain == "":
		return "site", sel.Site, nil
	case sel.Domain != "" && sel.Site == "":
		return "domain", sel.Domain, nil
	}
	return "", "", errors.New("name exactly one of site and domain")
}

func writeJSON(w http.ResponseWriter, v any) { writeJSONStatus(w, http.StatusOK, v) }

func writeJSONStatus(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.Encode(v)
}

// writeLookupError answers the failed lookup of one message: 404 when it
// is not queued, 500 otherwise.
func writeLookupError(w http.ResponseWriter, err error) {
	code := http.StatusInternalServerError
	if errors.Is(err, queue.ErrNotFound) {
		code = http.StatusNotFound
	}
	writeError(w, code, err)
}

func writeError(w http.ResponseWriter, code int, err error) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	json.NewEncoder(w).Encode(map[string]string{"error": err.Error()})
}
