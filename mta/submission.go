package mta

import (
	"cmp"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/mail"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"
	"golang.org/x/crypto/bcrypt"

	"drover/mta/address"
	"drover/mta/smtperr"
	"drover/mta/tags"
	"drover/policy"
	"drover/queue"
)

// Sender is an account that submits mail: its login, the From domains it
// owns, whether it wants DSNs, its default stream and what Drover does
// with the List-Unsubscribe fields of its marketing mail.
type Sender struct {
	Name         string
	Login        string
	PasswordHash []byte   // bcrypt
	FromDomains  []string // lower-case domains; "*" = any
	DSN          bool
	// Stream is the stream of a message that names none (in MAIL's
	// X-DROVER-STREAM or its X-Drover-Stream field); "" is "marketing".
	Stream string
	// ListUnsubscribe is ListUnsubscribeAdd (or ""), ListUnsubscribeKeep
	// or ListUnsubscribeOff.
	ListUnsubscribe string
}

// The values of Sender.ListUnsubscribe: what goes on a sender's
// marketing mail.
const (
	// ListUnsubscribeAdd: Drover's List-Unsubscribe and
	// List-Unsubscribe-Post fields replace the application's.
	ListUnsubscribeAdd = "add"
	// ListUnsubscribeKeep: a message with a List-Unsubscribe field of its
	// own keeps it and gets none of Drover's; others get Drover's.
	ListUnsubscribeKeep = "keep"
	// ListUnsubscribeOff: Drover adds none.
	ListUnsubscribeOff = "off"
)

// OwnsDomain reports whether the sender may use domain in From.
func (s *Sender) OwnsDomain(domain string) bool {
	domain = strings.ToLower(domain)
	for _, d := range s.FromDomains {
		if d == "*" || d == domain {
			return true
		}
	}
	return false
}

// Enqueuer is the spool as submission sees it: Enqueue returns only once
// the message is durably stored, EnqueueAll once every message is, all
// or none. NewID gives the ID a message is to be stored under (set in
// queue.Message.ID), so the Received field can name it; a message without
// an ID gets one from Enqueue.
type Enqueuer interface {
	NewID() string
	Enqueue(msg *queue.Message, rcpts []queue.NewRecipient, body []byte) (string, error)
	EnqueueAll(subs []queue.Submission) error
}

// Signer adds DKIM signatures: it returns the header fields to prepend to
// msg for the From domain, or nil when it has no key for it.
type Signer interface {
	Sign(domain string, msg []byte) ([]byte, error)
}

// Listener is one submission listener.
type Listener struct {
	Address string
	Mode    string // "plain", "starttls" or "tls"
	// LoopbackSender, when set, is the sender of unauthenticated clients
	// connecting from a loopback address.
	LoopbackSender string
}

// SubmissionConfig is everything the submission server needs.
type SubmissionConfig struct {
	Hostname       string
	Listeners      []Listener
	TLS            *tls.Config // needed by starttls and tls listeners
	MaxMessageSize int64
	MaxRecipients  int
	MaxLineLength  int
	ReadTimeout    time.Duration
	WriteTimeout   time.Duration
	Senders        []*Sender
	Auth           AuthLimits // failed-login limits
	Queue          Enqueuer
	Signer         Signer // nil: no DKIM
	// Policy checks every recipient against the suppression list (nil:
	// no checks).
	Policy policy.Checker
	// Links makes the List-Unsubscribe targets of marketing mail (nil:
	// none are added).
	Links   *policy.Links
	OnEvent func(queue.Event)
	Metrics *Metrics
	Logger  *slog.Logger
	Now     func() time.Time
}

// Submission is the set of SMTP submission listeners.
type Submission struct {
	cfg      SubmissionConfig
	byName   map[string]*Sender
	byLogin  map[string]*Sender // the senders that can log in
	guard    *authGuard
	servers  []*smtp.Server
	sessions sessions
	loops    atomic.Pointer[[]*serveLoop] // set by Start
	// isLoopback decides whether an address is local; tests replace it to
	// play a client from the network.
	isLoopback func(net.Addr) bool
	// listen opens a listener; tests replace it to make one fail.
	listen func(network, address string) (net.Listener, error)
	// sleep waits for d or until ctx ends; it delays the replies to AUTH.
	sleep func(ctx context.Context, d time.Duration)
}

