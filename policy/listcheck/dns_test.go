package listcheck

import (
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"

	"drover/mta/resolve"
	"drover/mta/resolve/dnstest"
)

// Through the real resolver, against a DNS server: a domain with MX, a
// null MX, NXDOMAIN, address records only (the implicit MX: valid), an MX
// host without an address, an IDN, and SERVFAIL (unverified, kept).
func TestCheckWithResolver(t *testing.T) {
	srv := dnstest.Start(t, `
test.                 IN SOA ns.test. hostmaster.test. 1 3600 600 86400 60
mx.test.              IN MX 10 mail.mx.test.
mail.mx.test.         IN A 192.0.2.1
nullmx.test.          IN MX 0 .
aonly.test.           IN A 192.0.2.2
v6only.test.          IN AAAA 2001:db8::25
badhost.test.         IN MX 10 missing.badhost.test.
badhost.test.         IN TXT "v=spf1 -all"
xn--bcher-kva.test.   IN MX 10 mail.mx.test.
servfail.test.        IN MX 10 mail.mx.test.
`)
	srv.SetRcode("servfail.test", dns.RcodeServerFailure)
	r := resolve.New(resolve.Config{Servers: []string{srv.Addr}, Timeout: 5 * time.Second})
	in := lines(
		"email",
		"a@mx.test",
		"b@nullmx.test",
		"c@nowhere.test",
		"d@aonly.test",
		"e@v6only.test",
		"f@badhost.test",
		"g@bücher.test",
		"h@servfail.test",
		"i@MX.test",
	)
	s, clean, report := run(t, in, Options{Resolver: r})
	if want := lines("email", "a@mx.test", "d@aonly.test", "e@v6only.test", "g@bücher.test", "h@servfail.test", "i@MX.test"); clean != want {
		t.Errorf("clean:\n%s\nwant:\n%s", clean, want)
	}
	want := lines("line,address,problem,detail,suggestion",
		`3,b@nullmx.test,null_mx,"the domain accepts no mail (null MX, RFC 7505)",`,
		`4,c@nowhere.test,no_mx,no such domain (NXDOMAIN),`,
		`7,f@badhost.test,no_mx,the MX host missing.badhost.test has no address,`,
		`9,h@servfail.test,unverified,temporary DNS failure (server failure),`,
	)
	if report != want {
		t.Errorf("report:\n%s\nwant:\n%s", report, want)
	}
	if s.Rows != 9 || s.Valid != 5 || s.NullMX != 1 || s.NoMX != 2 || s.Unverified != 1 || s.Kept != 6 || s.Domains != 8 {
		t.Errorf("summary %+v", s)
	}

	// A second run of the same list asks the server nothing new about
	// what the resolver cached; the failure is asked again (never cached).
	before := srv.Queries()
	run(t, in, Options{Resolver: r})
	if n := srv.Queries() - before; n == 0 || n > 4 {
		t.Errorf("second run: %d queries", n)
	}
}

// A domain whose server does not answer is unverified once the lookup
// timeout passes.
func TestCheckWithResolverTimeout(t *testing.T) {
	srv := dnstest.Start(t, "ok.test. IN MX 10 ok.test.\nok.test. IN A 192.0.2.1\n")
	srv.Drop("dropped.test")
	r := resolve.New(resolve.Config{Servers: []string{srv.Addr}, Timeout: 5 * time.Second})
	s, clean, report := run(t, lines("a@dropped.test", "b@ok.test"), Options{Resolver: r, LookupTimeout: 50 * time.Millisecond})
	if clean != lines("a@dropped.test", "b@ok.test") || !strings.Contains(report, "1,a@dropped.test,unverified,DNS lookup timed out,") || s.Unverified != 1 {
		t.Errorf("summary %+v, clean:\n%s\nreport:\n%s", s, clean, report)
	}
}
