package queue

import (
	"context"
	"errors"
	"reflect"
	"testing"
	"time"
)

// Holds are stored whole and read back after the spool is reopened; a
// second PutHold replaces the first, DeleteHold removes one, and a closed
// spool refuses both.
func TestHoldsKeptAcrossOpen(t *testing.T) {
	dir := t.TempDir()
	s := openSpool(t, Options{Dir: dir, NoSync: true})
	at := time.Unix(1_700_000_000, 123)
	site := Hold{Kind: "site", Name: "outlook.com", Until: at.Add(time.Hour), Reason: "first"}
	adaptive := Hold{Kind: "adaptive", Name: "outlook.com", Factor: 0.25, SlowSince: at, SlowUntil: at.Add(59 * time.Minute),
		SlowReason: "microsoft-throttle", SuspendUntil: at.Add(time.Minute), SuspendReason: "microsoft-block"}
	domain := Hold{Kind: "domain", Name: "a.example", Reason: "until resumed"}
	for _, h := range []Hold{site, adaptive, domain} {
		if err := s.PutHold(h); err != nil {
			t.Fatal(err)
		}
	}
	site.Reason = "second"
	if err := s.PutHold(site); err != nil {
		t.Fatal(err)
	}
	if err := s.DeleteHold("domain", "a.example"); err != nil {
		t.Fatal(err)
	}
	if err := s.PutHold(Hold{Kind: "site"}); err == nil {
		t.Error("PutHold without a name succeeded")
	}
	s.Close(context.Background())
	if err := s.PutHold(site); !errors.Is(err, ErrClosed) {
		t.Errorf("PutHold on a closed spool: %v", err)
	}

	s = openSpool(t, Options{Dir: dir})
	got, err := s.Holds()
	if err != nil {
		t.Fatal(err)
	}
	want := []Hold{adaptive, site}
	for i := range got {
		for _, p := range []*time.Time{&got[i].Until, &got[i].SlowSince, &got[i].SlowUntil, &got[i].SuspendUntil} {
			if !p.IsZero() {
				*p = time.Unix(0, p.UnixNano())
			}
		}
	}
	for i := range want {
		for _, p := range []*time.Time{&want[i].Until, &want[i].SlowSince, &want[i].SlowUntil, &want[i].SuspendUntil} {
			if !p.IsZero() {
				*p = time.Unix(0, p.UnixNano())
			}
		}
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("Holds after reopening:\n got %+v\nwant %+v", got, want)
	}
	if st := s.Stats(); st.Messages != 0 || st.Recipients != 0 {
		t.Errorf("holds counted as queued: %+v", st)
	}
}
