package tags

import (
	"bytes"
	"sort"

	"golang.org/x/net/html"
)

// context is where in HTML a tag is, when a link can go there.
type context int

const (
	inText      context = iota // text content (and any text/plain part)
	inAttribute                // a quoted attribute value
)

// segKind is what a stretch of HTML source is.
type segKind uint8

const (
	segText   segKind = iota // text content
	segTag                   // a start or end tag, "<" to ">"
	segRaw                   // the text of script, style, title, ...
	segMarkup                // a doctype, a processing instruction, a comment's delimiters, an unclosed tag
)

// segment is a stretch of HTML source: src[start:end].
type segment struct {
	start, end int
	kind       segKind
	anchor     bool   // segText inside an <a> element
	name       string // segRaw: the element
}

// segments partition an HTML source, in order.
type segments []segment

// htmlSegments cuts an HTML source into segments as a browser's tokenizer
// does (golang.org/x/net/html, whose raw tokens partition the source).
func htmlSegments(src []byte) segments {
	var s segmenter
	s.read(src, 0, false)
	return s.segs
}

type segmenter struct {
	segs   segments
	anchor bool // inside an <a> element
}

// read appends the segments of src, which starts at base in the whole
// source; inComment is set for a comment's content.
func (s *segmenter) read(src []byte, base int, inComment bool) {
	z := html.NewTokenizer(bytes.NewReader(src))
	off := 0
	rawName := "" // the element whose text the next token is, if raw
	for {
		tt := z.Next()
		if tt == html.ErrorToken {
			break
		}
		n := len(z.Raw())
		seg := segment{start: base + off, end: base + off + n, kind: segMarkup}
		raw := src[off : off+n]
		prevRaw := rawName
		rawName = ""
		switch tt {
		case html.TextToken:
			if prevRaw != "" {
				seg.kind, seg.name = segRaw, prevRaw
			} else {
				seg.kind, seg.anchor = segText, s.anchor
			}
		case html.StartTagToken, html.SelfClosingTagToken, html.EndTagToken:
			seg.kind = segTag
			name, _ := z.TagName()
			switch {
			case tt == html.EndTagToken:
				if string(name) == "a" {
					s.anchor = false
				}
			case string(name) == "a":
				s.anchor = true // <a/> opens one too: the slash means nothing on a
			case rawText[string(name)]:
				rawName = string(name)
			}
		case html.CommentToken:
			// The content of a comment is read as HTML: Outlook renders
			// that of conditional comments (<!--[if mso]>...).
			open, closing, ok := commentDelimiters(raw)
			switch {
			case ok && !inComment:
				s.segs = append(s.segs, segment{start: seg.start, end: seg.start + open, kind: segMarkup})
				s.read(raw[open:n-closing], seg.start+open, true)
				seg.start = seg.end - closing // the closing delimiter, if any
			case ok:
				// "<!--" in a comment runs to its end: text of the
				// comment, not read again (which would take time
				// growing with the square of a run of them).
				seg.kind, seg.anchor = segText, s.anchor
			}
		}
		if seg.end > seg.start {
			s.segs = append(s.segs, seg)
		}
		off += n
	}
	if off < len(src) {
		// An unclosed tag or comment at the end: markup, which a
		// browser drops.
		s.segs = append(s.segs, segment{start: base + off, end: base + len(src), kind: segMarkup})
	}
}

// rawText holds the elements whose text the tokenizer does not read as
// HTML (raw text and RCDATA): a link cannot go there.
var rawText = map[string]bool{
	"iframe": true, "noembed": true, "noframes": true, "noscript": true, "plaintext": true,
	"script": true, "style": true, "textarea": true, "title": true, "xmp": true,
}

