package tags

import (
	"bytes"
	"errors"
	"fmt"
	"unicode/utf8"

	"golang.org/x/net/html"
)

// Kind is the kind of a link tag, the word before its colon.
type Kind string

// The kinds of link tag.
const (
	OptIn       Kind = "opt-in"
	Unsubscribe Kind = "unsubscribe"
	Manage      Kind = "manage"
)

var kinds = [...]Kind{OptIn, Unsubscribe, Manage}

// Link returns the URL of kind's link for the recipient a Rewrite is for
// (the caller seals a token per recipient). Rewrite calls it at most once
// per kind, and only for the kinds the message holds.
type Link func(kind Kind) (string, error)

const (
	// MaxText is the most characters a tag's TEXT may have.
	MaxText = 200
	// MaxDepth is how deep multiparts may nest: a multipart inside
	// MaxDepth others is too deep.
	MaxDepth = 20
	// maxLine is the longest line, without its CRLF, that Rewrite writes
	// (RFC 5322 section 2.1.1).
	maxLine = 998
)

// ErrMessage is wrapped by every error of Rewrite that comes from the
// message itself (a tag where no link can go, a charset, a line, the
// nesting): the sender must change the message, and retrying is useless.
// Errors from Link, and a URL that cannot go in a message, do not wrap it.
var ErrMessage = errors.New("tags: cannot rewrite the message")

// Has reports whether msg (a whole RFC 5322 message, CRLF line ends, as
// Drover stores it) holds any tag in a text/plain or text/html part that
// is not an attachment, or nests multiparts deeper than MaxDepth (which
// Rewrite refuses: it cannot tell). When Has is false, Rewrite returns
// msg unchanged; when it is true, Rewrite changes msg or fails.
func Has(msg []byte) bool {
	if !MayHold(msg) {
		return false
	}
	w := walk(msg)
	if w.tooDeep != "" {
		return true
	}
	for _, p := range w.parts {
		if hasTag(p.decode()) {
			return true
		}
	}
	return false
}

// MayHold reports whether b, a message or any piece of one, may hold a
// tag, or nest too deep for Has to know: a '[' as it is or in
// quoted-printable (=5B), base64 (under which a tag hides), or at least
// MaxDepth multiparts. It reads b at memory speed and keeps Has, which
// decodes every part, off the messages that cannot have tags: nearly
// all. A message is free of tags if MayHold is false for each of its
// pieces.
func MayHold(b []byte) bool {
	for _, s := range []string{"[", "=5B", "=5b", "ase64", "ASE64"} {
		if bytes.Contains(b, []byte(s)) {
			return true
		}
	}
	return bytes.Count(b, []byte("ultipart/"))+bytes.Count(b, []byte("ULTIPART/")) >= MaxDepth
}

// Rewrite returns msg with every tag replaced by link's URL for its kind
// (see the package doc for what a tag becomes and where). A message
// without tags is returned as it is, the same slice. An error wraps
// ErrMessage when the message cannot be rewritten; an error of link is
// wrapped as it is. Rewrite does not change msg.
func Rewrite(msg []byte, link Link) ([]byte, error) {
	w := walk(msg)
	if w.tooDeep != "" {
		return nil, fmt.Errorf("%w: part %s: multiparts nest deeper than %d", ErrMessage, w.tooDeep, MaxDepth)
	}
	type edit struct {
		part   *part
		body   []byte // decoded
		tagged []tag
	}
	var edits []edit
	for i := range w.parts {
		p := &w.parts[i]
		body := p.decode()
		if t := findTags(body); len(t) > 0 {
			edits = append(edits, edit{p, body, t})
		}
	}
	if len(edits) == 0 {
		return msg, nil
	}
	if i := bareLineEnd(msg); i >= 0 {
		return nil, fmt.Errorf("%w: a bare CR or LF at byte %d (line ends must be CRLF)", ErrMessage, i)
	}
	urls := urlCache{link: link}
	out := make([]byte, 0, len(msg)+len(msg)/8)
	last := 0
	for _, e := range edits {
		p := e.part
		body, err := p.rewrite(e.body, e.tagged, &urls)
		if err != nil {
			return nil, err
		}
		out = append(out, msg[last:p.start]...)
		out = append(out, body...)
		last = p.end
	}
	out = append(out, msg[last:]...)
	return out, nil
}

