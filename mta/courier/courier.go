// Package courier delivers queued mail over SMTP for the delivery engine
// (queue/engine): a Courier is both the engine's Planner, where every DNS
// lookup of delivery happens (resolve: routes, MX, addresses; MTA-STS
// policies; the site and limits from the shaping), and its Courier, which
// executes a plan with smtpclient and looks nothing up. Senders is the
// engine's Envelope for the configured senders (VERP, source pools).
//
// Contracts:
//
//   - Plan(dest) finds the next hops: a matching route overrides MX; an
//     address literal ("[192.0.2.1]", "[IPv6:2001:db8::1]") is used as it
//     is; otherwise the MX hosts of dest, most preferred first, with their
//     addresses (IPv4 before IPv6 per host, at most Config.MaxAddresses).
//     Open tries them in order until one gives a usable session: a
//     connect failure, a refusing (4xx/5xx) greeting or EHLO, or a TLS
//     failure in Required mode moves on to the next address.
//   - Plan and Open errors are *smtperr.Error, holding what to record for
//     every recipient of the destination: the reply that refused the
//     session (Code, Enhanced, Message, Remote) if there was one, else an
//     enhanced code for the local failure (5.1.2 NXDOMAIN or invalid
//     domain, 5.1.10 null MX, 5.4.4 no MX and no address, 4.4.4 MX hosts
//     without address, 4.4.3 DNS failure, 4.7.5 TLS failure, 4.4.1 no
//     answer) with the failure's text as Message; and the bounce Class and
//     Reason that Config.Classifier gives it. Permanent is true only when
//     DNS says the destination takes no mail: NXDOMAIN, null MX (RFC
//     7505), no MX and no address, an invalid domain. When every address
//     failed, the error is temporary and names the last failure, even if
//     that was a 5xx greeting.
//   - TLS: opportunistic by default, without certificate verification
//     (RFC 7435: MX certificates are often self-signed, expired or for
//     another name, and unauthenticated encryption beats the plain text the
//     alternative would be). Required mode verifies the certificate against
//     the MX host name unless Config.TLS says otherwise. TLS sessions are
//     resumed across connections.
//   - Deliver runs one transaction on the open session and returns one
//     Result per recipient: 2xx Delivered, 4xx Temporary, 5xx Permanent,
//     from the reply to MAIL if it was refused, else the reply to the
//     recipient's RCPT if it was refused, else the reply to DATA or to the
//     end of the data. Local failures have Code 0: "4.4.2" when the
//     connection broke (Temporary); "5.6.7" for a non-ASCII address the
//     server cannot take (no SMTPUTF8, Permanent, RFC 6531 3.2); "5.3.4"
//     when the body is larger than the server's SIZE (Permanent).
//   - MAIL parameters: BODY=8BITMIME when the body has 8-bit bytes,
//     SMTPUTF8 when an address is non-ASCII and the server offers it,
//     SIZE=, RET= and ENVID= (xtext-encoded) when set; RCPT parameters:
//     NOTIFY= and ORCPT= when set. smtpclient drops those the server did not
//     announce; a malformed NOTIFY, RET or ORCPT type is dropped too.
//     queue.Message.EnvID and queue.Recipient.ORCPT hold decoded values
//     (ORCPT as "rfc822;user@example.com", as the submission side stores
//     them); the courier encodes them (xtext, or utf-8-addr-xtext for the
//     utf-8 type, RFC 6533). An address that cannot be written into a
//     command (control characters) fails its message with "5.5.2".
//   - Deliver returns an error only when the connection can no longer be
//     used; the results still apply. A Conn is used by one goroutine at a
//     time; the Courier is safe for concurrent use.
package courier

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"drover/bounce"
	"drover/mta/mtasts"
	"drover/mta/resolve"
	"drover/mta/smtpclient"
	"drover/mta/smtperr"
	"drover/queue"
	"drover/queue/engine"
	"drover/queue/shaping"
)

