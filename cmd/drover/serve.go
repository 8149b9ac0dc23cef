package main

import (
	"cmp"
	"context"
	"crypto/rand"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net"
	"net/http"
	"net/netip"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/spf13/cobra"

	"drover/bounce"
	"drover/configs"
	"drover/httpapi"
	"drover/mta"
	"drover/mta/courier"
	"drover/mta/dkim"
	"drover/mta/mtasts"
	"drover/mta/resolve"
	"drover/policy"
	"drover/queue"
	"drover/queue/engine"
	"drover/queue/shaping"
	"drover/web"
)

func newServeCmd() *cobra.Command {
	var cfgPath string
	cmd := &cobra.Command{
		Use:   "serve",
		Short: "Run the mail transfer agent (embedded default configuration when --config is not given)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			cfg, err := configs.Load(cfgPath)
			if err != nil {
				return err
			}
			return serve(cmd.Context(), cfgPath, cfg)
		},
	}
	cmd.Flags().StringVarP(&cfgPath, "config", "c", "", "configuration file (default: the embedded default)")
	return cmd
}

// static is what is built from the configuration before anything listens:
// the parts `drover config check` verifies too.
type static struct {
	senders    []*mta.Sender
	signer     *dkim.Signer
	routes     *resolve.Routes
	tls        *tls.Config
	classifier *bounce.Classifier
	shaper     *shaping.Shaper
	pools      map[string][]netip.Addr
	// bounceDomains maps the senders with VERP to their bounce domain.
	bounceDomains map[string]string
	policy        policy.Config // without its store, events and clock
	locales       *web.Locales  // the web pages' languages
}

// buildStatic builds what cfg describes; its errors name the file that
// cfg came from (as configs.Load's do), so that `drover serve` and `drover
// config check` report a file the same way.
func buildStatic(cfg *configs.Config) (st *static, err error) {
	defer func() {
		if err != nil && cfg.File() != "" {
			err = fmt.Errorf("%s: %w", cfg.File(), err)
		}
	}()
	st = &static{bounceDomains: map[string]string{}}
	var rules []bounce.Rule
	for _, r := range cfg.Bounces.Rules {
		rules = append(rules, bounce.Rule{Pattern: r.Pattern, Status: r.Status, Host: r.Host, Reason: r.Reason})
	}
	err = bounce.CheckRules(rules)
	if err != nil {
		return nil, fmt.Errorf("bounces.rules: %w", err)
	}
	st.classifier = bounce.NewClassifier(rules)
	if st.policy, err = policyConfig(cfg); err != nil {
		return nil, err
	}
	if st.locales, err = web.LoadLocales(cfg.Web.LocalesDir); err != nil {
		return nil, cfg.ErrorAt("web.locales_dir", err.Error())
	}
	// Shaping and routes report every problem at once, in line order, as
	// configs does for the file's own.
	var routesErr error
	st.shaper, err = newShaper(cfg)
	st.routes, routesErr = newRoutes(cfg)
	if err = byLine(err, routesErr); err != nil {
		return nil, err
	}
	st.pools = map[string][]netip.Addr{}
	for name, ips := range cfg.Pools {
		for _, ip := range ips {
			a, err := netip.ParseAddr(ip)
			if err != nil {
				return nil, fmt.Errorf("pools.%s: %w", name, err)
			}
			st.pools[name] = append(st.pools[name], a.Unmap())
		}
	}
	var keys []*dkim.Key
	for name, s := range cfg.Senders {
		if s.BounceDomain != "" {
			st.bounceDomains[name] = strings.ToLower(s.BounceDomain)
		}
		snd := &mta.Sender{Name: name, Login: s.Login, PasswordHash: []byte(s.PasswordHash), DSN: s.DSN,
			Stream: s.Stream, ListUnsubscribe: s.ListUnsubscribe}
		for _, d := range s.FromDomains {
			snd.FromDomains = append(snd.FromDomains, strings.ToLower(d))
		}
		st.senders = append(st.senders, snd)
		for i, k := range s.DKIM {
			key, err := dkim.LoadKey(k.Domain, k.Selector, k.KeyFile)
			if err != nil {
				return nil, cfg.ErrorAt(fmt.Sprintf("senders.%s.dkim[%d].key_file", name, i), err.Error())
			}
			keys = append(keys, key)
		}
	}
	if len(keys) > 0 {
		signer, err := dkim.NewSigner(keys)
		if err != nil {
			return nil, err
		}
		st.signer = signer
	}
	cert, err := loadCertificate(cfg)
	if err != nil {
		return nil, err
	}
	st.tls = &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
	return st, nil
}

