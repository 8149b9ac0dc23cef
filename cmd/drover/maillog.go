package main

import (
	"bufio"
	"encoding/json"
	"io"
	"os"
	"path/filepath"
	"sync"
	"time"

	"drover/configs"
	"drover/queue"
)

// mailLog writes the event stream as JSON lines: one line per received,
// delivered, deferred, bounced or expired event. Writes are buffered and
// flushed every second, so logging never waits for the disk.
type mailLog struct {
	mu   sync.Mutex
	w    *bufio.Writer
	c    io.Closer
	enc  *json.Encoder
	stop chan struct{}
	done chan struct{}
	noop bool
}

func openMailLog(cfg *configs.Config) (*mailLog, error) {
	l := &mailLog{stop: make(chan struct{}), done: make(chan struct{})}
	var out io.Writer
	switch cfg.MailLog {
	case "off":
		l.noop = true
		close(l.done)
		return l, nil
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
		out, l.c = f, f
	}
	l.w = bufio.NewWriterSize(out, 64<<10)
	l.enc = json.NewEncoder(l.w)
	go l.flushLoop()
	return l, nil
}

// Write logs one event.
func (l *mailLog) Write(ev queue.Event) {
	if l.noop {
		return
	}
	l.mu.Lock()
	l.enc.Encode(ev)
	l.mu.Unlock()
}

func (l *mailLog) flushLoop() {
	defer close(l.done)
	t := time.NewTicker(time.Second)
	defer t.Stop()
	for {
		select {
		case <-t.C:
			l.mu.Lock()
			l.w.Flush()
			l.mu.Unlock()
		case <-l.stop:
			return
		}
	}
}

// Close flushes and closes the log.
func (l *mailLog) Close() error {
	if l.noop {
		return nil
	}
	close(l.stop)
	<-l.done
	l.mu.Lock()
	defer l.mu.Unlock()
	err := l.w.Flush()
	if l.c != nil {
		if cerr := l.c.Close(); err == nil {
			err = cerr
		}
	}
	return err
}
