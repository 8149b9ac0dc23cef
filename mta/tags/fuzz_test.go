package tags

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/net/html"
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

// FuzzRewritePart: HTML segments cover the source; in a text or HTML
// part, 8bit or quoted-printable, Rewrite changes the tags and only the
// tags: what the part decodes to
// is what it decoded to, with each tag replaced by one of the forms the
// package doc gives.
func FuzzRewritePart(f *testing.F) {
	f.Add([]byte("a [manage: b] c"), false, false)
	f.Add([]byte("<p>[manage: b]</p><a href='[unsubscribe: x]'>y</a><!--[if mso]>[opt-in: z]<![endif]-->"), true, false)
	f.Add([]byte("Gr=C3=BC=C3=9Fe [man=\nage: b] =3D"), false, true)
	f.Add([]byte("<a title=3D\"[manage: x]\">[opt-in:=\n y]"), true, true)
	f.Fuzz(func(t *testing.T, body []byte, htmlPart, qp bool) {
		ct, cte := "text/plain; charset=utf-8", "8bit"
		if htmlPart {
			ct = "text/html; charset=utf-8"
		}
		if qp {
			cte = "quoted-printable"
		}
		if htmlPart {
			end := 0
			for _, sg := range htmlSegments(body) {
				if sg.start != end || sg.end <= sg.start {
					t.Fatalf("segment %+v after %d", sg, end)
				}
				end = sg.end
			}
			if end != len(body) {
				t.Fatalf("segments end at %d of %d", end, len(body))
			}
		}
		msg := msg1(ct, cte, string(body))
		_, start := readHeader(msg)
		out, err := Rewrite(msg, testLink(nil))
		if err != nil {
			if !errors.Is(err, ErrMessage) {
				t.Fatal(err)
			}
			return
		}
		if !bytes.Equal(out[:start], msg[:start]) {
			t.Fatal("header changed")
		}
		before, after := msg[start:], out[start:]
		if qp {
			before, after = decodeQP(before), decodeQP(after)
		}
		pos, last := 0, 0
		for _, tg := range findTags(before) {
			between := before[last:tg.start]
			if !bytes.HasPrefix(after[pos:], between) {
				t.Fatalf("text before %s changed:\n%q\n%q", tg, before, after)
			}
			pos += len(between)
			u := testURL(tg.kind)
			forms := [][]byte{[]byte(string(tg.text) + " <" + u + ">")}
			if htmlPart {
				hu := strings.ReplaceAll(u, "&", "&amp;")
				forms = [][]byte{[]byte(`<a href="` + hu + `">` + string(tg.text) + "</a>"), []byte(hu)}
			}
			matched := false
			for _, form := range forms {
				if bytes.HasPrefix(after[pos:], form) {
					pos += len(form)
					matched = true
					break
				}
			}
			if !matched {
				t.Fatalf("%s not replaced:\n%q\n%q", tg, before, after)
			}
			last = tg.end
		}
		if !bytes.Equal(after[pos:], before[last:]) {
			t.Fatalf("text after the last tag changed:\n%q\n%q", before, after)
		}
	})
}

// FuzzAttributes: attributes reads a tag's attributes as the tokenizer
// does: the same keys, in order, with the same values.
func FuzzAttributes(f *testing.F) {
	for _, s := range []string{
		`<a href="[manage: x]">`, `<a =x href='y'>`, `<a/href='x'/>`, `<a href = "x" >`, `<a b=c"d href="x">`,
		`<a b= 'x'>`, `<a b=>`, `<a b="x>y">`, `<a "b"="c">`, `<A HREF=x TITLE=y href=z>`, "<p\tb\n=\f'x'>", `</a b="c">`,
		`<a b='x`, `<a b=/>`, `<a b c=d e>`, `<a ==x>`,
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		z := html.NewTokenizer(strings.NewReader(s))
		tt := z.Next()
		if tt != html.StartTagToken && tt != html.SelfClosingTagToken {
			return
		}
		raw := []byte(s[:len(z.Raw())])
		tok := z.Token()
		var keys, vals []string
		seen := map[string]bool{}
		for _, a := range attributes(raw) {
			kb := bytes.Clone(raw[a.key[0]:a.key[1]])
			for i, c := range kb {
				if 'A' <= c && c <= 'Z' {
					kb[i] = c + 'a' - 'A'
				}
			}
			k := strings.ReplaceAll(string(kb), "\x00", "\uFFFD") // as Token does
			if !seen[k] {
				seen[k] = true
				keys = append(keys, k)
				vals = append(vals, string(raw[a.value[0]:a.value[1]]))
			}
		}
		if len(keys) != len(tok.Attr) {
			t.Fatalf("%q: keys %q, tokenizer %q", s, keys, tok.Attr)
		}
		for i, a := range tok.Attr {
			if a.Key != keys[i] {
				t.Fatalf("%q: keys %q, tokenizer %q", s, keys, tok.Attr)
			}
			if !strings.ContainsAny(vals[i], "&\x00") && a.Val != vals[i] {
				t.Fatalf("%q: value %q, tokenizer %q", s, vals[i], a.Val)
			}
		}
	})
}
