package mtasts

import (
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

// FuzzParsePolicy checks that ParsePolicy never panics and that what it
// accepts is a policy that satisfies RFC 8461 §3.2 and survives a round
// trip through its canonical text.
func FuzzParsePolicy(f *testing.F) {
	files, err := filepath.Glob(filepath.Join("testdata", "policies", "*.txt"))
	if err != nil {
		f.Fatal(err)
	}
	for _, name := range files {
		body, err := os.ReadFile(name)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(body)
	}
	f.Add([]byte("version: STSv1\nmode: enforce\nmx: *.\nmax_age: 9999999999\n"))
	f.Add([]byte("version: STSv1\r\nmode: testing\r\nmx: a\r\nmax_age: 1\r\next: \xe2\x82\xac\r"))
	f.Fuzz(func(t *testing.T, body []byte) {
		p, err := ParsePolicy(body)
		if err != nil {
			if p != nil {
				t.Fatalf("policy %+v with error %v", p, err)
			}
			return
		}
		if p.Mode != Enforce && p.Mode != Testing && p.Mode != None {
			t.Fatalf("mode %q", p.Mode)
		}
		if p.MaxAge < 0 || p.MaxAge.Seconds() > maxMaxAge {
			t.Fatalf("max_age %v", p.MaxAge)
		}
		if p.Mode != None && len(p.MX) == 0 {
			t.Fatalf("mode %s without mx", p.Mode)
		}
		var text strings.Builder
		fmt.Fprintf(&text, "version: STSv1\nmode: %s\nmax_age: %d\n", p.Mode, int64(p.MaxAge.Seconds()))
		for _, mx := range p.MX {
			if !validHostname(strings.TrimPrefix(mx, "*.")) {
				t.Fatalf("mx %q", mx)
			}
			fmt.Fprintf(&text, "mx: %s\n", mx)
		}
		q, err := ParsePolicy([]byte(text.String()))
		if err != nil {
			t.Fatalf("canonical form %q of an accepted policy: %v", text.String(), err)
		}
		if !reflect.DeepEqual(p, q) {
			t.Fatalf("round trip: %+v became %+v", p, q)
		}
	})
}

// FuzzParseTXT checks that the "_mta-sts" record parser never panics and
// accepts only records with a valid id.
func FuzzParseTXT(f *testing.F) {
	for _, s := range []string{"v=STSv1; id=20160831085700Z;", "v=STSv1 ;\tid=abc ; ", "v=STSv1; ext=x; id=1", "v=STSv1;;", ""} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, record string) {
		id, err := parseTXT(record)
		if err != nil {
			return
		}
		if !validID(id) || !strings.HasPrefix(record, "v=STSv1") || !strings.Contains(record, "id="+id) {
			t.Fatalf("parseTXT(%q) = %q", record, id)
		}
	})
}
