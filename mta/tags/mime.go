package tags

import (
	"bytes"
	"encoding/base64"
	"mime"
	"strconv"
	"strings"
)

var crlf = []byte("\r\n")

// part is a text part that may hold tags: where its body is in the
// message and how to read it.
type part struct {
	path       string // IMAP part number: "1", "2.1", ...
	mediaType  string // "text/plain" or "text/html"
	charset    string // lowercased; "us-ascii" when not given
	cte        string // "7bit", "8bit", "binary", "quoted-printable" or "base64"
	signed     bool   // inside a multipart/signed
	twice      string // a field given twice in its header or one around it: readers may differ
	start, end int    // the body: msg[start:end]
	raw        []byte // msg[start:end]
}

// decode returns the part's body decoded from its transfer encoding.
func (p *part) decode() []byte {
	switch p.cte {
	case "quoted-printable":
		return decodeQP(p.raw)
	case "base64":
		return decodeBase64(p.raw)
	}
	return p.raw
}

// walker collects the text parts of a message.
type walker struct {
	msg     []byte
	parts   []part
	tooDeep string // part number of the first multipart nested too deep
}

// walk returns the text parts of msg, in order, that may hold tags.
func walk(msg []byte) *walker {
	w := &walker{msg: msg}
	w.entity(0, len(msg), "", 0, outer{})
	return w
}

// outer is what an entity takes from the multiparts around it.
type outer struct {
	digest bool   // its parent is a multipart/digest
	signed bool   // it is inside a multipart/signed
	twice  string // an entity around it has this field twice
}

// entity visits the entity (header and body) msg[start:end], numbered
// path, inside depth multiparts.
func (w *walker) entity(start, end int, path string, depth int, o outer) {
	h, body := readHeader(w.msg[start:end])
	body += start
	mt, params := mediaType(h.contentType, o.digest)
	if o.twice == "" {
		o.twice = h.twice
	}
	if strings.HasPrefix(mt, "multipart/") {
		if depth == MaxDepth {
			if w.tooDeep == "" {
				w.tooDeep = path
			}
			return
		}
		boundary := params["boundary"]
		if boundary == "" {
			return
		}
		for i, sub := range splitMultipart(w.msg[body:end], boundary) {
			n := strconv.Itoa(i + 1)
			if path != "" {
				n = path + "." + n
			}
			w.entity(body+sub[0], body+sub[1], n, depth+1, outer{
				digest: mt == "multipart/digest",
				signed: o.signed || mt == "multipart/signed",
				twice:  o.twice,
			})
			if w.tooDeep != "" {
				return
			}
		}
		return
	}
	if mt != "text/plain" && mt != "text/html" || dispositionType(h.disposition) == "attachment" {
		return
	}
	cte := strings.ToLower(strings.TrimSpace(h.cte))
	switch cte {
	case "":
		cte = "7bit"
	case "7bit", "8bit", "binary", "quoted-printable", "base64":
	default:
		return // unknown encoding: the part is kept as it is
	}
	charset := strings.ToLower(strings.TrimSpace(params["charset"]))
	switch charset {
	case "", "us-ascii", "ascii":
		charset = "us-ascii"
	case "utf8":
		charset = "utf-8"
	}
	if path == "" {
		path = "1"
	}
	w.parts = append(w.parts, part{
		path: path, mediaType: mt, charset: charset, cte: cte, signed: o.signed, twice: o.twice,
		start: body, end: end, raw: w.msg[body:end],
	})
}

// header holds the fields of a header the walk needs, unfolded; the first
// of each counts, and twice names one that comes again.
type header struct {
	contentType, cte, disposition string
	twice                         string // a field of those given twice
}

