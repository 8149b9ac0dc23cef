package tags

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// FuzzRewrite: no message panics; one without tags (Has false) comes back
// unchanged; one with tags is changed or refused with ErrMessage; a
// changed one keeps its header, has only CRLF line ends and no line
// over 998 bytes (when the input had none).
func FuzzRewrite(f *testing.F) {
	paths, _ := filepath.Glob("testdata/*.eml")
	for _, p := range paths {
		if strings.HasSuffix(p, ".want.eml") {
			continue
		}
		b, err := os.ReadFile(p)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(toCRLF(string(b)))
	}
	for _, s := range []string{
		"Content-Type: text/html\n\n<a href=\"[manage: x]\">[unsubscribe: y]</a><!--[if mso]>[opt-in: z]<![endif]-->",
		"Content-Type: text/html\nContent-Transfer-Encoding: quoted-printable\n\n<p title=3D'[man=\nage: x]'>=5Bmanage: y]</p>",
		"Content-Type: multipart/mixed; boundary=b\n\n--b\nContent-Type: text/plain; charset=utf-8\nContent-Transfer-Encoding: base64\n\nW21hbmFnZTogeF0=\n--b--\n",
		"Content-Type: multipart/alternative; boundary=\"a\"\n\n--a\n\n[opt-in: x]\n--a\nContent-Type: multipart/related; boundary=c\n\n--c\nContent-Type: text/html\n\n<script>[manage: x]</script>\n--c--\n--a--",
		"Content-Type: text/plain; charset=iso-8859-1\n\n[manage: x]",
		"Subject: no body",
	} {
		f.Add(toCRLF(s))
	}
	f.Add(nested(MaxDepth+1, "[manage: x]"))
	f.Add([]byte("Content-Type: text/plain\n\n[manage: x]\r\n")) // a bare LF
	f.Fuzz(func(t *testing.T, msg []byte) {
		in := bytes.Clone(msg)
		has := Has(msg)
		out, err := Rewrite(msg, testLink(nil))
		if !bytes.Equal(msg, in) {
			t.Fatal("Rewrite changed its input")
		}
		if !has {
			if err != nil || !bytes.Equal(out, msg) {
				t.Fatalf("no tag, yet error %v or a change:\n%q", err, out)
			}
			return
		}
		if err != nil {
			if out != nil || !errors.Is(err, ErrMessage) {
				t.Fatalf("error %v with output %q", err, out)
			}
			return
		}
		if bytes.Equal(out, msg) {
			t.Fatal("Has is true, yet nothing changed")
		}
		if i := bareLineEnd(out); i >= 0 {
			t.Fatalf("bare CR or LF at %d: %q", i, out)
		}
		if longest(msg) <= maxLine && longest(out) > maxLine {
			t.Fatalf("a line of %d bytes", longest(out))
		}
		_, body := readHeader(msg)
		if !bytes.Equal(out[:body], msg[:body]) {
			t.Fatalf("header changed:\n%q", out[:body])
		}
	})
}

// longest returns the length of the longest CRLF line of b.
func longest(b []byte) int {
	n := 0
	for _, line := range bytes.Split(b, []byte("\r\n")) {
		n = max(n, len(line))
	}
	return n
}

// FuzzEncodings: quoted-printable and base64 as written decode to what
// was written, in lines of at most 76 characters ending in CRLF.
func FuzzEncodings(f *testing.F) {
	f.Add([]byte("Grüße [manage: x]\r\n= \t\r\n\r\x00"))
	f.Add([]byte(strings.Repeat("é", 100)))
	f.Fuzz(func(t *testing.T, b []byte) {
		for name, enc := range map[string][]byte{"quoted-printable": encodeQP(b), "base64": encodeBase64(b, true)} {
			if bareLineEnd(enc) >= 0 || longest(enc) > 76 {
				t.Fatalf("%s: bad lines: %q", name, enc)
			}
			dec := decodeQP(enc)
			if name == "base64" {
				dec = decodeBase64(enc)
			}
			if !bytes.Equal(dec, b) {
				t.Fatalf("%s: %q encodes to %q, which decodes to %q", name, b, enc, dec)
			}
		}
	})
}
