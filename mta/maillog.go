package mta

import (
	"bufio"
	"crypto/tls"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/emersion/go-smtp"
	"github.com/prometheus/client_golang/prometheus"

	"drover/queue"
)

// MailLog writes the event stream as JSON lines (the mail log): one line per received,
// delivered, deferred, bounced, expired, complained, deleted or rejected
// event. A
// goroutine of its own encodes and writes (flushing every second), fed by
// a buffered channel, so an event's emitter never waits for the disk; if
// the disk falls that far behind, events are dropped and counted rather
// than slowing delivery. A failed write loses what was buffered: it is
// counted in drover_maillog_write_errors_total and logged, the first at
// once and the others at most once per mailLogErrorInterval, with their
// number; the next line written starts on a line of its own.
type MailLog struct {
	mu      sync.RWMutex // Close against Write
	closed  bool
	events  chan queue.Event
	redacts chan redaction
	done    chan struct{}
	dropped atomic.Int64
	err     error // of the writer, read after done

	writeErrors prometheus.Counter
	errLog      errorThrottle // used by run only
	bufSize     int
}

// mailLogBuffer is the number of events waiting to be written.
const mailLogBuffer = 16 << 10

// mailLogErrorInterval is the shortest time between two log lines about
// failed mail-log writes.
const mailLogErrorInterval = 10 * time.Second

// OpenMailLog opens the mail log at path: a file, appended to (its
// directory made if missing), rotated daily and kept for retention (see
// logFile), "-" for standard output, or "off" for none (nil, whose Write
// takes nothing). Its error counter is registered on reg.
func OpenMailLog(path string, retention time.Duration, reg prometheus.Registerer, log *slog.Logger) (*MailLog, error) {
	return openMailLog(path, retention, reg, log, time.Now)
}

func openMailLog(path string, retention time.Duration, reg prometheus.Registerer, log *slog.Logger, now func() time.Time) (*MailLog, error) {
	writeErrors := prometheus.NewCounter(prometheus.CounterOpts{
		Name: "drover_maillog_write_errors_total",
		Help: "Writes to the mail log that failed; the events buffered at the time are lost.",
	})
	reg.MustRegister(writeErrors)
	var out io.Writer
	var closer io.Closer
	switch path {
	case "off":
		return nil, nil
	case "-":
		out = os.Stdout
	default:
		f, err := openLogFile(path, retention, now, log)
		if err != nil {
			return nil, err
		}
		out, closer = f, f
	}
	return newMailLog(out, closer, writeErrors, log, now, 64<<10), nil
}

// newMailLog starts a mail log on out, closing closer (if any) at Close.
// now is the clock of the error throttle; bufSize the write buffer.
func newMailLog(out io.Writer, closer io.Closer, writeErrors prometheus.Counter, log *slog.Logger, now func() time.Time, bufSize int) *MailLog {
	l := &MailLog{
		events:      make(chan queue.Event, mailLogBuffer),
		redacts:     make(chan redaction),
		done:        make(chan struct{}),
		writeErrors: writeErrors,
		errLog:      errorThrottle{log: log, now: now, interval: mailLogErrorInterval},
		bufSize:     bufSize,
	}
	go l.run(out, closer)
	return l
}

// Write logs one event without blocking. A nil log (mail_log: off) takes
// nothing.
func (l *MailLog) Write(ev queue.Event) {
	if l == nil {
		return
	}
	l.mu.RLock()
	defer l.mu.RUnlock()
	if l.closed {
		return
	}
	select {
	case l.events <- ev:
	default:
		l.dropped.Add(1)
	}
}