// NewSubmission checks cfg and returns a server ready to Start.
func NewSubmission(cfg SubmissionConfig) (*Submission, error) {
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	cfg.Auth = cfg.Auth.withDefaults()
	if cfg.Links != nil {
		if err := checkLinks(cfg.Links); err != nil {
			return nil, err
		}
		links := *cfg.Links
		if links.Now == nil {
			links.Now = cfg.Now
		}
		cfg.Links = &links
	}
	s := &Submission{cfg: cfg, byName: map[string]*Sender{}, byLogin: map[string]*Sender{},
		guard: newAuthGuard(cfg.Auth, cfg.Now), isLoopback: isLoopbackAddr, listen: net.Listen, sleep: sleepCtx}
	for _, snd := range cfg.Senders {
		if err := checkSender(snd); err != nil {
			return nil, err
		}
		s.byName[snd.Name] = snd
		if snd.Login != "" && len(snd.PasswordHash) > 0 {
			s.byLogin[snd.Login] = snd
		}
	}
	for _, l := range cfg.Listeners {
		if l.LoopbackSender != "" && s.byName[l.LoopbackSender] == nil {
			return nil, fmt.Errorf("listener %s: no sender named %q", l.Address, l.LoopbackSender)
		}
		if l.Mode != "plain" && cfg.TLS == nil {
			return nil, fmt.Errorf("listener %s: mode %s needs a TLS certificate", l.Address, l.Mode)
		}
		if m := cfg.Metrics; m != nil {
			m.authFailures.WithLabelValues(l.Address)
			m.authRefusals.WithLabelValues(l.Address)
		}
	}
	return s, nil
}

// Start opens every listener and serves in the background. It returns the
// bound addresses, in listener order (useful with port 0).
func (s *Submission) Start() ([]net.Addr, error) {
	var addrs []net.Addr
	var loops []*serveLoop
	for _, l := range s.cfg.Listeners {
		ln, err := s.listen("tcp", l.Address)
		if err != nil {
			s.loops.Store(&loops)
			s.Close()
			return nil, fmt.Errorf("listen %s: %w", l.Address, err)
		}
		if l.Mode == "tls" {
			ln = tls.NewListener(ln, s.cfg.TLS)
		}
		srv := smtp.NewServer(&backend{sub: s, listener: l})
		srv.Addr = l.Address
		srv.Domain = s.cfg.Hostname
		srv.MaxMessageBytes = s.cfg.MaxMessageSize
		// go-smtp advertises LIMITS RCPTMAX; the session enforces it
		// (452 4.5.3), so that the refusal is logged.
		srv.MaxRecipients = s.cfg.MaxRecipients
		srv.SessionEnforcesMaxRecipients = true
		srv.MaxLineLength = s.cfg.MaxLineLength
		srv.ReadTimeout = s.cfg.ReadTimeout
		srv.WriteTimeout = s.cfg.WriteTimeout
		srv.EnableSMTPUTF8 = true
		srv.EnableDSN = true
		srv.ExtraMailParams = []string{paramStream, paramList}
		srv.ErrorLog = slogAdapter{s.cfg.Logger}
		if l.Mode == "starttls" {
			srv.TLSConfig = s.cfg.TLS
		}
		// AUTH is offered without TLS only on a loopback listener; Auth
		// checks the client's address again.
		srv.AllowInsecureAuth = s.isLoopback(ln.Addr())
		s.servers = append(s.servers, srv)
		addrs = append(addrs, ln.Addr())
		loops = append(loops, serve(srv, ln, func(err error) {
			s.cfg.Logger.Error("smtp listener stopped", "addr", l.Address, "err", err)
		}))
	}
	s.loops.Store(&loops)
	return addrs, nil
}

// Healthy is nil while every listener accepts connections; it names the
// first one that stopped, and fails before Start and once Shutdown has
// begun.
func (s *Submission) Healthy() error {
	loops := s.loops.Load()
	if loops == nil {
		return errNotStarted
	}
	return listenersHealthy(&s.sessions, *loops)
}

// Shutdown stops accepting connections and new transactions, waits for
// messages being received to be queued (or ctx to end), then closes every
// connection.
func (s *Submission) Shutdown(ctx context.Context) error {
	err := s.sessions.shutdown(ctx, s.servers...)
	s.stopLoops()
	return err
}

// Close closes every listener and connection at once (instead of
// Shutdown, not after it).
func (s *Submission) Close() {
	for _, srv := range s.servers {
		srv.Close()
	}
	s.stopLoops()
}

func (s *Submission) stopLoops() {
	if loops := s.loops.Load(); loops != nil {
		for _, l := range *loops {
			l.stop()
		}
	}
}

type backend struct {
	sub      *Submission
	listener Listener
}