// Config configures a Courier.
type Config struct {
	// Hostname is the EHLO name, before and after STARTTLS. Required.
	Hostname string
	// Resolver resolves MX hosts and addresses; nil means a default one
	// (the servers of /etc/resolv.conf).
	Resolver *resolve.Resolver
	// Routes override MX for the domains they match; nil means none.
	Routes *resolve.Routes
	// TLSMode says when to use STARTTLS; smtpclient.TLSOpportunistic by default.
	TLSMode smtpclient.TLSMode
	// TLS is the base TLS configuration, cloned for every connection with
	// ServerName set to the MX host name when empty. nil means: no
	// certificate verification in Opportunistic mode, verification
	// against the system roots in Required mode.
	TLS *tls.Config
	// Port is the port of MX hosts; default 25. Routes carry their own.
	Port int
	// Network selects address families: "ip" (default: IPv4, then IPv6),
	// "ip4" or "ip6".
	Network string
	// LocalIPv4 and LocalIPv6 are the source addresses per family; zero
	// means chosen by the system.
	LocalIPv4, LocalIPv6 netip.Addr
	// MaxAddresses bounds the connection attempts of one Open; default 5
	// (as Postfix's smtp_mx_address_limit).
	MaxAddresses int
	// Dial, when set, opens connections instead of the system's dialer
	// (see smtpclient.Config.Dial).
	Dial func(ctx context.Context, network, addr string) (net.Conn, error)
	// Timeouts of the SMTP session; see smtpclient.Config for defaults.
	ConnectTimeout, CommandTimeout, DataTimeout time.Duration
	// Classifier, when set, gives the bounce class ("hard", "soft") and
	// reason of every failed result (a *bounce.Classifier). The reply
	// carries the command it answered, the remote host and the
	// recipient, so a refusal after DATA reads as a filter and provider
	// rule sets apply.
	Classifier Classifier
	// Pools are the source addresses of each pool named by Limits.Pool,
	// used in turn; a pool not listed (and "") means the Local addresses.
	Pools map[string][]netip.Addr
	// MTASTS, when set, enforces the MTA-STS policies (RFC 8461) of
	// destinations whose Limits.TLS is "mta-sts": in enforce mode only MX
	// hosts the policy names are tried, over TLS with a certificate valid
	// for the host; testing mode violations are logged. Routed
	// destinations are not subject to it.
	MTASTS *mtasts.Cache
	// STSRoots verifies certificates for MTA-STS (nil: the system roots).
	STSRoots *x509.CertPool
	// Shaping holds the shaping in force (sites and limits), for the
	// Planner; nil means the built-in limits, every domain a site of its
	// own.
	Shaping *shaping.Current
	// Envelope is handed to the engine in every plan (return paths, source
	// pools per sender); nil: the message's return path, the shaping's pool.
	Envelope engine.Envelope
	// Logger gets debug records of connection attempts; nil discards them.
	Logger *slog.Logger
}

// Courier plans deliveries to destinations and opens SMTP sessions along
// the plans. It implements engine.Planner and engine.Courier.
type Courier struct {
	cfg      Config
	resolver *resolve.Resolver
	log      *slog.Logger
	err      error         // invalid configuration, reported by Open
	turn     atomic.Uint64 // round robin over pool addresses
}

var _ engine.Courier = (*Courier)(nil)

// New returns a Courier. An invalid Config makes every Open fail.
func New(cfg Config) *Courier {
	c := &Courier{cfg: cfg, resolver: cfg.Resolver, log: cfg.Logger}
	if c.resolver == nil {
		c.resolver = resolve.New(resolve.Config{})
	}
	if c.log == nil {
		c.log = slog.New(slog.DiscardHandler)
	}
	if c.cfg.Port == 0 {
		c.cfg.Port = 25
	}
	if c.cfg.MaxAddresses <= 0 {
		c.cfg.MaxAddresses = 5
	}
	if c.cfg.Network == "" {
		c.cfg.Network = "ip"
	}
	if c.cfg.TLS == nil {
		c.cfg.TLS = &tls.Config{
			InsecureSkipVerify: c.cfg.TLSMode == smtpclient.TLSOpportunistic,
			ClientSessionCache: tls.NewLRUClientSessionCache(0),
		}
	}
	switch {
	case c.cfg.Hostname == "":
		c.err = errors.New("courier: no EHLO hostname")
	case c.cfg.Port < 1 || c.cfg.Port > 65535:
		c.err = fmt.Errorf("courier: port %d out of range", c.cfg.Port)
	case c.cfg.Network != "ip" && c.cfg.Network != "ip4" && c.cfg.Network != "ip6":
		c.err = fmt.Errorf("courier: network %q is not ip, ip4 or ip6", c.cfg.Network)
	case c.cfg.LocalIPv4.IsValid() && !c.cfg.LocalIPv4.Is4(), c.cfg.LocalIPv6.IsValid() && !c.cfg.LocalIPv6.Is6():
		c.err = errors.New("courier: local addresses of the wrong family")
	}
	return c
}

