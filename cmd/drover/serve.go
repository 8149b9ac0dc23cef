package main

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
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
	"drover/mta/resolve"
	"drover/mta/smtpclient"
	"drover/queue"
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
			return serve(cmd.Context(), cfg)
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
	// bounceDomains maps a sender to its VERP domain ("" = no VERP).
	bounceDomains map[string]string
}

func buildStatic(cfg *configs.Config) (*static, error) {
	st := &static{bounceDomains: map[string]string{}}
	var rules []bounce.Rule
	for _, r := range cfg.Bounces.Rules {
		rules = append(rules, bounce.Rule{Pattern: r.Pattern, Status: r.Status, Host: r.Host, Reason: r.Reason})
	}
	if err := bounce.CheckRules(rules); err != nil {
		return nil, fmt.Errorf("bounces.rules: %w", err)
	}
	st.classifier = bounce.NewClassifier(rules)
	var keys []*dkim.Key
	for name, s := range cfg.Senders {
		st.bounceDomains[name] = strings.ToLower(s.BounceDomain)
		snd := &mta.Sender{Name: name, Login: s.Login, PasswordHash: []byte(s.PasswordHash), DSN: s.DSN}
		for _, d := range s.FromDomains {
			snd.FromDomains = append(snd.FromDomains, strings.ToLower(d))
		}
		st.senders = append(st.senders, snd)
		for i, k := range s.DKIM {
			key, err := dkim.LoadKey(k.Domain, k.Selector, k.KeyFile)
			if err != nil {
				return nil, fmt.Errorf("senders.%s.dkim[%d]: %w", name, i, err)
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
	routes, err := resolve.NewRoutes(cfg.Routes)
	if err != nil {
		return nil, fmt.Errorf("routes: %w", err)
	}
	st.routes = routes
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

func serve(ctx context.Context, cfg *configs.Config) error {
	log := newLogger(cfg.LogLevel)
	slog.SetDefault(log)
	st, err := buildStatic(cfg)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(cfg.DataDir, 0o750); err != nil {
		return err
	}

	mailLog, err := openMailLog(cfg)
	if err != nil {
		return err
	}
	defer mailLog.Close()

	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	var spool *queue.Spool
	metrics := mta.NewMetrics(reg, func() queue.Stats { return spool.Stats() })
	emit := func(ev queue.Event) {
		metrics.Observe(ev)
		mailLog.Write(ev)
	}

	verp, err := loadVERPKey(cfg)
	if err != nil {
		return err
	}
	resolver := resolve.New(resolve.Config{Servers: nonEmpty(cfg.Delivery.Resolver)})
	tlsMode := map[string]smtpclient.TLSMode{
		"opportunistic": smtpclient.TLSOpportunistic, "required": smtpclient.TLSRequired, "disabled": smtpclient.TLSDisabled,
	}[cfg.Delivery.TLS]
	cour := courier.New(courier.Config{
		Hostname:       cfg.Hostname,
		Resolver:       resolver,
		Routes:         st.routes,
		Port:           cfg.Delivery.Port,
		TLSMode:        tlsMode,
		ConnectTimeout: cfg.Delivery.ConnectTimeout,
		CommandTimeout: cfg.Delivery.CommandTimeout,
		DataTimeout:    cfg.Delivery.DataTimeout,
		Classify: func(code int, enhanced, text string) (class, reason string) {
			c := st.classifier.ClassifyReply(code, enhanced, text)
			return c.Class, c.Reason
		},
		ReturnPath: verpReturnPath(verp, st.bounceDomains),
		Logger:     log,
	})
	limits := queue.Limits{
		MaxConnections:           cfg.Queue.MaxConnections,
		MaxMessagesPerConnection: cfg.Queue.MaxMessagesPerConnection,
		MaxRecipientsPerMessage:  cfg.Queue.MaxRecipientsPerMessage,
		RetryInterval:            cfg.Queue.RetryInterval,
		MaxRetryInterval:         cfg.Queue.MaxRetryInterval,
		MaxAge:                   cfg.Queue.MaxAge,
	}
	dsn := &mta.DSNNotifier{Hostname: cfg.Hostname}
	spool, err = queue.Open(queue.Options{
		Dir:       filepath.Join(cfg.DataDir, "spool"),
		Courier:   cour,
		Limits:    func(string) queue.Limits { return limits },
		OnEvent:   emit,
		OnFailure: dsn.OnFailure,
		Logger:    log,
		NoSync:    !cfg.Queue.Durable,
	})
	if err != nil {
		return fmt.Errorf("open spool: %w", err)
	}
	dsn.Queue = spool

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
		Queue:          spool,
		Signer:         signer,
		OnEvent:        emit,
		Metrics:        metrics,
		Logger:         log,
	})
	if err != nil {
		spool.Close(context.Background())
		return err
	}
	addrs, err := sub.Start()
	if err != nil {
		spool.Close(context.Background())
		return err
	}
	for _, a := range addrs {
		log.Info("smtp listening", "addr", a.String())
	}
	var inbound *mta.Inbound
	if cfg.Bounces.InboundAddress != "" {
		var domains []string
		for _, d := range st.bounceDomains {
			if d != "" {
				domains = append(domains, d)
			}
		}
		inbound = mta.NewInbound(mta.InboundConfig{
			Address:        cfg.Bounces.InboundAddress,
			Hostname:       cfg.Hostname,
			BounceDomains:  domains,
			FeedbackAddrs:  cfg.Bounces.FeedbackAddresses,
			VERP:           verp,
			Classifier:     st.classifier,
			MaxMessageSize: int64(cfg.Limits.MaxMessageSize),
			OnEvent:        emit,
			Logger:         log,
		})
		a, err := inbound.Start()
		if err != nil {
			sub.Close()
			spool.Close(context.Background())
			return err
		}
		log.Info("inbound listening (bounces, feedback reports)", "addr", a.String())
	}

	var httpSrv *http.Server
	if cfg.HTTP.Address != "" {
		ln, err := net.Listen("tcp", cfg.HTTP.Address)
		if err != nil {
			sub.Close()
			spool.Close(context.Background())
			return fmt.Errorf("http listen: %w", err)
		}
		httpSrv = &http.Server{
			Handler:           httpapi.Handler(httpapi.Config{Gatherer: reg, Queue: spool, AdminToken: cfg.HTTP.AdminToken}),
			ReadHeaderTimeout: 10 * time.Second,
		}
		go httpSrv.Serve(ln)
		log.Info("http listening", "addr", ln.Addr().String())
	}
	log.Info("drover started", "hostname", cfg.Hostname, "data_dir", cfg.DataDir, "durable", cfg.Queue.Durable)

	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGTERM, syscall.SIGINT)
	select {
	case s := <-sig:
		log.Info("shutting down", "signal", s.String())
	case <-ctx.Done():
	}
	signal.Stop(sig)

	// Stop taking mail, let messages being received reach the spool, stop
	// delivery, close Pebble; then the HTTP listener.
	shutCtx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var errs []error
	if err := sub.Shutdown(shutCtx); err != nil {
		errs = append(errs, fmt.Errorf("smtp shutdown: %w", err))
	}
	if inbound != nil {
		inbound.Shutdown(shutCtx)
	}
	if err := spool.Close(shutCtx); err != nil {
		errs = append(errs, fmt.Errorf("spool close: %w", err))
	}
	if httpSrv != nil {
		httpSrv.Shutdown(shutCtx)
	}
	log.Info("drover stopped")
	return errors.Join(errs...)
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

// verpReturnPath gives the courier the VERP return path of a recipient of
// a sender with a bounce domain; nil when no sender has one.
func verpReturnPath(verp bounce.VERP, domains map[string]string) func(*queue.Message, queue.Recipient) string {
	used := false
	for _, d := range domains {
		used = used || d != ""
	}
	if !used {
		return nil
	}
	return func(m *queue.Message, r queue.Recipient) string {
		if d := domains[m.Sender]; d != "" {
			return verp.Encode(m.ID, r.Index, m.Sender, d)
		}
		return m.ReturnPath
	}
}

// loadVERPKey reads the VERP HMAC key, making one on first start.
func loadVERPKey(cfg *configs.Config) (bounce.VERP, error) {
	path := cfg.Bounces.VERPKeyFile
	if path == "" {
		path = filepath.Join(cfg.DataDir, "verp.key")
	}
	key, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) && cfg.Bounces.VERPKeyFile == "" {
		key = make([]byte, 32)
		rand.Read(key)
		err = os.WriteFile(path, key, 0o600)
	}
	if err != nil {
		return bounce.VERP{}, fmt.Errorf("verp key: %w", err)
	}
	if len(key) < 16 {
		return bounce.VERP{}, fmt.Errorf("verp key %s: at least 16 bytes needed", path)
	}
	return bounce.VERP{Key: key}, nil
}
