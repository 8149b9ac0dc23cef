package smtp

import (
	"bufio"
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

// States of dataReader, as in net/textproto's dotReader.
const (
	stateBeginLine = iota // beginning of line; initial state; must be zero
	stateCR               // read \r (possibly at end of line)
	stateData             // reading data in middle of line
	stateEOF              // reached .\r\n end marker line
)

// endState is the state of upstream's byte-at-a-time machine after line,
// entered in state prev. Only the run of CRs before a final LF matters,
// and upstream alternates on it: CR LF begins a line, CR CR LF does not,
// CR CR CR LF does.
func endState(prev int, line []byte) int {
	k := len(line)
	lf := line[k-1] == '\n'
	if lf {
		k--
	}
	j := k
	for j > 0 && line[j-1] == '\r' {
		j--
	}
	st := stateData
	if j == 0 {
		st = prev
	}
	for range line[j:k] {
		if st == stateCR {
			st = stateData
		} else {
			st = stateCR
		}
	}
	switch {
	case lf && st == stateCR:
		return stateBeginLine
	case lf:
		return stateData
	}
	return st
}

type dataReader struct {
	r       *bufio.Reader
	state   int
	pending []byte // rest of the line read last, not yet returned

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

	// Drover's change: the state machine of net/textproto (elide leading
	// dots, stop at <CR><LF>.<CR><LF>, keep CRLF) applied a line at a time
	// with ReadSlice instead of a byte at a time with ReadByte, which made
	// this reader the largest CPU cost of receiving a message. The states
	// are those of the original (see endState); a line is a run of bytes
	// up to and including '\n', or a full buffer.
	for n < len(b) && r.state != stateEOF {
		if len(r.pending) == 0 {
			var line []byte
			line, err = r.r.ReadSlice('\n')
			if err == bufio.ErrBufferFull {
				err = nil
			}
			if len(line) == 0 {
				if err == io.EOF {
					err = io.ErrUnexpectedEOF
				}
				break
			}
			prev := r.state
			if r.state == stateBeginLine && line[0] == '.' {
				if len(line) == 3 && line[1] == '\r' && line[2] == '\n' {
					r.state = stateEOF
					break
				}
				line = line[1:] // a leading dot is elided
				prev = stateData
				if len(line) == 0 {
					r.state = stateData
					continue
				}
			}
			r.state = endState(prev, line)
			r.pending = line
			if err != nil && err != io.EOF {
				break
			}
			err = nil
		}
		c := copy(b[n:], r.pending)
		r.pending = r.pending[c:]
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
