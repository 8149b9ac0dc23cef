package bounce

import (
	"bytes"
	"encoding/base64"
	"io"
	"mime"
	"strings"
)

// Limits that bound the work and memory spent on one message.
const (
	// MaxMessageSize is the number of bytes of a message that are read;
	// the rest is ignored (a bounce's report comes first).
	MaxMessageSize = 10 << 20
	// maxDepth is how deep multiparts and attached messages are followed.
	maxDepth = 8
	// maxParts is how many MIME parts of one message are looked at.
	maxParts = 200
	// maxHeaderFields is how many header fields of one header are kept.
	maxHeaderFields = 1000
	// maxDiagnostic is how much text about one recipient is classified;
	// maxReport how much of a report is searched for format hints.
	maxDiagnostic = 16 << 10
	maxReport     = 64 << 10
	// maxDiagnosticOut is how much of it Classification.Diagnostic keeps.
	maxDiagnosticOut = 2 << 10
	// maxLine is the length up to which a line is tested as a recipient
	// line (those are short; long lines are text).
	maxLine = 1 << 10
)

// field is one header field, its name lowercased and its value unfolded.
type field struct {
	name, value string
}

// header is a parsed header block in the order of the message.
type header []field

// get returns the first value of the named field (lowercase name), or "".
func (h header) get(name string) string {
	for _, f := range h {
		if f.name == name {
			return f.value
		}
	}
	return ""
}

// has reports whether the named field is present.
func (h header) has(name string) bool {
	for _, f := range h {
		if f.name == name {
			return true
		}
	}
	return false
}

// normalize cuts the message at MaxMessageSize, turns CRLF, CR CR LF and
// bare CR line ends into LF and strips an mbox "From " line.
func normalize(raw []byte) []byte {
	if len(raw) > MaxMessageSize {
		raw = raw[:MaxMessageSize]
	}
	if bytes.IndexByte(raw, '\r') >= 0 {
		out := make([]byte, 0, len(raw))
		for i := 0; i < len(raw); i++ {
			c := raw[i]
			if c != '\r' {
				out = append(out, c)
				continue
			}
			// CR LF and CR CR LF end one line; a bare CR (old Mac
			// files) ends a line each.
			j := i
			for j < len(raw) && raw[j] == '\r' {
				j++
			}
			if j < len(raw) && raw[j] == '\n' {
				out = append(out, '\n')
				i = j
				continue
			}
			for ; i < j; i++ {
				out = append(out, '\n')
			}
			i--
		}
		raw = out
	}
	if bytes.HasPrefix(raw, []byte("From ")) {
		if i := bytes.IndexByte(raw, '\n'); i >= 0 {
			raw = raw[i+1:]
		} else {
			raw = nil
		}
	}
	return raw
}

// splitHeader parses the header block at the start of b and returns it
// with the body that follows the first empty line. It never fails: a line
// that is neither a field nor a continuation is skipped, and a message
// without an empty line is all header. Values are unfolded (a folded
// value is capped at 64 KiB) and trimmed.
func splitHeader(b []byte) (header, []byte) {
	var h header
	name := ""
	var val []byte   // value being built when folded
	var first []byte // the value's first line
	folded := false
	flush := func() {
		if name != "" && len(h) < maxHeaderFields {
			v := first
			if folded {
				v = val
			}
			h = append(h, field{name, string(bytes.TrimSpace(v))})
		}
		name, folded = "", false
	}
	for len(b) > 0 {
		i := bytes.IndexByte(b, '\n')
		var line []byte
		if i < 0 {
			line, b = b, nil
		} else {
			line, b = b[:i], b[i+1:]
		}
		if len(bytes.TrimSpace(line)) == 0 {
			// An empty line ends the header, except a line of blanks
			// inside a folded field, which some MTAs write.
			if len(line) > 0 && name != "" && len(b) > 0 && (b[0] == ' ' || b[0] == '\t') {
				continue
			}
			flush()
			return h, b
		}
		if line[0] == ' ' || line[0] == '\t' {
			if name != "" {
				if !folded {
					val = append(val[:0], first...)
					folded = true
				}
				if len(val) < 64<<10 {
					val = append(val, ' ')
					val = append(val, bytes.TrimSpace(line)...)
				}
			}
			continue
		}
		flush()
		c := bytes.IndexByte(line, ':')
		if c <= 0 {
			continue
		}
		n := bytes.TrimSpace(line[:c])
		if len(n) == 0 || bytes.ContainsAny(n, " \t") {
			continue
		}
		name = lowerASCII(n)
		first = line[c+1:]
	}
	flush()
	return h, nil
}