// Open connects to the mail servers of dest along the route of plan
// (made by this courier's Planner), under its TLS mode, from the source
// pool pool. It resolves nothing: the plan holds the addresses.
func (c *Courier) Open(ctx context.Context, dest string, plan *engine.Plan, pool string) (engine.Conn, error) {
	if c.err != nil {
		return nil, c.openError(dest, "", c.err, false)
	}
	rt, ok := plan.Route.(*Route)
	if !ok {
		return nil, c.openError(dest, "", fmt.Errorf("local error: no route in the plan of %s", dest), false)
	}
	mode, ok := tlsModes[plan.Limits.TLS]
	if !ok {
		mode = c.cfg.TLSMode
	}
	enforce := rt.STS != nil && rt.STS.Mode == mtasts.Enforce
	var last error
	lastRemote := ""
	tries := 0
hosts:
	for _, h := range rt.Hops {
		if h.Err != nil {
			last, lastRemote = h.Err, h.Remote
		}
		for _, ap := range h.Addrs {
			if tries == c.cfg.MaxAddresses || ctx.Err() != nil {
				break hosts
			}
			tries++
			a := ap.Addr()
			remote := fmt.Sprintf("%s[%s]:%d", h.Host, a, ap.Port())
			cfg := c.clientConfig(h.Host, a, mode, pool)
			if enforce {
				cfg.TLSMode = smtpclient.TLSRequired
				cfg.TLS = &tls.Config{ServerName: h.Host, RootCAs: c.cfg.STSRoots, MinVersion: tls.VersionTLS12}
			}
			cl, err := smtpclient.Dial(ctx, ap.String(), cfg)
			if err != nil {
				if errors.Is(err, smtpclient.ErrTLS) {
					c.log.Warn("courier: TLS failure", "dest", dest, "remote", remote, "reason", tlsFailure(err), "err", err)
				} else {
					c.log.Debug("courier: connection failed", "dest", dest, "remote", remote, "err", err)
				}
				last, lastRemote = err, remote
				continue
			}
			if rt.STS != nil && rt.STS.Mode == mtasts.Testing {
				if v := rt.STS.Violation(h.Host, c.verified(cl, h.Host)); v != nil {
					c.log.Warn("courier: MTA-STS testing-mode violation (delivering anyway)", "dest", dest, "remote", remote, "err", v)
				}
			}
			c.log.Debug("courier: connected", "dest", dest, "remote", remote, "tls", cl.TLS())
			return &conn{courier: c, client: cl, remote: remote}, nil
		}
	}
	switch {
	case last == nil && ctx.Err() != nil:
		last = ctx.Err()
	case last == nil:
		last = fmt.Errorf("no usable address for network %s", c.cfg.Network)
	}
	return nil, c.openError(dest, lastRemote, last, false)
}

var tlsModes = map[string]smtpclient.TLSMode{
	shaping.TLSOpportunistic: smtpclient.TLSOpportunistic,
	shaping.TLSMTASTS:        smtpclient.TLSOpportunistic,
	shaping.TLSRequired:      smtpclient.TLSRequired,
	shaping.TLSDisabled:      smtpclient.TLSDisabled,
}

// verified reports whether the session runs over TLS with a certificate
// valid for host.
func (c *Courier) verified(cl *smtpclient.Client, host string) bool {
	st, ok := cl.TLSConnectionState()
	if !ok || len(st.PeerCertificates) == 0 {
		return false
	}
	opts := x509.VerifyOptions{DNSName: host, Roots: c.cfg.STSRoots, Intermediates: x509.NewCertPool()}
	for _, ic := range st.PeerCertificates[1:] {
		opts.Intermediates.AddCert(ic)
	}
	_, err := st.PeerCertificates[0].Verify(opts)
	return err == nil
}