func (b *backend) NewSession(c *smtp.Conn) (smtp.Session, error) {
	sess := &session{sub: b.sub, conn: c, listener: b.listener}
	sess.ctx, sess.cancel = context.WithCancel(context.Background())
	remote := c.Conn().RemoteAddr()
	sess.loopback = b.sub.isLoopback(remote)
	if ip, _, err := net.SplitHostPort(remote.String()); err == nil {
		sess.clientIP = ip
	}
	if m := b.sub.cfg.Metrics; m != nil {
		m.sessions.Inc()
		m.sessionsTotal.Inc()
	}
	b.sub.sessions.opened(c)
	if len(b.sub.byLogin) == 0 {
		// No sender can log in: a session without AuthSession, which
		// go-smtp neither offers AUTH on nor lets a client try it.
		return goSession{sess}, nil
	}
	return newGoAuthSession(sess), nil
}

type session struct {
	sub      *Submission
	conn     *smtp.Conn
	listener Listener
	loopback bool
	clientIP string
	authed   *Sender
	// authFailures counts the failed and refused AUTH attempts.
	authFailures int
	// ctx ends at logout; it cuts short a delayed AUTH reply.
	ctx    context.Context
	cancel context.CancelFunc

	from   string
	opts   smtp.MailOptions
	sender *Sender
	// mailStream and mailList are MAIL's X-DROVER-STREAM and
	// X-DROVER-LIST ("" when absent); stream and list are what RCPT
	// checks recipients with: MAIL's, else the sender's default stream
	// and no list.
	mailStream, mailList string
	stream, list         string
	rcpts                []queue.NewRecipient
	// decisions are the policy's answers for rcpts, one each: a
	// suppressed one is a recipient to drop.
	decisions []policy.Decision
	tx        tx
}

var (
	errAuthRequired = smtperr.Permanent(530, "5.7.0", "Authentication required: this server does not relay for unauthenticated clients")
	errAuthFailed   = smtperr.Permanent(535, "5.7.8", "Authentication credentials invalid")
	errNeedTLS      = smtperr.Permanent(538, "5.7.11", "Encryption required for requested authentication mechanism")
	errShutdown     = smtperr.Temporary(421, "4.3.2", "Service shutting down, try again later")
	// errAuthTooMany ends the session: go-smtp closes the connection
	// after a 421 to AUTH.
	errAuthTooMany   = smtperr.Temporary(421, "4.7.0", "Too many failed login attempts, closing connection")
	errAuthLockedOut = smtperr.Temporary(454, "4.7.0", "Too many failed login attempts from your address, try again later")
)

func (s *session) authMechanisms() []string { return []string{sasl.Plain, sasl.Login} }

func (s *session) auth(mech string) (sasl.Server, error) {
	if _, isTLS := s.conn.TLSConnectionState(); !isTLS && !s.loopback {
		return nil, errNeedTLS
	}
	if mech != sasl.Plain && mech != sasl.Login {
		return nil, smtp.ErrAuthUnknownMechanism
	}
	if _, until := s.sub.guard.admit(s.clientIP); !until.IsZero() {
		return nil, s.authRefused(mech, "", until)
	}
	check := func(identity, username, password string) error {
		// Admitted again now that the credentials are in: another
		// session may have locked the address out meanwhile.
		delay, until := s.sub.guard.admit(s.clientIP)
		if !until.IsZero() {
			return s.authRefused(mech, username, until)
		}
		if delay > 0 {
			// Every reply waits, success too: a client can't tell a
			// failure by the delay and give up early.
			s.sub.sleep(s.ctx, delay)
		}
		if err := s.checkLogin(identity, username, password); err != nil {
			return s.authFailed(mech, username, err)
		}
		s.sub.guard.succeeded(s.clientIP)
		s.sub.cfg.Logger.Debug("smtp auth succeeded", s.authAttrs(mech, username)...)
		return nil
	}
	if mech == sasl.Plain {
		return sasl.NewPlainServer(check), nil
	}
	return &loginServer{check: check}, nil
}

// checkLogin checks a login and password, and on success makes the
// login's sender the session's.
func (s *session) checkLogin(identity, username, password string) error {
	if identity != "" && identity != username {
		return smtperr.Permanent(535, "5.7.8", "Authorization identity must match the login")
	}
	snd := s.sub.byLogin[username]
	if snd == nil {
		// Spend the same time as a real check, so logins can't be probed.
		bcrypt.CompareHashAndPassword(dummyHash, []byte(password))
		return errAuthFailed
	}
	if bcrypt.CompareHashAndPassword(snd.PasswordHash, []byte(password)) != nil {
		return errAuthFailed
	}
	s.authed = snd
	return nil
}

