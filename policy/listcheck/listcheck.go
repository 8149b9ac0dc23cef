package listcheck

import (
	"bufio"
	"bytes"
	"cmp"
	"context"
	"encoding/csv"
	"errors"
	"fmt"
	"hash/maphash"
	"io"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"drover/mta/address"
	"drover/policy"
)

// Resolver looks up domains; *resolve.Resolver satisfies it. MX returns
// the mail exchangers of a domain (its implicit MX when it has only
// address records); Addrs the addresses of a host.
type Resolver interface {
	MX(ctx context.Context, domain string) ([]string, error)
	Addrs(ctx context.Context, host string) ([]netip.Addr, error)
}

// SuppressedFunc answers which of addrs are suppressed: a map from an
// address (as given, or its policy.Normalize form) to the suppression in
// words (the admin API's check answers policy.Decision.Text).
type SuppressedFunc func(ctx context.Context, addrs []string) (map[string]string, error)

// Options configure a check. The zero Options check syntax, duplicates,
// typos and role accounts, not DNS nor suppressions.
type Options struct {
	Resolver      Resolver      // nil: domains are not looked up
	Concurrency   int           // lookups at once; default DefaultConcurrency
	LookupTimeout time.Duration // bound of one MX or address lookup; default DefaultLookupTimeout

	Suppressed       SuppressedFunc // nil: suppressions are not checked
	SuppressionBatch int            // addresses per call of Suppressed; default DefaultSuppressionBatch

	KeepTypos bool // keep typo rows in the clean file (they stay in the report)
	KeepRoles bool // keep role accounts in the clean file (they stay in the report)

	Progress         func(Progress)
	ProgressInterval time.Duration // default DefaultProgressInterval
	Size             int64         // the input's size in bytes, for Progress; 0 if unknown
}

// Defaults of Options.
const (
	DefaultConcurrency      = 16
	DefaultLookupTimeout    = 10 * time.Second
	DefaultSuppressionBatch = 1000
	DefaultProgressInterval = 500 * time.Millisecond
)

// Progress is how far a check is.
type Progress struct {
	Rows       int   // rows checked (written to the clean file or the report)
	Bytes      int64 // bytes of the input read
	TotalBytes int64 // Options.Size
}

// Problem is the kind of a finding, as the report's problem column names
// it.
type Problem string

// The problems, in the order a row is checked.
const (
	MalformedLine Problem = "malformed_line"
	InvalidSyntax Problem = "invalid_syntax"
	Duplicate     Problem = "duplicate"
	NoMX          Problem = "no_mx"
	NullMX        Problem = "null_mx"
	Unverified    Problem = "unverified"
	Typo          Problem = "typo"
	RoleAccount   Problem = "role_account"
	Suppressed    Problem = "suppressed"
)

// Finding is one line of the report.
type Finding struct {
	Line       int    // line of the file where the row starts
	Address    string // the address field, trimmed ("" for a malformed line)
	Problem    Problem
	Detail     string // the parser's reason, the DNS answer, ...
	Suggestion string // for a typo: the address with the domain it looks like
}

// ReportHeader is the first line of the report.
var ReportHeader = []string{"line", "address", "problem", "detail", "suggestion"}

// Summary counts what a check found.
type Summary struct {
	Rows           int  `json:"rows"`  // rows after the header
	Valid          int  `json:"valid"` // rows without a finding
	InvalidSyntax  int  `json:"invalid_syntax"`
	MalformedLines int  `json:"malformed_lines"` // of InvalidSyntax: lines that are not CSV
	Duplicates     int  `json:"duplicates"`
	NoMX           int  `json:"no_mx"`
	NullMX         int  `json:"null_mx"`
	Unverified     int  `json:"unverified"`
	Typos          int  `json:"typos"`
	RoleAccounts   int  `json:"role_accounts"`
	Suppressed     int  `json:"suppressed"`
	Kept           int  `json:"kept"`     // rows written to the clean file
	Findings       int  `json:"findings"` // lines of the report after its header
	Header         bool `json:"header"`   // the first row was a header
	AddressColumn  int  `json:"address_column"`
	Domains        int  `json:"domains"` // distinct domains looked up
	// DomainsUnverified are the domains of Domains whose lookup failed
	// for now: all of them says the DNS server is unreachable or broken.
	DomainsUnverified  int  `json:"domains_unverified"`
	DNSChecked         bool `json:"dns_checked"`
	SuppressionChecked bool `json:"suppression_checked"`
}

