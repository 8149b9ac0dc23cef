// Package smtperr is Drover's one error type for SMTP outcomes: a refusal
// the submission or inbound listener answers a client with, a failure to
// reach a destination that the delivery engine records for its
// recipients, a DNS lookup that failed. An *Error carries the reply code,
// the enhanced status code (RFC 3463), a message safe to show, whether
// the failure is permanent, and its cause for logs.
//
// Contracts:
//
//   - Temporary unless proven permanent: the zero Error is temporary, and
//     From maps every error that is not an *Error to a temporary one.
//     Permanent is never inferred from Code: a 5xx greeting from one of a
//     destination's hosts does not make the destination fail for good.
//   - Message is one line that may be shown to an SMTP client or put in a
//     DSN or an event; it holds only what its maker put there. Err, the
//     cause, is never shown: Error() (for logs) is the cause's text when
//     there is one, else the reply as it would read on the wire.
//   - Class and Reason are the bounce classification of a failure, set by
//     whoever classified it (the courier, with the bounce classifier);
//     empty otherwise.
//   - The package imports nothing of Drover's, so every layer that speaks
//     SMTP can share it without an import cycle: the listeners (which turn
//     it into go-smtp's *smtp.SMTPError at their boundary), resolve, the
//     courier, and the delivery engine, for which it is part of mta's
//     contract (the engine may import mta's interfaces, not its
//     machinery).
package smtperr

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// Error is the outcome of an SMTP exchange, or of the local work around
// one, that did not succeed (or, at a listener, the reply to send).
type Error struct {
	Code      int    // SMTP reply code; 0 for a failure without a reply (DNS, connect)
	Enhanced  string // enhanced status code such as "5.1.1"; "" if none
	Message   string // safe to show a client or put in a DSN; one line
	Permanent bool   // a later attempt will fail the same way
	Remote    string // the remote host that answered or was tried last, "host[ip]:port"; "" if none
	Class     string // bounce class of a failure ("hard", "soft"); "" if not classified
	Reason    string // bounce reason (userunknown, mailboxfull, ...); "" if not classified
	Err       error  // the cause, for logs and errors.Is; never shown
}

// Temporary returns a temporary error with the reply code, enhanced code
// and message.
func Temporary(code int, enhanced, message string) *Error {
	return &Error{Code: code, Enhanced: enhanced, Message: message}
}

// Permanent returns a permanent error with the reply code, enhanced code
// and message.
func Permanent(code int, enhanced, message string) *Error {
	return &Error{Code: code, Enhanced: enhanced, Message: message, Permanent: true}
}

// Temporaryf is Temporary with a message formatted as fmt.Sprintf does.
// The message is shown: format no cause into it.
func Temporaryf(code int, enhanced, format string, args ...any) *Error {
	return Temporary(code, enhanced, fmt.Sprintf(format, args...))
}

// Permanentf is Permanent with a message formatted as fmt.Sprintf does.
// The message is shown: format no cause into it.
func Permanentf(code int, enhanced, format string, args ...any) *Error {
	return Permanent(code, enhanced, fmt.Sprintf(format, args...))
}

// As returns the first *Error in err's chain.
func As(err error) (*Error, bool) {
	var e *Error
	ok := errors.As(err, &e)
	return e, ok
}

// From maps any error to an *Error: the first one in err's chain, else a
// temporary one caused by err. Where there is no message, the message is
// err's text on one line (the only words there are for the failure).
// From(nil) is nil. The *Error in err's chain is returned as it is when it
// has a message, else copied.
func From(err error) *Error {
	if err == nil {
		return nil
	}
	e, ok := As(err)
	if !ok {
		return &Error{Message: oneLine(err.Error()), Err: err}
	}
	if e.Message == "" {
		c := *e
		c.Message = oneLine(err.Error())
		e = &c
	}
	return e
}

// Error is the cause's text when there is a cause, else the reply as it
// would read on the wire: code, enhanced code, message.
func (e *Error) Error() string {
	if e.Err != nil {
		return e.Err.Error()
	}
	var parts []string
	if e.Code != 0 {
		parts = append(parts, strconv.Itoa(e.Code))
	}
	if e.Enhanced != "" {
		parts = append(parts, e.Enhanced)
	}
	if e.Message != "" {
		parts = append(parts, e.Message)
	}
	if len(parts) == 0 {
		return "unspecified SMTP error"
	}
	return strings.Join(parts, " ")
}

// Unwrap returns the cause.
func (e *Error) Unwrap() error { return e.Err }

func oneLine(s string) string { return strings.Join(strings.Fields(s), " ") }
