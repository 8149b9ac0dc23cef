package smtperr

import (
	"context"
	"errors"
	"fmt"
	"io"
	"testing"
)

func TestFrom(t *testing.T) {
	cause := errors.New("dial tcp 192.0.2.1:25:\n connection refused")
	refused := &Error{Code: 421, Enhanced: "4.7.0", Message: "busy", Remote: "mx[192.0.2.1]:25", Err: cause}
	bare := &Error{Enhanced: "5.1.2", Permanent: true, Err: cause}
	tests := []struct {
		name string
		err  error
		want Error
	}{
		{"plain error: temporary, its text", io.ErrUnexpectedEOF, Error{Message: "unexpected EOF", Err: io.ErrUnexpectedEOF}},
		{"context error: temporary", context.DeadlineExceeded, Error{Message: "context deadline exceeded", Err: context.DeadlineExceeded}},
		{"an Error as it is", refused, *refused},
		{"a wrapped Error", fmt.Errorf("courier: %w", refused), *refused},
		{"an Error without message: the text on one line", bare, Error{Enhanced: "5.1.2", Permanent: true, Message: "dial tcp 192.0.2.1:25: connection refused", Err: cause}},
	}
	for _, tt := range tests {
		got := From(tt.err)
		if *got != tt.want {
			t.Errorf("%s: From = %+v, want %+v", tt.name, *got, tt.want)
		}
	}
	if From(nil) != nil {
		t.Error("From(nil) is not nil")
	}
	if bare.Message != "" {
		t.Error("From changed the error it was given")
	}
}

func TestConstructors(t *testing.T) {
	tests := []struct {
		got  *Error
		want Error
	}{
		{Temporary(421, "4.3.2", "shutting down"), Error{Code: 421, Enhanced: "4.3.2", Message: "shutting down"}},
		{Permanent(530, "5.7.0", "authentication required"), Error{Code: 530, Enhanced: "5.7.0", Message: "authentication required", Permanent: true}},
		{Temporaryf(452, "4.5.3", "at most %d", 2), Error{Code: 452, Enhanced: "4.5.3", Message: "at most 2"}},
		{Permanentf(550, "5.7.1", "may not send as %s", "a@b"), Error{Code: 550, Enhanced: "5.7.1", Message: "may not send as a@b", Permanent: true}},
	}
	for _, tt := range tests {
		if *tt.got != tt.want {
			t.Errorf("got %+v, want %+v", *tt.got, tt.want)
		}
	}
}

func TestErrorText(t *testing.T) {
	cause := errors.New("resolve: x.test: no such domain")
	tests := []struct {
		err  *Error
		want string
	}{
		{Permanent(550, "5.1.1", "no such user"), "550 5.1.1 no such user"},
		{&Error{Enhanced: "4.4.1", Message: "no answer"}, "4.4.1 no answer"},
		{&Error{Code: 421}, "421"},
		{&Error{}, "unspecified SMTP error"},
		{&Error{Code: 550, Message: "shown", Err: cause}, cause.Error()},
	}
	for _, tt := range tests {
		if got := tt.err.Error(); got != tt.want {
			t.Errorf("%+v: Error() = %q, want %q", *tt.err, got, tt.want)
		}
	}
	if e, ok := As(fmt.Errorf("x: %w", &Error{Code: 451})); !ok || e.Code != 451 {
		t.Errorf("As: %v %v", e, ok)
	}
	if _, ok := As(cause); ok {
		t.Error("As found an Error in a plain error")
	}
}