// WriteText writes the summary for a person, one count a line.
func (s Summary) WriteText(w io.Writer) error {
	header := "no header row"
	if s.Header {
		header = "header row"
	}
	notChecked := func(checked bool) string {
		if checked {
			return ""
		}
		return " (not checked)"
	}
	malformed := ""
	if s.MalformedLines > 0 {
		malformed = fmt.Sprintf(" (%d malformed lines)", s.MalformedLines)
	}
	_, err := fmt.Fprintf(w, `rows:            %d (%s, addresses in column %d)
valid:           %d
invalid syntax:  %d%s
duplicates:      %d
no MX:           %d%s
null MX:         %d%s
unverified:      %d%s
typos:           %d
role accounts:   %d
suppressed:      %d%s
kept:            %d
`, s.Rows, header, s.AddressColumn, s.Valid, s.InvalidSyntax, malformed, s.Duplicates,
		s.NoMX, notChecked(s.DNSChecked), s.NullMX, notChecked(s.DNSChecked), s.Unverified, notChecked(s.DNSChecked),
		s.Typos, s.RoleAccounts, s.Suppressed, notChecked(s.SuppressionChecked), s.Kept)
	return err
}

// ErrEmpty is the error of an input without a row.
var ErrEmpty = errors.New("the list is empty: no rows")

// chunkRows is the number of rows the stages of a check pass along at
// once; chunksInFlight bounds the chunks between two stages.
const (
	chunkRows      = 4096
	chunksInFlight = 4
)

// row is one row of the input on its way through a check.
type row struct {
	line       int
	fields     []string // nil for a malformed line
	addr       string   // the address field, trimmed
	canon      string   // canonical form, when it parses and is no duplicate
	bad        Problem  // MalformedLine, InvalidSyntax, Duplicate, or ""
	detail     string   // of bad
	dom        *domain  // nil when bad
	suggestion string   // for a typo
	role       string
	suppressed string // why, "" when not suppressed
}

type chunk struct{ rows []row }

// domain is what a check knows of one domain.
type domain struct {
	typo string  // the big mailbox domain it looks like, or ""
	dns  *lookup // nil: not looked up (an address literal, no Resolver)
}

// lookup is the DNS verdict on a domain; done is closed when it is in.
type lookup struct {
	name    string // A-label form
	done    chan struct{}
	problem Problem // "", NoMX, NullMX, Unverified
	detail  string
}

// checker is the state of one check.
type checker struct {
	opt    Options
	ctx    context.Context
	cancel context.CancelCauseFunc

	// reader's
	cr      *csv.Reader
	addrCol int
	seen    map[[2]uint64]int // hashes of normalised addresses: line of the first occurrence
	seeds   [2]maphash.Seed
	domains map[string]*domain
	jobs    chan *lookup
	nlooked int
	free    chan *chunk // chunks written, for the reader to fill again

	// DNS workers'
	hostMu sync.Mutex
	hosts  map[string]*hostLookup

	// writer's
	sum      Summary
	cleanBuf *bufio.Writer // under clean, which shares it
	clean    *csv.Writer
	report   *csv.Writer
	crlf     bool

	rowsDone  atomic.Int64
	bytesRead atomic.Int64
}

