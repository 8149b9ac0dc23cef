package resolve

import (
	"errors"
	"strings"
	"testing"
)

func TestRoutesLookup(t *testing.T) {
	rs, err := NewRoutes(map[string]string{
		"*":               "smarthost.example.net",
		"*.test":          "[192.0.2.1]:2526",
		"*.deep.test":     "[2001:db8::25]",
		"exact.deep.test": "Relay.Example.NET:587",
		"deep.test":       "192.0.2.3",
		"Bücher.example":  "[192.0.2.4]",
	})
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct{ domain, target string }{
		{"exact.deep.test", "relay.example.net:587"},
		{"EXACT.deep.test.", "relay.example.net:587"},
		{"a.exact.deep.test", "[2001:db8::25]:25"},
		{"x.deep.test", "[2001:db8::25]:25"},
		{"deep.test", "192.0.2.3:25"},
		{"other.test", "192.0.2.1:2526"},
		{"a.b.c.test", "192.0.2.1:2526"},
		{"test", "smarthost.example.net:25"}, // "*.test" does not match "test"
		{"example.com", "smarthost.example.net:25"},
		{"bücher.example", "192.0.2.4:25"},
		{"xn--bcher-kva.example", "192.0.2.4:25"},
	}
	for _, tt := range tests {
		if got, ok := rs.Lookup(tt.domain); !ok || got != tt.target {
			t.Errorf("Lookup(%q) = %q, %v; want %q", tt.domain, got, ok, tt.target)
		}
	}

	rs, err = NewRoutes(map[string]string{"*.test": "h"})
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range []string{"test", "example.com", "xtest", ""} {
		if got, ok := rs.Lookup(d); ok {
			t.Errorf("Lookup(%q) = %q", d, got)
		}
	}
	// Postfix's bracketed relay host.
	rs, err = NewRoutes(map[string]string{"*": "[smtp.relay.example]:587"})
	if got, ok := rs.Lookup("example.com"); err != nil || !ok || got != "smtp.relay.example:587" {
		t.Errorf("[smtp.relay.example]:587 routes to %q %v (%v)", got, ok, err)
	}
	var none *Routes
	if _, ok := none.Lookup("example.com"); ok {
		t.Error("nil Routes matched")
	}
}

func TestRouteValidation(t *testing.T) {
	tests := []struct {
		route [2]string // pattern, target
		want  string    // part of the error, "" for valid
	}{
		{[2]string{"example.com", "mx.example.net"}, ""},
		{[2]string{"example.com.", "mx.example.net:25"}, ""},
		{[2]string{"*.example.com", "[192.0.2.1]"}, ""},
		{[2]string{"*", "[::1]:2525"}, ""},
		{[2]string{"example.com", "192.0.2.1:25"}, ""},
		{[2]string{"", "h"}, "not a domain"},
		{[2]string{"*.", "h"}, "not a domain"},
		{[2]string{"**", "h"}, "wildcard"},
		{[2]string{"a.*.com", "h"}, "wildcard"},
		{[2]string{"*foo.com", "h"}, "wildcard"},
		{[2]string{"exa mple.com", "h"}, "not a domain"},
		{[2]string{"example.com", ""}, "empty"},
		{[2]string{"example.com", "[mx.example.net]"}, ""},
		{[2]string{"*", "[smtp.relay.example]:587"}, ""},
		{[2]string{"example.com", "[a b]"}, "IP address or a host name"},
		{[2]string{"example.com", "[192.0.2.1"}, "closing bracket"},
		{[2]string{"example.com", "[192.0.2.1]25"}, ":port"},
		{[2]string{"example.com", "2001:db8::1"}, "brackets"},
		{[2]string{"example.com", "h:0"}, "port"},
		{[2]string{"example.com", "h:65536"}, "port"},
		{[2]string{"example.com", "h:smtp"}, "port"},
		{[2]string{"example.com", "h:"}, "port"},
		{[2]string{"example.com", "bad host:25"}, "host name"},
	}
	for _, tt := range tests {
		_, err := NewRoutes(map[string]string{tt.route[0]: tt.route[1]})
		switch {
		case tt.want == "" && err != nil:
			t.Errorf("%q: %v", tt.route, err)
		case tt.want != "" && (err == nil || !errors.Is(err, ErrInvalidRoute) || !strings.Contains(err.Error(), tt.want)):
			t.Errorf("%q: error %v, want one about %q", tt.route, err, tt.want)
		}
	}

	// Every bad route, in pattern order, each a *RouteError naming its
	// pattern as given.
	_, err := NewRoutes(map[string]string{"a.com": "h", "A.com.": "h2", "b.com": "[a b]", "c.com": "h"})
	joined, ok := err.(interface{ Unwrap() []error })
	if !ok {
		t.Fatalf("NewRoutes: %T %v is not a joined error", err, err)
	}
	want := []RouteError{
		{Pattern: "a.com", Msg: `the same pattern as "A.com."`},
		{Pattern: "b.com", Msg: `target "[a b]": brackets must hold an IP address or a host name`},
	}
	got := joined.Unwrap()
	if len(got) != len(want) {
		t.Fatalf("NewRoutes: %v", err)
	}
	for i, e := range got {
		var re *RouteError
		if !errors.As(e, &re) || *re != want[i] || !errors.Is(e, ErrInvalidRoute) {
			t.Errorf("error %d = %#v, want %+v", i, e, want[i])
		}
	}
	if s := got[1].Error(); s != `invalid route "b.com": target "[a b]": brackets must hold an IP address or a host name` {
		t.Errorf("Error() = %q", s)
	}
}
