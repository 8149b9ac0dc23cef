package smtpclient

import (
	"bufio"
	"bytes"
	"io"
	"strings"
	"testing"
)

func dataBytes(body []byte) []byte {
	var out bytes.Buffer
	w := bufio.NewWriterSize(&out, 16)
	writeData(w, body)
	w.Flush()
	return out.Bytes()
}

func TestWriteData(t *testing.T) {
	tests := []struct{ body, want string }{
		{"", ".\r\n"},
		{"a", "a\r\n.\r\n"},
		{"a\r\n", "a\r\n.\r\n"},
		{"a\n", "a\r\n.\r\n"},
		{"a\r", "a\r\n.\r\n"},
		{"\r\n", "\r\n.\r\n"},
		{"\n", "\r\n.\r\n"},
		{"\r", "\r\n.\r\n"},
		{".", "..\r\n.\r\n"},
		{".\r\n", "..\r\n.\r\n"},
		{"a\r\n.\r\nb", "a\r\n..\r\nb\r\n.\r\n"},
		{"a\n.\nb\n", "a\r\n..\r\nb\r\n.\r\n"},
		{"..x\r\n", "...x\r\n.\r\n"},
		{" .x\r\n", " .x\r\n.\r\n"},
		{"a.b\r\n", "a.b\r\n.\r\n"},
		// The smuggling payloads: every one becomes a plain, stuffed line.
		{"x\n.\r\nMAIL FROM:<evil>\r\n", "x\r\n..\r\nMAIL FROM:<evil>\r\n.\r\n"},
		{"x\r\n.\nRCPT TO:<evil>\r\n", "x\r\n..\r\nRCPT TO:<evil>\r\n.\r\n"},
		{"x\r.\r\n", "x\r\n..\r\n.\r\n"},
		{"x\r\n.\r", "x\r\n..\r\n.\r\n"},
		{"x\r\r\n", "x\r\n\r\n.\r\n"},
		{"x\n\r", "x\r\n\r\n.\r\n"},
		{"x\r\r", "x\r\n\r\n.\r\n"},
		{"a\r.b\n.c", "a\r\n..b\r\n..c\r\n.\r\n"},
		{"\r\n\r\n", "\r\n\r\n.\r\n"},
		{"h: v\r\n\r\nbody 8bit \xc3\xa9\r\n", "h: v\r\n\r\nbody 8bit \xc3\xa9\r\n.\r\n"},
	}
	for _, tt := range tests {
		if got := string(dataBytes([]byte(tt.body))); got != tt.want {
			t.Errorf("%q:\n got %q\nwant %q", tt.body, got, tt.want)
		}
	}
}

// normalise is the reference for what the body becomes: lines ended by
// CRLF, LF or CR, each written with CRLF.
func normalise(body []byte) []byte {
	var out []byte
	for i := 0; i < len(body); i++ {
		switch b := body[i]; b {
		case '\r':
			if i+1 < len(body) && body[i+1] == '\n' {
				i++
			}
			out = append(out, '\r', '\n')
		case '\n':
			out = append(out, '\r', '\n')
		default:
			out = append(out, b)
		}
	}
	if len(out) > 0 && !bytes.HasSuffix(out, []byte("\r\n")) {
		out = append(out, '\r', '\n')
	}
	return out
}

// unstuff reverses the transparency of DATA: it checks the terminator,
// takes it off and removes one leading dot of each line.
func unstuff(t *testing.T, data []byte) []byte {
	var rest []byte
	switch {
	case string(data) == ".\r\n":
		return nil
	case bytes.HasSuffix(data, []byte("\r\n.\r\n")):
		rest = data[:len(data)-3]
	default:
		t.Fatalf("bad terminator: %q", data)
	}
	var out []byte
	for len(rest) > 0 {
		i := bytes.Index(rest, []byte("\r\n"))
		line := rest[:i]
		rest = rest[i+2:]
		if len(line) > 0 && line[0] == '.' {
			if len(line) == 1 {
				t.Fatalf("unstuffed lone dot in %q", data)
			}
			line = line[1:]
		}
		out = append(out, line...)
		out = append(out, '\r', '\n')
	}
	return out
}

// FuzzWriteData checks the body writer: the output never holds a bare CR or
// LF, and reading it as a server would gives back the normalised input.
func FuzzWriteData(f *testing.F) {
	for _, s := range []string{"", "a", ".\r\n", "x\n.\r\nMAIL", "x\r.\r", "a\r\r\n\n\r.", "..\n"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		out := dataBytes(body)
		for i, b := range out {
			if b == '\r' && (i+1 == len(out) || out[i+1] != '\n') {
				t.Fatalf("bare CR at %d in %q", i, out)
			}
			if b == '\n' && (i == 0 || out[i-1] != '\r') {
				t.Fatalf("bare LF at %d in %q", i, out)
			}
		}
		if got, want := unstuff(t, out), normalise(body); !bytes.Equal(got, want) {
			t.Fatalf("unstuffed %q\nwant %q", got, want)
		}
	})
}

func BenchmarkWriteData(b *testing.B) {
	body := []byte(strings.Repeat("Lorem ipsum dolor sit amet, consectetur adipiscing elit, sed do eiusmod t\r\n", 130))
	w := bufio.NewWriterSize(io.Discard, writeBufferSize)
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	for b.Loop() {
		writeData(w, body)
	}
	w.Flush()
}
