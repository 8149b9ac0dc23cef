package queue

import (
	"fmt"

	"github.com/cockroachdb/pebble"
)

// healthKey is the key of the health probe that Check writes and deletes:
//
//	qh                               health probe; value: one byte
//
// It is in the queue's 'q' key space but under none of the prefixes that
// the spool scans (qm, qb, qr, qs), and it is deleted by the Check that
// wrote it; a crash between the two leaves one stale two-byte key, which
// the next Check overwrites and deletes.
var healthKey = []byte("qh")

// Check reports whether the spool still takes durable writes: it commits
// a probe under the key "qh" with pebble.Sync, so that the write reaches
// the disk as an enqueued message's does, then deletes it. It costs one
// fsync per call: a caller that asks often (a health endpoint scraped
// every few seconds) should reuse its answer for a while. Concurrent calls
// are safe. It returns ErrClosed once Close has started closing the
// database, and an error rather than a panic if the database was closed
// some other way.
func (s *Spool) Check() error {
	return s.writeDB("health probe", func() error {
		if err := s.db.Set(healthKey, []byte{1}, pebble.Sync); err != nil {
			return fmt.Errorf("write: %w", err)
		}
		if err := s.db.Delete(healthKey, pebble.NoSync); err != nil {
			return fmt.Errorf("delete: %w", err)
		}
		return nil
	})
}

// writeDB runs f, which writes to the database, outside the spool's own
// writes (records of messages): ErrClosed once Close has started, and an
// error rather than a panic if the database was closed some other way.
// what names the write in errors.
func (s *Spool) writeDB(what string, f func() error) (err error) {
	done, err := s.readDB()
	if err != nil {
		return err
	}
	defer done()
	defer func() {
		// Pebble panics when a closed database is written to.
		if r := recover(); r != nil {
			err = fmt.Errorf("queue: %s: %v", what, r)
		}
	}()
	if err := f(); err != nil {
		return fmt.Errorf("queue: %s: %w", what, err)
	}
	return nil
}