// Check reads the list from in, writes the clean file to clean and the
// report to report, and returns the summary.
func Check(ctx context.Context, in io.Reader, clean, report io.Writer, opt Options) (Summary, error) {
	if opt.Concurrency <= 0 {
		opt.Concurrency = DefaultConcurrency
	}
	if opt.LookupTimeout <= 0 {
		opt.LookupTimeout = DefaultLookupTimeout
	}
	if opt.SuppressionBatch <= 0 {
		opt.SuppressionBatch = DefaultSuppressionBatch
	}
	if opt.ProgressInterval <= 0 {
		opt.ProgressInterval = DefaultProgressInterval
	}
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	c := &checker{
		opt:     opt,
		ctx:     ctx,
		cancel:  cancel,
		seen:    make(map[[2]uint64]int),
		seeds:   [2]maphash.Seed{maphash.MakeSeed(), maphash.MakeSeed()},
		domains: make(map[string]*domain),
		hosts:   make(map[string]*hostLookup),
		free:    make(chan *chunk, 2*chunksInFlight+2),
	}
	c.sum.DNSChecked = opt.Resolver != nil
	c.sum.SuppressionChecked = opt.Suppressed != nil

	br := bufio.NewReaderSize(&countingReader{r: in, n: &c.bytesRead}, 64<<10)
	bom := false
	if b, _ := br.Peek(3); string(b) == "\uFEFF" {
		br.Discard(3)
		bom = true
	}
	if b, _ := br.Peek(br.Size()); len(b) > 0 {
		if i := bytes.IndexByte(b, '\n'); i > 0 && b[i-1] == '\r' {
			c.crlf = true
		}
	}
	c.cr = csv.NewReader(br)
	c.cr.FieldsPerRecord = -1
	c.cleanBuf = bufio.NewWriterSize(clean, 64<<10)
	c.clean = csv.NewWriter(c.cleanBuf) // writes through c.cleanBuf itself
	c.clean.UseCRLF = c.crlf
	c.report = csv.NewWriter(bufio.NewWriterSize(report, 64<<10))

	first := new(row)
	err := c.next(first)
	if err == io.EOF {
		return c.sum, ErrEmpty
	}
	if err != nil {
		return c.sum, err
	}
	if bom {
		c.cleanBuf.WriteString("\uFEFF")
	}
	c.report.Write(ReportHeader)
	if first.fields != nil {
		if col, ok := headerColumn(first.fields); ok {
			c.sum.Header = true
			c.addrCol = col
			c.writeClean(first.fields)
			first = nil
		}
	}
	c.sum.AddressColumn = c.addrCol + 1

	var wg sync.WaitGroup
	stopProgress := c.startProgress(&wg)
	if opt.Resolver != nil {
		c.jobs = make(chan *lookup, 1024)
		for range opt.Concurrency {
			wg.Go(c.dnsWorker)
		}
	}
	toSuppress := make(chan *chunk, chunksInFlight)
	toWrite := make(chan *chunk, chunksInFlight)
	wg.Go(func() {
		defer close(toWrite)
		for ch := range toSuppress {
			if err := c.suppress(ch); err != nil {
				c.cancel(err)
				continue // drain: the reader stops on the canceled context
			}
			select {
			case toWrite <- ch:
			case <-ctx.Done():
			}
		}
	})
	writerDone := make(chan struct{})
	go func() {
		defer close(writerDone)
		for ch := range toWrite {
			if ctx.Err() != nil {
				continue
			}
			if err := c.write(ch); err != nil {
				c.cancel(err)
			}
			select {
			case c.free <- ch:
			default:
			}
		}
	}()

	if err := c.read(first, toSuppress); err != nil {
		c.cancel(err)
	}
	close(toSuppress)
	if c.jobs != nil {
		close(c.jobs)
	}
	<-writerDone
	stopProgress()
	wg.Wait()
	if ctx.Err() != nil {
		return c.sum, context.Cause(ctx)
	}
	c.clean.Flush()
	if err := c.clean.Error(); err != nil {
		return c.sum, fmt.Errorf("writing the clean file: %w", err)
	}
	c.report.Flush()
	if err := c.report.Error(); err != nil {
		return c.sum, fmt.Errorf("writing the report: %w", err)
	}
	c.sum.Domains = c.nlooked
	for _, d := range c.domains {
		if d.dns != nil && d.dns.problem == Unverified {
			c.sum.DomainsUnverified++
		}
	}
	return c.sum, nil
}

// next reads one row into r: fields and line, or a malformed line. It
// returns io.EOF at the end and an error for a failed read.
func (c *checker) next(r *row) error {
	rec, err := c.cr.Read()
	if err == nil {
		line, _ := c.cr.FieldPos(0)
		*r = row{line: line, fields: rec}
		return nil
	}
	if pe := (*csv.ParseError)(nil); errors.As(err, &pe) {
		*r = row{line: pe.StartLine, bad: MalformedLine, detail: malformedDetail(pe)}
		return nil
	}
	if err == io.EOF {
		return err
	}
	return fmt.Errorf("reading the list: %w", err)
}

func malformedDetail(pe *csv.ParseError) string {
	where := fmt.Sprintf("line %d, column %d", pe.Line, pe.Column)
	return fmt.Sprintf("not CSV: %v (%s)", pe.Err, where)
}

// headerNames are the names of an address column, lower case.
var headerNames = map[string]bool{
	"email": true, "e-mail": true, "address": true, "email address": true,
	"e-mail address": true, "email_address": true,
}

