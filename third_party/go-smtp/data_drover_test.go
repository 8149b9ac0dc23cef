package smtp

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"testing"
)

// refDataReader is go-smtp v0.25.1's dataReader: the dot-unstuffing state
// machine of net/textproto, fed one byte at a time by ReadByte. It is the
// reference the line-at-a-time dataReader must agree with, on every Read.
type refDataReader struct {
	r     *bufio.Reader
	state int

	limited bool
	n       int64
}

// States of refDataReader.
const (
	refBeginLine = iota // at the start of a line
	refDot              // after a "." that starts a line
	refDotCR            // after ".\r" at the start of a line
	refCR               // after a "\r" that may end a line
	refData             // inside a line
	refEOF              // after the ".\r\n" line
)

func (r *refDataReader) Read(b []byte) (n int, err error) {
	if r.limited {
		if r.n <= 0 {
			return 0, ErrDataTooLarge
		}
		if int64(len(b)) > r.n {
			b = b[:r.n]
		}
	}
	for n < len(b) && r.state != refEOF {
		var c byte
		if c, err = r.r.ReadByte(); err != nil {
			if err == io.EOF {
				err = io.ErrUnexpectedEOF
			}
			break
		}
		keep := true
		switch r.state {
		case refBeginLine:
			switch c {
			case '.':
				r.state, keep = refDot, false
			case '\r':
				r.state = refCR
			default:
				r.state = refData
			}
		case refDot:
			if c == '\r' {
				r.state, keep = refDotCR, false
			} else {
				r.state = refData
			}
		case refDotCR:
			if c == '\n' {
				r.state, keep = refEOF, false
			} else {
				r.state = refData // even for a second '\r'
			}
		case refCR:
			if c == '\n' {
				r.state = refBeginLine
			} else {
				r.state = refData // even for a second '\r'
			}
		case refData:
			if c == '\r' {
				r.state = refCR
			}
		}
		if keep {
			b[n] = c
			n++
		}
	}
	if err == nil && r.state == refEOF {
		err = io.EOF
	}
	if r.limited {
		r.n -= int64(n)
	}
	return n, err
}

// refLineLimitReader is go-smtp v0.25.1's lineLimitReader, which counts
// every byte of a line. A Read that takes a line over the limit returns
// nothing, and so does every Read after it.
type refLineLimitReader struct {
	r     io.Reader
	limit int
	cur   int
}

func (r *refLineLimitReader) Read(b []byte) (int, error) {
	if r.limit > 0 && r.cur > r.limit {
		return 0, ErrTooLongLine
	}
	n, err := r.r.Read(b)
	if err != nil || r.limit == 0 {
		return n, err
	}
	for _, c := range b[:n] {
		if c == '\n' {
			r.cur = 0
		}
		if r.cur++; r.cur > r.limit {
			return 0, ErrTooLongLine
		}
	}
	return n, nil
}

// chunkReader returns at most max bytes a Read, as a network does.
type chunkReader struct {
	r   *bytes.Reader
	max int
}

func (c *chunkReader) Read(b []byte) (int, error) {
	if c.max > 0 && len(b) > c.max {
		b = b[:c.max]
	}
	return c.r.Read(b)
}

// readResult is what a Read returned.
type readResult struct {
	data string
	err  error
}

func (r readResult) String() string { return fmt.Sprintf("(%q, %v)", r.data, r.err) }

// drive reads r with Reads of readSize bytes up to the first error and
// once more after it.
func drive(r io.Reader, readSize, max int) []readResult {
	var steps []readResult
	b := make([]byte, readSize)
	failed := false
	for i := 0; i < max; i++ {
		n, err := r.Read(b)
		steps = append(steps, readResult{string(b[:n]), err})
		if failed {
			return steps
		}
		failed = err != nil
	}
	return append(steps, readResult{"no error after too many Reads", nil})
}

type dataCase struct {
	in                                   []byte
	bufSize, readSize, chunk, limit, max int
}

func (c dataCase) String() string {
	return fmt.Sprintf("in %q, bufio size %d, Read size %d, chunk %d, line limit %d, max bytes %d",
		c.in, c.bufSize, c.readSize, c.chunk, c.limit, c.max)
}

// dataRest is what a reader left unread: the bytes a command read after
// DATA would see.
type dataRest struct {
	buffered string // in the bufio.Reader
	unread   int    // in the source
}

// run reads c.in through the stack a Conn builds for DATA (source, line
// limiter, bufio.Reader, data reader), with go-smtp v0.25.1's readers if
// ref is set and with the patched ones if not. It returns every Read's
// result, then what is left unread.
func (c dataCase) run(ref bool) ([]readResult, dataRest) {
	src := bytes.NewReader(c.in)
	var under io.Reader = &chunkReader{r: src, max: c.chunk}
	if ref {
		under = &refLineLimitReader{r: under, limit: c.limit}
	} else {
		under = &lineLimitReader{R: under, LineLimit: c.limit}
	}
	br := bufio.NewReaderSize(under, c.bufSize)
	var r io.Reader
	if ref {
		r = &refDataReader{r: br, limited: c.max > 0, n: int64(c.max)}
	} else {
		r = &dataReader{r: br, limited: c.max > 0, n: int64(c.max)}
	}
	// Every Read but the last consumes a byte or fails.
	steps := drive(r, c.readSize, len(c.in)+2)
	buffered, _ := br.Peek(br.Buffered())
	return steps, dataRest{string(buffered), src.Len()}
}

