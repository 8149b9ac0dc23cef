package tags

import (
	"bytes"
	"encoding/base64"
	"errors"
	"flag"
	"io"
	"mime"
	"mime/multipart"
	"net/mail"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "rewrite the testdata/*.want.eml files")

// toCRLF turns the LF line ends of s into CRLF (samples are kept with LF).
func toCRLF(s string) []byte {
	return []byte(strings.ReplaceAll(strings.ReplaceAll(s, "\r\n", "\n"), "\n", "\r\n"))
}

// readSample returns testdata/name with CRLF line ends.
func readSample(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return toCRLF(string(b))
}

// testURL is what testLink returns: a "&" to escape in HTML.
func testURL(k Kind) string { return "https://links.example/" + string(k) + "/tok-ann?v=1&s=2" }

// testLink returns testURL and counts the calls per kind.
func testLink(calls map[Kind]int) Link {
	return func(k Kind) (string, error) {
		if calls != nil {
			calls[k]++
		}
		return testURL(k), nil
	}
}

// checkWire fails t unless every line of b ends in CRLF and is at most
// 998 bytes long.
func checkWire(t testing.TB, b []byte) {
	t.Helper()
	if i := bareLineEnd(b); i >= 0 {
		t.Fatalf("bare CR or LF at byte %d: %q", i, b[max(i-20, 0):min(i+20, len(b))])
	}
	for i, line := range bytes.Split(b, []byte("\r\n")) {
		if len(line) > maxLine {
			t.Fatalf("line %d is %d bytes long", i+1, len(line))
		}
	}
}

// headerOf returns the header of msg, up to and with the empty line.
func headerOf(msg []byte) []byte {
	if i := bytes.Index(msg, []byte("\r\n\r\n")); i >= 0 {
		return msg[:i+4]
	}
	return msg
}

// textPart is a text part as a mail client reads it.
type textPart struct {
	mediaType, body string
}

// readText returns the text parts of msg, decoded, read with the
// standard library rather than this package, the way a client would.
func readText(t testing.TB, msg []byte) []textPart {
	t.Helper()
	m, err := mail.ReadMessage(bytes.NewReader(msg))
	if err != nil {
		t.Fatal(err)
	}
	var out []textPart
	var visit func(h map[string][]string, r io.Reader)
	visit = func(h map[string][]string, r io.Reader) {
		get := func(k string) string {
			if v := h[k]; len(v) > 0 {
				return v[0]
			}
			return ""
		}
		mt, params, err := mime.ParseMediaType(get("Content-Type"))
		if err != nil {
			mt = "text/plain"
		}
		if strings.HasPrefix(mt, "multipart/") {
			mr := multipart.NewReader(r, params["boundary"])
			for {
				p, err := mr.NextPart() // decodes quoted-printable
				if err == io.EOF {
					return
				}
				if err != nil {
					t.Fatalf("reading the multipart: %v", err)
				}
				visit(p.Header, p)
			}
		}
		b, err := io.ReadAll(r)
		if err != nil {
			t.Fatal(err)
		}
		if strings.EqualFold(get("Content-Transfer-Encoding"), "base64") {
			if b, err = base64.StdEncoding.DecodeString(strings.NewReplacer("\r", "", "\n", "").Replace(string(b))); err != nil {
				t.Fatalf("base64: %v", err)
			}
		}
		if strings.HasPrefix(mt, "text/") {
			out = append(out, textPart{mt, string(b)})
		}
	}
	visit(m.Header, m.Body)
	return out
}

