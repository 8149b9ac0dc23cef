package smtpclient

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"strconv"
)

// Reply is one SMTP reply.
type Reply struct {
	Code     int    // three-digit reply code; 0 when no reply was received
	Enhanced string // enhanced status code (RFC 3463) such as "5.1.1"; "" if none
	Text     string // reply text without the codes: one line, the lines of a multi-line reply joined by single spaces
}

// String formats r as it would appear on the wire, on one line.
func (r Reply) String() string {
	if r.Code == 0 {
		return "no reply"
	}
	s := strconv.Itoa(r.Code)
	if r.Enhanced != "" {
		s += " " + r.Enhanced
	}
	if r.Text != "" {
		s += " " + r.Text
	}
	return s
}

// Error is an SMTP reply that made Dial, Reset or Quit fail, or that ended
// the session (421) during Send. It reports what the server said and to
// which command; what that means for a delivery (permanent or not, the
// enhanced code to record) is for the caller to decide: the courier turns
// it into an *smtperr.Error.
type Error struct {
	Command string // "greeting", "EHLO", "HELO", "STARTTLS", "MAIL", "RCPT", "DATA", "RSET", "QUIT"
	Reply
}

func (e *Error) Error() string {
	return "smtpclient: " + e.Command + ": " + e.Reply.String()
}

var (
	// ErrProtocol marks a server that broke the SMTP protocol (malformed or
	// overlong reply, plain text injected after STARTTLS); the connection is
	// closed.
	ErrProtocol = errors.New("smtpclient: protocol error")
	// ErrInvalidInput marks arguments that cannot be sent safely (CR or LF in
	// an address or parameter, no recipients, no EHLO hostname). Nothing was
	// sent and the client stays usable.
	ErrInvalidInput = errors.New("smtpclient: invalid input")
)

const (
	maxReplyLines = 128 // lines of one reply; the line length limit is the read buffer size
	maxInterned   = 64  // distinct reply strings remembered per connection
)

// readReply reads one (possibly multi-line) reply. each, when not nil, sees
// the text of every line, after the code and the separator, before the
// enhanced code is taken off; its argument is only valid during the call.
func (c *Client) readReply(each func(n int, text []byte)) (Reply, error) {
	var rep Reply
	c.text = c.text[:0]
	for n := 0; ; n++ {
		if n == maxReplyLines {
			return Reply{}, fmt.Errorf("%w: reply longer than %d lines", ErrProtocol, maxReplyLines)
		}
		line, err := c.r.ReadSlice('\n')
		if err != nil {
			switch {
			case errors.Is(err, bufio.ErrBufferFull):
				return Reply{}, fmt.Errorf("%w: reply line longer than %d bytes", ErrProtocol, c.r.Size())
			case errors.Is(err, io.EOF) && (n > 0 || len(line) > 0):
				return Reply{}, io.ErrUnexpectedEOF
			}
			return Reply{}, err
		}
		code, last, text, err := parseReplyLine(line)
		if err != nil {
			return Reply{}, err
		}
		if n == 0 {
			rep.Code = code
		} else if code != rep.Code {
			return Reply{}, fmt.Errorf("%w: reply code %d after %d in one reply", ErrProtocol, code, rep.Code)
		}
		if each != nil {
			each(n, text)
		}
		if n == 0 {
			if enh, rest := splitEnhanced(text, code); enh != nil {
				rep.Enhanced = c.intern(enh)
				text = rest
			}
		} else if rep.Enhanced != "" {
			if enh, rest := splitEnhanced(text, code); string(enh) == rep.Enhanced {
				text = rest
			}
		}
		c.text = appendText(c.text, text)
		if last {
			rep.Text = c.intern(c.text)
			return rep, nil
		}
	}
}

// parseReplyLine splits one reply line (with its line ending) into its code,
// whether it is the last line of the reply, and its text.
func parseReplyLine(line []byte) (code int, last bool, text []byte, err error) {
	line = bytes.TrimSuffix(line, []byte("\n"))
	line = bytes.TrimSuffix(line, []byte("\r"))
	if len(line) < 3 || line[0] < '2' || line[0] > '5' || !isDigit(line[1]) || !isDigit(line[2]) {
		return 0, false, nil, fmt.Errorf("%w: malformed reply line %.40q", ErrProtocol, line)
	}
	code = int(line[0]-'0')*100 + int(line[1]-'0')*10 + int(line[2]-'0')
	if len(line) == 3 {
		return code, true, nil, nil
	}
	switch line[3] {
	case ' ':
		last = true
	case '-':
	default:
		return 0, false, nil, fmt.Errorf("%w: malformed reply line %.40q", ErrProtocol, line)
	}
	return code, last, line[4:], nil
}

// splitEnhanced takes an enhanced status code (RFC 3463: class "." 1-3
// digits "." 1-3 digits) off the start of text. The class must match the
// class of the reply code, as RFC 3463 requires; otherwise the text is left
// whole, as Postfix does.
func splitEnhanced(text []byte, code int) (enh, rest []byte) {
	if len(text) < 5 || int(text[0]-'0') != code/100 || text[1] != '.' {
		return nil, text
	}
	i := 2
	for part := 0; part < 2; part++ {
		j := i
		for j < len(text) && j-i < 4 && isDigit(text[j]) {
			j++
		}
		if j == i || j-i > 3 {
			return nil, text
		}
		i = j
		if part == 0 {
			if i >= len(text) || text[i] != '.' {
				return nil, text
			}
			i++
		}
	}
	if i < len(text) && text[i] != ' ' {
		return nil, text
	}
	return text[:i], bytes.TrimLeft(text[i:], " ")
}

// appendText appends one line of reply text to dst, separated by a space,
// trimmed, with control characters replaced by spaces so that the result is
// one printable line.
func appendText(dst, text []byte) []byte {
	for len(text) > 0 && isBlank(text[0]) {
		text = text[1:]
	}
	for len(text) > 0 && isBlank(text[len(text)-1]) {
		text = text[:len(text)-1]
	}
	if len(text) == 0 {
		return dst
	}
	if len(dst) > 0 {
		dst = append(dst, ' ')
	}
	for _, b := range text {
		if isBlank(b) {
			b = ' '
		}
		dst = append(dst, b)
	}
	return dst
}

// isBlank reports whether b is a space or an ASCII control character.
func isBlank(b byte) bool { return b <= ' ' || b == 0x7f }

// intern returns b as a string, reusing an earlier string of the same
// connection: replies repeat ("2.1.5 Ok"), so this saves allocations on the
// hot path.
func (c *Client) intern(b []byte) string {
	if s, ok := c.strs[string(b)]; ok {
		return s
	}
	s := string(b)
	if len(c.strs) < maxInterned {
		c.strs[s] = s
	}
	return s
}

func isDigit(b byte) bool { return b >= '0' && b <= '9' }
