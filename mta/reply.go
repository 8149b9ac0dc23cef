package mta

import (
	"io"
	"strconv"
	"strings"

	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"

	"drover/mta/smtperr"
)

// The listeners' sessions refuse (and, for DATA, accept) with an
// *smtperr.Error, like the rest of Drover. go-smtp takes a reply only from
// an *smtp.SMTPError, which it finds by type assertion, not errors.As.
// goSession is the boundary between the two: go-smtp drives a session only
// through it, and every error a session returns to go-smtp goes through
// smtpReply, the one place where one type becomes the other. The sessions'
// own methods are unexported, so the compiler keeps them behind it.

// transaction is a listener session as goSession drives it.
type transaction interface {
	mail(from string, opts *smtp.MailOptions) error
	rcpt(to string, opts *smtp.RcptOptions) error
	startData() error // at the DATA command, before the 354 reply
	data(r io.Reader) error
	reset()
	logout()
	// rejected records a refusal of MAIL, RCPT or DATA (cmd), whose
	// argument (the path, "" for DATA) was arg: the reply is e.
	rejected(cmd, arg string, e *smtperr.Error)
}

// authenticator is a transaction that offers AUTH.
type authenticator interface {
	transaction
	authMechanisms() []string
	auth(mech string) (sasl.Server, error)
}

// goSession is a transaction as a go-smtp session.
type goSession struct{ t transaction }

func (g goSession) Mail(from string, opts *smtp.MailOptions) error {
	return g.reply("MAIL", from, g.t.mail(from, opts))
}

func (g goSession) Rcpt(to string, opts *smtp.RcptOptions) error {
	return g.reply("RCPT", to, g.t.rcpt(to, opts))
}

func (g goSession) StartData() error       { return g.reply("DATA", "", g.t.startData()) }
func (g goSession) Data(r io.Reader) error { return g.reply("DATA", "", g.t.data(r)) }
func (g goSession) Reset()                 { g.t.reset() }
func (g goSession) Logout() error          { g.t.logout(); return nil }

// reply is smtpReply, after telling the session of a refusal: a reply
// of 400 or more that the session set (go-smtp's own refusals, such as a
// malformed command, never reach the session).
func (g goSession) reply(cmd, arg string, err error) error {
	if e, ok := smtperr.As(err); ok && e.Code >= 400 {
		g.t.rejected(cmd, arg, e)
	}
	return smtpReply(err)
}

// goAuthSession is an authenticator as a go-smtp session with AUTH.
type goAuthSession struct {
	goSession
	a authenticator
}

func newGoAuthSession(a authenticator) goAuthSession { return goAuthSession{goSession{a}, a} }

func (g goAuthSession) AuthMechanisms() []string { return g.a.authMechanisms() }

func (g goAuthSession) Auth(mech string) (sasl.Server, error) {
	srv, err := g.a.auth(mech)
	if err != nil {
		return nil, smtpReply(err)
	}
	return goSASL{srv}, nil
}

// goSASL passes the refusals of a SASL exchange (bad credentials) to
// go-smtp as replies.
type goSASL struct{ s sasl.Server }

func (g goSASL) Next(response []byte) ([]byte, bool, error) {
	challenge, done, err := g.s.Next(response)
	return challenge, done, smtpReply(err)
}

var (
	_ smtp.Session     = goSession{}
	_ smtp.AuthSession = goAuthSession{}
)

// smtpReply turns an *smtperr.Error (in err's chain) into the
// *smtp.SMTPError go-smtp answers with: its code, enhanced code and
// message, never its cause. Other errors pass unchanged: go-smtp's own
// (smtp.ErrAuthUnknownMechanism, ...) and those go-smtp answers itself (a
// failed read of DATA, a malformed SASL response).
func smtpReply(err error) error {
	e, ok := smtperr.As(err)
	if !ok {
		return err
	}
	return &smtp.SMTPError{Code: e.Code, EnhancedCode: enhancedCode(e.Enhanced), Message: e.Message}
}

// enhancedCode parses "5.7.1"; anything else (and "") is
// smtp.EnhancedCodeNotSet, which go-smtp sends as X.0.0.
func enhancedCode(s string) smtp.EnhancedCode {
	var c smtp.EnhancedCode
	parts := strings.Split(s, ".")
	if len(parts) != 3 {
		return smtp.EnhancedCodeNotSet
	}
	for i, p := range parts {
		n, err := strconv.Atoi(p)
		if err != nil || n < 0 || n > 999 || len(p) > 3 {
			return smtp.EnhancedCodeNotSet
		}
		c[i] = n
	}
	return c
}
