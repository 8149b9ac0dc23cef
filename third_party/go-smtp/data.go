package smtp

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
)

type EnhancedCode [3]int

// SMTPError specifies the error code, enhanced error code (if any) and
// message returned by the server.
type SMTPError struct {
	Code         int
	EnhancedCode EnhancedCode
	Message      string
}

// NoEnhancedCode is used to indicate that enhanced error code should not be
// included in response.
//
// Note that RFC 2034 requires an enhanced code to be included in all 2xx, 4xx
// and 5xx responses. This constant is exported for use by extensions, you
// should probably use EnhancedCodeNotSet instead.
var NoEnhancedCode = EnhancedCode{-1, -1, -1}

// EnhancedCodeNotSet is a nil value of EnhancedCode field in SMTPError, used
// to indicate that backend failed to provide enhanced status code. X.0.0 will
// be used (X is derived from error code).
var EnhancedCodeNotSet = EnhancedCode{0, 0, 0}

func (err *SMTPError) Error() string {
	s := fmt.Sprintf("SMTP error %03d", err.Code)
	if err.Message != "" {
		s += ": " + err.Message
	}
	return s
}

func (err *SMTPError) Temporary() bool {
	return err.Code/100 == 4
}

var ErrDataTooLarge = &SMTPError{
	Code:         552,
	EnhancedCode: EnhancedCode{5, 3, 4},
	Message:      "Maximum message size exceeded",
}

// States of dataReader: those of upstream's byte-at-a-time machine, itself
// net/textproto's dotReader without the CRLF -> LF rewrite.
const (
	stateBeginLine = iota // beginning of line; initial state; must be zero
	stateDot              // read . at beginning of line
	stateDotCR            // read .\r at beginning of line
	stateCR               // read \r (possibly at end of line)
	stateData             // reading data in middle of line
	stateEOF              // reached .\r\n end marker line
)

type dataReader struct {
	r     *bufio.Reader
	state int

	limited bool
	n       int64 // Maximum bytes remaining
}

func newDataReader(c *Conn) *dataReader {
	dr := &dataReader{
		r: c.text.R,
	}

	if c.server.MaxMessageBytes > 0 {
		dr.limited = true
		dr.n = int64(c.server.MaxMessageBytes)
	}

	return dr
}

func (r *dataReader) Read(b []byte) (n int, err error) {
	if r.limited {
		if r.n <= 0 {
			return 0, ErrDataTooLarge
		}
		if int64(len(b)) > r.n {
			b = b[0:r.n]
		}
	}

	// Drover's change: upstream runs the state machine over one ReadByte at
	// a time, which made this reader the largest CPU cost of receiving a
	// message. This loop runs it over what the bufio.Reader holds, a line
	// at a time. It consumes the same bytes as upstream, and fills the
	// buffer only when it is empty, as ReadByte does, so every Read returns
	// what upstream's would, the reader stops where upstream's does, and
	// the reader under the buffer (the line limiter) sees the same Reads.
	for n < len(b) && r.state != stateEOF {
		if r.r.Buffered() == 0 {
			if _, err = r.r.Peek(1); err != nil {
				if err == io.EOF {
					err = io.ErrUnexpectedEOF
				}
				break
			}
		}
		buf, _ := r.r.Peek(r.r.Buffered())
		used, c := r.unstuff(b[n:], buf)
		r.r.Discard(used)
		n += c
	}
	if err == nil && r.state == stateEOF {
		err = io.EOF
	}

	if r.limited {
		r.n -= int64(n)
	}
	return
}

// unstuff runs the state machine over in, copying the bytes it keeps to
// out, until in is used up, out is full or the end marker is read. It
// returns how many bytes it used of in and wrote to out.
func (r *dataReader) unstuff(out, in []byte) (used, n int) {
	for used < len(in) && n < len(out) && r.state != stateEOF {
		c := in[used]
		switch {
		case r.state == stateBeginLine && c == '.':
			r.state = stateDot // elided
			used++
			continue
		case r.state == stateDot && c == '\r':
			r.state = stateDotCR // elided
			used++
			continue
		case r.state == stateDotCR && c == '\n':
			r.state = stateEOF // elided
			used++
			continue
		case r.state == stateDotCR:
			// The '\r' of ".\r" stays dropped, c is kept, and the line
			// goes on in stateData even if c is '\r' too.
			r.state = stateData
			out[n] = c
			used++
			n++
			continue
		case r.state == stateBeginLine, r.state == stateDot:
			// Any other byte is kept, and the machine goes on as in the
			// middle of a line.
			r.state = stateData
		}

		// In the middle of a line, nothing is elided: copy up to and
		// including the next '\n'.
		seg := in[used:]
		if len(seg) > len(out)-n {
			seg = seg[:len(out)-n]
		}
		if i := bytes.IndexByte(seg, '\n'); i >= 0 {
			seg = seg[:i+1]
		}
		copy(out[n:], seg)
		used += len(seg)
		n += len(seg)
		r.state = stateAfter(r.state, seg)
	}
	return used, n
}

// stateAfter is the state after seg, entered in stateData or stateCR,
// where seg holds no '\n' but maybe as its last byte. Only seg's final
// run of '\r's matters, and the machine alternates on it: '\r' takes
// stateData to stateCR and stateCR back to stateData, so "\r\n" ends a
// line and "\r\r\n" does not. Any other byte but '\n' leads to stateData.
func stateAfter(state int, seg []byte) int {
	k := len(seg)
	lf := k > 0 && seg[k-1] == '\n'
	if lf {
		k--
	}
	j := k
	for j > 0 && seg[j-1] == '\r' {
		j--
	}
	if j > 0 {
		state = stateData
	}
	if (k-j)%2 == 1 {
		if state == stateCR {
			state = stateData
		} else {
			state = stateCR
		}
	}
	if lf {
		if state == stateCR {
			return stateBeginLine
		}
		return stateData
	}
	return state
}