// authFailed counts, logs and answers a failed login: err, or 421 (and
// the end of the session) once the session has had too many.
func (s *session) authFailed(mech, username string, err error) error {
	s.authFailures++
	failures, until := s.sub.guard.failed(s.clientIP)
	if m := s.sub.cfg.Metrics; m != nil {
		m.authFailures.WithLabelValues(s.listener.Address).Inc()
	}
	log := s.sub.cfg.Logger
	log.Warn("smtp auth failed", append(s.authAttrs(mech, username),
		"session_failures", s.authFailures, "address_failures", failures)...)
	if !until.IsZero() {
		if m := s.sub.cfg.Metrics; m != nil {
			m.authLockouts.Inc()
		}
		log.Warn("smtp auth locked out", "client_ip", s.clientIP, "until", until, "failures", failures)
	}
	return s.authLimit(err)
}

// authRefused counts and answers an AUTH from a locked-out address.
func (s *session) authRefused(mech, username string, until time.Time) error {
	s.authFailures++
	if m := s.sub.cfg.Metrics; m != nil {
		m.authRefusals.WithLabelValues(s.listener.Address).Inc()
	}
	s.sub.cfg.Logger.Debug("smtp auth refused: address locked out", append(s.authAttrs(mech, username), "until", until)...)
	return s.authLimit(errAuthLockedOut)
}

// authLimit is err, or errAuthTooMany once the session is at its limit.
func (s *session) authLimit(err error) error {
	if s.authFailures >= s.sub.cfg.Auth.MaxFailuresPerSession {
		s.sub.cfg.Logger.Info("smtp session closed after failed logins", "client_ip", s.clientIP,
			"listener", s.listener.Address, "failures", s.authFailures)
		return errAuthTooMany
	}
	return err
}

func (s *session) authAttrs(mech, username string) []any {
	const maxLogin = 64 // a client's bytes, logged: bounded
	if len(username) > maxLogin {
		username = username[:maxLogin] + "..."
	}
	return []any{"client_ip", s.clientIP, "login", username, "mechanism", mech, "listener", s.listener.Address}
}

// sleepCtx waits for d, or until ctx ends.
func sleepCtx(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
	case <-ctx.Done():
	}
}

// dummyHash is a bcrypt hash of a random password, compared against when
// the login is unknown.
var dummyHash = []byte("$2a$10$5rIKbw1ygnnyWnQd3zbp7.MUNPg8ol52ZOTKZBLx/vcC0dVjHk0sq")

func (s *session) mail(from string, opts *smtp.MailOptions) error {
	if s.sub.sessions.draining.Load() {
		return errShutdown
	}
	snd := s.authed
	if snd == nil && s.loopback && s.listener.LoopbackSender != "" {
		snd = s.sub.byName[s.listener.LoopbackSender]
	}
	if snd == nil {
		return errAuthRequired
	}
	if from != "" {
		addr, err := address.Parse(from, opts != nil && opts.UTF8)
		if err != nil {
			return badPath(err, from, "sender", "5.1.7")
		}
		if !snd.OwnsDomain(addr.Domain) && !snd.OwnsDomain(addr.ASCIIDomain()) {
			return smtperr.Permanentf(550, "5.7.1", "Sender %s may not send from <%s>", snd.Name, echoPath(from))
		}
		from = addr.String()
	}
	var extra map[string]string
	if opts != nil {
		extra = opts.Extra
	}
	mailStream, mailList, err := mailControlParams(extra)
	if err != nil {
		return err
	}
	s.from, s.sender, s.rcpts, s.decisions = from, snd, s.rcpts[:0], s.decisions[:0]
	s.mailStream, s.mailList = mailStream, mailList
	s.stream, s.list = cmp.Or(mailStream, snd.defaultStream()), mailList
	if opts != nil {
		s.opts = *opts
	} else {
		s.opts = smtp.MailOptions{}
	}
	if max := s.sub.cfg.MaxMessageSize; max > 0 && s.opts.Size > max {
		return smtperr.Permanentf(552, "5.3.4", "Message size %d exceeds the limit of %d bytes", s.opts.Size, max)
	}
	return nil
}

