package policy

import (
	"bufio"
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"drover/mta/address"
)

// ErrNeedsForce is returned by Remove for an unsubscribe or a complaint
// without force: the recipient asked for it, an admin must say so twice.
var ErrNeedsForce = errors.New("removing an unsubscribe or a complaint needs force: the recipient asked for it")

// Canonical checks an address (RFC 5321, RFC 6531) and returns its
// normalised form.
func Canonical(addr string) (string, error) {
	a, err := address.Parse(strings.TrimSpace(addr), true)
	if err != nil {
		return "", fmt.Errorf("address %q: %w", addr, err)
	}
	return Normalize(a.String()), nil
}

// Check an entry as given by an admin or an import, filling in its
// address's normal form.
func (p *Policy) checkEntry(e *Entry) error {
	a, err := Canonical(e.Address)
	if err != nil {
		return err
	}
	e.Address = a
	if e.Reason == "" {
		e.Reason = Manual
	}
	if !e.Reason.Valid() {
		return fmt.Errorf("unknown reason %q (one of %s)", e.Reason, ReasonNames())
	}
	if e.Kind == "" {
		switch {
		case e.List != "":
			e.Kind = PerList
		case e.Sender != "":
			e.Kind = PerSender
		default:
			e.Kind = Global
		}
	}
	switch e.Kind {
	case Global:
		if e.Sender != "" || e.List != "" {
			return errors.New("a global entry names no sender or list")
		}
	case PerSender:
		if e.Sender == "" || e.List != "" {
			return errors.New("a sender entry names a sender and no list")
		}
	case PerList:
		if e.Sender == "" || e.List == "" {
			return errors.New("a list entry names a sender and a list")
		}
	default:
		return fmt.Errorf("unknown scope %q (global, sender or list)", e.Kind)
	}
	if e.Time.IsZero() {
		e.Time = p.cfg.Now().UTC()
	}
	return nil
}

// ReasonNames lists the reasons, comma-separated, for error messages.
func ReasonNames() string {
	var s []string
	for _, r := range Reasons {
		s = append(s, string(r))
	}
	return strings.Join(s, ", ")
}

// Add adds entries an admin gives (source "admin" unless set), all or
// none, and returns those that were new. A bad entry's error names its
// number and address.
func (p *Policy) Add(es []Entry) ([]Entry, error) {
	for i := range es {
		if err := p.checkEntry(&es[i]); err != nil {
			return nil, fmt.Errorf("entry %d (%q): %w", i+1, es[i].Address, err)
		}
		if es[i].Source == "" {
			es[i].Source = "admin"
		}
	}
	added, err := p.cfg.Store.AddSuppressions(es)
	p.counted(added, 1)
	return added, err
}

// Remove removes the entries of addr in scope (a zero Kind: every scope;
// Sender and List narrow it) with reason ("" for any). An unsubscribe or
// a complaint is removed only with force. Each removal is an event.
func (p *Policy) Remove(addr string, scope Scope, reason Reason, force bool, source string) ([]Entry, error) {
	a, err := Canonical(addr)
	if err != nil {
		return nil, err
	}
	match := func(e Entry) bool {
		return (scope.Kind == "" || e.Kind == scope.Kind) && (scope.Sender == "" || e.Sender == scope.Sender) &&
			(scope.List == "" || e.List == scope.List) && (reason == "" || e.Reason == reason)
	}
	if !force {
		es, err := p.cfg.Store.Suppressions(a)
		if err != nil {
			return nil, err
		}
		for _, e := range es {
			if match(e) && (e.Reason == Unsubscribed || e.Reason == Complaint) {
				return nil, ErrNeedsForce
			}
		}
	}
	removed, err := p.cfg.Store.RemoveSuppressions(a, match)
	p.counted(removed, -1)
	now := p.cfg.Now().UTC()
	for _, e := range removed {
		p.emit(Event{Kind: KindRemoved, Time: now, Entry: e, Detail: source})
	}
	return removed, err
}

// Entries returns the entries of one address.
func (p *Policy) Entries(addr string) ([]Entry, error) {
	a, err := Canonical(addr)
	if err != nil {
		return nil, err
	}
	es, err := p.cfg.Store.Suppressions(a)
	sortEntries(es)
	return es, err
}

// Filter selects entries to list or export: those that match every
// non-empty field.
type Filter struct {
	Scope  ScopeKind
	Sender string
	List   string
	Reason Reason
}

func (f Filter) match(e Entry) bool {
	return (f.Scope == "" || e.Kind == f.Scope) && (f.Sender == "" || e.Sender == f.Sender) &&
		(f.List == "" || e.List == f.List) && (f.Reason == "" || e.Reason == f.Reason)
}

var errStop = errors.New("stop")