// TestSamples rewrites the messages of testdata and compares them with
// testdata/*.want.eml (go test -update writes those), and checks what a
// reader of the result sees.
func TestSamples(t *testing.T) {
	u := testURL
	hu := func(k Kind) string { return strings.ReplaceAll(u(k), "&", "&amp;") }
	tests := []struct {
		name string
		// Substrings of the decoded text parts, in order of the parts.
		want [][]string
	}{
		{"plain-7bit", [][]string{{
			"signed up at shop.example.\r\nUnsubscribe <" + u(Unsubscribe) + "> | Change what you get <" + u(Manage) + ">\r\n",
			"Did someone else sign you up? Tell us it was you <" + u(OptIn) + "> or ignore this.",
		}}},
		{"html-8bit", [][]string{{
			`Plus de nouvelles&nbsp;? <a href="` + hu(Manage) + `">G&eacute;rer mes pr&eacute;f&eacute;rences</a> &middot; <a href="` + hu(Unsubscribe) + `">Se désabonner</a></p>`,
			`<p><a href="` + hu(Manage) + `" style="color:#8a3b12">Mes préférences</a></p>`,
			"<title>Notre menu d’avril</title>",
		}}},
		{"alternative-qp", [][]string{
			{
				"Grüße aus München! Abmelden – sofort <" + u(Unsubscribe) + "> · Einstellungen ändern <" + u(Manage) + ">\r\n===\r\nTrailing blank  ",
			},
			{
				`<!--[if mso]><v:roundrect xmlns:v="urn:schemas-microsoft-com:vml" href="` + hu(Manage) + `" style=`,
				`<!--[if !mso]><!--><a href="` + hu(Manage) + `" class="button">Einstellungen</a><!--<![endif]-->`,
				`<p><a href="` + hu(Unsubscribe) + `">Abmelden &ndash; sofort</a></p>`,
			},
		}},
		{"mixed-attachment", [][]string{
			{"your invoice for March (49,00 €) is attached.\r\n\r\nBilling notices: choose which mail you get <" + u(Manage) + ">\r\nNot yours? unsubscribe <" + u(Unsubscribe) + ">\r\n"},
			{`Billing notices: <a href="` + hu(Manage) + `">choose which mail you get</a><br>Not yours? <a href="` + hu(Unsubscribe) + `">unsubscribe</a></p>`},
			{"The template you uploaded, as it is: [unsubscribe: Unsubscribe]"}, // an attachment
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			msg := readSample(t, tt.name+".eml")
			if !Has(msg) {
				t.Fatal("Has is false")
			}
			calls := map[Kind]int{}
			out, err := Rewrite(msg, testLink(calls))
			if err != nil {
				t.Fatal(err)
			}
			kinds := map[Kind]bool{}
			for _, p := range walk(msg).parts { // the text parts, attachments left out
				for _, tg := range findTags(p.decode()) {
					kinds[tg.kind] = true
				}
			}
			if len(calls) != len(kinds) {
				t.Errorf("Link called for %v, the message has %v", calls, kinds)
			}
			for k, n := range calls {
				if n != 1 || !kinds[k] {
					t.Errorf("Link(%s) called %d times", k, n)
				}
			}
			checkWire(t, out)
			if !bytes.Equal(headerOf(out), headerOf(msg)) {
				t.Errorf("header changed:\n%s", headerOf(out))
			}
			parts := readText(t, out)
			if len(parts) < len(tt.want) {
				t.Fatalf("%d text parts, want %d", len(parts), len(tt.want))
			}
			for i, want := range tt.want {
				for _, s := range want {
					if !strings.Contains(parts[i].body, s) {
						t.Errorf("part %d (%s) lacks %q:\n%s", i+1, parts[i].mediaType, s, parts[i].body)
					}
				}
				if !strings.Contains(strings.Join(want, ""), "[") && hasTag([]byte(parts[i].body)) {
					t.Errorf("part %d keeps a tag:\n%s", i+1, parts[i].body)
				}
			}
			golden := filepath.Join("testdata", tt.name+".want.eml")
			if *update {
				if err := os.WriteFile(golden, bytes.ReplaceAll(out, []byte("\r\n"), []byte("\n")), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			if want := readSample(t, tt.name+".want.eml"); !bytes.Equal(out, want) {
				t.Errorf("output differs from %s (go test -update rewrites it):\n%s", golden, out)
			}
		})
	}
}

// TestNoTags: a message without tags comes back as it is, the same slice,
// without a call to Link.
func TestNoTags(t *testing.T) {
	for _, name := range []string{"notags.eml"} {
		msg := readSample(t, name)
		if Has(msg) {
			t.Fatalf("%s: Has is true", name)
		}
		out, err := Rewrite(msg, func(Kind) (string, error) { t.Fatal("Link called"); return "", nil })
		if err != nil {
			t.Fatal(err)
		}
		if len(out) != len(msg) || &out[0] != &msg[0] {
			t.Fatalf("%s: not the same slice", name)
		}
	}
}

// TestAttachmentsUntouched: everything but the two text parts of the
// mixed sample is byte for byte what it was: the PDF, the text
// attachment, the attached message, the preamble and the boundaries.
func TestAttachmentsUntouched(t *testing.T) {
	msg := readSample(t, "mixed-attachment.eml")
	out, err := Rewrite(msg, testLink(nil))
	if err != nil {
		t.Fatal(err)
	}
	cut := func(b []byte) []byte {
		i := bytes.Index(b, []byte("--mixed-0001\r\nContent-Type: application/pdf"))
		if i < 0 {
			t.Fatal("no PDF part")
		}
		return b[i:]
	}
	if !bytes.Equal(cut(out), cut(msg)) {
		t.Fatalf("the parts after the text changed:\n%s", cut(out))
	}
	head := func(b []byte) []byte {
		i := bytes.Index(b, []byte("Content-Transfer-Encoding: base64\r\n\r\n"))
		return b[:i]
	}
	if !bytes.Equal(head(out), head(msg)) {
		t.Fatal("the headers before the first text part changed")
	}
	// The PDF decodes to what it was.
	var pdf []byte
	m, _ := mail.ReadMessage(bytes.NewReader(out))
	_, params, _ := mime.ParseMediaType(m.Header.Get("Content-Type"))
	mr := multipart.NewReader(m.Body, params["boundary"])
	for {
		p, err := mr.NextPart()
		if err != nil {
			break
		}
		if p.Header.Get("Content-Type") == `application/pdf; name="invoice-2026-03.pdf"` {
			b, _ := io.ReadAll(p)
			pdf, _ = base64.StdEncoding.DecodeString(strings.ReplaceAll(string(b), "\r\n", ""))
		}
	}
	if !bytes.HasPrefix(pdf, []byte("%PDF-1.4")) || !bytes.Contains(pdf, []byte("([manage: not a tag]) Tj")) {
		t.Fatalf("PDF: %q", pdf)
	}
}

// msg1 returns a one-part message with the given type, encoding and body.
func msg1(contentType, cte, body string) []byte {
	h := "From: a@example.com\nTo: b@example.org\nSubject: x\nMIME-Version: 1.0\n"
	if contentType != "" {
		h += "Content-Type: " + contentType + "\n"
	}
	if cte != "" {
		h += "Content-Transfer-Encoding: " + cte + "\n"
	}
	return toCRLF(h + "\n" + body)
}

// bodyOf returns the body of a one-part message.
func bodyOf(msg []byte) string {
	_, b, _ := bytes.Cut(msg, []byte("\r\n\r\n"))
	return string(b)
}

// TestTags is the table of tag syntax and what each tag becomes, in
// one-part messages; want is the body after Rewrite (LF for CRLF), err a
// substring of the error.
func TestTags(t *testing.T) {
	u := testURL
	hu := func(k Kind) string { return strings.ReplaceAll(u(k), "&", "&amp;") }
	plain, htm := "text/plain; charset=utf-8", "text/html; charset=utf-8"
	long := strings.Repeat("é", MaxText)
	tests := []struct {
		name, ct, cte, body string
		want, err           string
	}{
		{"plain", plain, "", "Go: [manage: here]\n", "Go: here <" + u(Manage) + ">\n", ""},
		{"no content type is text/plain", "", "", "[opt-in: yes]", "yes <" + u(OptIn) + ">", ""},
		{"kind in any case", plain, "", "[Opt-In: a] [UNSUBSCRIBE: b] [mAnAgE: c]",
			"a <" + u(OptIn) + "> b <" + u(Unsubscribe) + "> c <" + u(Manage) + ">", ""},
		{"spaces and tabs after the colon, none needed", plain, "", "[manage:x] [manage: \t y  ]",
			"x <" + u(Manage) + "> y <" + u(Manage) + ">", ""},
		{"TEXT of MaxText characters", plain, "8bit", "[manage: " + long + "]", long + " <" + u(Manage) + ">", ""},
		{"TEXT may hold [", plain, "", "[manage: [x]", "[x <" + u(Manage) + ">", ""},
		{"two tags on a line and one at the end", plain, "", "[manage: a][unsubscribe: b]\n[opt-in: c]",
			"a <" + u(Manage) + ">b <" + u(Unsubscribe) + ">\nc <" + u(OptIn) + ">", ""},
		{"HTML specials kept in a text part", plain, "", "[manage: Tom & Jerry <prefs> \"here\"]",
			"Tom & Jerry <prefs> \"here\" <" + u(Manage) + ">", ""},
		{"us-ascii", "text/plain; charset=US-ASCII", "", "[manage: x]", "x <" + u(Manage) + ">", ""},
		{"quoted charset", `text/plain; charset="utf-8"`, "", "[manage: x]", "x <" + u(Manage) + ">", ""},

		{"html text", htm, "", "<p>[manage: Prefs]</p>", `<p><a href="` + hu(Manage) + `">Prefs</a></p>`, ""},
		{"html TEXT kept as HTML", htm, "", "<p>[manage: Tom &amp; Jerry &eacute; & co]</p>",
			`<p><a href="` + hu(Manage) + `">Tom &amp; Jerry &eacute; & co</a></p>`, ""},
		{"html double-quoted attribute", htm, "", `<a href="[manage: x]">Prefs</a>`, `<a href="` + hu(Manage) + `">Prefs</a>`, ""},
		{"html single-quoted attribute", htm, "", `<a class=b href = '[manage: x]'>P</a>`, `<a class=b href = '` + hu(Manage) + `'>P</a>`, ""},
		{"html attribute with more around the tag", htm, "", `<img alt="see [manage: x] now">`, `<img alt="see ` + hu(Manage) + ` now">`, ""},
		{"html comment", htm, "", "<!-- [manage: x] -->", `<!-- <a href="` + hu(Manage) + `">x</a> -->`, ""},
		{"html conditional comment", htm, "", `<!--[if mso]><v:roundrect href="[manage: x]"><center>[manage: y]</center></v:roundrect><![endif]-->`,
			`<!--[if mso]><v:roundrect href="` + hu(Manage) + `"><center><a href="` + hu(Manage) + `">y</a></center></v:roundrect><![endif]-->`, ""},
		{"html unclosed comment", htm, "", "<!-- [manage: x]", `<!-- <a href="` + hu(Manage) + `">x</a>`, ""},
		{"html comment with --!>", htm, "", "<!--[manage: x]--!>", `<!--<a href="` + hu(Manage) + `">x</a>--!>`, ""},
		{"html after an empty comment", htm, "", "<!-->[manage: x]", `<!--><a href="` + hu(Manage) + `">x</a>`, ""},
		{"html comment in a comment", htm, "", "<!-- <!-- [manage: x] -->", `<!-- <!-- <a href="` + hu(Manage) + `">x</a> -->`, ""},
		{"html processing instruction", htm, "", "<?php [manage: x] ?>", "", "inside HTML markup"},
		{"html CDATA", htm, "", "<![CDATA[[manage: x]]]>", "", "inside HTML markup"},
		{"html after an <a> closes", htm, "", `<a href="/">home</a> [manage: x]`, `<a href="/">home</a> <a href="` + hu(Manage) + `">x</a>`, ""},
		{"html < not starting a tag", htm, "", "<p>1 < 2 [manage: x]</p>", `<p>1 < 2 <a href="` + hu(Manage) + `">x</a></p>`, ""},
		{"html unquoted attribute", htm, "", "<a href=[manage:x]>P</a>", "", "not in a quoted attribute value"},
		{"html unquoted attribute with a space", htm, "", "<a href=[manage: x]>P</a>", "", "not in a quoted attribute value"},
		{"html tag name position", htm, "", "<p [manage: x]>P</p>", "", "not in a quoted attribute value"},
		{"html tag past the quote", htm, "", `<a title="[manage: x">y]</a>`, "", "runs past the end of its attribute value"},
		{"html TEXT with <", htm, "", "<p>[manage: a <b>c</b>]</p>", "", `has "<" or ">"`},
		{"html TEXT with < and a space", htm, "", "<p>[manage: a < b]</p>", "", `has "<" or ">"`},
		{"html TEXT with >", htm, "", "<p>[manage: a > b]</p>", "", `has "<" or ">"`},
		{"html inside <a>", htm, "", `<a href="/x">[manage: x]</a>`, "", "links do not nest"},
		{"html inside <title>", htm, "", "<title>[manage: x]</title>", "", "inside <title>"},
		{"html inside <style>", htm, "", "<style>p:after{content:'[manage: x]'}</style>", "", "inside <style>"},
		{"html inside <script>", htm, "", "<script>var a='[manage: x]'</script>", "", "inside <script>"},
		{"html inside a doctype", htm, "", "<!DOCTYPE [manage: x]>", "", "inside HTML markup"},
		{"html inside an unclosed tag", htm, "", `<a href="[manage: x]`, "", "inside HTML markup"},

		{"other charset", "text/plain; charset=iso-8859-1", "", "[manage: x]", "", `charset "iso-8859-1"`},
		{"other charset in HTML", "text/html; charset=Shift_JIS", "", "[manage: x]", "", `charset "shift_jis"`},
		{"7bit line too long", plain, "7bit", strings.Repeat("a", 980) + "[manage: x]\n", "", "makes a line of 1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			msg := msg1(tt.ct, tt.cte, tt.body)
			if !Has(msg) {
				t.Error("Has is false")
			}
			out, err := Rewrite(msg, testLink(nil))
			if tt.err != "" {
				if err == nil || !strings.Contains(err.Error(), tt.err) || !errors.Is(err, ErrMessage) {
					t.Fatalf("error %v, want one with %q wrapping ErrMessage", err, tt.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			checkWire(t, out)
			if got, want := bodyOf(out), string(toCRLF(tt.want)); got != want {
				t.Fatalf("body\n%q\nwant\n%q", got, want)
			}
			if !bytes.Equal(headerOf(out), headerOf(msg)) {
				t.Fatal("header changed")
			}
		})
	}
}

// TestNotTags: text that looks like a tag but is not one is left alone.
func TestNotTags(t *testing.T) {
	for _, body := range []string{
		"[manage:]",
		"[manage: ]",
		"[manage: \t ]",
		"[ manage: x]",
		"[manage : x]",
		"[managed: x]",
		"[manage x]",
		"[manage-: x]",
		"[subscribe: x]",
		"[manage: x",
		"[manage: broken\nline]",
		"[manage: " + strings.Repeat("a", MaxText+1) + "]",
		"(manage: x)",
		"［manage: x］",      // fullwidth brackets
		"[ＭＡＮＡＧＥ: x]",      // fullwidth letters
		"[unſubscribe: x]", // a long s is no "s"
		"&#91;manage: x&#93;",
	} {
		for _, ct := range []string{"text/plain; charset=utf-8", "text/html; charset=utf-8"} {
			msg := msg1(ct, "8bit", body)
			if Has(msg) {
				t.Errorf("%q (%s): Has is true", body, ct)
			}
			if out, err := Rewrite(msg, testLink(nil)); err != nil || !bytes.Equal(out, msg) {
				t.Errorf("%q (%s): %v, changed: %v", body, ct, err, !bytes.Equal(out, msg))
			}
		}
	}
}

// TestEncodings: tags in quoted-printable and base64 parts, and the lines
// those are encoded in.
func TestEncodings(t *testing.T) {
	u := testURL(Manage)
	long := strings.Repeat("Grüße ", 300) // one long line, 2100 bytes
	tests := []struct {
		name, cte, body string
		want            string // decoded
	}{
		{"qp soft break inside the kind", "quoted-printable", "A [ma=\nnage: x] b", "A x <" + u + "> b"},
		{"qp soft break inside TEXT, UTF-8 around", "quoted-printable",
			"Gr=C3=BC=C3=9Fe [manage: =C3=A4n=\ndern] =E2=80=93 M=C3=BCnchen\n", "Grüße ändern <" + u + "> – München\r\n"},
		{"qp escaped bracket", "quoted-printable", "=5Bmanage: x=5D", "x <" + u + ">"},
		{"qp soft break with blanks after =", "quoted-printable", "[manage: x=  \n]", "x <" + u + ">"},
		{"qp long line", "quoted-printable", long + "[manage: x]\n", long + "x <" + u + ">\r\n"},
		{"qp keeps bare CR and LF of the text", "quoted-printable", "a=0Ab=0Dc [manage: x]", "a\nb\rc x <" + u + ">"},
		{"qp lowercase hex and a stray =", "quoted-printable", "=c3=a9 = [manage: x]", "é = x <" + u + ">"},
		{"qp ending in a soft line break", "quoted-printable", "[manage: x]=\n", "x <" + u + ">"},
		{"base64", "base64", base64Lines("Hello [manage: Einstellungen ändern]\r\n" + long + "\r\n"),
			"Hello Einstellungen ändern <" + u + ">\r\n" + long + "\r\n"},
		{"base64 with LF in the text", "base64", base64Lines("a\nb [manage: x]\n"), "a\nb x <" + u + ">\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			msg := msg1("text/plain; charset=utf-8", tt.cte, tt.body)
			if !Has(msg) {
				t.Fatal("Has is false")
			}
			out, err := Rewrite(msg, testLink(nil))
			if err != nil {
				t.Fatal(err)
			}
			checkWire(t, out)
			body := bodyOf(out)
			for _, line := range strings.Split(body, "\r\n") {
				if len(line) > 76 {
					t.Fatalf("a %s line of %d characters: %q", tt.cte, len(line), line)
				}
			}
			parts := readText(t, out)
			var got string
			if tt.cte == "quoted-printable" {
				got = string(decodeQP([]byte(body))) // readText does not decode a single part
			} else {
				got = parts[0].body
			}
			if got != tt.want {
				t.Fatalf("decoded\n%q\nwant\n%q\nencoded\n%s", got, tt.want, body)
			}
			if strings.HasSuffix(tt.body, "\n") != strings.HasSuffix(body, "\r\n") {
				t.Fatal("the final line end was not kept")
			}
		})
	}
}

// base64Lines encodes s in lines of 76 characters, LF after each.
func base64Lines(s string) string {
	e := base64.StdEncoding.EncodeToString([]byte(s))
	var b strings.Builder
	for len(e) > 76 {
		b.WriteString(e[:76] + "\n")
		e = e[76:]
	}
	return b.String() + e + "\n"
}

// TestQPRoundTrip: what encodeQP writes decodes to what it was given.
func TestQPRoundTrip(t *testing.T) {
	for _, s := range []string{
		"", "a", "a \r\n", "a\t", "=", "==\r\n=\r\n", "\r", "\n", "\r\r\n\n", strings.Repeat("x", 75), strings.Repeat("x", 76),
		strings.Repeat("é", 40), strings.Repeat(" ", 200), "line\r\n\r\n\r\nend\r\n", ".\r\n.", "\x00\xff\x7f",
	} {
		enc := encodeQP([]byte(s))
		if got := string(decodeQP(enc)); got != s {
			t.Errorf("%q: encoded %q decodes to %q", s, enc, got)
		}
		checkWire(t, enc)
		for _, line := range bytes.Split(enc, []byte("\r\n")) {
			if len(line) > 76 {
				t.Errorf("%q: line %q", s, line)
			}
		}
	}
}

// TestParts: which parts are rewritten and which are kept.
func TestParts(t *testing.T) {
	tagged := "[manage: x]"
	tests := []struct {
		name    string
		msg     string
		has     bool
		changed string // a string the output holds, when has
		err     string
	}{
		{"text attachment kept", "Content-Type: multipart/mixed; boundary=b\n\n--b\nContent-Type: text/plain\nContent-Disposition: attachment; filename=a.txt\n\n" + tagged + "\n--b--\n", false, "", ""},
		{"inline part rewritten", "Content-Type: multipart/mixed; boundary=b\n\n--b\nContent-Type: text/plain\nContent-Disposition: inline\n\n" + tagged + "\n--b--\n", true, "x <", ""},
		{"attached message kept", "Content-Type: multipart/mixed; boundary=b\n\n--b\nContent-Type: message/rfc822\n\nSubject: old\n\n" + tagged + "\n--b--\n", false, "", ""},
		{"digest parts are messages", "Content-Type: multipart/digest; boundary=b\n\n--b\n\nSubject: old\n\n" + tagged + "\n--b--\n", false, "", ""},
		{"image kept", "Content-Type: multipart/related; boundary=b\n\n--b\nContent-Type: image/svg+xml\n\n<svg>" + tagged + "</svg>\n--b--\n", false, "", ""},
		{"unknown encoding kept", "Content-Type: text/plain\nContent-Transfer-Encoding: x-uuencode\n\n" + tagged + "\n", false, "", ""},
		{"preamble and epilogue kept", "Content-Type: multipart/mixed; boundary=b\n\n" + tagged + "\n--b\n\nhi\n--b--\n" + tagged + "\n", false, "", ""},
		{"part without header", "Content-Type: multipart/mixed; boundary=b\n\n--b\n\n" + tagged + "\n--b--\n", true, "x <", ""},
		{"missing close delimiter", "Content-Type: multipart/mixed; boundary=b\n\n--b\nContent-Type: text/plain\n\n" + tagged + "\n", true, "x <", ""},
		{"boundary with padding", "Content-Type: multipart/mixed; boundary=\"b c\"\n\n--b c \t\nContent-Type: text/html\n\n" + tagged + "\n--b c--\n", true, "<a href=", ""},
		{"longer line is no delimiter", "Content-Type: multipart/mixed; boundary=b\n\n--b\n\n--bx " + tagged + "\n--b--\n", true, "--bx x <", ""},
		{"broken content type parameters", "Content-Type: multipart/mixed; boundary=b;;\n\n--b\nContent-Type: text/plain; charset=utf-8;\n\n" + tagged + "\n--b--\n", true, "x <", ""},
		{"two content types", "Content-Type: text/plain\nContent-Type: text/html\n\n" + tagged + "\n", true, "", "two content-type fields"},
		{"two encodings", "Content-Transfer-Encoding: 7bit\ncontent-transfer-encoding: base64\n\n" + tagged + "\n", true, "", "two content-transfer-encoding fields"},
		{"two content types around the part", "Content-Type: multipart/mixed; boundary=b\nContent-Type: text/plain\n\n--b\n\n" + tagged + "\n--b--\n", true, "", "two content-type fields"},
		{"unquoted boundary with =", "Content-Type: multipart/alternative; boundary=----=_Part_1\n\n------=_Part_1\nContent-Type: text/plain (a comment)\n\n" + tagged + "\n------=_Part_1--\n", true, "x <", ""},
		{"signed", "Content-Type: multipart/signed; boundary=b; protocol=\"application/pgp-signature\"\n\n--b\nContent-Type: text/plain\n\n" + tagged + "\n--b\nContent-Type: application/pgp-signature\n\nsig\n--b--\n", true, "", "multipart/signed"},
		{"charset names the part", "Content-Type: multipart/mixed; boundary=b\n\n--b\n\nok\n--b\nContent-Type: multipart/alternative; boundary=c\n\n--c\nContent-Type: text/html; charset=windows-1252\n\n" + tagged + "\n--c--\n--b--\n", true, "", `part 2.1 (text/html)`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			msg := toCRLF("From: a@example.com\nMIME-Version: 1.0\n" + tt.msg)
			if got := Has(msg); got != tt.has {
				t.Fatalf("Has is %v", got)
			}
			out, err := Rewrite(msg, testLink(nil))
			if tt.err != "" {
				if err == nil || !strings.Contains(err.Error(), tt.err) || !errors.Is(err, ErrMessage) {
					t.Fatalf("error %v, want one with %q", err, tt.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			checkWire(t, out)
			if !tt.has {
				if !bytes.Equal(out, msg) {
					t.Fatalf("changed:\n%s", out)
				}
				return
			}
			if !strings.Contains(string(out), tt.changed) {
				t.Fatalf("no %q:\n%s", tt.changed, out)
			}
		})
	}
}

// nested returns a message with n multiparts inside each other around a
// text part holding text.
func nested(n int, text string) []byte {
	var b strings.Builder
	b.WriteString("From: a@example.com\nMIME-Version: 1.0\n")
	for i := range n {
		b.WriteString("Content-Type: multipart/mixed; boundary=\"b" + strings.Repeat("x", i) + "\"\n\n")
		b.WriteString("--b" + strings.Repeat("x", i) + "\n")
	}
	b.WriteString("Content-Type: text/plain\n\n" + text + "\n")
	for i := n - 1; i >= 0; i-- {
		b.WriteString("--b" + strings.Repeat("x", i) + "--\n")
	}
	return toCRLF(b.String())
}

// TestDepth: MaxDepth multiparts are walked; one more is refused, with
// or without a tag, and Has reports it.
func TestDepth(t *testing.T) {
	msg := nested(MaxDepth, "[manage: deep]")
	out, err := Rewrite(msg, testLink(nil))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(out, []byte("deep <"+testURL(Manage)+">")) {
		t.Fatalf("not rewritten:\n%s", out)
	}
	if Has(nested(MaxDepth, "no tag")) {
		t.Fatal("Has is true without a tag")
	}
	for _, text := range []string{"[manage: deep]", "no tag"} {
		msg := nested(MaxDepth+1, text)
		if !Has(msg) {
			t.Errorf("%s: Has is false", text)
		}
		if _, err := Rewrite(msg, testLink(nil)); !errors.Is(err, ErrMessage) || !strings.Contains(err.Error(), "deeper than 20") {
			t.Errorf("%s: error %v", text, err)
		}
	}
}

// TestHeaderKept: header fields of the message and of the parts stay
// byte for byte, however they are written.
func TestHeaderKept(t *testing.T) {
	top := "Received: from x (x [192.0.2.1])\n\tby y; Tue, 14 Apr 2026 09:00:00 +0000\n" +
		"From:   a@example.com  \nSubject: =?utf-8?q?[manage:_x]?=\n  [manage: in a header]\n" +
		"X-Weird:no space\nMIME-Version: 1.0\nContent-Type: multipart/alternative;\n boundary=\"outer\";\n\tcharset=utf-8 (comment)\n\n"
	sub := "--outer\ncontent-type: TEXT/PLAIN ; CHARSET=\"UTF-8\"\nCONTENT-TRANSFER-ENCODING:  Quoted-Printable \nX-Part: [manage: part header]\n\n"
	msg := toCRLF(top + sub + "[manage: x]\n--outer--\n")
	out, err := Rewrite(msg, testLink(nil))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.HasPrefix(out, toCRLF(top+sub)) {
		t.Fatalf("headers changed:\n%s", out)
	}
	if !bytes.Contains(decodeQP(out), []byte("\r\nx <"+testURL(Manage)+">\r\n--outer--")) {
		t.Fatalf("not rewritten:\n%s", out)
	}
	checkWire(t, out)
}

// TestURLEscaped: a URL with & and quotes is escaped in an href and kept
// as it is in text.
func TestURLEscaped(t *testing.T) {
	link := func(Kind) (string, error) { return `https://l.example/m?a=1&b="2"&c='3'`, nil }
	out, err := Rewrite(msg1("text/html", "", `<p>[manage: x]</p><a href="[manage: y]">z</a>`), link)
	if err != nil {
		t.Fatal(err)
	}
	esc := `https://l.example/m?a=1&amp;b=&#34;2&#34;&amp;c=&#39;3&#39;`
	if got, want := bodyOf(out), `<p><a href="`+esc+`">x</a></p><a href="`+esc+`">z</a>`; got != want {
		t.Fatalf("got  %s\nwant %s", got, want)
	}
	out, err = Rewrite(msg1("text/plain", "", "[manage: x]"), link)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := bodyOf(out), `x <https://l.example/m?a=1&b="2"&c='3'>`; got != want {
		t.Fatalf("got  %s\nwant %s", got, want)
	}
}

// TestLinkErrors: an error of Link is returned wrapped, and a URL that
// cannot go in a message is refused; neither wraps ErrMessage.
func TestLinkErrors(t *testing.T) {
	msg := msg1("text/plain", "", "[unsubscribe: x]")
	boom := errors.New("no key")
	_, err := Rewrite(msg, func(Kind) (string, error) { return "", boom })
	if !errors.Is(err, boom) || errors.Is(err, ErrMessage) || !strings.Contains(err.Error(), "unsubscribe") {
		t.Fatalf("error %v", err)
	}
	for _, u := range []string{"", "https://x/a b", "https://x/\r\nBcc: c", "https://x/<a>", "https://x/é", "https://x/\x7f"} {
		_, err := Rewrite(msg, func(Kind) (string, error) { return u, nil })
		if err == nil || errors.Is(err, ErrMessage) {
			t.Errorf("%q: error %v", u, err)
		}
	}
}

// TestBareLineEnds: a message with a tag and a bare LF is refused rather
// than passed on with broken line ends.
func TestBareLineEnds(t *testing.T) {
	msg := append(msg1("text/plain", "", "[manage: x]\n"), "more\nlines"...)
	if _, err := Rewrite(msg, testLink(nil)); !errors.Is(err, ErrMessage) || !strings.Contains(err.Error(), "bare CR or LF") {
		t.Fatalf("error %v", err)
	}
}

// TestRewriteKeepsInput: Rewrite does not change the message it is given.
func TestRewriteKeepsInput(t *testing.T) {
	msg := readSample(t, "alternative-qp.eml")
	c := bytes.Clone(msg)
	if _, err := Rewrite(msg, testLink(nil)); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(c, msg) {
		t.Fatal("input changed")
	}
}

func BenchmarkRewrite(b *testing.B) {
	msg := readSample(b, "mixed-attachment.eml")
	b.SetBytes(int64(len(msg)))
	for b.Loop() {
		if _, err := Rewrite(msg, testLink(nil)); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkHas(b *testing.B) {
	msg := readSample(b, "notags.eml")
	b.SetBytes(int64(len(msg)))
	for b.Loop() {
		Has(msg)
	}
}

// BenchmarkLargeMessages: messages of 1 MiB built to make a careless
// parser quadratic take about as long as any other megabyte.
func BenchmarkLargeMessages(b *testing.B) {
	big := 1 << 20
	for _, bm := range []struct{ name, msg string }{
		{"unclosed tags", "Content-Type: text/plain\n\n" + strings.Repeat("[manage: x", big/10) + "]"},
		{"open brackets", "Content-Type: text/html\n\n" + strings.Repeat("[manage: ", big/9)},
		{"tags in attributes", "Content-Type: text/html\nContent-Transfer-Encoding: quoted-printable\n\n" + strings.Repeat("<a b=3D'[manage: x]'>\n", big/22)},
		{"comments", "Content-Type: text/html\n\n[manage: x]" + strings.Repeat("<!--", big/4)},
		{"folded header", "Content-Type: text/plain;\n" + strings.Repeat(" a=b;\n", big/6) + "\n[manage: x]"},
		{"false delimiters", "Content-Type: multipart/mixed; boundary=b\n\n" + strings.Repeat("--bx\n", big/5) + "--b\n\n[manage: x]"},
		{"many parts", "Content-Type: multipart/mixed; boundary=b\n\n" + strings.Repeat("--b\n\n[manage: x]\n", big/16)},
		{"soft breaks", "Content-Type: text/plain\nContent-Transfer-Encoding: quoted-printable\n\n" + strings.Repeat("=\n", big/2) + "[manage: x]"},
	} {
		msg := toCRLF(bm.msg)
		b.Run(bm.name, func(b *testing.B) {
			b.SetBytes(int64(len(msg)))
			for b.Loop() {
				Has(msg)
				Rewrite(msg, testLink(nil))
			}
		})
	}
}

// MayHold is false only where Has is: a plain message without '['.
func TestMayHold(t *testing.T) {
	for in, want := range map[string]bool{
		"Subject: hi\r\n\r\nplain text, no brackets\r\n":                       false,
		"Subject: hi\r\n\r\n[unsubscribe: bye]\r\n":                            true,
		"Content-Transfer-Encoding: quoted-printable\r\n\r\n=5Bmanage: x]\r\n": true,
		"Content-Transfer-Encoding: BASE64\r\n\r\nW29wdC1pbjogeWVzXQ==\r\n":    true,
	} {
		if got := MayHold([]byte(in)); got != want || (!got && Has([]byte(in))) {
			t.Errorf("MayHold(%q) = %v, want %v", in, got, want)
		}
	}
}
