package smtpclient

import (
	"bufio"
	"bytes"
)

// writeData writes body as the content of a DATA command, terminator
// included. Every line ending, whether CRLF, a bare LF or a bare CR, is
// written as CRLF, so nothing that could be read as a line ending by any
// server differs from CRLF (SMTP smuggling, CVE-2023-51764 and relatives); a
// line that starts with "." gets one more "." (RFC 5321 4.5.2); a body that
// does not end with a line ending gets a CRLF; then ".\r\n" ends the data.
//
// It is one forward pass over body with bytes.IndexByte, writing runs of
// bytes into w without allocating. Errors are left in w, which keeps them
// until its next Flush.
func writeData(w *bufio.Writer, body []byte) {
	for len(body) > 0 {
		var line []byte
		if i := bytes.IndexByte(body, '\n'); i >= 0 {
			line, body = body[:i], body[i+1:]
		} else {
			line, body = body, nil
		}
		// A CR just before the LF is part of the line ending, and so is a
		// CR at the very end of the body (a bare CR ending the last line).
		if n := len(line); n > 0 && line[n-1] == '\r' {
			line = line[:n-1]
		}
		writeLines(w, line)
	}
	w.WriteString(".\r\n")
}

// writeLines writes line, which has no LF, with CRLF after it; a CR inside
// line is a bare CR and ends a line too.
func writeLines(w *bufio.Writer, line []byte) {
	for {
		seg := line
		i := bytes.IndexByte(line, '\r')
		if i >= 0 {
			seg = line[:i]
		}
		if len(seg) > 0 && seg[0] == '.' {
			w.WriteByte('.')
		}
		w.Write(seg)
		w.WriteString("\r\n")
		if i < 0 {
			return
		}
		line = line[i+1:]
	}
}