func loadCertificate(cfg *configs.Config) (tls.Certificate, error) {
	if cfg.TLS.CertFile != "" {
		cert, err := tls.LoadX509KeyPair(cfg.TLS.CertFile, cfg.TLS.KeyFile)
		if err != nil {
			return cert, fmt.Errorf("tls: %w", err)
		}
		return cert, nil
	}
	return mta.SelfSignedCertificate(cfg.Hostname)
}

func newLogger(level string) *slog.Logger {
	var l slog.Level
	l.UnmarshalText([]byte(level))
	return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: l}))
}

func serve(ctx context.Context, cfgPath string, cfg *configs.Config) error {
	log := newLogger(cfg.LogLevel)
	slog.SetDefault(log)
	st, err := buildStatic(cfg)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(cfg.DataDir, 0o750); err != nil {
		return err
	}

	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	mailLog, err := mta.OpenMailLog(mailLogPath(cfg), cfg.MailLogRetention, reg, log)
	if err != nil {
		return err
	}
	defer mailLog.Close()

	var spool *queue.Spool
	var eng *engine.Engine
	metrics := mta.NewMetrics(reg, func() queue.Stats { return spool.Stats() }, func() []engine.SiteStatus { return eng.Sites() })
	var hygiene policyObserver
	emit := mta.Fanout(metrics.Observe, mailLog.Write, hygiene.observe)

	verp, err := loadVERPKey(cfg)
	if err != nil {
		return err
	}
	resolver := resolve.New(resolve.Config{Servers: nonEmpty(cfg.Delivery.Resolver)})
	var txt mtasts.TXTLookup
	if cfg.Delivery.Resolver != "" {
		txt = mtasts.DNSLookup(cfg.Delivery.Resolver, 5*time.Second)
	}
	sts := mtasts.New(mtasts.Config{TXT: txt, Logger: log})
	shaper := shaping.NewCurrent(st.shaper)
	cour := courier.New(courier.Config{
		Hostname:       cfg.Hostname,
		Resolver:       resolver,
		Routes:         st.routes,
		Port:           cfg.Delivery.Port,
		ConnectTimeout: cfg.Delivery.ConnectTimeout,
		CommandTimeout: cfg.Delivery.CommandTimeout,
		DataTimeout:    cfg.Delivery.DataTimeout,
		Classifier:     st.classifier,
		Shaping:        shaper,
		Envelope:       senderEnvelope(cfg, verp, st.bounceDomains),
		Pools:          st.pools,
		MTASTS:         sts,
		Logger:         log,
	})
	dsn := &mta.DSNNotifier{Hostname: cfg.Hostname, DelayDSN: map[string]bool{}, BounceDomains: map[string]bool{}, OnEvent: emit}
	for name, s := range cfg.Senders {
		dsn.DelayDSN[name] = s.DelayDSN
	}
	for _, d := range st.bounceDomains {
		dsn.BounceDomains[d] = true
	}
	spool, err = queue.Open(queue.Options{
		Dir:          filepath.Join(cfg.DataDir, "spool"),
		OnEvent:      emit,
		OnFailure:    dsn.OnFailure,
		DelayNotice:  cfg.Queue.DelayNotice,
		OnDelay:      dsn.OnDelay,
		Logger:       log,
		NoSync:       !cfg.Queue.Durable,
		MinFreeSpace: int64(cfg.Queue.MinFreeSpace),
	})
	if err != nil {
		return fmt.Errorf("open spool: %w", err)
	}
	dsn.Queue = spool
	// List hygiene keeps its state beside the spool; it is open before
	// anything is delivered or received, and closed after.
	var pol *policy.Policy
	var tokens *policy.Tokens
	if cfg.Policy.Enabled {
		pol, tokens, err = openPolicy(cfg, st, spool, emit, log)
		if err != nil {
			spool.Close(context.Background())
			return err
		}
		hygiene.p.Store(pol)
		reg.MustRegister(policyCollector{pol})
	}
	closePolicy := func() {
		if pol != nil {
			pol.Close()
		}
	}
	eng, err = engine.New(engine.Config{Spool: spool, Planner: cour, Courier: cour, Rules: shaper, KnownSites: shaper, Logger: log})
	if err != nil {
		closePolicy()
		spool.Close(context.Background())
		return err
	}
	eng.Start()
	// closeQueue stops delivery, then the spool. Deliveries that outlast
	// ctx are cancelled and their recipients stay queued: that is logged,
	// not an error (nothing is lost).
	closeQueue := func(ctx context.Context) error {
		err := eng.Close(ctx)
		if ie := (*engine.InterruptedError)(nil); errors.As(err, &ie) {
			log.Warn("deliveries still running at the end of the drain were interrupted; their recipients stay queued for the next start", "workers", ie.Workers)
			err = nil
		}
		closePolicy()
		return errors.Join(err, spool.Close(ctx))
	}

	var signer mta.Signer
	if st.signer != nil {
		signer = st.signer
	}
	sub, err := mta.NewSubmission(mta.SubmissionConfig{
		Hostname:       cfg.Hostname,
		Listeners:      listeners(cfg),
		TLS:            st.tls,
		MaxMessageSize: int64(cfg.Limits.MaxMessageSize),
		MaxRecipients:  cfg.Limits.MaxRecipients,
		MaxLineLength:  cfg.Limits.MaxLineLength,
		ReadTimeout:    cfg.Limits.ReadTimeout,
		WriteTimeout:   cfg.Limits.WriteTimeout,
		Senders:        st.senders,
		Auth: mta.AuthLimits{
			MaxFailuresPerSession: cfg.SMTP.Auth.MaxFailuresPerSession,
			SlowAfter:             cfg.SMTP.Auth.SlowAfter,
			LockoutAfter:          cfg.SMTP.Auth.LockoutAfter,
			Window:                cfg.SMTP.Auth.Window,
			Lockout:               cfg.SMTP.Auth.Lockout,
		},
		Queue:   spool,
		Signer:  signer,
		Policy:  checker(pol),
		Links:   unsubscribeLinks(cfg, st, tokens),
		OnEvent: emit,
		Metrics: metrics,
		Logger:  log,
	})
	if err != nil {
		closeQueue(context.Background())
		return err
	}
	addrs, err := sub.Start()
	if err != nil {
		closeQueue(context.Background())
		return err
	}
	for _, a := range addrs {
		log.Info("smtp listening", "addr", a.String())
	}
	var inbound *mta.Inbound
	if cfg.Bounces.InboundAddress != "" {
		inbound = mta.NewInbound(mta.InboundConfig{
			Address:        cfg.Bounces.InboundAddress,
			Hostname:       cfg.Hostname,
			BounceDomains:  slices.Collect(maps.Values(st.bounceDomains)),
			FeedbackAddrs:  cfg.Bounces.FeedbackAddresses,
			DomainSenders:  domainSenders(st.bounceDomains),
			VERP:           verp,
			Classifier:     st.classifier,
			MaxMessageSize: int64(cfg.Limits.MaxMessageSize),
			Tokens:         tokens,
			Unsubscriber:   unsubscriber(pol),
			OnEvent:        emit,
			Logger:         log,
		})
		a, err := inbound.Start()
		if err != nil {
			sub.Close()
			closeQueue(context.Background())
			return err
		}
		log.Info("inbound listening (bounces, feedback reports)", "addr", a.String())
	}

	// reload re-reads the configuration file and applies what can change
	// without a restart: shaping and its rules. A bad file changes nothing.
	reload := func() error {
		next, err := configs.Load(cfgPath)
		if err == nil {
			var nst *static
			if nst, err = buildStatic(next); err == nil {
				shaper.Store(nst.shaper)
				eng.Reconfigure()
				log.Info("configuration reloaded: shaping and rules applied (other changes need a restart)", "file", cfgPath)
				return nil
			}
		}
		log.Error("configuration reload refused; the running configuration stays", "file", cfgPath, "err", err)
		return err
	}

	// draining is set when shutdown begins: /healthz answers 503 while
	// the listeners drain.
	// The recipient pages' configuration; the admin API takes sign-ups of
	// applications that host their own forms through the same lists.
	var webCfg web.Config
	var signup httpapi.Signup
	if pol != nil {
		webCfg = web.Config{Tokens: tokens, Unsubscriber: pol, BaseURL: cfg.Web.BaseURL, Logger: log, Locales: st.locales,
			Signups: signupLists(cfg), Consents: pol, SignupsPerHour: cfg.Web.SignupsPerHour, Manager: pol, Eraser: gdprAPI(pol, spool, cfg, mailLog),
			Confirmer: &mta.Confirmations{Hostname: cfg.Hostname, Queue: spool, Signer: signer, Templates: confirmTemplates(cfg), OnEvent: emit}}
		if len(webCfg.Signups) > 0 {
			signup = web.NewSignup(webCfg)
		}
	}
	var draining atomic.Bool
	var httpSrv *http.Server
	if cfg.HTTP.Address != "" {
		token, err := serveAdminToken(cfg, log)
		var ln net.Listener
		if err == nil {
			if ln, err = net.Listen("tcp", cfg.HTTP.Address); err != nil {
				err = fmt.Errorf("http listen: %w", err)
			}
		}
		if err != nil {
			sub.Close()
			if inbound != nil {
				inbound.Close()
			}
			closeQueue(context.Background())
			return err
		}
		httpSrv = &http.Server{
			Handler: httpapi.Handler(httpapi.Config{Gatherer: reg, Queue: adminQueue{eng, spool}, Policy: pol, GDPR: gdprAPI(pol, spool, cfg, mailLog), Signup: signup, AdminToken: token, AllowedHosts: cfg.HTTP.AllowedHosts,
				Reload: reload, Checks: healthChecks(spool, sub, inbound), Draining: draining.Load}),
			ReadHeaderTimeout: 10 * time.Second,
		}
		go httpSrv.Serve(ln)
		log.Info("http listening", "addr", ln.Addr().String())
	}
	// The public web listener: the pages recipients see, apart from the
	// admin API.
	var webSrv *http.Server
	if pol != nil && cfg.Web.Address != "" {
		ln, err := net.Listen("tcp", cfg.Web.Address)
		if err != nil {
			sub.Close()
			if inbound != nil {
				inbound.Close()
			}
			if httpSrv != nil {
				httpSrv.Close()
			}
			closeQueue(context.Background())
			return fmt.Errorf("web listen: %w", err)
		}
		webSrv = &http.Server{
			Handler:           web.Handler(webCfg),
			ReadHeaderTimeout: 10 * time.Second,
			ReadTimeout:       30 * time.Second,
			WriteTimeout:      30 * time.Second,
			IdleTimeout:       2 * time.Minute,
		}
		go webSrv.Serve(ln)
		log.Info("web listening (recipient pages)", "addr", ln.Addr().String(), "base_url", cfg.Web.BaseURL)
		if cfg.Web.BaseURL == "" {
			log.Warn("web.base_url is empty: marketing mail carries no one-click unsubscribe link (mailbox providers require one of bulk senders)")
		}
	}
	log.Info("drover started", "hostname", cfg.Hostname, "data_dir", cfg.DataDir, "durable", cfg.Queue.Durable)

	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGTERM, syscall.SIGINT, syscall.SIGHUP)