func (l *MailLog) run(out io.Writer, closer io.Closer) {
	defer close(l.done)
	w := bufio.NewWriterSize(out, l.bufSize)
	enc := json.NewEncoder(w)
	// broken: a write failed, and the file may end in part of a line.
	broken := false
	failed := func(err error) {
		l.writeErrors.Inc()
		l.errLog.record(err)
		// bufio.Writer and json.Encoder keep an error for good: start
		// both afresh (what was buffered is lost).
		w.Reset(out)
		enc = json.NewEncoder(w)
		broken = true
	}
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	for {
		select {
		case ev, ok := <-l.events:
			if !ok {
				l.err = w.Flush()
				if l.err != nil {
					failed(l.err)
				}
				l.errLog.flush()
				if closer != nil {
					if err := closer.Close(); l.err == nil {
						l.err = err
					}
				}
				return
			}
			if lf, ok := out.(*logFile); ok {
				if today, ok := lf.newDay(); ok {
					// The day's lines go to its file, then the new day's file.
					if err := w.Flush(); err != nil {
						failed(err)
					}
					if err := lf.rotate(today); err != nil {
						failed(err)
					}
				}
			}
			if broken {
				w.WriteByte('\n')
				broken = false
			}
			if err := enc.Encode(ev); err != nil {
				failed(err)
			}
		case rd := <-l.redacts:
			// The events already handed over, and what is buffered, go to
			// the file first, so that they are redacted too.
			for drained := false; !drained; {
				select {
				case ev, ok := <-l.events:
					if ok {
						if err := enc.Encode(ev); err != nil {
							failed(err)
						}
					} else {
						drained = true
					}
				default:
					drained = true
				}
			}
			if err := w.Flush(); err != nil {
				failed(err)
			}
			lf, ok := out.(*logFile)
			if !ok {
				rd.done <- errors.New("the mail log is not a file: Drover cannot redact it")
				continue
			}
			rd.done <- lf.redact(rd.addr, rd.with)
		case <-tick.C:
			if err := w.Flush(); err != nil {
				failed(err)
			}
			l.errLog.tick()
			if n := l.dropped.Swap(0); n > 0 {
				l.errLog.log.Warn("mail log: events dropped, the log's disk is too slow", "dropped", n)
			}
		}
	}
}

// errorThrottle logs the first write error at once and the following
// ones at most once per interval, as one line with their number, so a
// failing disk does not flood the log.
type errorThrottle struct {
	log      *slog.Logger
	now      func() time.Time
	interval time.Duration
	logged   bool      // a line has been logged
	last     time.Time // when
	n        int       // errors since that line
	lastErr  error
}

// record counts err and logs it if it is the first or the interval has
// passed since the last line.
func (t *errorThrottle) record(err error) {
	t.n++
	t.lastErr = err
	if !t.logged || t.now().Sub(t.last) >= t.interval {
		t.flush()
	}
}

// tick logs the errors not yet logged once the interval has passed.
func (t *errorThrottle) tick() {
	if t.n > 0 && t.now().Sub(t.last) >= t.interval {
		t.flush()
	}
}

// flush logs the errors not yet logged, if any.
func (t *errorThrottle) flush() {
	if t.n == 0 {
		return
	}
	t.log.Error("mail log: write failed, events lost", "err", t.lastErr, "errors", t.n)
	t.logged, t.last, t.n = true, t.now(), 0
}

// redaction is a request to the log's goroutine.
type redaction struct {
	addr, with string
	done       chan error
}

// Redact replaces addr, in any case, with with in the mail log's file and
// its rotated files (GDPR erasure), between two writes of the log.
func (l *MailLog) Redact(addr, with string) error {
	if l == nil {
		return nil // mail_log: off keeps nothing
	}
	l.mu.RLock()
	defer l.mu.RUnlock()
	if l.closed {
		return errors.New("mail log closed")
	}
	done := make(chan error, 1)
	l.redacts <- redaction{addr: addr, with: with, done: done}
	return <-done
}

// Close writes what is buffered and closes the log; later events are
// not logged.
func (l *MailLog) Close() error {
	if l == nil {
		return nil
	}
	l.mu.Lock()
	l.closed = true
	close(l.events)
	l.mu.Unlock()
	<-l.done
	return l.err
}

// sessionEvent is an event of a listener's session on conn: the client's
// IP address, its HELO name and the TLS version.
func sessionEvent(kind queue.EventKind, now time.Time, conn *smtp.Conn, listener string) queue.Event {
	ev := queue.Event{Kind: kind, Time: now, Helo: clip(conn.Hostname()), Listener: listener}
	if ip, _, err := net.SplitHostPort(conn.Conn().RemoteAddr().String()); err == nil {
		ev.ClientIP = ip
	}
	if st, ok := conn.TLSConnectionState(); ok {
		ev.TLS = strings.ReplaceAll(tls.VersionName(st.Version), " ", "") // "TLS1.3"
	}
	return ev
}

// maxLogged bounds a client's string in the mail log.
const maxLogged = 256

// clip cuts s, a client's, to maxLogged bytes (on a rune boundary).
func clip(s string) string {
	if len(s) <= maxLogged {
		return s
	}
	n := maxLogged
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n] + "..."
}

// rcptAddrs are the recipients' addresses.
func rcptAddrs(rcpts []queue.NewRecipient) []string {
	addrs := make([]string, len(rcpts))
	for i, r := range rcpts {
		addrs[i] = r.Addr
	}
	return addrs
}