// lowerASCII returns b lowercased as a string; field names are ASCII.
func lowerASCII(b []byte) string {
	for _, c := range b {
		if c >= 'A' && c <= 'Z' {
			return strings.ToLower(string(b))
		}
	}
	return string(b)
}

// mediaType returns the lowercased media type and parameters of a
// Content-Type value, tolerating broken parameters.
func mediaType(v string) (string, map[string]string) {
	if v == "" {
		return "text/plain", nil
	}
	t, params, err := mime.ParseMediaType(v)
	if err == nil {
		return strings.ToLower(t), params
	}
	// Broken parameters: take the type and look for the boundary and
	// charset by hand.
	t = strings.ToLower(strings.TrimSpace(strings.SplitN(v, ";", 2)[0]))
	params = map[string]string{}
	for _, p := range strings.Split(v, ";")[1:] {
		k, val, ok := strings.Cut(p, "=")
		if !ok {
			continue
		}
		k = strings.ToLower(strings.TrimSpace(k))
		val = strings.TrimSpace(val)
		if j := strings.IndexAny(val, " \t"); j > 0 && !strings.HasPrefix(val, `"`) {
			val = val[:j]
		}
		params[k] = strings.Trim(val, `"'`)
	}
	return t, params
}

// part is one leaf of a message's MIME tree with its body decoded from
// its transfer encoding. An attached message (message/rfc822) is a leaf:
// its own parts are the returned message, not the report.
type part struct {
	mediaType string
	header    header
	body      []byte
}

// walker collects the leaves of a MIME tree within the limits.
type walker struct {
	parts []part
}

// walk visits the entity with header h and body b. Multiparts are split
// by hand because real bounces have missing closing boundaries, bad
// parameters and wrong line ends that mime/multipart rejects.
func (w *walker) walk(h header, b []byte, level int) {
	if len(w.parts) >= maxParts || level > maxDepth {
		return
	}
	mt, params := mediaType(h.get("content-type"))
	switch {
	case strings.HasPrefix(mt, "multipart/"):
		boundary := params["boundary"]
		if boundary == "" {
			w.parts = append(w.parts, part{"text/plain", h, b})
			return
		}
		subs := splitMultipart(b, boundary)
		if len(subs) == 0 {
			// No delimiter at all: read the body as text.
			w.parts = append(w.parts, part{"text/plain", h, b})
			return
		}
		for _, sub := range subs {
			sh, sb := splitHeader(sub)
			if len(sh) == 0 {
				// A part without header is text/plain; some writers
				// also forget the empty line after the boundary.
				sb = sub
			}
			w.walk(sh, sb, level+1)
			if len(w.parts) >= maxParts {
				return
			}
		}
	default:
		w.parts = append(w.parts, part{mt, h, decodeBody(h.get("content-transfer-encoding"), b)})
	}
}