func (s *session) rcpt(to string, opts *smtp.RcptOptions) error {
	if s.sender == nil {
		return smtperr.Permanent(503, "5.5.1", "MAIL FROM first")
	}
	addr, err := address.Parse(to, s.opts.UTF8)
	if err != nil {
		return badPath(err, to, "recipient", "5.1.3")
	}
	if max := s.sub.cfg.MaxRecipients; max > 0 && len(s.rcpts) >= max {
		return smtperr.Temporaryf(452, "4.5.3", "Too many recipients (at most %d per message)", max)
	}
	r := queue.NewRecipient{Addr: addr.String()}
	d, err := s.check(r.Addr, s.stream, s.list)
	if err != nil {
		return err
	}
	if d.Suppressed && !d.Drop {
		return refusal(d, s.stream, s.list)
	}
	if opts != nil {
		notify := make([]string, len(opts.Notify))
		for i, n := range opts.Notify {
			notify[i] = string(n)
		}
		r.Notify = strings.Join(notify, ",")
		if opts.OriginalRecipient != "" {
			r.ORCPT = string(opts.OriginalRecipientType) + ";" + opts.OriginalRecipient
		}
	}
	s.rcpts = append(s.rcpts, r)
	s.decisions = append(s.decisions, d)
	return nil
}

func (s *session) startData() error { return s.tx.start(&s.sub.sessions) }

func (s *session) data(r io.Reader) error {
	s.tx.begin(&s.sub.sessions) // begun by startData, except for BDAT
	raw, err := io.ReadAll(r)
	if err != nil {
		switch {
		case errors.Is(err, smtp.ErrDataTooLarge):
			return smtperr.Permanentf(552, "5.3.4", "Message exceeds the limit of %d bytes", s.sub.cfg.MaxMessageSize)
		case errors.Is(err, smtp.ErrTooLongLine):
			return smtperr.Permanentf(554, "5.6.0", "Message has a line longer than %d bytes", s.sub.cfg.MaxLineLength)
		}
		return err
	}
	m, err := s.parse(raw)
	if err != nil {
		return err
	}
	kept, out, err := s.screen(m)
	if err != nil {
		return err
	}
	if len(kept) == 0 {
		s.emitSuppressed(m, out)
		for _, o := range out {
			if o.refused {
				return refusal(o.decision, m.msg.Stream, m.msg.List)
			}
		}
		return &smtperr.Error{Code: 250, Enhanced: "2.0.0", Message: "OK: nothing queued, every recipient is suppressed"}
	}
	copies, err := s.store(m, kept)
	if err != nil {
		return err
	}
	s.emitSuppressed(m, out)
	for _, c := range copies {
		s.emitReceived(m, c)
	}
	return &smtperr.Error{Code: 250, Enhanced: "2.0.0", Message: queuedReply(copies)} // go-smtp's way to set the reply to DATA
}

// submitted is a message as the client sent it, cut up: the envelope it
// is to be stored with, the header fields that stay, the body and what
// the header said.
type submitted struct {
	msg        queue.Message // everything but ID and Size
	fields     []field       // the header fields that stay, in order
	added      []byte        // the Date and Message-ID fields Drover adds
	body       []byte
	fromDomain string
	messageID  string // the message's, or the one Drover adds
	// ownUnsubscribe: the message has a List-Unsubscribe field of its own.
	ownUnsubscribe bool
}