// bareLineEnd returns the index of the first CR not followed by LF or LF
// not preceded by CR in b, or -1.
func bareLineEnd(b []byte) int {
	// Counting is many times faster than the loop, which finds the place.
	n := bytes.Count(b, crlf)
	if bytes.Count(b, []byte("\n")) == n && bytes.Count(b, []byte("\r")) == n {
		return -1
	}
	for i := 0; i < len(b); i++ {
		switch b[i] {
		case '\r':
			if i+1 >= len(b) || b[i+1] != '\n' {
				return i
			}
			i++
		case '\n':
			return i
		}
	}
	return -1
}

// urlCache asks Link once per kind and checks what it returns.
type urlCache struct {
	link Link
	urls [len(kinds)]string
}

func (c *urlCache) get(k Kind) (string, error) {
	i := 0
	for kinds[i] != k {
		i++
	}
	if c.urls[i] != "" {
		return c.urls[i], nil
	}
	u, err := c.link(k)
	if err != nil {
		return "", fmt.Errorf("tags: %s link: %w", k, err)
	}
	if u == "" {
		return "", fmt.Errorf("tags: %s link: empty URL", k)
	}
	// A URL is printable ASCII (RFC 3986); a space, a line break or a
	// control character would break the line, and "<" or ">" the
	// "TEXT <URL>" of a text part.
	for j := 0; j < len(u); j++ {
		if c := u[j]; c <= ' ' || c >= 0x7f || c == '<' || c == '>' {
			return "", fmt.Errorf("tags: %s link: URL %q has %q, which cannot go in a message", k, u, c)
		}
	}
	c.urls[i] = u
	return u, nil
}

// tag is one link tag in a part's decoded text.
type tag struct {
	start, end int // "[" to "]" inclusive: the decoded text's [start:end]
	kind       Kind
	text       []byte // TEXT, trailing blanks cut
}

func (t tag) String() string { return fmt.Sprintf("[%s: %s]", t.kind, t.text) }

// findTags returns the tags of b in order.
func findTags(b []byte) []tag {
	var out []tag
	for i := 0; i < len(b); {
		j := bytes.IndexByte(b[i:], '[')
		if j < 0 {
			break
		}
		i += j
		if t, ok := tagAt(b, i); ok {
			out = append(out, t)
			i = t.end
		} else {
			i++
		}
	}
	return out
}

// hasTag reports whether b holds a tag.
func hasTag(b []byte) bool {
	for i := 0; i < len(b); i++ {
		j := bytes.IndexByte(b[i:], '[')
		if j < 0 {
			return false
		}
		i += j
		if _, ok := tagAt(b, i); ok {
			return true
		}
	}
	return false
}

// tagAt reads the tag whose "[" is b[i].
func tagAt(b []byte, i int) (tag, bool) {
	rest := b[i+1:]
	var kind Kind
	for _, k := range kinds {
		if len(rest) > len(k) && rest[len(k)] == ':' && equalFoldASCII(rest[:len(k)], k) {
			kind = k
			break
		}
	}
	if kind == "" {
		return tag{}, false
	}
	j := i + 1 + len(kind) + 1
	for j < len(b) && (b[j] == ' ' || b[j] == '\t') {
		j++
	}
	start := j
	for n := 0; j < len(b) && b[j] != ']'; n++ {
		if n == MaxText || b[j] == '\r' || b[j] == '\n' {
			return tag{}, false
		}
		_, size := utf8.DecodeRune(b[j:])
		j += size
	}
	if j >= len(b) {
		return tag{}, false
	}
	text := bytes.TrimRight(b[start:j], " \t")
	if len(text) == 0 {
		return tag{}, false
	}
	return tag{start: i, end: j + 1, kind: kind, text: text}, true
}

