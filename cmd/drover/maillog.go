package main

import (
	"bufio"
	"encoding/json"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"drover/configs"
	"drover/queue"
)

// mailLog writes the event stream as JSON lines: one line per received,
// delivered, deferred, bounced, expired, complained or deleted event. A
// goroutine of its own encodes and writes (flushing every second), fed by
// a buffered channel, so an event's emitter never waits for the disk; if
// the disk falls that far behind, events are dropped and counted rather
// than slowing delivery.
type mailLog struct {
	mu      sync.RWMutex // Close against Write
	closed  bool
	events  chan queue.Event
	done    chan struct{}
	dropped atomic.Int64
	err     error // of the writer, read after done
}

// mailLogBuffer is the number of events waiting to be written.
const mailLogBuffer = 16 << 10

func openMailLog(cfg *configs.Config) (*mailLog, error) {
	var out io.Writer
	var closer io.Closer
	switch cfg.MailLog {
	case "off":
		return nil, nil
	case "-":
		out = os.Stdout
	default:
		path := cfg.MailLog
		if path == "" {
			path = filepath.Join(cfg.DataDir, "mail.log")
		}
		if err := os.MkdirAll(filepath.Dir(path), 0o750); err != nil {
			return nil, err
		}
		f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o640)
		if err != nil {
			return nil, err
		}
		out, closer = f, f
	}
	l := &mailLog{events: make(chan queue.Event, mailLogBuffer), done: make(chan struct{})}
	go l.run(out, closer)
	return l, nil
}

// Write logs one event without blocking. A nil log (mail_log: off) takes
// nothing.
func (l *mailLog) Write(ev queue.Event) {
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

func (l *mailLog) run(out io.Writer, closer io.Closer) {
	defer close(l.done)
	w := bufio.NewWriterSize(out, 64<<10)
	enc := json.NewEncoder(w)
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	for {
		select {
		case ev, ok := <-l.events:
			if !ok {
				l.err = w.Flush()
				if closer != nil {
					if err := closer.Close(); l.err == nil {
						l.err = err
					}
				}
				return
			}
			enc.Encode(ev)
		case <-tick.C:
			w.Flush()
			if n := l.dropped.Swap(0); n > 0 {
				slog.Warn("mail log: events dropped, the log's disk is too slow", "dropped", n)
			}
		}
	}
}

// Close writes what is buffered and closes the log; later events are
// not logged.
func (l *mailLog) Close() error {
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