// List returns at most limit entries that match f, from the first
// address not before from, and the address to continue from ("" at the
// end).
func (p *Policy) List(f Filter, from string, limit int) ([]Entry, string, error) {
	var out []Entry
	next := ""
	err := p.cfg.Store.ScanSuppressions(Normalize(from), func(e Entry) error {
		if !f.match(e) {
			return nil
		}
		if len(out) >= limit && e.Address != out[len(out)-1].Address {
			next = e.Address
			return errStop
		}
		out = append(out, e)
		return nil
	})
	if errors.Is(err, errStop) {
		err = nil
	}
	return out, next, err
}

// Format is a file format of import and export.
type Format string

// The formats: CSV with a header line, JSON lines (one Entry a line).
const (
	CSV       Format = "csv"
	JSONLines Format = "jsonl"
)

// ParseFormat reads a format's name (csv, jsonl or json).
func ParseFormat(s string) (Format, error) {
	switch strings.ToLower(s) {
	case "csv":
		return CSV, nil
	case "jsonl", "json", "ndjson":
		return JSONLines, nil
	}
	return "", fmt.Errorf("unknown format %q (csv or jsonl)", s)
}

// csvColumns are the columns of the CSV format, in export order. An
// import needs the address column; the others default to the import's
// defaults.
var csvColumns = []string{"address", "scope", "sender", "list", "reason", "source", "time"}

// exporter writes an export: CSV rows under a header, or JSON lines.
type exporter struct {
	bw  *bufio.Writer
	cw  *csv.Writer // nil for JSON lines
	enc *json.Encoder
}

func newExporter(w io.Writer, format Format, columns []string) *exporter {
	e := &exporter{bw: bufio.NewWriterSize(w, 64<<10)}
	e.enc = json.NewEncoder(e.bw)
	if format == CSV {
		e.cw = csv.NewWriter(e.bw)
		e.cw.Write(columns)
	}
	return e
}

// write writes one record: row in CSV (made only then), v in JSON lines.
func (e *exporter) write(row func() []string, v any) error {
	if e.cw != nil {
		return e.cw.Write(row())
	}
	return e.enc.Encode(v)
}

// close flushes what is buffered; err is the export's so far.
func (e *exporter) close(err error) error {
	if e.cw != nil {
		e.cw.Flush()
		if err == nil {
			err = e.cw.Error()
		}
	}
	if err == nil {
		err = e.bw.Flush()
	}
	return err
}

// rfc3339 is t for an export, "" for the zero time.
func rfc3339(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.UTC().Format(time.RFC3339)
}

// Export writes every entry that matches f, in address order.
func (p *Policy) Export(w io.Writer, format Format, f Filter) (int, error) {
	ex := newExporter(w, format, csvColumns)
	n := 0
	err := p.cfg.Store.ScanSuppressions("", func(e Entry) error {
		if !f.match(e) {
			return nil
		}
		n++
		return ex.write(func() []string {
			return []string{e.Address, string(e.Kind), e.Sender, e.List, string(e.Reason), e.Source, e.Time.UTC().Format(time.RFC3339)}
		}, e)
	})
	return n, ex.close(err)
}

// LineError is a line of an import that could not be read.
type LineError struct {
	Line int    `json:"line"`
	Err  string `json:"error"`
}

// ImportResult is what an import did.
type ImportResult struct {
	Read         int         `json:"read"`              // entries read
	Added        int         `json:"added"`             // new entries committed
	Duplicates   int         `json:"duplicates"`        // entries already held
	InvalidLines int         `json:"invalid_lines"`     // lines that could not be read
	Invalid      []LineError `json:"invalid,omitempty"` // the first 1000 of them
	Committed    bool        `json:"committed"`
}

// ImportError is an import refused for its invalid lines: nothing of it
// was committed.
type ImportError struct{ Result *ImportResult }

func (e *ImportError) Error() string {
	inv := e.Result.Invalid
	msg := fmt.Sprintf("%d invalid line(s), nothing imported (skip them to import the rest)", e.Result.InvalidLines)
	for i, l := range inv {
		if i == 5 {
			msg += fmt.Sprintf("; and %d more", len(inv)-5)
			break
		}
		msg += fmt.Sprintf("; line %d: %s", l.Line, l.Err)
	}
	return msg
}

// maxInvalidKept bounds the invalid lines an import reports.
const maxInvalidKept = 1000

// ImportOptions are an import's defaults and rules.
type ImportOptions struct {
	Format      Format
	Default     Entry // scope, sender, list, reason for lines that do not name them; Source too
	SkipInvalid bool  // import the valid lines of a file with invalid ones
}

