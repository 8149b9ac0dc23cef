package mta

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"regexp"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	"github.com/emersion/go-smtp"

	"drover/bounce"
	"drover/mta/address"
	"drover/mta/smtperr"
	"drover/policy"
	"drover/queue"
)

// InboundConfig configures the listener that takes asynchronous bounces
// and feedback reports.
type InboundConfig struct {
	Address       string
	Hostname      string
	BounceDomains []string // VERP domains: bounces+TOKEN@D and fbl@D are accepted
	FeedbackAddrs []string // more addresses that take feedback reports
	// DomainSenders maps a bounce domain to the one sender that has it: a
	// feedback report to its fbl@ that quotes no VERP return path is that
	// sender's.
	DomainSenders  map[string]string
	VERP           bounce.VERP
	Classifier     *bounce.Classifier
	MaxMessageSize int64
	// Tokens opens the tokens of the mail that reaches the unsubscribe
	// mailbox (policy.MailtoLocal@ each bounce domain), and Unsubscriber
	// records the unsubscribes; with either nil the mailbox is not taken.
	Tokens       *policy.Tokens
	Unsubscriber policy.Unsubscriber
	OnEvent      func(queue.Event)
	Logger       *slog.Logger
	Now          func() time.Time
}

// Inbound is the SMTP listener for bounces and feedback reports. It
// accepts mail only for VERP return paths with a valid token, for
// feedback addresses and for the unsubscribe mailbox when it takes it
// (every other recipient gets 550 5.1.1: it relays nothing), classifies each message with the bounce package, maps it back
// to the message, recipient and sender through the token (falling back to
// the report's Original-Recipient and Message-ID) and emits the same
// bounced events as failures during delivery; feedback reports become
// complained events; mail to the unsubscribe mailbox unsubscribes the
// recipient its token names. It never answers mail with mail.
type Inbound struct {
	cfg      InboundConfig
	domains  map[string]bool
	fbl      map[string]bool
	srv      *smtp.Server
	sessions sessions
	loop     atomic.Pointer[serveLoop] // set by Start
	// listen opens the listener; tests replace it to make it fail.
	listen func(network, address string) (net.Listener, error)
}

// NewInbound returns a listener ready to Start.
func NewInbound(cfg InboundConfig) *Inbound {
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Classifier == nil {
		cfg.Classifier = bounce.NewClassifier(nil)
	}
	in := &Inbound{cfg: cfg, domains: map[string]bool{}, fbl: map[string]bool{}, listen: net.Listen}
	for _, d := range cfg.BounceDomains {
		d = strings.ToLower(d)
		in.domains[d] = true
		in.fbl["fbl@"+d] = true
	}
	for _, a := range cfg.FeedbackAddrs {
		in.fbl[strings.ToLower(a)] = true
	}
	return in
}

// Start listens and serves in the background; it returns the bound address.
func (in *Inbound) Start() (net.Addr, error) {
	ln, err := in.listen("tcp", in.cfg.Address)
	if err != nil {
		return nil, fmt.Errorf("inbound listen %s: %w", in.cfg.Address, err)
	}
	in.srv = smtp.NewServer(smtp.BackendFunc(func(c *smtp.Conn) (smtp.Session, error) {
		in.sessions.opened(c)
		return goSession{&inboundSession{in: in, conn: c}}, nil
	}))
	in.srv.Domain = in.cfg.Hostname
	in.srv.MaxMessageBytes = in.cfg.MaxMessageSize
	in.srv.MaxRecipients = 100
	in.srv.ReadTimeout = 5 * time.Minute
	in.srv.WriteTimeout = time.Minute
	in.srv.ErrorLog = slogAdapter{in.cfg.Logger}
	in.loop.Store(serve(in.srv, ln, func(err error) {
		in.cfg.Logger.Error("inbound listener stopped", "addr", in.cfg.Address, "err", err)
	}))
	return ln.Addr(), nil
}

// Healthy is nil while the listener accepts connections; it fails before
// Start, once the listener stopped or was closed, and once Shutdown has
// begun.
func (in *Inbound) Healthy() error {
	l := in.loop.Load()
	if l == nil {
		return errNotStarted
	}
	return listenersHealthy(&in.sessions, []*serveLoop{l})
}

// Close closes the listener and every session at once (instead of
// Shutdown, not after it). It does nothing before Start.
func (in *Inbound) Close() {
	if in.srv != nil {
		in.srv.Close()
		in.loop.Load().stop()
	}
}

// Shutdown stops the listener, lets reports being received get their
// reply (until ctx ends), then closes the remaining sessions.
func (in *Inbound) Shutdown(ctx context.Context) error {
	if in.srv == nil {
		return nil
	}
	err := in.sessions.shutdown(ctx, in.srv)
	in.loop.Load().stop()
	return err
}

// origin is what a recipient address of the inbound listener tells about
// the message a report is about; unsubscribe is the unsubscribe mailbox.
type origin struct {
	msgID       string
	index       int
	sender      string
	feedback    bool
	unsubscribe bool
}

type inboundSession struct {
	in      *Inbound
	conn    *smtp.Conn
	tx      tx
	from    string // as given, for the log
	origins []origin
}

var errNoSuchUser = smtperr.Permanent(550, "5.1.1", "No such user: this server accepts only bounces and feedback reports")

func (s *inboundSession) mail(from string, _ *smtp.MailOptions) error {
	if s.in.sessions.draining.Load() {
		return errShutdown
	}
	s.from = clip(echoPath(from))
	return nil
}