// parse CRLF-normalises the submitted bytes, takes the control fields
// out, checks From, makes the Date and Message-ID to add when missing and
// settles the message's stream and list (see streamAndList).
func (s *session) parse(raw []byte) (*submitted, error) {
	now := s.sub.cfg.Now()
	data := normalizeCRLF(raw)
	fields, body := splitHeader(data)
	m := &submitted{body: body, msg: queue.Message{
		Sender:     s.sender.Name,
		ReturnPath: s.from,
		EnvID:      s.opts.EnvelopeID,
		Ret:        string(s.opts.Return),
		WantDSN:    s.sender.DSN,
		ClientAddr: s.clientIP,
		Received:   now,
	}}
	var hdrStream, hdrList string
	var hasMessageID, hasDate bool
	kept := fields[:0]
	for _, f := range fields {
		switch {
		case f.is("X-Drover-Stream"):
			v, err := controlField(f, hdrStream)
			if err != nil {
				return nil, err
			}
			hdrStream = v
			continue
		case f.is("X-Drover-Campaign"):
			m.msg.Campaign = f.value()
			continue
		case f.is("X-Drover-List"):
			v, err := controlField(f, hdrList)
			if err != nil {
				return nil, err
			}
			hdrList = v
			continue
		case f.is("X-Drover-Flow"):
			m.msg.Flow = f.value()
			continue
		case len(f.name) > 9 && strings.EqualFold(string(f.name[:9]), "X-Drover-"):
			continue // unknown control headers never leave either
		case f.is("From"):
			if m.fromDomain != "" {
				return nil, smtperr.Permanent(550, "5.6.0", "Message has more than one From header")
			}
			addrs, err := mail.ParseAddressList(f.value())
			if err != nil || len(addrs) == 0 {
				return nil, smtperr.Permanent(550, "5.6.0", "Malformed From header: "+f.value())
			}
			for _, a := range addrs {
				_, domain, _ := strings.Cut(a.Address, "@")
				if !s.sender.OwnsDomain(domain) {
					return nil, smtperr.Permanentf(550, "5.7.1", "Sender %s may not send as %s", s.sender.Name, a.Address)
				}
				if m.fromDomain == "" {
					m.fromDomain = strings.ToLower(domain)
				}
			}
		case f.is("Message-ID"):
			hasMessageID = true
			m.messageID = strings.TrimSpace(f.value())
		case f.is("Date"):
			hasDate = true
		case f.is("List-Unsubscribe"):
			m.ownUnsubscribe = true
		}
		kept = append(kept, f)
	}
	if m.fromDomain == "" {
		return nil, smtperr.Permanent(550, "5.6.0", "Message has no From header")
	}
	m.fields = kept
	var err error
	if m.msg.Stream, m.msg.List, err = s.streamAndList(hdrStream, hdrList); err != nil {
		return nil, err
	}
	if !hasDate {
		m.added = append(m.added, "Date: "+now.Format(time.RFC1123Z)+"\r\n"...)
	}
	if !hasMessageID {
		m.messageID = "<" + randomToken() + "@" + s.sub.cfg.Hostname + ">"
		m.added = append(m.added, "Message-ID: "+m.messageID+"\r\n"...)
	}
	return m, nil
}

// queued is one message to store: the submitted message for all its
// recipients, or one recipient's copy of it.
type queued struct {
	id    string
	rcpts []queue.NewRecipient
	body  []byte
}

// maxParallelCopies bounds the copies of a message that are made and
// signed at once.
const maxParallelCopies = 8

// store queues the message for the recipients kept: once, or as one copy
// per recipient when each gets its own List-Unsubscribe field (see
// wantsLinks). Copies are made and signed a few at a time, then queued
// together in one commit (Enqueuer.EnqueueAll): all or none, so a failure
// leaves nothing for the client's retry to deliver twice.
func (s *session) store(m *submitted, kept []queue.NewRecipient) ([]*queued, error) {
	links := s.wantsLinks(m)
	tagged := s.mayHoldTags(m) && tags.Has(s.compose(m, &queued{}, false, nil))
	var copies []*queued
	if !links && !tagged {
		copies = []*queued{{id: s.sub.cfg.Queue.NewID(), rcpts: kept}}
	} else {
		copies = make([]*queued, len(kept))
		for i := range kept {
			// Made in recipient order, so the copies' IDs are too.
			copies[i] = &queued{id: s.sub.cfg.Queue.NewID(), rcpts: kept[i : i+1 : i+1]}
		}
	}
	subs := make([]queue.Submission, len(copies))
	errs := make([]error, len(copies))
	if len(copies) == 1 {
		subs[0], errs[0] = s.prepareCopy(m, copies[0], links, tagged)
	} else {
		var wg sync.WaitGroup
		var next atomic.Int64
		for range min(len(copies), maxParallelCopies) {
			wg.Go(func() {
				for i := int(next.Add(1)) - 1; i < len(copies); i = int(next.Add(1)) - 1 {
					subs[i], errs[i] = s.prepareCopy(m, copies[i], links, tagged)
				}
			})
		}
		wg.Wait()
	}
	if err := errors.Join(errs...); err != nil {
		for _, e := range errs {
			if e != nil {
				return nil, e // the first, an *smtperr.Error
			}
		}
	}
	err := s.sub.cfg.Queue.EnqueueAll(subs)
	if errors.Is(err, queue.ErrStorageFull) {
		s.sub.cfg.Logger.Warn("enqueue refused: storage full", "err", err)
		return nil, &smtperr.Error{Code: 452, Enhanced: "4.3.1", Message: "Insufficient system storage, try again later", Err: err}
	}
	if err != nil {
		s.sub.cfg.Logger.Error("enqueue failed", "err", err)
		return nil, &smtperr.Error{Code: 451, Enhanced: "4.3.0", Message: "Message not queued: local storage error, try again later", Err: err}
	}
	return copies, nil
}

