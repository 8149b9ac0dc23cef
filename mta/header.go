package mta

import (
	"bytes"
)

// normalizeCRLF returns data with every bare CR and bare LF turned into
// CRLF. go-smtp passes bare line feeds through in DATA; forwarding them as
// they are would let a client smuggle SMTP commands to the next hop
// (CVE-2023-51764 class), so nothing leaves Drover without this.
// It returns data itself, without copying, when it is already clean.
func normalizeCRLF(data []byte) []byte {
	// Clean means every CR starts a CRLF and every LF ends one; counting
	// with bytes.Count is many times faster than a loop over the bytes.
	crlf := bytes.Count(data, []byte("\r\n"))
	if bytes.Count(data, []byte("\n")) == crlf && bytes.Count(data, []byte("\r")) == crlf {
		return data
	}
	out := make([]byte, 0, len(data)+len(data)/32+2)
	for i := 0; i < len(data); i++ {
		switch c := data[i]; c {
		case '\r':
			out = append(out, '\r', '\n')
			if i+1 < len(data) && data[i+1] == '\n' {
				i++
			}
		case '\n':
			out = append(out, '\r', '\n')
		default:
			out = append(out, c)
		}
	}
	return out
}

// field is one header field of a message: its raw bytes (name, colon,
// value and folded continuation lines, with the final CRLF).
type field struct {
	raw  []byte
	name []byte // as written, without trailing spaces
}

// value returns the unfolded value of the field, trimmed.
func (f field) value() string {
	v := f.raw[len(f.name):]
	v = bytes.TrimLeft(v, " \t")
	v = bytes.TrimPrefix(v, []byte(":"))
	v = bytes.ReplaceAll(v, []byte("\r\n"), nil)
	return string(bytes.TrimSpace(v))
}

func (f field) is(name string) bool { return bytes.EqualFold(f.name, []byte(name)) }

// splitHeader cuts a CRLF message into its header fields and body (the body
// starts after the empty line). A line that is neither a field nor a
// continuation ends the header, as does the empty line; a message without
// any empty line is all header. The input must be CRLF-normalised.
func splitHeader(msg []byte) (fields []field, body []byte) {
	rest := msg
	for len(rest) > 0 {
		if bytes.HasPrefix(rest, []byte("\r\n")) {
			return fields, rest[2:]
		}
		end := bytes.Index(rest, []byte("\r\n"))
		if end < 0 {
			end = len(rest)
		} else {
			end += 2
		}
		line := rest[:end]
		if line[0] == ' ' || line[0] == '\t' {
			if len(fields) == 0 {
				return fields, rest // continuation without a field: treat as body
			}
			last := &fields[len(fields)-1]
			last.raw = last.raw[:len(last.raw)+len(line)] // fields are contiguous slices of msg
			rest = rest[end:]
			continue
		}
		colon := bytes.IndexByte(line, ':')
		name := bytes.TrimRight(line[:max(colon, 0)], " \t")
		if len(name) == 0 || bytes.ContainsAny(name, " \t") {
			return fields, rest // not a header line: the body starts here
		}
		fields = append(fields, field{raw: line, name: name})
		rest = rest[end:]
	}
	return fields, nil
}