wait:
	for {
		select {
		case s := <-sig:
			if s == syscall.SIGHUP {
				reload()
				continue
			}
			log.Info("shutting down", "signal", s.String())
			break wait
		case <-ctx.Done():
			break wait
		}
	}
	signal.Stop(sig)
	draining.Store(true)

	// Stop taking mail, let messages being received reach the spool, stop
	// delivery, close Pebble; then the HTTP listener.
	shutCtx, cancel := context.WithTimeout(context.Background(), cfg.Queue.DrainTimeout)
	defer cancel()
	var errs []error
	if err := sub.Shutdown(shutCtx); err != nil {
		errs = append(errs, fmt.Errorf("smtp shutdown: %w", err))
	}
	if inbound != nil {
		inbound.Shutdown(shutCtx)
	}
	if webSrv != nil {
		webSrv.Shutdown(shutCtx) // its unsubscribes are committed before the queue closes
	}
	if err := closeQueue(shutCtx); err != nil {
		errs = append(errs, fmt.Errorf("queue close: %w", err))
	}
	if httpSrv != nil {
		httpSrv.Shutdown(shutCtx)
	}
	log.Info("drover stopped")
	return errors.Join(errs...)
}

// healthChecks are what /healthz reports on: the spool takes synced
// writes (asked at most once a second: each probe is an fsync) and the
// SMTP listeners accept connections. inbound may be nil.
func healthChecks(spool *queue.Spool, sub *mta.Submission, inbound *mta.Inbound) []httpapi.Check {
	checks := []httpapi.Check{
		{Name: "spool", Run: spool.Check, Cache: time.Second},
		{Name: "smtp_submission", Run: sub.Healthy},
	}
	if inbound != nil {
		checks = append(checks, httpapi.Check{Name: "smtp_inbound", Run: inbound.Healthy})
	}
	return checks
}

