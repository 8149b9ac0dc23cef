package mtasts

import (
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

func TestParsePolicySamples(t *testing.T) {
	tests := []struct {
		file   string
		mode   Mode
		mx     []string
		maxAge time.Duration
	}{
		{"gmail.txt", Enforce, []string{"gmail-smtp-in.l.google.com", "*.gmail-smtp-in.l.google.com"}, 24 * time.Hour},
		{"outlook.txt", Enforce, []string{"*.mail.protection.outlook.com"}, 7 * 24 * time.Hour},
		{"crlf-any-order.txt", Testing, []string{"mail.example.com", "*.example.net"}, 31557600 * time.Second},
		{"none-no-final-newline.txt", None, nil, 0},
		{"blank-lines.txt", Enforce, []string{"mx1.example.org"}, 7 * 24 * time.Hour},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			body, err := os.ReadFile(filepath.Join("testdata", "policies", tt.file))
			if err != nil {
				t.Fatal(err)
			}
			p, err := ParsePolicy(body)
			if err != nil {
				t.Fatalf("ParsePolicy: %v", err)
			}
			if p.Mode != tt.mode || !reflect.DeepEqual(p.MX, tt.mx) || p.MaxAge != tt.maxAge {
				t.Errorf("got mode %q mx %q max_age %v, want %q %q %v", p.Mode, p.MX, p.MaxAge, tt.mode, tt.mx, tt.maxAge)
			}
		})
	}
}

func TestParsePolicyErrors(t *testing.T) {
	const ok = "version: STSv1\nmode: enforce\nmx: mx.example.com\nmax_age: 86400\n"
	tests := []struct {
		name, body, want string
	}{
		{"empty", "", "no version"},
		{"no version", "mode: enforce\nmx: a.example\nmax_age: 1\n", "no version"},
		{"no mode", "version: STSv1\nmx: a.example\nmax_age: 1\n", "no mode"},
		{"no max_age", "version: STSv1\nmode: enforce\nmx: a.example\n", "no max_age"},
		{"enforce without mx", "version: STSv1\nmode: enforce\nmax_age: 1\n", "mode enforce without mx"},
		{"testing without mx", "version: STSv1\nmode: testing\nmax_age: 1\n", "mode testing without mx"},
		{"version 2", strings.Replace(ok, "STSv1", "STSv2", 1), `line 1: version "STSv2" is not STSv1`},
		{"version case", strings.Replace(ok, "STSv1", "stsv1", 1), "is not STSv1"},
		{"key case", strings.Replace(ok, "version", "Version", 1), "no version"},
		{"unknown mode", strings.Replace(ok, "enforce", "reject", 1), `line 2: mode "reject" is not enforce, testing or none`},
		{"mode case", strings.Replace(ok, "enforce", "Enforce", 1), "is not enforce"},
		{"repeated mode", ok + "mode: testing\n", "line 5: mode repeated"},
		{"repeated version", ok + "version: STSv1\n", "version repeated"},
		{"repeated max_age", ok + "max_age: 5\n", "max_age repeated"},
		{"max_age too large", strings.Replace(ok, "86400", "31557601", 1), "over the maximum"},
		{"max_age negative", strings.Replace(ok, "86400", "-1", 1), "not a number"},
		{"max_age empty", strings.Replace(ok, "86400", "", 1), "not a number"},
		{"max_age 11 digits", strings.Replace(ok, "86400", "00000000001", 1), "not a number"},
		{"max_age with unit", strings.Replace(ok, "86400", "86400s", 1), "not a number"},
		{"no colon", ok + "garbage\n", `line 5: no colon in "garbage"`},
		{"space before colon", strings.Replace(ok, "mode:", "mode :", 1), `field name "mode " is invalid`},
		{"leading space", strings.Replace(ok, "mode:", " mode:", 1), "is invalid"},
		{"bare CR inside", strings.Replace(ok, "enforce", "enf\rorce", 1), "is not enforce"},
		{"mx double wildcard", ok + "mx: *.*.example.com\n", "not a host name"},
		{"mx inner wildcard", ok + "mx: mx.*.example.com\n", "not a host name"},
		{"mx bare wildcard", ok + "mx: *\n", "not a host name"},
		{"mx empty", ok + "mx:\n", "not a host name"},
		{"mx with port", ok + "mx: mx.example.com:25\n", "not a host name"},
		{"mx with space", ok + "mx: mx.example.com extra\n", "not a host name"},
		{"mx underscore", ok + "mx: mx_1.example.com\n", "not a host name"},
		{"mx label hyphen", ok + "mx: -mx.example.com\n", "not a host name"},
		{"mx label too long", ok + "mx: " + strings.Repeat("a", 64) + ".example\n", "not a host name"},
		{"extension name", ok + "_ext: 1\n", `field name "_ext" is invalid`},
		{"extension empty value", ok + "ext:\n", "empty or has control characters"},
		{"extension control char", ok + "ext: a\x01b\n", "control characters"},
		{"extension bad utf8", ok + "ext: \xff\n", "control characters"},
		{"too large", ok + strings.Repeat("x: y\n", MaxPolicySize/5), "over the limit"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := ParsePolicy([]byte(tt.body))
			if err == nil {
				t.Fatalf("ParsePolicy succeeded: %+v", p)
			}
			if !errors.Is(err, ErrInvalidPolicy) {
				t.Errorf("error %v does not wrap ErrInvalidPolicy", err)
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error %q does not contain %q", err, tt.want)
			}
		})
	}
}

