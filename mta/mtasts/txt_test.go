package mtasts

import (
	"context"
	"errors"
	"net"
	"reflect"
	"strings"
	"testing"
	"time"
)

func TestParseTXT(t *testing.T) {
	valid := []struct{ record, id string }{
		{"v=STSv1; id=20160831085700Z;", "20160831085700Z"},
		{"v=STSv1; id=20160831085700Z", "20160831085700Z"},
		{"v=STSv1;id=abc", "abc"},
		{"v=STSv1 ;\tid=abc ; ", "abc"},
		{"v=STSv1; ext=x.y:z; id=" + strings.Repeat("9", 32), strings.Repeat("9", 32)},
	}
	for _, tt := range valid {
		id, err := parseTXT(tt.record)
		if err != nil || id != tt.id {
			t.Errorf("parseTXT(%q) = %q, %v; want %q", tt.record, id, err, tt.id)
		}
	}
	invalid := []string{
		"",
		"v=STSv1",
		"v=STSv1;",
		" v=STSv1; id=abc",
		"v=STSv2; id=abc",
		"id=abc; v=STSv1",
		"v=STSv1; id=",
		"v=STSv1; id=abc-def",
		"v=STSv1; id=" + strings.Repeat("9", 33),
		"v=STSv1; id=abc; id=abd",
		"v=STSv1;; id=abc",
		"v=STSv1; id abc",
		"v=STSv1; id=abc; _ext=1",
		"v=STSv1; id=abc; ext=",
		"v=STSv1; id=abc; ext=a b",
		"v=STSv1; id=abc; ext=a=b",
	}
	for _, r := range invalid {
		if id, err := parseTXT(r); !errors.Is(err, errNoRecord) {
			t.Errorf("parseTXT(%q) = %q, %v; want an errNoRecord error", r, id, err)
		}
	}
}

// staticTXT is a TXTLookup answering from a map, or failing with err.
type staticTXT struct {
	records map[string][]string
	err     error
}

func (s staticTXT) LookupTXT(_ context.Context, name string) ([]string, error) {
	return s.records[name], s.err
}

func TestPolicyIDRecordSelection(t *testing.T) {
	tests := []struct {
		name    string
		records []string
		id      string // "" means no policy
	}{
		{"one record", []string{"v=STSv1; id=a1;"}, "a1"},
		{"others discarded", []string{"v=spf1 -all", "v=STSv1; id=a1;", "v=STSv10; id=zz", "google-site-verification=x"}, "a1"},
		{"two STS records", []string{"v=STSv1; id=a1;", "v=STSv1; id=a2;"}, ""},
		{"one invalid STS record", []string{"v=STSv1; id=not-valid;"}, ""},
		{"none", nil, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			id, err := policyID(context.Background(), staticTXT{records: map[string][]string{"_mta-sts.example.com": tt.records}}, "example.com")
			if tt.id == "" {
				if !errors.Is(err, errNoRecord) {
					t.Errorf("got %q, %v; want no policy", id, err)
				}
			} else if err != nil || id != tt.id {
				t.Errorf("got %q, %v; want %q", id, err, tt.id)
			}
		})
	}
	// *net.Resolver reports NXDOMAIN as an error: still no policy, not a
	// failure.
	notFound := &net.DNSError{Err: "no such host", Name: "_mta-sts.example.com", IsNotFound: true}
	if _, err := policyID(context.Background(), staticTXT{err: notFound}, "example.com"); !errors.Is(err, errNoRecord) {
		t.Errorf("IsNotFound: %v, want no policy", err)
	}
	timeout := &net.DNSError{Err: "i/o timeout", IsTimeout: true}
	if _, err := policyID(context.Background(), staticTXT{err: timeout}, "example.com"); err == nil || errors.Is(err, errNoRecord) {
		t.Errorf("timeout: %v, want a lookup failure", err)
	}
}

func TestDNSLookup(t *testing.T) {
	long := "v=STSv1; id=long; pad=" + strings.Repeat("p", 600) + ";"
	many := make([]string, 40)
	for i := range many {
		many[i] = "filler record number " + strings.Repeat("f", 40)
	}
	addr := startDNS(t, txtZone(map[string][]string{
		"_mta-sts.example.com":  {"v=STSv1; id=20240101;", "v=spf1 -all"},
		"_mta-sts.long.example": {long},
		"_mta-sts.big.example":  many,
	}, "_mta-sts.broken.example"))
	lookup := DNSLookup(addr, 2*time.Second)
	ctx := context.Background()

	tests := []struct {
		name string
		want []string
	}{
		{"_mta-sts.example.com", []string{"v=STSv1; id=20240101;", "v=spf1 -all"}},
		{"_mta-sts.EXAMPLE.com.", []string{"v=STSv1; id=20240101;", "v=spf1 -all"}},
		{"_mta-sts.long.example", []string{long}}, // character-strings joined
		{"_mta-sts.big.example", many},            // over 1232 bytes: TCP retry
		{"_mta-sts.nowhere.example", nil},         // NXDOMAIN
	}
	for _, tt := range tests {
		got, err := lookup.LookupTXT(ctx, tt.name)
		if err != nil || !reflect.DeepEqual(got, tt.want) {
			t.Errorf("LookupTXT(%q) = %q, %v; want %q", tt.name, got, err, tt.want)
		}
	}
	if _, err := lookup.LookupTXT(ctx, "_mta-sts.broken.example"); err == nil || !strings.Contains(err.Error(), "SERVFAIL") {
		t.Errorf("SERVFAIL: err = %v", err)
	}

	// A resolver that does not answer: the lookup's timeout ends the wait,
	// long before the caller's deadline.
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	deadline, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if _, err := DNSLookup(pc.LocalAddr().String(), 200*time.Millisecond).LookupTXT(deadline, "_mta-sts.example.com"); err == nil {
		t.Error("a silent resolver gave no error")
	}
	if deadline.Err() != nil {
		t.Error("the caller's deadline ended the lookup, not its timeout of 200ms")
	}
}
