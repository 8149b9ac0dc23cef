package queue

import (
	"errors"
	"strings"
	"testing"
)

// A spool another process (or Open) holds is refused with ErrLocked and
// words that say so.
func TestOpenLocked(t *testing.T) {
	dir := t.TempDir()
	s, err := Open(Options{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close(t.Context())
	_, err = Open(Options{Dir: dir})
	if !errors.Is(err, ErrLocked) || !strings.Contains(err.Error(), "another drover serve") {
		t.Fatalf("second Open: %v, want ErrLocked", err)
	}
}
