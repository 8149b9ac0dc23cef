package listcheck

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"

	"drover/mta/resolve"
)

// run checks input and returns the clean file and the report.
func run(t *testing.T, input string, opt Options) (Summary, string, string) {
	t.Helper()
	var clean, report bytes.Buffer
	s, err := Check(context.Background(), strings.NewReader(input), &clean, &report, opt)
	if err != nil {
		t.Fatalf("Check: %v", err)
	}
	return s, clean.String(), report.String()
}

func lines(s ...string) string { return strings.Join(s, "\n") + "\n" }

// testResolver knows the domains of the tests of every finding.
func testResolver() *fakeResolver {
	return &fakeResolver{
		mx: map[string][]string{
			"example.com":           {"mx1.example.com", "mx2.example.com"},
			"aonly.example":         {"aonly.example"}, // implicit MX
			"nohost.example":        {"mx.nohost.example"},
			"gmial.com":             {"mx.gmial.com"},
			"xn--bcher-kva.example": {"mx.example.com"},
		},
		mxErr: map[string]error{
			"null.example":     fmt.Errorf("resolve: null.example: %w", resolve.ErrNullMX),
			"servfail.example": fmt.Errorf("resolve: servfail.example: %w: SERVFAIL from 192.0.2.53:53", resolve.ErrServerFailure),
			"noaddr.example":   fmt.Errorf("resolve: noaddr.example: no MX record, and %w", resolve.ErrNoAddress),
		},
		addrs: map[string]error{
			"mx1.example.com":   fmt.Errorf("resolve: mx1.example.com: %w", resolve.ErrServerFailure), // mx2 answers
			"mx.nohost.example": fmt.Errorf("resolve: mx.nohost.example: %w", resolve.ErrNoAddress),
		},
	}
}

