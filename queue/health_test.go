package queue

import (
	"context"
	"errors"
	"fmt"
	"testing"
)

// A healthy spool passes the check and keeps nothing of the probe; what
// was queued is untouched.
func TestCheckLeavesNoProbe(t *testing.T) {
	s := openSpool(t, Options{})
	id, err := s.Enqueue(&Message{Sender: "acme"}, []NewRecipient{{Addr: "a@x.test"}}, []byte("body"))
	if err != nil {
		t.Fatal(err)
	}
	before := spoolKeys(t, s)
	for range 3 {
		if err := s.Check(); err != nil {
			t.Fatalf("Check: %v", err)
		}
	}
	if after := spoolKeys(t, s); len(after) != len(before) {
		t.Errorf("keys after Check %q, before %q", after, before)
	}
	for _, k := range spoolKeys(t, s) {
		if k == fmt.Sprintf("%q", healthKey) {
			t.Errorf("probe key %q left behind", k)
		}
	}
	if _, _, err := s.Show(id); err != nil {
		t.Errorf("Show after Check: %v", err)
	}
	if st := s.Stats(); st.Messages != 1 || st.Recipients != 1 {
		t.Errorf("stats after Check: %+v", st)
	}
}

// Once the spool is closed the check fails with ErrClosed.
func TestCheckFailsWhenClosed(t *testing.T) {
	s := openSpool(t, Options{})
	if err := s.Check(); err != nil {
		t.Fatalf("Check on an open spool: %v", err)
	}
	if err := s.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	if err := s.Check(); !errors.Is(err, ErrClosed) {
		t.Errorf("Check after Close: %v, want ErrClosed", err)
	}
}

// A database closed behind the spool's back makes the check fail; it
// does not panic.
func TestCheckFailsWhenDatabaseClosed(t *testing.T) {
	// Not openSpool: its Close at the end would find the database closed.
	s, err := Open(Options{Dir: t.TempDir(), Logger: testLogger()})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.db.Close(); err != nil {
		t.Fatal(err)
	}
	if err := s.Check(); err == nil {
		t.Error("Check on a closed database succeeded")
	}
}