func listeners(cfg *configs.Config) []mta.Listener {
	var out []mta.Listener
	for _, l := range cfg.Listeners {
		out = append(out, mta.Listener{Address: l.Address, Mode: l.Mode, LoopbackSender: l.LoopbackSender})
	}
	return out
}

func nonEmpty(s string) []string {
	if s == "" {
		return nil
	}
	return []string{s}
}

// senderEnvelope is the senders' part of every delivery plan: VERP for
// the senders with a bounce domain, source pools per sender and stream.
func senderEnvelope(cfg *configs.Config, verp bounce.VERP, bounceDomains map[string]string) *courier.Senders {
	env := &courier.Senders{VERP: verp, BounceDomain: bounceDomains, SenderPool: map[string]string{}, StreamPool: map[string]map[string]string{}}
	for name, s := range cfg.Senders {
		if s.Pool != "" {
			env.SenderPool[name] = s.Pool
		}
		if len(s.StreamPools) > 0 {
			env.StreamPool[name] = s.StreamPools
		}
	}
	return env
}

// loadVERPKey reads the VERP HMAC key, making one on first start. The new
// key is written atomically (mode 0600): a crash cannot leave a short or
// empty key file behind, which would refuse the next start or change the
// key that tokens already sent were made with.
func loadVERPKey(cfg *configs.Config) (bounce.VERP, error) {
	key, err := loadKey("verp key", cfg.Bounces.VERPKeyFile, filepath.Join(cfg.DataDir, "verp.key"))
	return bounce.VERP{Key: key}, err
}