// Every finding, on one list: what the report says and what the clean
// file keeps.
func TestCheckFindings(t *testing.T) {
	input := lines(
		`name,email,city`,
		`Ok,ok@example.com,Paris`,
		`"Doe, ""JD""",""" john doe""@example.com",Lyon`,
		`Bad,bad@@example.com,Nice`,
		`Dup,OK@Example.COM,Nice`,
		`NX,a@nx.example,Rome`,
		`Null,b@null.example,Oslo`,
		`Implicit,c@aonly.example,Riga`,
		`NoHost,d@nohost.example,Bern`,
		`NoAddr,e@noaddr.example,Bonn`,
		`Temp,f@servfail.example,Kiel`,
		`Typo,g@gmial.com,Graz`,
		`Role,Info+news@example.com,Wien`,
		`Supp,supp@example.com,Linz`,
		`Bare,h"x@example.com,Gent`,
		`Literal,i@[192.0.2.1],Metz`,
		`IDN,jürgen@bücher.example,Köln`,
		`Short`,
		`Spaces,  k@example.com  ,Ulm`,
		`Both,sales@gmial.com,Turku`,
	)
	f := testResolver()
	var asked []string
	opt := Options{
		Resolver: f,
		Suppressed: func(ctx context.Context, addrs []string) (map[string]string, error) {
			asked = append(asked, addrs...)
			return map[string]string{"supp@example.com": "Recipient address is suppressed for all senders"}, nil
		},
	}
	s, clean, report := run(t, input, opt)
	wantClean := lines(
		`name,email,city`,
		`Ok,ok@example.com,Paris`,
		`"Doe, ""JD""",""" john doe""@example.com",Lyon`,
		`Implicit,c@aonly.example,Riga`,
		`Temp,f@servfail.example,Kiel`,
		`Literal,i@[192.0.2.1],Metz`,
		`IDN,jürgen@bücher.example,Köln`,
		`Spaces,"  k@example.com  ",Ulm`,
	)
	if clean != wantClean {
		t.Errorf("clean file:\n%s\nwant:\n%s", clean, wantClean)
	}
	wantReport := lines(
		`line,address,problem,detail,suggestion`,
		`4,bad@@example.com,invalid_syntax,two @,`,
		`5,OK@Example.COM,duplicate,duplicate of line 2,`,
		`6,a@nx.example,no_mx,no such domain (NXDOMAIN),`,
		`7,b@null.example,null_mx,"the domain accepts no mail (null MX, RFC 7505)",`,
		`9,d@nohost.example,no_mx,the MX host mx.nohost.example has no address,`,
		`10,e@noaddr.example,no_mx,no MX record and no address record (A/AAAA),`,
		`11,f@servfail.example,unverified,temporary DNS failure (server failure),`,
		`12,g@gmial.com,typo,the domain looks like a typo of gmail.com,g@gmail.com`,
		`13,Info+news@example.com,role_account,role account (info),`,
		`14,supp@example.com,suppressed,Recipient address is suppressed for all senders,`,
		`15,,malformed_line,"not CSV: bare "" in non-quoted-field (line 15, column 7)",`,
		`18,,invalid_syntax,no address column: the row has 1 field,`,
		`20,sales@gmial.com,typo,the domain looks like a typo of gmail.com,sales@gmail.com`,
		`20,sales@gmial.com,role_account,role account (sales),`,
	)
	if report != wantReport {
		t.Errorf("report:\n%s\nwant:\n%s", report, wantReport)
	}
	want := Summary{Rows: 19, Valid: 6, InvalidSyntax: 3, MalformedLines: 1, Duplicates: 1, NoMX: 3, NullMX: 1,
		Unverified: 1, Typos: 2, RoleAccounts: 2, Suppressed: 1, Kept: 7, Findings: 14, Header: true,
		AddressColumn: 2, Domains: 9, DomainsUnverified: 1, DNSChecked: true, SuppressionChecked: true}
	if s != want {
		t.Errorf("summary\n%+v, want\n%+v", s, want)
	}
	// The hook is asked about the canonical forms of the rows that parse
	// and are no duplicates.
	wantAsked := []string{"ok@example.com", `" john doe"@example.com`, "a@nx.example", "b@null.example", "c@aonly.example",
		"d@nohost.example", "e@noaddr.example", "f@servfail.example", "g@gmial.com", "Info+news@example.com",
		"supp@example.com", "i@[192.0.2.1]", "jürgen@bücher.example", "k@example.com", "sales@gmial.com"}
	if !slices.Equal(asked, wantAsked) {
		t.Errorf("suppression hook asked about\n%q, want\n%q", asked, wantAsked)
	}
	// DNS knows the IDN by its A-label; the literal is not looked up.
	if f.count("MX", "xn--bcher-kva.example") != 1 || f.count("MX", "[192.0.2.1]") != 0 || f.count("MX", "192.0.2.1") != 0 {
		t.Errorf("lookups: %v", f.calls)
	}
}

// Each domain is looked up once a run, and each MX host once, however
// many rows name them.
func TestCheckLooksUpEachDomainOnce(t *testing.T) {
	f := &fakeResolver{mx: map[string][]string{
		"a.example":      {"mx.shared.example"},
		"b.example":      {"mx.shared.example"},
		"c.example":      {"mx.c.example"},
		"shared.example": nil,
	}}
	var b strings.Builder
	b.WriteString("email\n")
	for i := range 3 * chunkRows {
		fmt.Fprintf(&b, "u%d@%c.example\n", i, 'a'+i%3)
	}
	s, _, _ := run(t, b.String(), Options{Resolver: f})
	if s.Kept != 3*chunkRows || s.Domains != 3 {
		t.Errorf("summary %+v", s)
	}
	for _, name := range []string{"MX a.example", "MX b.example", "MX c.example", "A mx.shared.example", "A mx.c.example"} {
		kind, host, _ := strings.Cut(name, " ")
		if n := f.count(kind, host); n != 1 {
			t.Errorf("%s: %d lookups", name, n)
		}
	}
	if n := f.total(); n != 5 {
		t.Errorf("%d lookups: %v", n, f.calls)
	}
}

