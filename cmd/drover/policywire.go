package main

import (
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/spf13/cobra"

	"drover/configs"
	"drover/mta"
	"drover/policy"
	"drover/queue"
	"drover/web"
)

// policyConfig is the part of policy.Config that the configuration file
// gives; serve adds the store, the events and the clock.
func policyConfig(cfg *configs.Config) (policy.Config, error) {
	pc := policy.Config{
		ConfirmAfter:   cfg.Policy.ConfirmAfter,
		PendingTTL:     cfg.Policy.PendingConsentTTL,
		ProofRetention: cfg.Policy.ConsentProofRetention,
		WaitForRun:     !cfg.Policy.ConfirmUnambiguous,
		SpamTraps:      cfg.Policy.SpamTraps,
		Streams:        map[string][]policy.Reason{},
		Senders:        map[string]policy.SenderRules{},
		// Never nil: consent_streams: [] is no stream (policy's nil is
		// its default).
		ConsentStreams: append([]string{}, cfg.Policy.ConsentStreams...),
	}
	for stream, reasons := range cfg.Policy.Streams {
		for i, r := range reasons {
			if !policy.Reason(r).Valid() {
				return pc, cfg.ErrorAt(fmt.Sprintf("policy.streams.%s[%d]", stream, i),
					fmt.Sprintf("%q is not a suppression reason (one of %s)", r, policy.ReasonNames()))
			}
			pc.Streams[stream] = append(pc.Streams[stream], policy.Reason(r))
		}
	}
	for name, s := range cfg.Senders {
		pc.Senders[name] = policy.SenderRules{DropSuppressed: s.DropSuppressed, SunsetAfter: s.SunsetAfter,
			ConsentRequired: s.ConsentRequired}
	}
	return pc, nil
}

// linkKeysPath is where the key ring of recipient links is kept.
func linkKeysPath(cfg *configs.Config) string {
	if cfg.Web.LinkKeysFile != "" {
		return cfg.Web.LinkKeysFile
	}
	return filepath.Join(cfg.DataDir, "link-keys")
}

func writeKeys(path string, data []byte) error { return writeFileAtomic(path, data, 0o600) }

// loadLinkTokens reads the key ring, making it on first start when it is
// the data directory's own.
func loadLinkTokens(cfg *configs.Config) (*policy.Tokens, error) {
	keys, err := policy.LoadKeys(linkKeysPath(cfg), cfg.Web.LinkKeysFile == "", writeKeys)
	if err != nil {
		return nil, err
	}
	return &policy.Tokens{Keys: keys, MaxAge: cfg.Web.LinkMaxAge}, nil
}

// policyOutcome is what policy learns from an event of the stream.
func policyOutcome(ev queue.Event) (policy.Outcome, bool) {
	o := policy.Outcome{Time: ev.Time, MsgID: ev.MsgID, Sender: ev.Sender, Address: ev.Recipient,
		Stream: ev.Stream, Campaign: ev.Campaign, List: ev.List, Class: ev.Class, Reason: ev.Reason}
	switch ev.Kind {
	case queue.EventReceived:
		if ev.DSN != "" {
			return o, false // Drover's own notices are no one's campaign
		}
		o.Kind = policy.KindReceived
	case queue.EventDelivered:
		o.Kind = policy.KindDelivered
	case queue.EventBounced:
		o.Kind = policy.KindBounced
	case queue.EventComplained:
		o.Kind = policy.KindComplained
	default:
		return o, false
	}
	return o, true
}

// policyEvent is a policy event as the event stream carries it; false
// for a kind the stream does not know.
func policyEvent(ev policy.Event) (queue.Event, bool) {
	e := ev.Entry
	out := queue.Event{Time: ev.Time, MsgID: ev.MsgID, Campaign: ev.Campaign, Sender: e.Sender, Recipient: e.Address,
		List: e.List, Scope: string(e.Kind), Reason: string(e.Reason), Source: e.Source}
	switch ev.Kind {
	case policy.KindUnsubscribed:
		out.Kind = queue.EventUnsubscribed
	case policy.KindConfirmedBounce:
		out.Kind = queue.EventConfirmedBounce
	case policy.KindEngaged:
		out.Kind, out.Reason, out.Scope = queue.EventEngaged, ev.Detail, ""
	case policy.KindRemoved:
		out.Kind = queue.EventSuppressionRemoved
		if ev.Detail != "" {
			out.Text = "removed by " + ev.Detail
		}
	case policy.KindSuppressedAdded:
		out.Kind = queue.EventSuppressionAdded
	default:
		return out, false
	}
	return out, true
}

// policyObserver hands events to policy once it is open (serve opens it
// after the spool, whose events start only once delivery does).
type policyObserver struct{ p atomic.Pointer[policy.Policy] }

func (o *policyObserver) observe(ev queue.Event) {
	if p := o.p.Load(); p != nil {
		if out, ok := policyOutcome(ev); ok {
			p.Observe(out)
		}
	}
}

// policyCollector exports the suppression list's size by scope and
// reason, and the outcomes dropped under load, at each scrape.
type policyCollector struct{ p *policy.Policy }

var (
	suppressionsDesc = prometheus.NewDesc("drover_suppressions", "Suppression entries by scope and reason.", []string{"scope", "reason"}, nil)
	droppedDesc      = prometheus.NewDesc("drover_policy_outcomes_dropped_total", "Outcomes list hygiene did not apply because its queue was full.", nil, nil)
)