// commentDelimiters returns the lengths of the opening "<!--" and the
// closing "-->" or "--!>" (0 when the comment runs to the end) of a
// comment token, and false for other comment tokens (<?...>, <!...>,
// <![CDATA[...]]>, and the empty <!--> and <!--->).
func commentDelimiters(raw []byte) (open, closing int, ok bool) {
	switch {
	case !bytes.HasPrefix(raw, []byte("<!--")), string(raw) == "<!-->", string(raw) == "<!--->":
		return 0, 0, false
	case len(raw) >= 7 && bytes.HasSuffix(raw, []byte("-->")):
		return 4, 3, true
	case len(raw) >= 8 && bytes.HasSuffix(raw, []byte("--!>")):
		return 4, 4, true
	}
	return 4, 0, true
}

// context returns where tag t of src is, or why no link can go there.
func (ss segments) context(src []byte, t tag) (context, string) {
	i := sort.Search(len(ss), func(i int) bool { return ss[i].end > t.start })
	if i == len(ss) {
		return 0, "is past the end of the HTML" // cannot happen: segments cover src
	}
	s := ss[i]
	switch s.kind {
	case segText:
		if t.end > s.end || bytes.ContainsAny(t.text, "<>") {
			return 0, `has "<" or ">" in its text, which would run into markup`
		}
		if s.anchor {
			return 0, "is inside a link (<a>...</a>), and links do not nest"
		}
		return inText, ""
	case segTag:
		for _, q := range quotedValues(src[s.start:s.end]) {
			qs, qe := s.start+q[0], s.start+q[1]
			if qs <= t.start && t.start < qe {
				if t.end <= qe {
					return inAttribute, ""
				}
				return 0, "runs past the end of its attribute value"
			}
		}
		return 0, "is inside an HTML tag but not in a quoted attribute value"
	case segRaw:
		return 0, "is inside <" + s.name + ">, whose text is not HTML"
	}
	return 0, "is inside HTML markup (a doctype, a processing instruction or an unclosed tag)"
}

// quotedValues returns where the quoted attribute values (without their
// quotes) of a tag token "<...>" are.
func quotedValues(raw []byte) [][2]int {
	var out [][2]int
	for _, a := range attributes(raw) {
		if a.quoted {
			out = append(out, a.value)
		}
	}
	return out
}

// attribute is where an attribute of a tag token is: key and value are
// start and end in the token (an empty value when there is none).
type attribute struct {
	key, value [2]int
	quoted     bool
}

// attributes reads the attributes of a tag token "<...>" as
// golang.org/x/net/html reads them (the WHATWG tokenizer's tag states).
func attributes(raw []byte) []attribute {
	space := func(c byte) bool { return c == ' ' || c == '\n' || c == '\r' || c == '\t' || c == '\f' }
	n := len(raw)
	i := 1
	if i < n && raw[i] == '/' {
		i++
	}
	for i < n && !space(raw[i]) && raw[i] != '/' && raw[i] != '>' {
		i++
	}
	skip := func() {
		for i < n && space(raw[i]) {
			i++
		}
	}
	var out []attribute
	for skip(); i < n && raw[i] != '>'; skip() {
		// The attribute's name; an "=" that starts it is part of it.
		a := attribute{key: [2]int{i, i}}
		for k := i; i < n; i++ {
			c := raw[i]
			if c == '=' && i == k {
				continue
			}
			if c == '=' || c == '/' || c == '>' || space(c) {
				break
			}
		}
		a.key[1] = i
		a.value = [2]int{i, i}
		skip()
		switch {
		case i < n && raw[i] == '/':
			i++
		case i < n && raw[i] == '=':
			i++
			skip()
			if i >= n {
				break
			}
			switch q := raw[i]; q {
			case '>':
			case '"', '\'':
				start := i + 1
				end := bytes.IndexByte(raw[start:], q)
				if end < 0 {
					a.value, a.quoted, i = [2]int{start, n}, true, n
				} else {
					a.value, a.quoted, i = [2]int{start, start + end}, true, start+end+1
				}
			default:
				start := i
				for i < n && !space(raw[i]) && raw[i] != '>' {
					i++
				}
				a.value = [2]int{start, i}
			}
		}
		if a.key[1] > a.key[0] {
			out = append(out, a)
		}
	}
	return out
}