// readHeader reads the header at the start of b and returns where the
// body starts. The header ends at the empty line (which is not part of the
// body) or at the first line that is neither a field nor a continuation,
// which starts the body; a part with no empty line is all header.
func readHeader(b []byte) (h header, body int) {
	wanted := [...]struct {
		name string
		v    *string
	}{{"content-type", &h.contentType}, {"content-transfer-encoding", &h.cte}, {"content-disposition", &h.disposition}}
	cur := -1           // the field of wanted being read
	var start, stop int // its value: b[start:stop], folded
	seen := [len(wanted)]bool{}
	flush := func() {
		if cur >= 0 {
			*wanted[cur].v = string(bytes.ReplaceAll(b[start:stop], crlf, nil))
		}
		cur = -1
	}
	pos := 0
	for pos < len(b) {
		if bytes.HasPrefix(b[pos:], crlf) {
			flush()
			return h, pos + 2
		}
		end := bytes.Index(b[pos:], crlf)
		var line []byte
		if end < 0 {
			line, end = b[pos:], len(b)
		} else {
			line, end = b[pos:pos+end], pos+end+2
		}
		if line[0] == ' ' || line[0] == '\t' {
			if pos == 0 {
				return h, 0 // a continuation without a field: body
			}
			stop = pos + len(line)
			pos = end
			continue
		}
		flush()
		colon := bytes.IndexByte(line, ':')
		if colon < 0 {
			return h, pos
		}
		name := bytes.TrimRight(line[:colon], " \t")
		if len(name) == 0 || bytes.ContainsAny(name, " \t") {
			return h, pos
		}
		for i, f := range wanted {
			if bytes.EqualFold(name, []byte(f.name)) {
				if seen[i] {
					h.twice = f.name
					break
				}
				seen[i], cur = true, i
				start, stop = pos+colon+1, pos+len(line)
			}
		}
		pos = end
	}
	flush()
	return h, len(b)
}

// mediaType returns the lowercased media type and the parameters of a
// Content-Type value. No value, or one without a type/subtype, means
// text/plain (RFC 2045 section 5.2), or message/rfc822 in a
// multipart/digest (RFC 2046 section 5.1.5). Broken parameters are read
// by hand.
func mediaType(v string, inDigest bool) (string, map[string]string) {
	def := "text/plain"
	if inDigest {
		def = "message/rfc822"
	}
	if strings.TrimSpace(v) == "" {
		return def, nil
	}
	t, params, err := mime.ParseMediaType(v)
	if err != nil {
		t, params = parseMediaTypeLoosely(v)
	}
	t = strings.ToLower(t)
	if slash := strings.IndexByte(t, '/'); slash <= 0 || slash == len(t)-1 {
		return def, nil
	}
	return t, params
}

// parseMediaTypeLoosely reads a Content-Type value that mime rejects (a
// stray semicolon, an unquoted special in a parameter) as mail clients do.
func parseMediaTypeLoosely(v string) (string, map[string]string) {
	fields := strings.Split(v, ";")
	params := map[string]string{}
	for _, p := range fields[1:] {
		k, val, ok := strings.Cut(p, "=")
		if !ok {
			continue
		}
		k = strings.ToLower(strings.TrimSpace(k))
		val = strings.TrimSpace(val)
		if strings.HasPrefix(val, `"`) {
			if end := strings.IndexByte(val[1:], '"'); end >= 0 {
				val = val[1 : end+1]
			} else {
				val = val[1:]
			}
		} else if j := strings.IndexAny(val, " \t"); j > 0 {
			val = val[:j]
		}
		if _, dup := params[k]; !dup {
			params[k] = val
		}
	}
	t := ""
	if f := strings.Fields(fields[0]); len(f) > 0 {
		t = f[0] // "text/html (comment)"
	}
	return t, params
}

// dispositionType returns the lowercased type of a Content-Disposition.
func dispositionType(v string) string {
	t, _, _ := strings.Cut(v, ";")
	return strings.ToLower(strings.TrimSpace(t))
}

// splitMultipart returns where the parts of a multipart body are (start
// and end in b). A delimiter line is "--" boundary at the start of a
// line, then optional blanks and CRLF; the CRLF before it belongs to it
// (RFC 2046 section 5.1.1). The close delimiter adds "--"; without one,
// the last part runs to the end of b. The preamble and the epilogue are no
// part.
func splitMultipart(b []byte, boundary string) [][2]int {
	delim := []byte("--" + boundary)
	lineDelim := append([]byte("\r\n"), delim...)
	var parts [][2]int
	start := -1 // where the current part starts, once a delimiter was seen
	for pos := 0; ; {
		var i int
		if pos == 0 && bytes.HasPrefix(b, delim) {
			i = 0
		} else {
			from := max(pos-2, 0)
			k := bytes.Index(b[from:], lineDelim)
			if k < 0 {
				break
			}
			i = from + k + 2
		}
		after := i + len(delim)
		closing := bytes.HasPrefix(b[after:], []byte("--"))
		next := after
		if !closing {
			for next < len(b) && (b[next] == ' ' || b[next] == '\t') {
				next++
			}
			switch {
			case next == len(b):
			case bytes.HasPrefix(b[next:], crlf):
				next += 2
			default:
				pos = after // "--boundary" and more: not a delimiter
				continue
			}
		}
		if start >= 0 {
			parts = append(parts, [2]int{start, max(i-2, start)})
		}
		if closing {
			return parts
		}
		start, pos = next, next
	}
	if start >= 0 {
		parts = append(parts, [2]int{start, len(b)})
	}
	return parts
}