// tlsFailure names the kind of a TLS failure for the log.
func tlsFailure(err error) string {
	var unknown x509.UnknownAuthorityError
	var name x509.HostnameError
	var invalid x509.CertificateInvalidError
	var alert tls.AlertError
	switch {
	case errors.As(err, &unknown):
		return "certificate signed by an unknown authority"
	case errors.As(err, &name):
		return "certificate not valid for the host name"
	case errors.As(err, &invalid):
		return "certificate invalid or expired"
	case errors.As(err, &alert):
		return "handshake refused by the server"
	case strings.Contains(err.Error(), "STARTTLS not offered"):
		return "STARTTLS not offered"
	case strings.Contains(err.Error(), "STARTTLS refused"):
		return "STARTTLS refused"
	}
	return "handshake failed"
}

func (c *Courier) clientConfig(host string, a netip.Addr, mode smtpclient.TLSMode, pool string) smtpclient.Config {
	tc := c.cfg.TLS.Clone()
	if tc.ServerName == "" {
		tc.ServerName = host
	}
	if mode == smtpclient.TLSRequired && c.cfg.TLSMode != smtpclient.TLSRequired {
		tc.InsecureSkipVerify = false // a site that requires TLS gets a verified certificate
	}
	cfg := smtpclient.Config{
		Hostname:       c.cfg.Hostname,
		TLSMode:        mode,
		TLS:            tc,
		ConnectTimeout: c.cfg.ConnectTimeout,
		CommandTimeout: c.cfg.CommandTimeout,
		DataTimeout:    c.cfg.DataTimeout,
		LocalAddr:      c.cfg.LocalIPv6,
		Dial:           c.cfg.Dial,
	}
	if a.Is4() {
		cfg.LocalAddr = c.cfg.LocalIPv4
	}
	if src := c.source(pool, a.Is4()); src.IsValid() {
		cfg.LocalAddr = src
	}
	return cfg
}

// source picks the next address of pool in the family of the remote.
func (c *Courier) source(pool string, v4 bool) netip.Addr {
	var fam []netip.Addr
	for _, a := range c.cfg.Pools[pool] {
		if a.Is4() == v4 {
			fam = append(fam, a)
		}
	}
	if len(fam) == 0 {
		return netip.Addr{}
	}
	return fam[c.turn.Add(1)%uint64(len(fam))]
}

// openError is the failure to reach dest, named after the last failure
// err (at remote, if a host was reached): the reply that refused the
// session, else an enhanced code for the local failure. It is temporary,
// but where err is dest's own lookup (destLookup) and DNS says dest takes
// no mail; a lookup of one of dest's hosts that failed for good is only
// 4.4.4, the destination's to fix.
func (c *Courier) openError(dest, remote string, err error, destLookup bool) *smtperr.Error {
	where := dest
	if remote != "" {
		where += ": " + remote
	}
	e := &smtperr.Error{Message: err.Error(), Remote: remote, Err: fmt.Errorf("courier: %s: %w", where, err)}
	var reply *smtpclient.Error
	lookup, isLookup := smtperr.As(err) // only resolve's errors are *smtperr.Error
	switch {
	case errors.As(err, &reply):
		e.Code, e.Enhanced, e.Message = reply.Code, reply.Enhanced, reply.Text
	case errors.Is(err, smtpclient.ErrTLS):
		e.Enhanced = "4.7.5"
	case isLookup && lookup.Permanent && destLookup:
		e.Enhanced, e.Permanent = lookup.Enhanced, true
	case isLookup && lookup.Permanent:
		e.Enhanced = "4.4.4" // MX hosts without addresses
	case isLookup:
		e.Enhanced = lookup.Enhanced // 4.4.3
	default:
		e.Enhanced = "4.4.1"
	}
	e.Class, e.Reason = c.classOf("CONN", e.Code, e.Enhanced, e.Message, e.Remote, "")
	return e
}

// classify fills the bounce class and reason of a failed result, a reply
// to cmd ("CONN", "MAIL", "RCPT", "DATA"; "" for a local failure) about
// rcpt.
func (c *Courier) classify(r *queue.Result, cmd, rcpt string) {
	if r.Status != queue.Delivered {
		r.Class, r.Reason = c.classOf(cmd, r.Code, r.Enhanced, r.Text, r.Remote, rcpt)
	}
}