// headerColumn tells whether the first row is a header, and which of
// its columns holds the addresses.
func headerColumn(fields []string) (int, bool) {
	for i, f := range fields {
		if headerNames[strings.ToLower(strings.TrimSpace(f))] {
			return i, true
		}
	}
	for _, f := range fields {
		if strings.Contains(f, "@") {
			return 0, false
		}
	}
	return 0, true
}

// read is the first stage: it reads the rows, checks what needs no
// lookup, starts the lookups of new domains and passes the rows on in
// chunks.
func (c *checker) read(first *row, out chan<- *chunk) error {
	ch := c.newChunk()
	if first != nil {
		ch.rows = append(ch.rows, *first)
		if err := c.inspect(&ch.rows[0]); err != nil {
			return err
		}
	}
	for {
		ch.rows = append(ch.rows, row{})
		r := &ch.rows[len(ch.rows)-1]
		if err := c.next(r); err == io.EOF {
			ch.rows = ch.rows[:len(ch.rows)-1]
			break
		} else if err != nil {
			return err
		}
		if err := c.inspect(r); err != nil {
			return err
		}
		if len(ch.rows) == chunkRows {
			select {
			case out <- ch:
			case <-c.ctx.Done():
				return context.Cause(c.ctx)
			}
			ch = c.newChunk()
		}
	}
	if len(ch.rows) == 0 {
		return nil
	}
	select {
	case out <- ch:
		return nil
	case <-c.ctx.Done():
		return context.Cause(c.ctx)
	}
}

// newChunk returns an empty chunk, one the writer is done with if there
// is one.
func (c *checker) newChunk() *chunk {
	select {
	case ch := <-c.free:
		clear(ch.rows) // drop what the old rows point to
		ch.rows = ch.rows[:0]
		return ch
	default:
		return &chunk{rows: make([]row, 0, chunkRows)}
	}
}

// inspect checks a row's syntax and duplicates, its domain's typo, its
// role, and starts the lookup of its domain if new.
func (c *checker) inspect(r *row) error {
	if r.bad != "" {
		return nil
	}
	if c.addrCol >= len(r.fields) {
		r.bad, r.detail = InvalidSyntax, "no address column: the row has 1 field"
		if n := len(r.fields); n != 1 {
			r.detail = fmt.Sprintf("no address column: the row has %d fields", n)
		}
		return nil
	}
	r.addr = strings.TrimSpace(r.fields[c.addrCol])
	a, err := address.Parse(r.addr, true)
	if err != nil {
		r.bad, r.detail = InvalidSyntax, err.Error()
		return nil
	}
	canon := a.String()
	norm := policy.Normalize(canon)
	key := [2]uint64{maphash.String(c.seeds[0], norm), maphash.String(c.seeds[1], norm)}
	if line, dup := c.seen[key]; dup {
		r.bad, r.detail = Duplicate, "duplicate of line "+strconv.Itoa(line)
		return nil
	}
	c.seen[key] = r.line
	r.canon = canon
	d := c.domains[a.Domain]
	if d == nil {
		d = &domain{}
		if !a.IsLiteral() {
			d.typo, _ = Suggest(a.Domain)
			if c.jobs != nil {
				d.dns = &lookup{name: a.ASCIIDomain(), done: make(chan struct{})}
				c.nlooked++
				select {
				case c.jobs <- d.dns:
				case <-c.ctx.Done():
					return context.Cause(c.ctx)
				}
			}
		}
		c.domains[a.Domain] = d
	}
	r.dom = d
	if d.typo != "" {
		r.suggestion = address.Address{Local: a.Local, Domain: d.typo}.String()
	}
	r.role = Role(a.Local)
	return nil
}

// suppress is the second stage: it asks the Suppressed hook about a
// chunk's addresses.
func (c *checker) suppress(ch *chunk) error {
	if c.opt.Suppressed == nil {
		return nil
	}
	var addrs []string
	var idx []int
	flush := func() error {
		if len(addrs) == 0 {
			return nil
		}
		got, err := c.opt.Suppressed(c.ctx, addrs)
		if err != nil {
			return fmt.Errorf("suppression check: %w", err)
		}
		for j, a := range addrs {
			if why := cmp.Or(got[a], got[policy.Normalize(a)]); why != "" {
				ch.rows[idx[j]].suppressed = why
			}
		}
		addrs, idx = addrs[:0], idx[:0]
		return nil
	}
	for i := range ch.rows {
		if ch.rows[i].canon == "" {
			continue
		}
		addrs = append(addrs, ch.rows[i].canon)
		idx = append(idx, i)
		if len(addrs) == c.opt.SuppressionBatch {
			if err := flush(); err != nil {
				return err
			}
		}
	}
	return flush()
}

