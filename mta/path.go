package mta

import (
	"errors"
	"strings"

	"drover/mta/address"
	"drover/mta/smtperr"
)

// badPath is the refusal of a path that address.Parse refused: 553 with
// enhanced (5.1.7 for MAIL, 5.1.3 for RCPT), or 553 5.6.7 (RFC 6531) for
// a non-ASCII address without SMTPUTF8. The reply quotes the address as
// the client gave it and says what is wrong.
func badPath(err error, given, role, enhanced string) error {
	if errors.Is(err, address.ErrNeedSMTPUTF8) {
		return smtperr.Permanentf(553, "5.6.7", "Non-ASCII %s address <%s> not permitted without SMTPUTF8", role, echoPath(given))
	}
	return smtperr.Permanentf(553, enhanced, "Bad %s address <%s>: %s", role, echoPath(given), err.Error())
}

// echoPath makes a client's path safe to quote in a one-line reply:
// control characters become '?', and a path longer than any valid one
// is cut.
func echoPath(s string) string { return echo(s, address.MaxPath) }

// echo is s with control characters (and invalid UTF-8) as '?', cut
// after max bytes.
func echo(s string, max int) string {
	cut := len(s) > max
	if cut {
		s = s[:max]
	}
	s = strings.Map(func(r rune) rune {
		if r < 32 || r == 127 {
			return '?'
		}
		return r
	}, strings.ToValidUTF8(s, "?"))
	if cut {
		s += "..."
	}
	return s
}