// Classifier classifies failed replies; *bounce.Classifier is one.
type Classifier interface {
	Classify(bounce.Reply) bounce.Classification
}

// classOf is Config.Classifier's class and reason of a failure ("", ""
// without a classifier).
func (c *Courier) classOf(cmd string, code int, enhanced, text, remote, rcpt string) (class, reason string) {
	if c.cfg.Classifier == nil {
		return "", ""
	}
	host, _, _ := strings.Cut(remote, "[")
	cl := c.cfg.Classifier.Classify(bounce.Reply{Command: cmd, Code: code, Enhanced: enhanced, Text: text, RemoteMTA: host, Recipient: rcpt})
	return cl.Class, cl.Reason
}

// conn is one open session.
type conn struct {
	courier *Courier
	client  *smtpclient.Client
	remote  string
	// lastID and last8bit remember whether the body of the message last
	// delivered has 8-bit bytes: the recipients of a VERP message come
	// one transaction at a time, and the body is scanned once for them.
	lastID   string
	last8bit bool
}

// Deliver runs one transaction: msg from the return path from to rcpts.
func (k *conn) Deliver(ctx context.Context, msg *queue.Message, from string, rcpts []queue.Recipient, body []byte) ([]queue.Result, error) {
	if msg.ID == "" || msg.ID != k.lastID {
		k.lastID, k.last8bit = msg.ID, has8bit(body)
	}
	return k.send(ctx, msg, from, rcpts, body, k.last8bit)
}

// send runs one transaction with return path from; eightBit says whether
// body has 8-bit bytes.
func (k *conn) send(ctx context.Context, msg *queue.Message, from string, rcpts []queue.Recipient, body []byte, eightBit bool) ([]queue.Result, error) {
	results := make([]queue.Result, len(rcpts))
	cmds := make([]string, len(rcpts)) // the command each result answers
	defer func() {
		for i := range results {
			k.courier.classify(&results[i], cmds[i], rcpts[i].Addr)
		}
	}()
	if err := k.client.Err(); err != nil {
		for i := range results {
			results[i] = k.result(smtpclient.Reply{}, err)
		}
		return results, err
	}
	ext := k.client.Extensions()
	if ext.MaxSize > 0 && int64(len(body)) > ext.MaxSize {
		for i := range results {
			results[i] = k.local(queue.Permanent, "5.3.4", fmt.Sprintf("message size %d exceeds the limit %d of the server", len(body), ext.MaxSize))
		}
		return results, nil
	}
	senderUTF8 := !isASCII(from)
	if senderUTF8 && !ext.SMTPUTF8 {
		for i := range results {
			results[i] = k.local(queue.Permanent, "5.6.7", "non-ASCII sender address, and the server does not support SMTPUTF8")
		}
		return results, nil
	}

	sendIdx := make([]int, 0, len(rcpts)) // indexes of the recipients sent
	smtpRcpts := make([]smtpclient.Rcpt, 0, len(rcpts))
	needUTF8 := senderUTF8
	for i, r := range rcpts {
		if !isASCII(r.Addr) {
			if !ext.SMTPUTF8 {
				results[i] = k.local(queue.Permanent, "5.6.7", "non-ASCII recipient address, and the server does not support SMTPUTF8")
				continue
			}
			needUTF8 = true
		}
		var params []string
		if isKeyword(r.Notify, true) {
			params = append(params, "NOTIFY="+r.Notify)
		}
		if typ, _, _ := strings.Cut(r.ORCPT, ";"); r.ORCPT != "" && isKeyword(typ, false) {
			params = append(params, "ORCPT="+encodeORCPT(r.ORCPT))
		}
		sendIdx = append(sendIdx, i)
		smtpRcpts = append(smtpRcpts, smtpclient.Rcpt{Addr: r.Addr, Params: params})
	}
	if len(smtpRcpts) == 0 {
		return results, nil
	}

	params := make([]string, 0, 5)
	if eightBit {
		params = append(params, "BODY=8BITMIME")
	}
	if needUTF8 {
		params = append(params, "SMTPUTF8")
	}
	params = append(params, "SIZE="+strconv.Itoa(len(body)))
	if isKeyword(msg.Ret, false) {
		params = append(params, "RET="+msg.Ret)
	}
	if msg.EnvID != "" {
		params = append(params, "ENVID="+xtext(msg.EnvID))
	}

	res, err := k.client.Send(ctx, from, params, smtpRcpts, body)
	if errors.Is(err, smtpclient.ErrInvalidInput) {
		for _, i := range sendIdx {
			results[i] = k.local(queue.Permanent, "5.5.2", err.Error())
		}
		return results, nil
	}
	for j, i := range sendIdx {
		switch {
		case res.Mail.Code/100 != 2:
			results[i], cmds[i] = k.result(res.Mail, err), "MAIL"
		case res.Rcpts[j].Code/100 != 2:
			results[i], cmds[i] = k.result(res.Rcpts[j], err), "RCPT"
		default:
			results[i], cmds[i] = k.result(res.Data, err), "DATA"
		}
	}
	return results, k.client.Err()
}