// readImport reads the records of an import: CSV with a header line
// naming its columns (one of them "address", or "email"), or JSON lines.
// It hands each record to csvRecord (with the value of a column by its
// name, "" when absent) or jsonRecord (with the line), with its line
// number; an error they return makes the line invalid. res counts the
// records read and the invalid lines, and keeps the first
// maxInvalidKept of them with their numbers. A CSV header without an
// address column is an *ImportError; a read error (a connection cut
// half-way) is returned, and the import must commit nothing.
func readImport(r io.Reader, format Format, res *ImportResult,
	csvRecord func(get func(string) string) error, jsonRecord func(text string) error) error {
	invalid := func(line int, err error) {
		res.InvalidLines++
		if len(res.Invalid) < maxInvalidKept {
			res.Invalid = append(res.Invalid, LineError{Line: line, Err: err.Error()})
		}
	}
	switch format {
	case CSV, "":
		cr := csv.NewReader(bufio.NewReaderSize(r, 256<<10))
		cr.FieldsPerRecord = -1
		cr.ReuseRecord = true
		col := map[string]int{}
		var rec []string
		get := func(name string) string {
			if i, ok := col[name]; ok && i < len(rec) {
				return strings.TrimSpace(rec[i])
			}
			return ""
		}
		for {
			var err error
			rec, err = cr.Read()
			if err == io.EOF {
				break
			}
			if pe := (*csv.ParseError)(nil); errors.As(err, &pe) {
				invalid(pe.Line, pe.Err)
				continue
			}
			if err != nil {
				return fmt.Errorf("reading the import: %w (nothing imported)", err)
			}
			line, _ := cr.FieldPos(0)
			if len(col) == 0 {
				for i, name := range rec {
					col[strings.ToLower(strings.TrimSpace(strings.TrimPrefix(name, "\ufeff")))] = i
				}
				if _, ok := col["address"]; !ok {
					if _, ok := col["email"]; !ok {
						res.InvalidLines = 1
						res.Invalid = []LineError{{Line: line, Err: "the header must name an address (or email) column"}}
						return &ImportError{Result: res}
					}
					col["address"] = col["email"]
				}
				continue
			}
			res.Read++
			if err := csvRecord(get); err != nil {
				invalid(line, err)
			}
		}
	case JSONLines:
		sc := bufio.NewScanner(r)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		for line := 1; sc.Scan(); line++ {
			text := strings.TrimSpace(sc.Text())
			if text == "" {
				continue
			}
			res.Read++
			if err := jsonRecord(text); err != nil {
				invalid(line, err)
			}
		}
		if err := sc.Err(); err != nil {
			return fmt.Errorf("reading the import: %w (nothing imported)", err)
		}
	default:
		return fmt.Errorf("unknown format %q", format)
	}
	return nil
}

// decodeLine decodes one JSON line of an import into v, refusing unknown
// fields.
func decodeLine(text string, v any, what string) error {
	dec := json.NewDecoder(strings.NewReader(text))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return fmt.Errorf("not a JSON %s: %v", what, err)
	}
	return nil
}

// Import reads a file of entries and commits them in one atomic batch:
// with an invalid line (reported with its number) nothing is committed
// unless SkipInvalid. A read error (a connection cut half-way) commits
// nothing either.
func (p *Policy) Import(r io.Reader, opts ImportOptions) (*ImportResult, error) {
	res := &ImportResult{}
	var es []Entry
	def := opts.Default
	if def.Source == "" {
		def.Source = "import"
	}
	add := func(e Entry) error {
		if err := p.checkEntry(&e); err != nil {
			return err
		}
		es = append(es, e)
		return nil
	}
	err := readImport(r, opts.Format, res, func(get func(string) string) error {
		e := def
		e.Address = get("address")
		if v := get("scope"); v != "" {
			e.Kind = ScopeKind(v)
		}
		if v := get("sender"); v != "" {
			e.Sender = v
		}
		if v := get("list"); v != "" {
			e.List = v
		}
		if v := get("reason"); v != "" {
			e.Reason = Reason(v)
		}
		if v := get("source"); v != "" {
			e.Source = v
		}
		if v := get("time"); v != "" {
			t, err := time.Parse(time.RFC3339, v)
			if err != nil {
				return fmt.Errorf("time %q is not RFC 3339", v)
			}
			e.Time = t
		}
		return add(e)
	}, func(text string) error {
		e := def
		if err := decodeLine(text, &e, "entry"); err != nil {
			return err
		}
		return add(e)
	})
	if ie := (*ImportError)(nil); errors.As(err, &ie) {
		return res, err
	}
	if err != nil {
		return nil, err
	}
	if res.InvalidLines > 0 && !opts.SkipInvalid {
		return res, &ImportError{Result: res}
	}
	added, err := p.cfg.Store.AddSuppressions(es)
	if err != nil {
		return nil, fmt.Errorf("committing the import: %w (nothing imported)", err)
	}
	p.counted(added, 1)
	res.Added, res.Duplicates, res.Committed = len(added), len(es)-len(added), true
	return res, nil
}
