package mta

import (
	"crypto/rand"
	"encoding/base32"
	"slices"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"drover/bounce"
	"drover/policy"
	"drover/queue"
	"drover/queue/engine"
)

// Metrics are Drover's Prometheus metrics, registered on an injected
// registry. Observe feeds them from the event stream; the queue gauges
// read the spool's in-memory counters at scrape time.
type Metrics struct {
	sessions      prometheus.Gauge
	sessionsTotal prometheus.Counter
	authFailures  *prometheus.CounterVec
	authRefusals  *prometheus.CounterVec
	authLockouts  prometheus.Counter
	received      prometheus.Counter
	receivedBytes prometheus.Counter
	deliveries    *prometheus.CounterVec
	complaints    *prometheus.CounterVec
	latency       prometheus.Histogram
	rejections    *prometheus.CounterVec
	bounces       *prometheus.CounterVec
	dsns          *prometheus.CounterVec
	refusals      *prometheus.CounterVec // by a suppression
	suppressed    *prometheus.CounterVec
}

// NewMetrics registers the metrics on reg. stats and sites are read at
// every scrape.
func NewMetrics(reg prometheus.Registerer, stats func() queue.Stats, sites func() []engine.SiteStatus) *Metrics {
	m := &Metrics{
		sessions: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "drover_smtp_sessions", Help: "SMTP submission sessions open now."}),
		sessionsTotal: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "drover_smtp_sessions_total", Help: "SMTP submission sessions opened."}),
		authFailures: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "drover_smtp_auth_failures_total", Help: "Failed SMTP AUTH logins (wrong login or password), by listener."},
			[]string{"listener"}),
		authRefusals: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "drover_smtp_auth_refusals_total", Help: "SMTP AUTH attempts refused unchecked because the client address is locked out, by listener."},
			[]string{"listener"}),
		authLockouts: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "drover_smtp_auth_lockouts_total", Help: "Client addresses locked out of SMTP AUTH after too many failed logins."}),
		received: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "drover_messages_received_total", Help: "Messages accepted from clients and queued (not the DSNs Drover makes)."}),
		receivedBytes: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "drover_received_bytes_total", Help: "Bytes of messages accepted from clients and queued."}),
		deliveries: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "drover_deliveries_total", Help: "Delivery outcomes per recipient, by result (delivered, deferred, bounced, expired)."},
			[]string{"result"}),
		complaints: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "drover_complaints_total", Help: "Feedback reports (ARF) received, by feedback type."},
			[]string{"type"}),
		latency: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "drover_delivery_latency_seconds",
			Help:    "Time from acceptance to successful delivery of a recipient.",
			Buckets: []float64{0.01, 0.05, 0.1, 0.5, 1, 5, 30, 60, 300, 1800, 3600, 6 * 3600, 24 * 3600, 5 * 24 * 3600},
		}),
		rejections: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "drover_smtp_rejections_total", Help: "Commands refused by the submission and inbound listeners, by command (MAIL, RCPT, DATA) and reply code."},
			[]string{"command", "code"}),
		bounces: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "drover_bounces_total", Help: "Recipients bounced (during delivery, by an asynchronous bounce or by an operator), by bounce class (hard, soft, none) and reason (the classifier's vocabulary, operator, other)."},
			[]string{"class", "reason"}),
		dsns: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "drover_dsn_generated_total", Help: "Delivery status notifications queued to senders, by kind (failure, delay)."},
			[]string{"kind"}),
		refusals: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "drover_policy_refusals_total", Help: "RCPT and DATA commands refused because the recipient is suppressed, by the suppression's reason."},
			[]string{"reason"}),
		suppressed: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "drover_suppressed_total", Help: "Recipients taken out of submitted messages because they are suppressed (accepted and dropped, or refused at DATA), by the suppression's reason."},
			[]string{"reason"}),
	}
	for _, r := range append(slices.Clone(policy.Reasons), policy.NoConsent) {
		m.refusals.WithLabelValues(string(r))
		m.suppressed.WithLabelValues(string(r))
	}
	for _, k := range []string{queue.DSNFailure, queue.DSNDelay} {
		m.dsns.WithLabelValues(k)
	}
	for _, r := range []string{"delivered", "deferred", "bounced", "expired"} {
		m.deliveries.WithLabelValues(r)
	}
	reg.MustRegister(m.sessions, m.sessionsTotal, m.authFailures, m.authRefusals, m.authLockouts, m.received, m.receivedBytes, m.deliveries, m.complaints, m.latency,
		m.rejections, m.bounces, m.dsns, m.refusals, m.suppressed, newQueueCollector(stats), newSiteCollector(sites))
	return m
}

// Observe counts one event.
func (m *Metrics) Observe(ev queue.Event) {
	switch ev.Kind {
	case queue.EventReceived:
		if ev.DSN != "" { // made here, not received
			m.dsns.WithLabelValues(ev.DSN).Inc()
			return
		}
		m.received.Inc()
		m.receivedBytes.Add(float64(ev.Size))
	case queue.EventRejected:
		m.rejections.WithLabelValues(ev.Command, strconv.Itoa(ev.Code)).Inc()
		if ev.Reason != "" { // refused by a suppression
			m.refusals.WithLabelValues(policyReason(ev.Reason)).Inc()
		}
	case queue.EventSuppressed:
		m.suppressed.WithLabelValues(policyReason(ev.Reason)).Inc()
	case queue.EventDelivered:
		m.deliveries.WithLabelValues("delivered").Inc()
		m.latency.Observe(ev.Delay.Seconds())
	case queue.EventComplained:
		m.complaints.WithLabelValues(ev.FeedbackType).Inc()
	case queue.EventBounced:
		m.deliveries.WithLabelValues(string(ev.Kind)).Inc()
		m.bounces.WithLabelValues(bounceLabels(ev.Class, ev.Reason)).Inc()
	case queue.EventDeferred, queue.EventExpired, queue.EventDeleted:
		m.deliveries.WithLabelValues(string(ev.Kind)).Inc()
	}
	// Other kinds (the policy's own events: unsubscribed, ...) are no
	// delivery outcome.
}