// rejected emits a rejected event: the client, the sender and (for RCPT)
// the recipient, the command and the reply.
func (s *inboundSession) rejected(cmd, arg string, e *smtperr.Error) {
	if s.in.cfg.OnEvent == nil {
		return
	}
	ev := sessionEvent(queue.EventRejected, s.in.cfg.Now(), s.conn, s.in.cfg.Address)
	ev.Command, ev.Code, ev.Enhanced, ev.Text = cmd, e.Code, e.Enhanced, clip(e.Message)
	switch cmd {
	case "MAIL":
		ev.ReturnPath = clip(echoPath(arg))
	case "RCPT":
		ev.ReturnPath, ev.Recipient = s.from, clip(echoPath(arg))
	default:
		ev.ReturnPath = s.from
	}
	s.in.cfg.OnEvent(ev)
}

func (s *inboundSession) rcpt(to string, _ *smtp.RcptOptions) error {
	parsed, err := address.Parse(to, false) // SMTPUTF8 is not offered here
	if err != nil {
		return badPath(err, to, "recipient", "5.1.3")
	}
	addr := strings.ToLower(parsed.String())
	if s.in.fbl[addr] {
		s.origins = append(s.origins, origin{feedback: true, sender: s.in.cfg.DomainSenders[parsed.Domain]})
		return nil
	}
	if !s.in.domains[parsed.Domain] {
		return errNoSuchUser
	}
	if strings.EqualFold(parsed.Local, policy.MailtoLocal) {
		if !s.in.takesUnsubscribe() {
			return errNoSuchUser
		}
		s.origins = append(s.origins, origin{unsubscribe: true})
		return nil
	}
	id, idx, sender, err := s.in.cfg.VERP.Decode(addr)
	if err != nil {
		return errNoSuchUser
	}
	s.origins = append(s.origins, origin{msgID: id, index: idx, sender: sender})
	return nil
}

func (s *inboundSession) startData() error { return s.tx.start(&s.in.sessions) }

func (s *inboundSession) data(r io.Reader) error {
	s.tx.begin(&s.in.sessions) // begun by startData, except for BDAT
	raw, err := io.ReadAll(r)
	if err != nil {
		if errors.Is(err, smtp.ErrDataTooLarge) {
			return smtperr.Permanent(552, "5.3.4", "Report too large")
		}
		return err
	}
	isUnsubscribe := func(o origin) bool { return o.unsubscribe }
	if slices.ContainsFunc(s.origins, isUnsubscribe) {
		if err := s.in.unsubscribe(raw, s.from); err != nil {
			return err
		}
		if !slices.ContainsFunc(s.origins, func(o origin) bool { return !o.unsubscribe }) {
			return nil // no report to read
		}
	}
	results, err := s.in.cfg.Classifier.ParseMessage(raw)
	if err != nil {
		// Unreadable reports are accepted and logged: refusing them would
		// only make the reporting MTA bounce the bounce.
		s.in.cfg.Logger.Warn("inbound: unreadable report", "err", err)
		return nil
	}
	var o origin
	for _, cand := range s.origins {
		if cand.msgID != "" {
			o = cand
			break
		}
	}
	if o.msgID == "" {
		// A feedback report comes to fbl@, not to the return path: the
		// message it returns names its return path (ARF's
		// Original-Mail-From, the Return-Path field the mailbox added);
		// else the report is the sender's whose bounce domain took it.
		o = s.in.verpIn(raw)
		for _, cand := range s.origins {
			if o.sender == "" && cand.feedback {
				o.sender = cand.sender
			}
		}
	}
	for _, c := range results {
		s.in.emit(o, c)
	}
	if len(results) == 0 {
		s.in.cfg.Logger.Info("inbound: nothing to report in message", "msg", o.msgID)
	}
	return nil
}

// verpAddr finds the return paths of Drover's VERP in a report.
var verpAddr = regexp.MustCompile(`(?i)` + bounce.VERPPrefix + `\+[a-z2-7]+@[a-z0-9.-]+`)

// verpIn is the origin of the first return path of one of the bounce
// domains in raw that decodes, the zero origin when none does.
func (in *Inbound) verpIn(raw []byte) origin {
	for _, m := range verpAddr.FindAll(raw, 16) {
		addr := strings.ToLower(string(m))
		if !in.domains[addr[strings.LastIndexByte(addr, '@')+1:]] {
			continue
		}
		if id, idx, sender, err := in.cfg.VERP.Decode(addr); err == nil {
			return origin{msgID: id, index: idx, sender: sender}
		}
	}
	return origin{}
}

func (in *Inbound) emit(o origin, c bounce.Classification) {
	rcpt := c.Recipient
	if rcpt == "" {
		rcpt = c.OriginalRecipient
	}
	ev := queue.Event{
		Time:      in.cfg.Now(),
		MsgID:     o.msgID,
		Sender:    o.sender,
		Recipient: rcpt,
		Enhanced:  c.Status,
		Text:      c.Diagnostic,
		Remote:    c.RemoteMTA,
		Class:     c.Class,
		Reason:    c.Reason,
		MessageID: c.OriginalMessageID,
	}
	if c.ReplyCode != "" {
		fmt.Sscan(c.ReplyCode, &ev.Code)
	}
	switch c.Reason {
	case "feedback":
		ev.Kind = queue.EventComplained
		ev.FeedbackType = c.FeedbackType
	case "vacation", "delivered":
		in.cfg.Logger.Info("inbound: not a failure", "reason", c.Reason, "rcpt", rcpt, "msg", o.msgID)
		return
	default:
		ev.Kind = queue.EventBounced
	}
	if in.cfg.OnEvent != nil {
		in.cfg.OnEvent(ev)
	}
}

func (s *inboundSession) reset() {
	s.tx.end(&s.in.sessions) // go-smtp resets after the reply to DATA
	s.from, s.origins = "", nil
}

func (s *inboundSession) logout() {
	s.tx.end(&s.in.sessions)
	s.in.sessions.closed(s.conn)
}