// decodeQP decodes a quoted-printable body (RFC 2045 section 6.7) as
// readers do: blanks at the end of a line are dropped, "=" at the end of
// a line is a soft line break, and an "=" not followed by two hex digits
// is itself.
func decodeQP(b []byte) []byte {
	out := make([]byte, 0, len(b))
	for len(b) > 0 {
		line, eol := b, false
		if i := bytes.Index(b, crlf); i >= 0 {
			line, b, eol = b[:i], b[i+2:], true
		} else {
			b = nil
		}
		line = bytes.TrimRight(line, " \t")
		soft := bytes.HasSuffix(line, []byte("="))
		if soft {
			line = line[:len(line)-1]
		}
		for i := 0; i < len(line); i++ {
			c := line[i]
			if c == '=' && i+2 < len(line) {
				if x, ok := unhex(line[i+1], line[i+2]); ok {
					out = append(out, x)
					i += 2
					continue
				}
			}
			out = append(out, c)
		}
		if eol && !soft {
			out = append(out, crlf...)
		}
	}
	return out
}

func unhex(a, b byte) (byte, bool) {
	x, ok1 := hexval(a)
	y, ok2 := hexval(b)
	return x<<4 | y, ok1 && ok2
}

func hexval(c byte) (byte, bool) {
	switch {
	case '0' <= c && c <= '9':
		return c - '0', true
	case 'a' <= c && c <= 'f':
		return c - 'a' + 10, true
	case 'A' <= c && c <= 'F':
		return c - 'A' + 10, true
	}
	return 0, false
}

// encodeQP encodes b as quoted-printable: CRLF is a line break, every
// other control byte, "=" and every byte over 126 is escaped, as is a
// blank at the end of a line, and lines are broken with soft line breaks
// to at most 76 characters.
func encodeQP(b []byte) []byte {
	const hex = "0123456789ABCDEF"
	out := make([]byte, 0, len(b)+len(b)/8)
	n := 0 // characters on the current output line
	for len(b) > 0 {
		line, eol := b, false
		if i := bytes.Index(b, crlf); i >= 0 {
			line, b, eol = b[:i], b[i+2:], true
		} else {
			b = nil
		}
		for j, c := range line {
			var tok [3]byte
			t := tok[:1]
			tok[0] = c
			blank := c == ' ' || c == '\t'
			if !(blank && j < len(line)-1 || '!' <= c && c <= '~' && c != '=') {
				tok = [3]byte{'=', hex[c>>4], hex[c&15]}
				t = tok[:]
			}
			if n+len(t) > 75 {
				out = append(out, "=\r\n"...)
				n = 0
			}
			out = append(out, t...)
			n += len(t)
		}
		if eol {
			out = append(out, crlf...)
			n = 0
		}
	}
	return out
}

// decodeBase64 decodes a base64 body as readers do: characters outside
// the alphabet are skipped (RFC 2045 section 6.8), "=" ends the data, and
// a last incomplete group is dropped.
func decodeBase64(b []byte) []byte {
	clean := make([]byte, 0, len(b))
	for _, c := range b {
		switch {
		case 'A' <= c && c <= 'Z', 'a' <= c && c <= 'z', '0' <= c && c <= '9', c == '+', c == '/':
			clean = append(clean, c)
		case c == '=':
			goto done
		}
	}
done:
	if len(clean)%4 == 1 {
		clean = clean[:len(clean)-1]
	}
	out := make([]byte, base64.RawStdEncoding.DecodedLen(len(clean)))
	n, _ := base64.RawStdEncoding.Decode(out, clean)
	return out[:n]
}

// encodeBase64 encodes b as base64 in lines of 76 characters, CRLF
// between them and, when final, after the last.
func encodeBase64(b []byte, final bool) []byte {
	enc := base64.StdEncoding.EncodeToString(b)
	out := make([]byte, 0, len(enc)+len(enc)/38+2)
	for len(enc) > 76 {
		out = append(out, enc[:76]...)
		out = append(out, crlf...)
		enc = enc[76:]
	}
	out = append(out, enc...)
	if final && len(enc) > 0 {
		out = append(out, crlf...)
	}
	return out
}