// bounceLabels are the class and reason labels of a bounce, from fixed
// sets: hard, soft or none (an operator's bounce); a reason of the
// classifier's vocabulary, operator, or other.
func bounceLabels(class, reason string) (string, string) {
	if class != "hard" && class != "soft" {
		class = "none"
	}
	if reason != queue.ReasonOperator && !slices.Contains(bounce.Reasons, reason) {
		reason = "other"
	}
	return class, reason
}

// policyReason is the reason label of a refusal: one of policy.Reasons,
// no-consent, or other.
func policyReason(reason string) string {
	if !policy.Reason(reason).Valid() && reason != string(policy.NoConsent) {
		return "other"
	}
	return reason
}

// queueCollector reports recipients by state and the oldest message age
// from one Stats call per scrape.
type queueCollector struct {
	stats    func() queue.Stats
	size     *prometheus.Desc
	messages *prometheus.Desc
	oldest   *prometheus.Desc
}

func newQueueCollector(stats func() queue.Stats) *queueCollector {
	return &queueCollector{
		stats:    stats,
		size:     prometheus.NewDesc("drover_queue_recipients", "Recipients in the spool, by state (ready: in memory waiting for a connection; inflight: being delivered; deferred: waiting for a retry; scheduled: waiting for their first attempt).", []string{"state"}, nil),
		messages: prometheus.NewDesc("drover_queue_messages", "Messages in the spool.", nil, nil),
		oldest:   prometheus.NewDesc("drover_queue_oldest_message_age_seconds", "Age of the oldest message in the spool (0 when empty).", nil, nil),
	}
}

func (c *queueCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.size
	ch <- c.messages
	ch <- c.oldest
}

func (c *queueCollector) Collect(ch chan<- prometheus.Metric) {
	s := c.stats()
	ch <- prometheus.MustNewConstMetric(c.size, prometheus.GaugeValue, float64(s.Ready), "ready")
	ch <- prometheus.MustNewConstMetric(c.size, prometheus.GaugeValue, float64(s.InFlight), "inflight")
	ch <- prometheus.MustNewConstMetric(c.size, prometheus.GaugeValue, float64(s.Deferred), "deferred")
	ch <- prometheus.MustNewConstMetric(c.size, prometheus.GaugeValue, float64(s.Scheduled), "scheduled")
	ch <- prometheus.MustNewConstMetric(c.messages, prometheus.GaugeValue, float64(s.Messages))
	age := 0.0
	if !s.Oldest.IsZero() {
		age = time.Since(s.Oldest).Seconds()
	}
	ch <- prometheus.MustNewConstMetric(c.oldest, prometheus.GaugeValue, age)
}

// siteCollector reports the live shaping state of every known site.
type siteCollector struct {
	sites                                    func() []engine.SiteStatus
	conns, maxConns, factor, suspended, rate *prometheus.Desc
}

func newSiteCollector(sites func() []engine.SiteStatus) *siteCollector {
	d := func(name, help string) *prometheus.Desc {
		return prometheus.NewDesc(name, help, []string{"site"}, nil)
	}
	return &siteCollector{
		sites:     sites,
		conns:     d("drover_site_connections", "Open delivery connections per site."),
		maxConns:  d("drover_site_max_connections", "Effective connection limit per site (configured, scaled by adaptive backoff)."),
		factor:    d("drover_site_factor", "Adaptive-backoff scale of a site's limits: 1 normally, less while a slow rule is in force."),
		suspended: d("drover_site_suspended", "1 while a site is suspended (by a rule or an operator)."),
		rate:      d("drover_site_message_rate", "Effective message rate limit per site, per second (0 = unlimited)."),
	}
}

func (c *siteCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{c.conns, c.maxConns, c.factor, c.suspended, c.rate} {
		ch <- d
	}
}

func (c *siteCollector) Collect(ch chan<- prometheus.Metric) {
	for _, s := range c.sites() {
		susp := 0.0
		if s.Suspended {
			susp = 1
		}
		for d, v := range map[*prometheus.Desc]float64{c.conns: float64(s.Connections), c.maxConns: float64(s.MaxConnections),
			c.factor: s.Factor, c.suspended: susp, c.rate: s.MessageRate} {
			ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, s.Name)
		}
	}
}

// randomToken returns 80 random bits in lower-case base32, for Message-IDs.
func randomToken() string {
	var b [10]byte
	rand.Read(b[:])
	return base32.StdEncoding.WithPadding(base32.NoPadding).EncodeToString(b[:])
}

// Fanout sends every event to each consumer in turn (the metrics, the mail
// log, ...); a consumer must not block.
func Fanout(consumers ...func(queue.Event)) func(queue.Event) {
	return func(ev queue.Event) {
		for _, c := range consumers {
			c(ev)
		}
	}
}
