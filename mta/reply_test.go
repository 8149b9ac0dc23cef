package mta

import (
	"errors"
	"fmt"
	"io"
	"testing"

	"github.com/emersion/go-smtp"

	"drover/mta/smtperr"
)

func TestSMTPReply(t *testing.T) {
	secret := errors.New("pebble: disk full at /var/lib/drover")
	tests := []struct {
		err  error
		want *smtp.SMTPError
	}{
		{smtperr.Permanentf(550, "5.7.1", "Sender %s may not send from <%s>", "shop", "a@b.test"),
			&smtp.SMTPError{Code: 550, EnhancedCode: smtp.EnhancedCode{5, 7, 1}, Message: "Sender shop may not send from <a@b.test>"}},
		{smtperr.Permanent(538, "5.7.11", "Encryption required"),
			&smtp.SMTPError{Code: 538, EnhancedCode: smtp.EnhancedCode{5, 7, 11}, Message: "Encryption required"}},
		// The cause is never shown.
		{&smtperr.Error{Code: 451, Enhanced: "4.3.0", Message: "try again later", Err: secret},
			&smtp.SMTPError{Code: 451, EnhancedCode: smtp.EnhancedCode{4, 3, 0}, Message: "try again later"}},
		{fmt.Errorf("wrapped: %w", smtperr.Temporary(421, "4.3.2", "shutting down")),
			&smtp.SMTPError{Code: 421, EnhancedCode: smtp.EnhancedCode{4, 3, 2}, Message: "shutting down"}},
		// No (or a malformed) enhanced code: go-smtp's X.0.0.
		{smtperr.Temporary(451, "", "later"), &smtp.SMTPError{Code: 451, EnhancedCode: smtp.EnhancedCode{}, Message: "later"}},
		{smtperr.Temporary(451, "4.x.1", "later"), &smtp.SMTPError{Code: 451, EnhancedCode: smtp.EnhancedCode{}, Message: "later"}},
		{smtperr.Temporary(451, "4.1", "later"), &smtp.SMTPError{Code: 451, EnhancedCode: smtp.EnhancedCode{}, Message: "later"}},
	}
	for _, tt := range tests {
		got, ok := smtpReply(tt.err).(*smtp.SMTPError)
		if !ok || *got != *tt.want {
			t.Errorf("smtpReply(%v) = %#v, want %#v", tt.err, got, tt.want)
		}
	}
	// Other errors are go-smtp's to answer, unchanged.
	for _, err := range []error{nil, io.ErrUnexpectedEOF, smtp.ErrAuthUnknownMechanism} {
		if got := smtpReply(err); got != err {
			t.Errorf("smtpReply(%v) = %v", err, got)
		}
	}
}
