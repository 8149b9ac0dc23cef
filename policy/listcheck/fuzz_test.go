package listcheck

import (
	"bytes"
	"context"
	"encoding/csv"
	"errors"
	"io"
	"strings"
	"testing"
)

// The reader takes any bytes without panicking, and what it writes holds
// together: every row is counted once, the clean file is CSV with the
// kept rows (and the header), and the report has a line per finding.
func FuzzCheck(f *testing.F) {
	for _, s := range []string{
		"email,name\na@x.example,A\n",
		"\uFEFFName,Email\r\n\"Doe, J\",J@X.example\r\n",
		"a@x.example\nA@X.EXAMPLE\n\"unterminated\n",
		"x\"y,z\n\"q\"w,e\nok@x.example,1\n",
		"\"\"\n\n,\n,,@\n",
		"info+x@gmial.com,\"multi\nline\"\n",
		"e-mail\n\"\"\"q\"\"\"@[192.0.2.1]\n",
		"\xff\xfe@\x00\r\r\n",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		var clean, report bytes.Buffer
		s, err := Check(context.Background(), bytes.NewReader(data), &clean, &report, Options{})
		if errors.Is(err, ErrEmpty) {
			return
		}
		if err != nil {
			t.Fatalf("Check: %v", err)
		}
		if s.Rows != s.Valid+countFlawed(t, report.String()) {
			t.Errorf("rows %d, valid %d, report:\n%s", s.Rows, s.Valid, report.String())
		}
		if s.Kept > s.Rows || s.Valid > s.Kept {
			t.Errorf("summary %+v", s)
		}
		cr := csv.NewReader(strings.NewReader(strings.TrimPrefix(clean.String(), "\uFEFF")))
		cr.FieldsPerRecord = -1
		n := 0
		for {
			_, err := cr.Read()
			if err == io.EOF {
				break
			}
			if err != nil {
				t.Fatalf("clean file is not CSV: %v\n%q", err, clean.String())
			}
			n++
		}
		header := 0
		if s.Header {
			header = 1
		}
		if n != s.Kept+header {
			t.Errorf("clean file has %d records, want %d kept + %d header:\n%q", n, s.Kept, header, clean.String())
		}
	})
}

// countFlawed counts the rows of a report: its distinct lines.
func countFlawed(t *testing.T, report string) int {
	cr := csv.NewReader(strings.NewReader(report))
	recs, err := cr.ReadAll()
	if err != nil {
		t.Fatalf("report is not CSV: %v\n%s", err, report)
	}
	rows := map[string]bool{}
	for _, r := range recs[1:] {
		if len(r) != 5 {
			t.Fatalf("report line %q", r)
		}
		rows[r[0]] = true
	}
	return len(rows)
}