// loadKey reads a secret key from file, else from the data directory's
// own file dflt, which is made on first start (written atomically, mode
// 0600: a crash cannot leave a short or empty key behind, which would
// refuse the next start or change the key that what was sealed with it
// needs).
func loadKey(what, file, dflt string) ([]byte, error) {
	path := cmp.Or(file, dflt)
	key, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) && file == "" {
		key = make([]byte, 32)
		rand.Read(key)
		err = writeFileAtomic(path, key, 0o600)
	}
	if err != nil {
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	if len(key) < 16 {
		return nil, fmt.Errorf("%s %s: at least 16 bytes needed", what, path)
	}
	return key, nil
}

// mailLogPath is where the mail log goes: mail_log, or mail.log in the
// data directory when it is empty.
func mailLogPath(cfg *configs.Config) string {
	if cfg.MailLog == "" {
		return filepath.Join(cfg.DataDir, "mail.log")
	}
	return cfg.MailLog
}

// adminQueue is the queue as the admin API sees it: the engine's view,
// plus what the spool answers by itself (listing, bodies, holds of
// messages). Those name a domain's site after the domain.
type adminQueue struct {
	*engine.Engine
	spool *queue.Spool
}

func (q adminQueue) List(opts queue.ListOptions) (queue.ListPage, error) {
	return q.spool.List(opts, nil)
}
func (q adminQueue) Body(id string) ([]byte, error) { return q.spool.Body(id) }
func (q adminQueue) Hold(sel queue.Selector, report func(queue.Progress)) (int, error) {
	return q.spool.Hold(sel, nil, report)
}
func (q adminQueue) Release(sel queue.Selector, report func(queue.Progress)) (int, error) {
	return q.spool.Release(sel, nil, report)
}