// write is the last stage: it waits for the DNS verdicts of a chunk's
// rows, and writes them to the clean file or the report.
func (c *checker) write(ch *chunk) error {
	var fs []Finding
	for i := range ch.rows {
		r := &ch.rows[i]
		if r.dom != nil && r.dom.dns != nil {
			select {
			case <-r.dom.dns.done:
			case <-c.ctx.Done():
				return context.Cause(c.ctx)
			}
		}
		fs = c.judge(r, fs[:0])
		for _, f := range fs {
			c.report.Write([]string{strconv.Itoa(f.Line), f.Address, string(f.Problem), f.Detail, f.Suggestion})
		}
		c.rowsDone.Add(1)
	}
	if err := c.clean.Error(); err != nil {
		return fmt.Errorf("writing the clean file: %w", err)
	}
	if err := c.report.Error(); err != nil {
		return fmt.Errorf("writing the report: %w", err)
	}
	return nil
}

// judge counts a row's findings, appends them to fs, and writes the row
// to the clean file if it is kept.
func (c *checker) judge(r *row, fs []Finding) []Finding {
	s := &c.sum
	s.Rows++
	add := func(p Problem, detail, suggestion string) {
		fs = append(fs, Finding{Line: r.line, Address: r.addr, Problem: p, Detail: detail, Suggestion: suggestion})
	}
	keep := true
	switch r.bad {
	case MalformedLine:
		s.InvalidSyntax++
		s.MalformedLines++
		add(MalformedLine, r.detail, "")
		keep = false
	case InvalidSyntax:
		s.InvalidSyntax++
		add(InvalidSyntax, r.detail, "")
		keep = false
	case Duplicate:
		s.Duplicates++
		add(Duplicate, r.detail, "")
		keep = false
	default:
		if l := r.dom.dns; l != nil && l.problem != "" {
			add(l.problem, l.detail, "")
			switch l.problem {
			case NoMX:
				s.NoMX++
				keep = false
			case NullMX:
				s.NullMX++
				keep = false
			case Unverified:
				s.Unverified++
			}
		}
		if r.dom.typo != "" {
			s.Typos++
			add(Typo, "the domain looks like a typo of "+r.dom.typo, r.suggestion)
			keep = keep && c.opt.KeepTypos
		}
		if r.role != "" {
			s.RoleAccounts++
			add(RoleAccount, "role account ("+r.role+")", "")
			keep = keep && c.opt.KeepRoles
		}
		if r.suppressed != "" {
			s.Suppressed++
			add(Suppressed, r.suppressed, "")
			keep = false
		}
	}
	if len(fs) == 0 {
		s.Valid++
	}
	s.Findings += len(fs)
	if keep {
		s.Kept++
		c.writeClean(r.fields)
	}
	return fs
}

// writeClean writes a row to the clean file. A row of one empty field is
// written as "" (csv.Writer would write an empty line, which a reader
// skips).
func (c *checker) writeClean(fields []string) {
	if len(fields) == 1 && fields[0] == "" {
		c.cleanBuf.WriteString(`""`)
		if c.crlf {
			c.cleanBuf.WriteByte('\r')
		}
		c.cleanBuf.WriteByte('\n')
		return
	}
	c.clean.Write(fields)
}

// startProgress starts the goroutine that calls Options.Progress; the
// function it returns stops it.
func (c *checker) startProgress(wg *sync.WaitGroup) func() {
	if c.opt.Progress == nil {
		return func() {}
	}
	stop := make(chan struct{})
	wg.Go(func() {
		t := time.NewTimer(c.opt.ProgressInterval)
		defer t.Stop()
		for {
			select {
			case <-stop:
				return
			case <-t.C:
				c.opt.Progress(Progress{Rows: int(c.rowsDone.Load()), Bytes: c.bytesRead.Load(), TotalBytes: c.opt.Size})
				t.Reset(c.opt.ProgressInterval)
			}
		}
	})
	return func() { close(stop) }
}

// countingReader counts the bytes read through it.
type countingReader struct {
	r io.Reader
	n *atomic.Int64
}

func (r *countingReader) Read(p []byte) (int, error) {
	n, err := r.r.Read(p)
	r.n.Add(int64(n))
	return n, err
}