// mayHoldTags is tags.MayHold over the message's pieces, without
// composing it: most messages are known free of tags at memory speed.
func (s *session) mayHoldTags(m *submitted) bool {
	if tags.MayHold(m.body) {
		return true
	}
	for _, f := range m.fields {
		if tags.MayHold(f.raw) {
			return true
		}
	}
	return false
}

// prepareCopy makes c's message (with its List-Unsubscribe fields when
// links, its recipient's links in place of its tags when tagged) and
// signs it.
func (s *session) prepareCopy(m *submitted, c *queued, links, tagged bool) (queue.Submission, error) {
	var unsub []byte
	if links {
		var err error
		if unsub, err = s.unsubscribeFields(m, c); err != nil {
			return queue.Submission{}, err
		}
	}
	out := s.compose(m, c, links, unsub)
	if tagged {
		var err error
		if out, err = s.fillTags(m, c, out); err != nil {
			return queue.Submission{}, err
		}
	}
	body, err := s.sign(m, out)
	if err != nil {
		return queue.Submission{}, err
	}
	msg := m.msg
	msg.ID, msg.Size = c.id, len(body)
	c.body = body
	return queue.Submission{Msg: &msg, Rcpts: c.rcpts, Body: body}, nil
}

// compose makes what is stored and delivered for c: a Received field on
// top, the fields kept (without the application's List-Unsubscribe and
// List-Unsubscribe-Post when links), the fields Drover adds, unsub, and
// the body.
func (s *session) compose(m *submitted, c *queued, links bool, unsub []byte) []byte {
	out := make([]byte, 0, len(m.body)+len(m.added)+len(unsub)+2048)
	out = s.appendReceived(out, m.msg.Received, c.id, c.rcpts)
	for _, f := range m.fields {
		if links && (f.is("List-Unsubscribe") || f.is("List-Unsubscribe-Post")) {
			continue
		}
		out = append(out, f.raw...)
	}
	out = append(out, m.added...)
	out = append(out, unsub...)
	out = append(out, "\r\n"...)
	return append(out, m.body...)
}

// sign prepends the DKIM signature of the message's From domain, when
// the Signer has a key for it.
func (s *session) sign(m *submitted, out []byte) ([]byte, error) {
	if s.sub.cfg.Signer == nil {
		return out, nil
	}
	sig, err := s.sub.cfg.Signer.Sign(m.fromDomain, out)
	if err != nil {
		s.sub.cfg.Logger.Error("dkim signing failed", "domain", m.fromDomain, "err", err)
		return nil, &smtperr.Error{Code: 451, Enhanced: "4.3.0", Message: "DKIM signing failed, try again later", Err: err}
	}
	if len(sig) == 0 {
		return out, nil
	}
	return append(sig, out...), nil
}

// queuedReply is the text of the 250 to DATA: the queue id, or those of
// the copies (the first few, when there are many).
func queuedReply(copies []*queued) string {
	if len(copies) == 1 {
		return "OK: queued as " + copies[0].id
	}
	const shown = 8
	ids := make([]string, 0, shown)
	for _, c := range copies[:min(len(copies), shown)] {
		ids = append(ids, c.id)
	}
	more := ""
	if len(copies) > shown {
		more = fmt.Sprintf(" and %d more", len(copies)-shown)
	}
	return fmt.Sprintf("OK: queued as %d messages, one per recipient: %s%s", len(copies), strings.Join(ids, " "), more)
}

// emitReceived emits the received event of a message queued.
func (s *session) emitReceived(m *submitted, c *queued) {
	if s.sub.cfg.OnEvent == nil {
		return
	}
	ev := s.event(queue.EventReceived)
	ev.Time, ev.MsgID, ev.Sender, ev.ReturnPath = m.msg.Received, c.id, m.msg.Sender, m.msg.ReturnPath
	ev.Recipients, ev.RecipientAddrs, ev.Size = len(c.rcpts), rcptAddrs(c.rcpts), len(c.body)
	ev.Stream, ev.Campaign, ev.List, ev.Flow = m.msg.Stream, m.msg.Campaign, m.msg.List, m.msg.Flow
	ev.MessageID = clip(m.messageID)
	s.sub.cfg.OnEvent(ev)
}