// No more than Concurrency lookups run at once, and that many do.
func TestCheckConcurrencyLimit(t *testing.T) {
	const limit = 3
	entered := make(chan struct{}, 100)
	release := make(chan struct{})
	f := &fakeResolver{mx: map[string][]string{}, wait: func(ctx context.Context, name string) error {
		entered <- struct{}{}
		select {
		case <-release:
			return nil
		case <-ctx.Done():
			return ctx.Err()
		}
	}}
	var b strings.Builder
	for i := range 40 {
		f.mx[fmt.Sprintf("d%d.example", i)] = []string{fmt.Sprintf("d%d.example", i)}
		fmt.Fprintf(&b, "u@d%d.example\n", i)
	}
	done := make(chan Summary)
	go func() {
		s, _, _ := run(t, b.String(), Options{Resolver: f, Concurrency: limit})
		done <- s
	}()
	for range limit {
		<-entered
	}
	close(release)
	s := <-done
	if p := f.peak.Load(); p != limit {
		t.Errorf("peak of %d lookups at once, want %d", p, limit)
	}
	if s.Kept != 40 {
		t.Errorf("summary %+v", s)
	}
}

// A lookup that takes longer than LookupTimeout leaves its rows
// unverified, and kept.
func TestCheckLookupTimeout(t *testing.T) {
	f := &fakeResolver{mx: map[string][]string{"fast.example": {"fast.example"}}, wait: func(ctx context.Context, name string) error {
		if name != "slow.example" {
			return nil
		}
		<-ctx.Done()
		return fmt.Errorf("resolve: %s: %w", name, ctx.Err())
	}}
	s, clean, report := run(t, lines("a@slow.example", "b@fast.example", "c@slow.example"), Options{Resolver: f, LookupTimeout: 1})
	if clean != lines("a@slow.example", "b@fast.example", "c@slow.example") {
		t.Errorf("clean:\n%s", clean)
	}
	if want := lines("line,address,problem,detail,suggestion",
		"1,a@slow.example,unverified,DNS lookup timed out,", "3,c@slow.example,unverified,DNS lookup timed out,"); report != want {
		t.Errorf("report:\n%s\nwant:\n%s", report, want)
	}
	if s.Unverified != 2 || s.Kept != 3 || s.Valid != 1 || f.count("MX", "slow.example") != 1 {
		t.Errorf("summary %+v, lookups %v", s, f.calls)
	}
}

// The header row and the address column are found as the contract says;
// a byte order mark and CRLF are kept in the clean file.
func TestCheckHeaderAndColumns(t *testing.T) {
	tests := []struct {
		name, input, clean string
		header             bool
		column, kept       int
	}{
		{"no header", "a@x.example,A\nb@x.example,B\n", "a@x.example,A\nb@x.example,B\n", false, 1, 2},
		{"email in column 3", "First,Last,EMAIL\nA,B,a@x.example\n", "First,Last,EMAIL\nA,B,a@x.example\n", true, 3, 1},
		{"e-mail", "id,E-Mail\n1,a@x.example\n", "id,E-Mail\n1,a@x.example\n", true, 2, 1},
		{"address, spaced", "id, Address \n1,a@x.example\n", "id,\" Address \"\n1,a@x.example\n", true, 2, 1},
		{"unnamed header", "contact,name\na@x.example,A\n", "contact,name\na@x.example,A\n", true, 1, 1},
		{"BOM and CRLF", "\uFEFFemail,n\r\na@x.example,\"multi\r\nline\"\r\n", "\uFEFFemail,n\r\na@x.example,\"multi\r\nline\"\r\n", true, 1, 1},
		{"header of one empty field", "\"\"\na@x.example\n", "\"\"\na@x.example\n", true, 1, 1},
		{"header only", "email,name\n", "email,name\n", true, 1, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, clean, _ := run(t, tt.input, Options{})
			if clean != tt.clean || s.Header != tt.header || s.AddressColumn != tt.column || s.Kept != tt.kept {
				t.Errorf("clean %q, summary %+v", clean, s)
			}
		})
	}
}