func TestParsePolicyLimits(t *testing.T) {
	const ok = "version: STSv1\nmode: enforce\nmx: mx.example.com\nmax_age: 31557600\n"
	body := ok + "ext: " + strings.Repeat("x", MaxPolicySize-len(ok)-6) + "\n"
	if len(body) != MaxPolicySize {
		t.Fatalf("test body is %d bytes", len(body))
	}
	if _, err := ParsePolicy([]byte(body)); err != nil {
		t.Errorf("a policy of exactly %d bytes: %v", MaxPolicySize, err)
	}
	p, err := ParsePolicy([]byte(ok + "ext: café au lait  \n"))
	if err != nil {
		t.Errorf("UTF-8 extension value: %v", err)
	} else if p.MaxAge != 31557600*time.Second {
		t.Errorf("max_age %v", p.MaxAge)
	}
}

func TestMatch(t *testing.T) {
	p := &Policy{Mode: Enforce, MX: []string{"mail.example.com", "*.mx.example.net", "Backup.Example.ORG."}}
	tests := []struct {
		host string
		want bool
	}{
		{"mail.example.com", true},
		{"MAIL.Example.COM", true},
		{"mail.example.com.", true},
		{"example.com", false},
		{"x.mail.example.com", false},
		{"mail.example.com.evil", false},
		{"a.mx.example.net", true},
		{"A.MX.EXAMPLE.NET.", true},
		{"mx.example.net", false},     // the wildcard needs one label
		{"a.b.mx.example.net", false}, // and only one
		{".mx.example.net", false},    // an empty label is no label
		{"amx.example.net", false},    // a label, not a suffix
		{"backup.example.org", true},  // pattern case and dot ignored
		{"backup.example.org.", true}, // on both sides
		{"other.example.org", false},
	}
	for _, tt := range tests {
		if got := p.Match(tt.host); got != tt.want {
			t.Errorf("Match(%q) = %v, want %v", tt.host, got, tt.want)
		}
	}
	if (*Policy)(nil).Match("mail.example.com") {
		t.Error("a nil policy matched")
	}
}

func TestCheckEnforce(t *testing.T) {
	p := &Policy{Domain: "example.com", Mode: Enforce, MX: []string{"*.mx.example.com"}}
	if err := p.Check("a.mx.example.com", true); err != nil {
		t.Errorf("matching MX with valid TLS: %v", err)
	}
	if v := p.Violation("a.mx.example.com", true); v != nil {
		t.Errorf("matching MX with valid TLS reported %v", v)
	}
	tests := []struct {
		mx     string
		tlsOK  bool
		reason error
		text   string
	}{
		{"mx.attacker.example", true, ErrMXNotInPolicy, "mta-sts policy of example.com (enforce): mx.attacker.example: MX not in MTA-STS policy"},
		{"mx.attacker.example", false, ErrMXNotInPolicy, "MX not in MTA-STS policy"},
		{"a.mx.example.com", false, ErrNoValidTLS, "mta-sts policy of example.com (enforce): a.mx.example.com: no valid TLS"},
	}
	for _, tt := range tests {
		err := p.Check(tt.mx, tt.tlsOK)
		if !errors.Is(err, tt.reason) {
			t.Errorf("Check(%q, %v) = %v, want %v", tt.mx, tt.tlsOK, err, tt.reason)
			continue
		}
		if !strings.HasSuffix(err.Error(), tt.text) {
			t.Errorf("Check(%q, %v) says %q, want %q", tt.mx, tt.tlsOK, err, tt.text)
		}
		var temp interface{ Temporary() bool }
		if !errors.As(err, &temp) || !temp.Temporary() {
			t.Errorf("Check(%q, %v) = %v, not a temporary error", tt.mx, tt.tlsOK, err)
		}
		var v *Violation
		if !errors.As(err, &v) || v.MX != tt.mx || v.Domain != "example.com" || v.Mode != Enforce {
			t.Errorf("Check(%q, %v): violation %+v", tt.mx, tt.tlsOK, v)
		}
	}
}

func TestCheckTestingReportsWithoutEnforcing(t *testing.T) {
	p := &Policy{Domain: "example.net", Mode: Testing, MX: []string{"mx.example.net"}}
	for _, c := range []struct {
		mx     string
		tlsOK  bool
		reason error
	}{
		{"mx.other.example", true, ErrMXNotInPolicy},
		{"mx.example.net", false, ErrNoValidTLS},
	} {
		if err := p.Check(c.mx, c.tlsOK); err != nil {
			t.Errorf("testing mode refused %s (tls %v): %v", c.mx, c.tlsOK, err)
		}
		v := p.Violation(c.mx, c.tlsOK)
		if v == nil || !errors.Is(v, c.reason) || v.Mode != Testing {
			t.Errorf("testing mode report for %s (tls %v) = %v, want %v", c.mx, c.tlsOK, v, c.reason)
		} else if want := "mta-sts policy of example.net (testing): " + c.mx; !strings.HasPrefix(v.Error(), want) {
			t.Errorf("report %q does not start with %q", v, want)
		}
	}
	if v := p.Violation("mx.example.net", true); v != nil {
		t.Errorf("compliant delivery reported %v", v)
	}
}

func TestCheckNoneAndNil(t *testing.T) {
	for _, p := range []*Policy{nil, {Mode: None}} {
		if err := p.Check("anything.example", false); err != nil {
			t.Errorf("%+v refused delivery: %v", p, err)
		}
		if v := p.Violation("anything.example", false); v != nil {
			t.Errorf("%+v reported %v", p, v)
		}
	}
}