// appendReceived adds the trace field (RFC 5321 4.4) of a message queued
// as id for rcpts; it names the recipient only when there is one (not to
// disclose the others to each).
func (s *session) appendReceived(out []byte, now time.Time, id string, rcpts []queue.NewRecipient) []byte {
	with := "ESMTP"
	if _, ok := s.conn.TLSConnectionState(); ok {
		with += "S"
	}
	if s.authed != nil {
		with += "A"
	}
	helo := s.conn.Hostname()
	if helo == "" {
		helo = "unknown"
	}
	ip := s.clientIP
	if strings.Contains(ip, ":") {
		ip = "IPv6:" + ip
	}
	out = fmt.Appendf(out, "Received: from %s ([%s])\r\n\tby %s (Drover) with %s id %s",
		sanitizeHelo(helo), ip, s.sub.cfg.Hostname, with, id)
	if len(rcpts) == 1 {
		out = fmt.Appendf(out, "\r\n\tfor <%s>", rcpts[0].Addr)
	}
	return fmt.Appendf(out, ";\r\n\t%s\r\n", now.Format(time.RFC1123Z))
}

// event is an event of the session: its client, HELO name, login, TLS
// version and listener.
func (s *session) event(kind queue.EventKind) queue.Event {
	ev := sessionEvent(kind, s.sub.cfg.Now(), s.conn, s.listener.Address)
	ev.ClientIP = s.clientIP
	if s.authed != nil {
		ev.Login = s.authed.Login
	}
	return ev
}

// rejected emits a rejected event: the client, the account, the sender
// and (for RCPT) the recipient, the command and the reply. Never a
// password (AUTH is not a command here) nor the message.
func (s *session) rejected(cmd, arg string, e *smtperr.Error) {
	if s.sub.cfg.OnEvent == nil {
		return
	}
	ev := s.event(queue.EventRejected)
	ev.Command, ev.Code, ev.Enhanced, ev.Text = cmd, e.Code, e.Enhanced, clip(e.Message)
	if sup, ok := asSuppression(e); ok {
		ev.Reason, ev.Scope, ev.Source = string(sup.entry.Reason), string(sup.entry.Kind), sup.entry.Source
		ev.Stream, ev.List = sup.stream, sup.list
	}
	switch snd := s.sender; {
	case snd != nil:
		ev.Sender = snd.Name
	case s.authed != nil:
		ev.Sender = s.authed.Name
	}
	switch cmd {
	case "MAIL":
		ev.ReturnPath = clip(echoPath(arg))
	case "RCPT":
		ev.ReturnPath, ev.Recipient = s.from, clip(echoPath(arg))
	case "DATA":
		ev.ReturnPath, ev.Recipients, ev.RecipientAddrs = s.from, len(s.rcpts), rcptAddrs(s.rcpts)
	}
	s.sub.cfg.OnEvent(ev)
}

// sanitizeHelo keeps the client's HELO name from breaking the header.
func sanitizeHelo(h string) string {
	return strings.Map(func(r rune) rune {
		if r <= ' ' || r > '~' || r == '(' || r == ')' {
			return '_'
		}
		return r
	}, h)
}

func (s *session) reset() {
	s.tx.end(&s.sub.sessions) // go-smtp resets after the reply to DATA
	s.from, s.sender, s.rcpts, s.decisions = "", nil, s.rcpts[:0], s.decisions[:0]
	s.mailStream, s.mailList, s.stream, s.list = "", "", "", ""
}

func (s *session) logout() {
	s.cancel()
	s.tx.end(&s.sub.sessions)
	s.sub.sessions.closed(s.conn)
	if m := s.sub.cfg.Metrics; m != nil {
		m.sessions.Dec()
	}
}

// loginServer is the server side of the LOGIN mechanism, which go-sasl
// only implements as a client.
type loginServer struct {
	check    func(identity, username, password string) error
	state    int
	username string
}

func (l *loginServer) Next(response []byte) (challenge []byte, done bool, err error) {
	switch l.state {
	case 0:
		l.state = 1
		if response == nil {
			return []byte("Username:"), false, nil
		}
		fallthrough
	case 1:
		l.username = string(response)
		l.state = 2
		return []byte("Password:"), false, nil
	case 2:
		l.state = 3
		return nil, true, l.check("", l.username, string(response))
	}
	return nil, true, errors.New("unexpected LOGIN response")
}

func isLoopbackAddr(a net.Addr) bool {
	if tcp, ok := a.(*net.TCPAddr); ok {
		return tcp.IP.IsLoopback()
	}
	host, _, err := net.SplitHostPort(a.String())
	if err != nil {
		return false
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

type slogAdapter struct{ l *slog.Logger }

func (a slogAdapter) Printf(format string, v ...any) { a.l.Warn("smtp: " + fmt.Sprintf(format, v...)) }
func (a slogAdapter) Println(v ...any)               { a.l.Warn("smtp: " + fmt.Sprint(v...)) }