// result maps a reply to a Result; a missing reply (Code 0) is a temporary
// failure explained by err.
func (k *conn) result(rep smtpclient.Reply, err error) queue.Result {
	if rep.Code == 0 {
		text := "no reply"
		if err != nil {
			text = err.Error()
		}
		return k.local(queue.Temporary, "4.4.2", text)
	}
	r := queue.Result{Code: rep.Code, Enhanced: rep.Enhanced, Text: rep.Text, Remote: k.remote}
	switch rep.Code / 100 {
	case 2:
		r.Status = queue.Delivered
	case 5:
		r.Status = queue.Permanent
	default:
		r.Status = queue.Temporary
	}
	return r
}

// local is a failure found on this side of the connection.
func (k *conn) local(status queue.Status, enhanced, text string) queue.Result {
	return queue.Result{Status: status, Enhanced: enhanced, Text: text, Remote: k.remote}
}

// Close ends the session with QUIT, or just closes a broken connection.
func (k *conn) Close() error {
	if k.client.Err() != nil {
		return k.client.Close()
	}
	return k.client.Quit()
}

// isKeyword reports whether s is a non-empty parameter value made of
// letters, digits and hyphens (and commas if list), as NOTIFY, RET and the
// ORCPT address type are. Values that are not are dropped rather than sent.
func isKeyword(s string, list bool) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || list && c == ',') {
			return false
		}
	}
	return true
}

func isASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= 0x80 {
			return false
		}
	}
	return true
}

func has8bit(b []byte) bool {
	// Eight bytes at a time: this runs over every body delivered.
	for len(b) >= 8 {
		if binary.LittleEndian.Uint64(b)&0x8080808080808080 != 0 {
			return true
		}
		b = b[8:]
	}
	for _, c := range b {
		if c >= 0x80 {
			return true
		}
	}
	return false
}

// xtext encodes s as RFC 3461 xtext: printable ASCII but "+" and "=" as
// is, every other byte as "+HH".
func xtext(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c > ' ' && c < 0x7f && c != '+' && c != '=' {
			b.WriteByte(c)
		} else {
			fmt.Fprintf(&b, "+%02X", c)
		}
	}
	return b.String()
}

// encodeORCPT encodes a decoded ORCPT value "addr-type;address": xtext for
// rfc822 (and unknown types), utf-8-addr-xtext for utf-8 (RFC 6533 3). A
// value without a type is an rfc822 address.
func encodeORCPT(v string) string {
	typ, addr, ok := strings.Cut(v, ";")
	if !ok {
		typ, addr = "rfc822", v
	}
	if !strings.EqualFold(typ, "utf-8") {
		return typ + ";" + xtext(addr)
	}
	var b strings.Builder
	b.WriteString(typ + ";")
	for _, r := range addr {
		switch {
		case r == utf8.RuneError:
			b.WriteString(`\x{FFFD}`)
		case r > ' ' && r < 0x7f && r != '+' && r != '=' && r != '\\':
			b.WriteRune(r)
		default:
			fmt.Fprintf(&b, `\x{%02X}`, r)
		}
	}
	return b.String()
}
