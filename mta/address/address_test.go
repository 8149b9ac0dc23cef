package address

import (
	"errors"
	"strings"
	"testing"
)

var (
	label63 = strings.Repeat("a", 63)
	label64 = strings.Repeat("a", 64)
	local64 = strings.Repeat("l", 64)
	local65 = strings.Repeat("l", 65)
	// A 254-octet mailbox makes a 256-octet path.
	domain252 = strings.Repeat(label63+".", 3) + strings.Repeat("b", 60) // 252 octets
)

func TestParse(t *testing.T) {
	cases := []struct {
		in   string
		utf8 bool
		want string // canonical form; "" when an error is wanted
		err  string // part of the error text
	}{
		// Good addresses.
		{in: "user@example.com", want: "user@example.com"},
		{in: "User.Name@Example.COM", want: "User.Name@example.com"},
		{in: "user+tag@example.com", want: "user+tag@example.com"},
		{in: "user+tag+more@sub.example.co.uk", want: "user+tag+more@sub.example.co.uk"},
		{in: "first.middle.last@example.org", want: "first.middle.last@example.org"},
		{in: "o'brien@example.ie", want: "o'brien@example.ie"},
		{in: "!#$%&'*+-/=?^_`{|}~@example.com", want: "!#$%&'*+-/=?^_`{|}~@example.com"},
		{in: "x@a.b", want: "x@a.b"},
		{in: "postmaster@localhost", want: "postmaster@localhost"},
		{in: "user@123.example", want: "user@123.example"},
		{in: "user@a-b--c.example", want: "user@a-b--c.example"},
		{in: "user@xn--bcher-kva.example", want: "user@xn--bcher-kva.example"},
		{in: `"q x"@example.net`, want: `"q x"@example.net`},
		{in: `"john..doe"@example.com`, want: `"john..doe"@example.com`},
		{in: `".dot"@example.com`, want: `".dot"@example.com`},
		{in: `"say \"hi\""@example.com`, want: `"say \"hi\""@example.com`},
		{in: `"back\\slash"@example.com`, want: `"back\\slash"@example.com`},
		{in: `"a@b"@example.com`, want: `"a@b"@example.com`},
		{in: `"plain"@example.com`, want: "plain@example.com"},
		{in: `"\p\l\a\i\n"@example.com`, want: "plain@example.com"},
		{in: `""@example.com`, want: `""@example.com`},
		{in: "user@[192.0.2.1]", want: "user@[192.0.2.1]"},
		{in: "user@[192.000.002.001]", want: "user@[192.0.2.1]"},
		{in: "user@[IPv6:2001:db8::1]", want: "user@[IPv6:2001:db8::1]"},
		{in: "user@[ipv6:2001:DB8:0:0:0:0:0:1]", want: "user@[IPv6:2001:db8::1]"},
		{in: "user@[IPv6:::ffff:192.0.2.1]", want: "user@[IPv6:::ffff:192.0.2.1]"},
		{in: "user@[x-tag:some-content]", want: "user@[x-tag:some-content]"},
		{in: "user@" + label63 + ".example", want: "user@" + label63 + ".example"},
		{in: local64 + "@example.com", want: local64 + "@example.com"},
		{in: "u@" + domain252, want: "u@" + domain252},
		{in: "user@bücher.example", utf8: true, want: "user@bücher.example"},
		{in: "user@BÜCHER.example", utf8: true, want: "user@bücher.example"},
		{in: "pelé@example.com", utf8: true, want: "pelé@example.com"},
		{in: "用户@例子.广告", utf8: true, want: "用户@例子.广告"},
		{in: `"δοκιμή x"@παράδειγμα.δοκιμή`, utf8: true, want: `"δοκιμή x"@παράδειγμα.δοκιμή`},
		{in: "user@xn--bcher-kva.bücher.example", utf8: true, want: "user@bücher.bücher.example"},

		// Bad addresses.
		{in: "", err: "empty address"},
		{in: "app@@example.com", err: "two @"},
		{in: "a@b@example.com", err: "two @"},
		{in: `"x"@b@example.com`, err: "two @"},
		{in: "userexample.com", err: "no @"},
		{in: "user@", err: "missing domain"},
		{in: "@example.com", err: "empty local part"},
		{in: "user@example..net", err: "empty label in domain"},
		{in: "user@example.net.", err: "domain ends with a dot"},
		{in: "user@.example.net", err: "domain starts with a dot"},
		{in: "user@-bad-.net", err: "label starts with a hyphen"},
		{in: "user@bad-.net", err: "label ends with a hyphen"},
		{in: "user@exa_mple.net", err: "character '_' in domain"},
		{in: "user@" + label64 + ".example", err: "label longer than 63 octets"},
		{in: local65 + "@example.com", err: "local part longer than 64 octets"},
		{in: `"` + local64 + `"@example.com`, err: "local part longer than 64 octets"},
		{in: "uu@" + domain252, err: "path longer than 256 octets"},
		{in: "u@" + strings.Repeat("a.", 128) + "b", err: "path longer than 256 octets"},
		{in: "john..doe@example.com", err: "two dots in a row in local part"},
		{in: ".user@example.com", err: "local part starts with a dot"},
		{in: "user.@example.com", err: "local part ends with a dot"},
		{in: "q x@example.net", err: "space in local part must be quoted"},
		{in: "a(b)@example.net", err: "character '(' in local part must be quoted"},
		{in: "a\"b@example.net", err: `character '"' in local part must be quoted`},
		{in: "user@exa mple.net", err: "space in domain"},
		{in: "us\ter@example.net", err: "tab in local part"},
		{in: "us\x00er@example.net", err: "control character 0x00 in local part"},
		{in: "user\r@example.net", err: "carriage return in local part"},
		{in: "user@example.net\r", err: "carriage return in domain"},
		{in: "user\n@example.net", err: "line feed in local part"},
		{in: "\"a\rb\"@example.net", err: "carriage return in local part"},
		{in: "\"a\\\nb\"@example.net", err: "line feed after a backslash in local part"},
		{in: `"unterminated@example.net`, err: "unterminated quoted string"},
		{in: `"a"b@example.net`, err: "quoted string must be the whole local part"},
		{in: `"a"`, err: "no @ after the local part"},
		{in: "user@[192.0.2.256]", err: "malformed IPv4 address literal"},
		{in: "user@[192.0.2]", err: "malformed IPv4 address literal"},
		{in: "user@[IPv6:2001:db8::g]", err: "malformed IPv6 address literal"},
		{in: "user@[IPv6:1:2:3:4:5:6:7::]", err: "malformed IPv6 address literal"},
		{in: "user@[IPv6:fe80::1%eth0]", err: "malformed IPv6 address literal"},
		{in: "user@[IPv6:192.0.2.1]", err: "malformed IPv6 address literal"},
		{in: "user@[192.0.2.1", err: "unterminated address literal"},
		{in: "user@[]", err: "empty address literal"},
		{in: "user@[tag:a\\b]", err: `character '\\' in address literal`},
		{in: "pelé@example.com", err: "needs SMTPUTF8"},
		{in: "user@bücher.example", err: "needs SMTPUTF8"},
		{in: `"pelé"@example.com`, err: "needs SMTPUTF8"},
		{in: "user@xn--a.example", utf8: true, want: "user@xn--a.example"}, // ASCII labels are LDH-checked only
		{in: "user@bü-.example", utf8: true, err: "invalid internationalized domain name"},
		{in: "user@a\u200db.example", utf8: true, err: "invalid internationalized domain name"},
		{in: "user@" + strings.Repeat("ü", 60) + ".example", utf8: true, err: "label longer than 63 octets as an A-label"},
		{in: "user@exa\xffmple.com", utf8: true, err: "invalid UTF-8"},
		{in: "us\xc3er@example.com", err: "invalid UTF-8"},
	}
	for _, tc := range cases {
		a, err := Parse(tc.in, tc.utf8)
		if tc.err != "" {
			if err == nil {
				t.Errorf("Parse(%q, %v) = %q, want error %q", tc.in, tc.utf8, a, tc.err)
			} else if !strings.Contains(err.Error(), tc.err) {
				t.Errorf("Parse(%q, %v): error %q, want %q", tc.in, tc.utf8, err, tc.err)
			}
			continue
		}
		if err != nil {
			t.Errorf("Parse(%q, %v): %v", tc.in, tc.utf8, err)
			continue
		}
		if got := a.String(); got != tc.want {
			t.Errorf("Parse(%q, %v) = %q, want %q", tc.in, tc.utf8, got, tc.want)
		}
	}
}