// equalFoldASCII compares b with the lowercase ASCII k, ignoring ASCII
// case only.
func equalFoldASCII(b []byte, k Kind) bool {
	for i := range len(b) {
		c := b[i]
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		if c != k[i] {
			return false
		}
	}
	return true
}

// rewrite returns the part's new body (encoded) with its tags replaced.
// body is the decoded body and tagged its tags.
func (p *part) rewrite(body []byte, tagged []tag, urls *urlCache) ([]byte, error) {
	fail := func(format string, a ...any) error {
		return fmt.Errorf("%w: part %s (%s): %s", ErrMessage, p.path, p.mediaType, fmt.Sprintf(format, a...))
	}
	if p.signed {
		return nil, fail("tag %q inside a multipart/signed: rewriting it would break the signature", tagged[0])
	}
	if p.twice != "" {
		return nil, fail("tag %q in or under a header with two %s fields, which readers may take differently", tagged[0], p.twice)
	}
	if p.charset != "utf-8" && p.charset != "us-ascii" {
		return nil, fail("tag %q in charset %q: only UTF-8 and US-ASCII parts are rewritten", tagged[0], p.charset)
	}
	var where func(tag) (context, error)
	if p.mediaType == "text/html" {
		segs := htmlSegments(body)
		where = func(t tag) (context, error) {
			c, reason := segs.context(body, t)
			if reason != "" {
				return c, fail("tag %q %s", t, reason)
			}
			return c, nil
		}
	}
	out := make([]byte, 0, len(body)+len(tagged)*100)
	// ends[i] is where in out the i-th replacement ends, for the line
	// check of 7bit, 8bit and binary parts.
	var ends []int
	last := 0
	for _, t := range tagged {
		ctx := inText
		if where != nil {
			var err error
			if ctx, err = where(t); err != nil {
				return nil, err
			}
		}
		u, err := urls.get(t.kind)
		if err != nil {
			return nil, err
		}
		out = append(out, body[last:t.start]...)
		switch {
		case where == nil:
			out = append(out, t.text...)
			out = append(out, " <"...)
			out = append(out, u...)
			out = append(out, '>')
		case ctx == inText:
			out = append(out, `<a href="`...)
			out = append(out, html.EscapeString(u)...)
			out = append(out, `">`...)
			out = append(out, t.text...)
			out = append(out, "</a>"...)
		default: // inAttribute
			out = append(out, html.EscapeString(u)...)
		}
		last = t.end
		ends = append(ends, len(out))
	}
	out = append(out, body[last:]...)
	switch p.cte {
	case "quoted-printable":
		enc := encodeQP(out)
		if bytes.HasSuffix(p.raw, crlf) && !bytes.HasSuffix(enc, crlf) {
			// The body ended in a soft line break: keep the line end.
			enc = append(enc, "=\r\n"...)
		}
		return enc, nil
	case "base64":
		return encodeBase64(out, bytes.HasSuffix(p.raw, crlf)), nil
	}
	for i, e := range ends {
		if n := lineLen(out, e); n > maxLine {
			return nil, fail("tag %q makes a line of %d bytes, over the %d a %s part may have", tagged[i], n, maxLine, p.cte)
		}
	}
	return out, nil
}

// lineLen returns the length, without its line end, of the line of b
// holding b[i-1].
func lineLen(b []byte, i int) int {
	start := bytes.LastIndexByte(b[:i], '\n') + 1
	end := bytes.IndexByte(b[i:], '\r')
	if end < 0 {
		end = len(b)
	} else {
		end += i
	}
	return end - start
}