// splitMultipart returns the bodies of the parts of a multipart body.
// A missing closing delimiter ends the last part at the end of b.
func splitMultipart(b []byte, boundary string) [][]byte {
	delim := []byte("--" + boundary)
	var out [][]byte
	start := -1
	pos := 0
	for pos <= len(b) && len(out) < maxParts {
		i := bytes.Index(b[pos:], delim)
		if i < 0 {
			break
		}
		i += pos
		// The delimiter must begin a line.
		if i > 0 && b[i-1] != '\n' {
			pos = i + len(delim)
			continue
		}
		end := i + len(delim)
		closing := bytes.HasPrefix(b[end:], []byte("--"))
		if start >= 0 {
			p := b[start:i]
			p = bytes.TrimSuffix(p, []byte("\n"))
			out = append(out, p)
		}
		nl := bytes.IndexByte(b[end:], '\n')
		if closing {
			return out
		}
		if nl < 0 {
			return out
		}
		start = end + nl + 1
		pos = start
	}
	if start >= 0 && start <= len(b) && len(out) < maxParts {
		out = append(out, b[start:])
	}
	return out
}

// decodeBody undoes a content transfer encoding, tolerating garbage.
func decodeBody(cte string, b []byte) []byte {
	switch strings.ToLower(strings.TrimSpace(cte)) {
	case "base64":
		return decodeBase64(b)
	case "quoted-printable":
		return decodeQP(b)
	}
	return b
}

// decodeBase64 decodes base64 text, skipping characters outside the
// alphabet and stopping at the first undecodable group.
func decodeBase64(b []byte) []byte {
	clean := make([]byte, 0, len(b))
	for _, c := range b {
		switch {
		case c >= 'A' && c <= 'Z', c >= 'a' && c <= 'z', c >= '0' && c <= '9', c == '+', c == '/':
			clean = append(clean, c)
		}
	}
	clean = clean[:len(clean)/4*4+min(len(clean)%4, 3)]
	out := make([]byte, base64.RawStdEncoding.DecodedLen(len(clean)))
	n, _ := base64.RawStdEncoding.Decode(out, clean)
	return out[:n]
}

// decodeQP decodes quoted-printable text by hand: mime/quotedprintable
// stops at the first malformed escape, which real bounces contain.
func decodeQP(b []byte) []byte {
	out := make([]byte, 0, len(b))
	for i := 0; i < len(b); i++ {
		c := b[i]
		if c != '=' {
			out = append(out, c)
			continue
		}
		// Soft line break: "=" then optional blanks then LF.
		j := i + 1
		for j < len(b) && (b[j] == ' ' || b[j] == '\t') {
			j++
		}
		if j >= len(b) || b[j] == '\n' {
			i = j
			continue
		}
		if i+2 < len(b) {
			if h, ok := unhex(b[i+1], b[i+2]); ok {
				out = append(out, h)
				i += 2
				continue
			}
		}
		out = append(out, c)
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
	case c >= '0' && c <= '9':
		return c - '0', true
	case c >= 'a' && c <= 'f':
		return c - 'a' + 10, true
	case c >= 'A' && c <= 'F':
		return c - 'A' + 10, true
	}
	return 0, false
}

// decodeWords decodes RFC 2047 encoded words, leaving the text as it is
// where that fails.
func decodeWords(s string) string {
	if !strings.Contains(s, "=?") {
		return s
	}
	d, err := wordDecoder.DecodeHeader(s)
	if err != nil {
		return s
	}
	return d
}

// wordDecoder reads UTF-8 and US-ASCII itself; other charsets are read
// as Latin-1, which is right for the ISO-8859-1/15 and Windows-1252 text
// that bounces mostly carry and harmless for matching English phrases.
var wordDecoder = &mime.WordDecoder{CharsetReader: func(_ string, r io.Reader) (io.Reader, error) {
	b, err := io.ReadAll(io.LimitReader(r, 64<<10))
	if err != nil {
		return nil, err
	}
	return strings.NewReader(latin1(b)), nil
}}

// latin1 converts Latin-1 bytes to UTF-8.
func latin1(b []byte) string {
	var sb strings.Builder
	sb.Grow(len(b))
	for _, c := range b {
		sb.WriteRune(rune(c))
	}
	return sb.String()
}