// An input without a row is an error; a malformed line is not, and the
// lines after it are checked, at their line numbers.
func TestCheckEmptyAndMalformed(t *testing.T) {
	for _, in := range []string{"", "\uFEFF", "\n\n", "\r\n"} {
		_, err := Check(context.Background(), strings.NewReader(in), &bytes.Buffer{}, &bytes.Buffer{}, Options{})
		if !errors.Is(err, ErrEmpty) {
			t.Errorf("%q: %v, want ErrEmpty", in, err)
		}
	}
	in := lines(`email,note`, `a@x.example,"two`, `lines"`, `b"@x.example,bare`, `c@x.example,"x"y`, `d@x.example,ok`, `"open,to the end`, `e@x.example,swallowed`)
	s, clean, report := run(t, in, Options{})
	if clean != lines(`email,note`, `a@x.example,"two`, `lines"`, `d@x.example,ok`) {
		t.Errorf("clean:\n%s", clean)
	}
	want := lines(`line,address,problem,detail,suggestion`,
		`4,,malformed_line,"not CSV: bare "" in non-quoted-field (line 4, column 2)",`,
		`5,,malformed_line,"not CSV: extraneous or missing "" in quoted-field (line 5, column 15)",`,
		`7,,malformed_line,"not CSV: extraneous or missing "" in quoted-field (line 8, column 23)",`)
	if report != want {
		t.Errorf("report:\n%s\nwant:\n%s", report, want)
	}
	if s.Rows != 5 || s.InvalidSyntax != 3 || s.MalformedLines != 3 || s.Kept != 2 {
		t.Errorf("summary %+v", s)
	}
}

// KeepTypos and KeepRoles keep those rows in the clean file; they stay
// in the report.
func TestCheckKeepTyposAndRoles(t *testing.T) {
	in := lines("a@gmial.com", "postmaster@x.example", "b@x.example")
	for _, tt := range []struct {
		opt   Options
		clean string
	}{
		{Options{}, lines("b@x.example")},
		{Options{KeepTypos: true}, lines("a@gmial.com", "b@x.example")},
		{Options{KeepRoles: true}, lines("postmaster@x.example", "b@x.example")},
		{Options{KeepTypos: true, KeepRoles: true}, in},
	} {
		s, clean, _ := run(t, in, tt.opt)
		if clean != tt.clean || s.Typos != 1 || s.RoleAccounts != 1 || s.Findings != 2 {
			t.Errorf("%+v: clean %q, summary %+v", tt.opt, clean, s)
		}
	}
}

// The hook is asked in batches; the answer may name an address in its
// normalised form; an error of the hook ends the check.
func TestCheckSuppressionBatches(t *testing.T) {
	var batches [][]string
	hook := func(ctx context.Context, addrs []string) (map[string]string, error) {
		batches = append(batches, slices.Clone(addrs))
		return map[string]string{"b@x.example": "Recipient address is suppressed for all senders"}, nil
	}
	in := lines("a@x.example", "B@X.example", "b@x.example", "bad", "c@x.example", "d@x.example", "e@x.example")
	s, clean, _ := run(t, in, Options{Suppressed: hook, SuppressionBatch: 2})
	if !slices.EqualFunc(batches, [][]string{{"a@x.example", "B@x.example"}, {"c@x.example", "d@x.example"}, {"e@x.example"}}, slices.Equal) {
		t.Errorf("batches %q", batches)
	}
	if s.Suppressed != 1 || clean != lines("a@x.example", "c@x.example", "d@x.example", "e@x.example") {
		t.Errorf("summary %+v, clean %q", s, clean)
	}

	down := errors.New("connection refused")
	_, err := Check(context.Background(), strings.NewReader(in), &bytes.Buffer{}, &bytes.Buffer{}, Options{
		Suppressed: func(context.Context, []string) (map[string]string, error) { return nil, down },
	})
	if !errors.Is(err, down) || !strings.Contains(err.Error(), "suppression check") {
		t.Errorf("Check with a failing hook: %v", err)
	}
}

// Progress comes while the check waits for DNS, and never after Check
// returns.
func TestCheckProgress(t *testing.T) {
	progressed := make(chan Progress, 1)
	f := &fakeResolver{mx: map[string][]string{"x.example": {"x.example"}}, wait: func(ctx context.Context, name string) error {
		if name != "y.example" {
			return nil
		}
		select { // y.example answers once progress was reported
		case <-progressed:
			return fmt.Errorf("resolve: y.example: %w", resolve.ErrNoSuchDomain)
		case <-ctx.Done():
			return ctx.Err()
		}
	}}
	var mu sync.Mutex
	var calls []Progress
	returned := false
	in := lines("a@x.example", "b@x.example", "c@y.example")
	s, _, _ := run(t, in, Options{Resolver: f, ProgressInterval: 1, Size: int64(len(in)), Progress: func(p Progress) {
		mu.Lock()
		defer mu.Unlock()
		if returned {
			t.Error("progress after Check returned")
		}
		calls = append(calls, p)
		select {
		case progressed <- p:
		default:
		}
	}})
	mu.Lock()
	returned = true
	got := calls[0]
	mu.Unlock()
	if got.Bytes != int64(len(in)) || got.TotalBytes != int64(len(in)) || got.Rows > 2 {
		t.Errorf("progress %+v", got)
	}
	if s.NoMX != 1 {
		t.Errorf("summary %+v", s)
	}
}