func (c policyCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- suppressionsDesc
	ch <- droppedDesc
}

func (c policyCollector) Collect(ch chan<- prometheus.Metric) {
	for scope, by := range c.p.Counts() {
		for reason, n := range by {
			ch <- prometheus.MustNewConstMetric(suppressionsDesc, prometheus.GaugeValue, float64(n), string(scope), string(reason))
		}
	}
	ch <- prometheus.MustNewConstMetric(droppedDesc, prometheus.CounterValue, float64(c.p.Dropped()))
}

func newLinksCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "links", Short: "Manage the keys that seal recipient links (unsubscribe)"}
	var cfgPath string
	var keep int
	rotate := &cobra.Command{
		Use:   "rotate-key",
		Short: "Add a new sealing key to the key ring; links made with the kept older keys keep working (restart serve to seal with it)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			cfg, err := configs.Load(cfgPath)
			if err != nil {
				return err
			}
			path := linkKeysPath(cfg)
			if _, err := os.Stat(path); err != nil {
				return fmt.Errorf("no key ring at %s (drover serve makes it at first start): %w", path, err)
			}
			keys, err := policy.RotateKeys(path, keep, writeKeys)
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "%s: new sealing key %d; %d key(s) in the ring\n", path, keys[0].ID, len(keys))
			return nil
		},
	}
	rotate.Flags().StringVarP(&cfgPath, "config", "c", "", "configuration file (default: the embedded default)")
	rotate.Flags().IntVar(&keep, "keep", 4, "keys to keep in all, the new one included (older links stop working when their key goes)")
	cmd.AddCommand(rotate)
	return cmd
}

// openPolicy opens list hygiene on the spool's database, with the key
// ring of recipient links.
func openPolicy(cfg *configs.Config, st *static, spool *queue.Spool, emit func(queue.Event), log *slog.Logger) (*policy.Policy, *policy.Tokens, error) {
	tokens, err := loadLinkTokens(cfg)
	if err != nil {
		return nil, nil, err
	}
	store, err := policy.NewPebbleStore(spool.DB())
	if err != nil {
		return nil, nil, fmt.Errorf("policy: reading the suppression list: %w", err)
	}
	pc := st.policy
	pc.Store = store
	if pc.ErasureKey, err = loadKey("erasure key", "", filepath.Join(cfg.DataDir, "erasure.key")); err != nil {
		return nil, nil, err
	}
	pc.OnEvent = func(ev policy.Event) {
		if out, ok := policyEvent(ev); ok {
			emit(out)
		}
	}
	pc.Logger = log
	pol, err := policy.New(pc)
	if err != nil {
		return nil, nil, err
	}
	return pol, tokens, nil
}

// checker is pol as RCPT asks it; nil (no checks) when list hygiene is off.
func checker(pol *policy.Policy) policy.Checker {
	if pol == nil {
		return nil
	}
	return pol
}

// unsubscriber is pol as the mailto unsubscribe asks it; nil when off.
func unsubscriber(pol *policy.Policy) policy.Unsubscriber {
	if pol == nil {
		return nil
	}
	return pol
}

// unsubscribeLinks makes marketing mail's List-Unsubscribe targets: the
// one-click URL under web.base_url, and the mailto of the sender's bounce
// domain when the inbound listener takes it. nil when list hygiene is off
// or no link could be made.
func unsubscribeLinks(cfg *configs.Config, st *static, tokens *policy.Tokens) *policy.Links {
	if tokens == nil {
		return nil
	}
	l := &policy.Links{Tokens: tokens, MailtoDomain: map[string]string{}}
	if cfg.Web.Address != "" {
		l.BaseURL = cfg.Web.BaseURL
	}
	if cfg.Bounces.InboundAddress != "" {
		l.MailtoDomain = st.bounceDomains
	}
	if l.BaseURL == "" && len(l.MailtoDomain) == 0 {
		return nil
	}
	return l
}

// domainSenders maps each bounce domain that one sender alone has to
// that sender: feedback reports to its fbl@ are that sender's.
func domainSenders(bounceDomains map[string]string) map[string]string {
	out, shared := map[string]string{}, map[string]bool{}
	for sender, d := range bounceDomains {
		if _, dup := out[d]; dup {
			shared[d] = true
		}
		out[d] = sender
	}
	for d := range shared {
		delete(out, d)
	}
	return out
}

// signupLists are the lists that take sign-ups on the hosted form, by
// sender.
func signupLists(cfg *configs.Config) map[string]map[string]web.SignupList {
	out := map[string]map[string]web.SignupList{}
	for name, s := range cfg.Senders {
		for list, l := range s.Signup {
			if out[name] == nil {
				out[name] = map[string]web.SignupList{}
			}
			out[name][list] = web.SignupList{DoubleOptIn: l.DoubleOptIn, ConsentText: l.ConsentText, Purposes: l.Purposes}
		}
	}
	return out
}

// confirmTemplates are the senders' double opt-in confirmation messages.
func confirmTemplates(cfg *configs.Config) map[string]*mta.ConfirmTemplate {
	out := map[string]*mta.ConfirmTemplate{}
	for name, s := range cfg.Senders {
		if c := s.Confirmation; c != nil {
			out[name] = &mta.ConfirmTemplate{From: c.From, Subject: c.Subject, Text: c.Text, HTML: c.HTML}
		}
	}
	return out
}