func TestParts(t *testing.T) {
	a, err := Parse(`"say \"hi\""@Bücher.Example`, true)
	if err != nil {
		t.Fatal(err)
	}
	if a.Local != `say "hi"` || a.Domain != "bücher.example" || a.ASCIIDomain() != "xn--bcher-kva.example" {
		t.Errorf("got %#v, ASCII domain %q", a, a.ASCIIDomain())
	}
	if _, err := Parse("pelé@example.com", false); !errors.Is(err, ErrNeedSMTPUTF8) {
		t.Errorf("non-ASCII without SMTPUTF8: %v, want ErrNeedSMTPUTF8", err)
	}
	if _, err := Parse("pe lé@example.com", false); errors.Is(err, ErrNeedSMTPUTF8) {
		t.Errorf("an address bad under SMTPUTF8 too: %v, want no ErrNeedSMTPUTF8", err)
	}
	var ae *Error
	if _, err := Parse("a@@b", false); !errors.As(err, &ae) {
		t.Errorf("error %T is not an *Error", err)
	}
	if b, _ := Parse("u@[1.2.3.4]", false); !b.IsLiteral() {
		t.Error("address literal not reported")
	}
}

func FuzzParse(f *testing.F) {
	for _, s := range []string{
		"user@example.com", "user+tag@example.com", `"q x"@example.net`, `"a\"b\\c"@x`, `""@x`,
		"app@@example.com", "user@example..net", "user@-bad-.net", "user@[192.0.2.1]",
		"user@[IPv6:2001:db8::1]", "user@[IPv6:::ffff:1.2.3.4]", "u@[x:y]", "pelé@bücher.example",
		"user@xn--bcher-kva.example", "a@b。c", "user@ＥＸＡＭＰＬＥ.com", "a\r\n@b", local64 + "@" + domain252,
	} {
		f.Add(s, false)
		f.Add(s, true)
	}
	f.Fuzz(func(t *testing.T, s string, utf8 bool) {
		a, err := Parse(s, utf8)
		if err != nil {
			if a != (Address{}) {
				t.Errorf("Parse(%q) failed (%v) but returned %#v", s, err, a)
			}
			return
		}
		c := a.String()
		if len(c)+2 > MaxPath {
			t.Errorf("canonical %q of %q makes a path over %d octets", c, s, MaxPath)
		}
		b, err := Parse(c, utf8)
		if err != nil {
			t.Fatalf("Parse(%q) = %q, which does not parse: %v", s, c, err)
		}
		if b != a {
			t.Fatalf("Parse(%q) = %#v; its String %q parses to %#v", s, a, c, b)
		}
		if !utf8 {
			for i := 0; i < len(c); i++ {
				if c[i] >= 0x80 {
					t.Fatalf("Parse(%q, false) = %q, not ASCII", s, c)
				}
			}
		}
	})
}
