package mta

import (
	"bytes"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// logFile is the mail log's file: appended to, renamed to PATH.YYYY-MM-DD
// (the UTC day its lines were written) before the first line of a new day,
// and the renamed files older than retention removed then (0 keeps them
// all). Drover rotates its mail log itself so that its retention holds
// without an outside tool; do not let logrotate rename it as well.
type logFile struct {
	path      string
	retention time.Duration
	now       func() time.Time
	log       *slog.Logger
	f         *os.File
	day       string // the UTC day of the lines in f
}

const dayLayout = "2006-01-02"

func openLogFile(path string, retention time.Duration, now func() time.Time, log *slog.Logger) (*logFile, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o750); err != nil {
		return nil, err
	}
	lf := &logFile{path: path, retention: retention, now: now, log: log}
	if st, err := os.Stat(path); err == nil && st.Size() > 0 {
		// A file left from an earlier day is that day's.
		lf.day = st.ModTime().UTC().Format(dayLayout)
	}
	if err := lf.open(); err != nil {
		return nil, err
	}
	return lf, nil
}

func (lf *logFile) open() error {
	f, err := os.OpenFile(lf.path, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o640)
	if err != nil {
		return err
	}
	lf.f = f
	if lf.day == "" {
		lf.day = lf.now().UTC().Format(dayLayout)
	}
	return nil
}

// Write appends p.
func (lf *logFile) Write(p []byte) (int, error) { return lf.f.Write(p) }

// newDay returns today's UTC day and whether it is not the file's: the
// writer flushes what it holds of the file's day, then rotates.
func (lf *logFile) newDay() (string, bool) {
	today := lf.now().UTC().Format(dayLayout)
	return today, today != lf.day
}

func (lf *logFile) rotate(today string) error {
	if err := lf.f.Close(); err != nil {
		return err
	}
	if err := os.Rename(lf.path, lf.path+"."+lf.day); err != nil && !errors.Is(err, os.ErrNotExist) {
		lf.open()
		return err
	}
	lf.day = today
	lf.expire()
	return lf.open()
}

// expire removes the rotated files older than the retention.
func (lf *logFile) expire() {
	if lf.retention <= 0 {
		return
	}
	old, _ := filepath.Glob(lf.path + ".*")
	cutoff := lf.now().UTC().Add(-lf.retention)
	for _, name := range old {
		day, err := time.Parse(dayLayout, strings.TrimSuffix(strings.TrimPrefix(name, lf.path+"."), ".gz"))
		if err != nil || !day.Add(24*time.Hour).Before(cutoff) {
			continue // not one of ours, or it holds lines younger than the retention
		}
		if err := os.Remove(name); err != nil {
			lf.log.Warn("mail log: removing an expired file failed", "file", name, "err", err)
		} else {
			lf.log.Info("mail log: expired file removed", "file", name)
		}
	}
}

func (lf *logFile) Close() error { return lf.f.Close() }

// redact rewrites the file and its rotated files with every occurrence of
// addr (without regard to case) replaced by with: each through a
// temporary file renamed over it and synced, the live one reopened.
func (lf *logFile) redact(addr, with string) error {
	files, _ := filepath.Glob(lf.path + ".*")
	if err := lf.f.Close(); err != nil {
		return err
	}
	var errs []error
	for _, f := range append(files, lf.path) {
		if strings.Contains(f, ".tmp-") {
			continue
		}
		errs = append(errs, redactFile(f, addr, with))
	}
	errs = append(errs, lf.open())
	return errors.Join(errs...)
}

func redactFile(path, addr, with string) error {
	data, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	out := replaceFold(data, []byte(addr), []byte(with))
	if out == nil {
		return nil // nothing to redact
	}
	st, err := os.Stat(path)
	if err != nil {
		return err
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(out); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Chmod(st.Mode().Perm()); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return err
	}
	dir, err := os.Open(filepath.Dir(path))
	if err != nil {
		return err
	}
	defer dir.Close()
	return dir.Sync()
}

// replaceFold returns data with every occurrence of old, compared without
// regard to ASCII case, replaced by new; nil when there is none.
func replaceFold(data, old, new []byte) []byte {
	lower, needle := bytes.ToLower(data), bytes.ToLower(old)
	if len(lower) != len(data) || !bytes.Contains(lower, needle) {
		if len(lower) == len(data) {
			return nil
		}
		return bytes.ReplaceAll(data, old, new) // a rare non-ASCII case: exact matches only
	}
	var out []byte
	for {
		i := bytes.Index(lower, needle)
		if i < 0 {
			return append(out, data...)
		}
		out = append(append(out, data[:i]...), new...)
		data, lower = data[i+len(old):], lower[i+len(needle):]
	}
}