// Canceling the context ends the check with the context's error.
func TestCheckCancel(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	f := &fakeResolver{wait: func(c context.Context, name string) error {
		cancel()
		<-c.Done()
		return c.Err()
	}}
	_, err := Check(ctx, strings.NewReader(lines("a@x.example", "b@y.example")), &bytes.Buffer{}, &bytes.Buffer{}, Options{Resolver: f})
	if !errors.Is(err, context.Canceled) {
		t.Errorf("Check: %v", err)
	}
}

type failWriter struct{}

func (failWriter) Write([]byte) (int, error) { return 0, errors.New("disk full") }

// A failed write of an output is an error that says which output.
func TestCheckWriteError(t *testing.T) {
	var b strings.Builder
	for i := range 2000 {
		fmt.Fprintf(&b, "u%d@x.example,%s\n", i, strings.Repeat("x", 100))
	}
	in := b.String()
	_, err := Check(context.Background(), strings.NewReader(in), failWriter{}, &bytes.Buffer{}, Options{})
	if err == nil || !strings.Contains(err.Error(), "writing the clean file: disk full") {
		t.Errorf("clean output failing: %v", err)
	}
	_, err = Check(context.Background(), strings.NewReader(in), &bytes.Buffer{}, failWriter{}, Options{})
	if err == nil || !strings.Contains(err.Error(), "writing the report: disk full") {
		t.Errorf("report failing: %v", err)
	}
}

func TestSummaryText(t *testing.T) {
	var b bytes.Buffer
	Summary{Rows: 10, Valid: 5, InvalidSyntax: 2, MalformedLines: 1, Kept: 6, Header: true, AddressColumn: 2, DNSChecked: true}.WriteText(&b)
	want := `rows:            10 (header row, addresses in column 2)
valid:           5
invalid syntax:  2 (1 malformed lines)
duplicates:      0
no MX:           0
null MX:         0
unverified:      0
typos:           0
role accounts:   0
suppressed:      0 (not checked)
kept:            6
`
	if b.String() != want {
		t.Errorf("text:\n%s\nwant:\n%s", b.String(), want)
	}
}

// Over many chunks, with lookups finishing out of order, the clean file
// and the report keep the input's order.
func TestCheckKeepsOrderAcrossChunks(t *testing.T) {
	f := &fakeResolver{mx: map[string][]string{}, mxErr: map[string]error{}}
	var in, clean, report strings.Builder
	in.WriteString("email,n\n")
	clean.WriteString("email,n\n")
	report.WriteString("line,address,problem,detail,suggestion\n")
	for i := range 3*chunkRows + 17 {
		d := fmt.Sprintf("d%d.example", i%500)
		if i%500 == 7 {
			f.mxErr[d] = fmt.Errorf("resolve: %s: %w", d, resolve.ErrNoSuchDomain)
		} else {
			f.mx[d] = []string{d}
		}
		row := fmt.Sprintf("u%d@%s,%d", i, d, i)
		fmt.Fprintln(&in, row)
		if i%500 == 7 {
			fmt.Fprintf(&report, "%d,u%d@%s,no_mx,no such domain (NXDOMAIN),\n", i+2, i, d)
		} else {
			fmt.Fprintln(&clean, row)
		}
	}
	s, gotClean, gotReport := run(t, in.String(), Options{Resolver: f, Concurrency: 7})
	if gotClean != clean.String() || gotReport != report.String() {
		t.Errorf("clean or report out of order (summary %+v)", s)
	}
}