func checkDataCase(t *testing.T, c dataCase) {
	t.Helper()
	wantSteps, wantRest := c.run(true)
	gotSteps, gotRest := c.run(false)
	for i := 0; i < len(wantSteps) || i < len(gotSteps); i++ {
		var got, want readResult
		if i < len(gotSteps) {
			got = gotSteps[i]
		}
		if i < len(wantSteps) {
			want = wantSteps[i]
		}
		if got != want {
			t.Fatalf("%v:\nRead %d returned %v, upstream %v\nall Reads: %v\nupstream:  %v",
				c, i, got, want, gotSteps, wantSteps)
		}
	}
	if gotRest != wantRest {
		t.Fatalf("%v:\nleft unread %+v, upstream %+v", c, gotRest, wantRest)
	}
}

// dataSeeds are the end-of-data cases FuzzDataReader starts from; each
// runs with several Read sizes, chunk sizes and limits.
var dataSeeds = []string{
	// The end marker, and what follows it.
	"a\r\n.\r\n",
	".\r\n",
	"\r\n.\r\n",
	"a\r\n.\r\nQUIT\r\n",
	"a\r\n.\r\n.\r\n",
	// A dot and a bare CR at the start of a line.
	"a\r\n.\rb\r\n.\r\n",
	"a\r\n.\r\r\n.\r\n",
	"a\r\n.\r\r\n\r\n.\r\n",
	"a\r\n.\r.\r\n.\r\n",
	".\r",
	"a\r\n.\r",
	"a\r\n.\rX",
	// No end marker, or a final line without a terminator.
	"",
	"abc",
	"abc\r\n",
	"abc\r\n.",
	"abc\r\n.\n",
	"abc\r",
	// Dot-stuffed lines.
	"..x\r\n.\r\n",
	"..\r\n.\r\n",
	"...\r\n..\r\n.\r\n",
	".x\r\n.\r\n",
	"a\r\n..\r\n.\r\n",
	// Bare LF at the start, inside, at the end of a line and around the dot.
	"\n.\r\n",
	"a\n.\r\n",
	"a\nb\r\n.\r\n",
	"a\r\n.\n.\r\n",
	"a\r\n\n.\r\n",
	"a\n.\n.\r\n",
	"a\r\n.\n",
	// Bare CR at the start, inside, at the end of a line and around the dot.
	"\r.\r\n",
	"\r\r\n.\r\n",
	"a\r.\r\n",
	"a\rb\r\n.\r\n",
	"x\r\r\n.\r\n",
	"x\r\r\r\n.\r\n",
	"x\r\r\r\r\n.\r\n",
	"a\r\n\r.\r\n",
	"a\r\n.\r\r.\r\n",
	"a\r\n.\r\n\r",
	"\r\r\n.",
	// Lines longer than the line limit, the bufio buffer or both, next to
	// the end marker.
	"0123456789abcdefghij\r\n.\r\n",
	"0123456789\r\n.\r\n",
	"012345678\r\n.\r\n",
	"0123456789012345.\r\n.\r\n",
	"012345678901234\r\n.\r\n",
	"01234567890123\r\n.\r\n",
	".0123456789abcdefghij\r\n.\r\n",
	"a\r\n.\r\n0123456789abcdefghij\r\n",
}

func FuzzDataReader(f *testing.F) {
	for _, s := range dataSeeds {
		// bufio size-16, Read size-1, chunk size, line limit
		for _, p := range [][4]uint16{
			{0, 512, 0, 0},
			{0, 0, 1, 0},
			{0, 0, 0, 15},
			{16, 3, 5, 10},
			{1, 7, 0, 9},
			{0, 512, 3, 0},
		} {
			f.Add([]byte(s), p[0], p[1], uint8(p[2]), p[3], uint16(0))
		}
		f.Add([]byte(s), uint16(0), uint16(512), uint8(0), uint16(0), uint16(3))
		f.Add([]byte(s), uint16(0), uint16(2), uint8(0), uint16(0), uint16(len(s)/2+1))
	}
	f.Fuzz(func(t *testing.T, in []byte, bufSize, readSize uint16, chunk uint8, limit, max uint16) {
		checkDataCase(t, dataCase{
			in:       in,
			bufSize:  16 + int(bufSize%1024), // bufio's minimum is 16
			readSize: 1 + int(readSize%1024),
			chunk:    int(chunk),
			limit:    int(limit % 256),
			max:      int(max % 1024),
		})
	})
}
