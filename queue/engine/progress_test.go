package engine_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"testing"
	"time"

	"drover/queue"
	"drover/queue/engine"
)

// unusedPlanner and unusedCourier stand for the delivery side of an engine
// that is never started: calling them is a test failure (a panic).
type unusedPlanner struct{ engine.Planner }
type unusedCourier struct{ engine.Courier }

// An operator command over the queue reports its progress as it scans:
// the queue's size at the start, then every 256 records read, then its
// final count, so that an operator watching a long Delete sees it move;
// suspensions meanwhile take effect at once.
func TestOperatorProgress(t *testing.T) {
	discard := slog.New(slog.DiscardHandler)
	spool, err := queue.Open(queue.Options{Dir: t.TempDir(), NoSync: true, Logger: discard})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { spool.Close(context.Background()) })
	eng, err := engine.New(engine.Config{Spool: spool, Planner: unusedPlanner{}, Courier: unusedCourier{}, Logger: discard})
	if err != nil {
		t.Fatal(err)
	}
	const perMessage = 300
	for i, domain := range []string{"a.test", "b.test", "a.test", "b.test"} {
		var rcpts []queue.NewRecipient
		for j := range perMessage {
			rcpts = append(rcpts, queue.NewRecipient{Addr: fmt.Sprintf("r%d-%d@%s", i, j, domain)})
		}
		if _, err := spool.Enqueue(&queue.Message{Sender: "shop", ReturnPath: "app@shop.test"}, rcpts, []byte("Subject: s\r\n\r\nbody\r\n")); err != nil {
			t.Fatal(err)
		}
	}
	const total = 4 * perMessage

	for _, dryRun := range []bool{true, false} {
		var got []queue.Progress
		n, err := eng.Delete(queue.Selector{Domain: "a.test"}, dryRun, func(p queue.Progress) {
			got = append(got, p)
			if len(got) == 2 {
				// Suspend and Resume do not wait for a running command
				// (they would deadlock here).
				if err := errors.Join(suspendErr(eng.Suspend("domain", "b.test", time.Time{}, "test")), eng.Resume("domain", "b.test")); err != nil {
					t.Error(err)
				}
			}
		})
		if err != nil || n != 2*perMessage {
			t.Fatalf("dry run %v: Delete = %d, %v; want %d", dryRun, n, err, 2*perMessage)
		}
		// One report at the start, one per 256 records, one at the end.
		if want := 1 + total/256 + 1; len(got) != want {
			t.Errorf("dry run %v: %d reports, want %d: %+v", dryRun, len(got), want, got)
		}
		if first := got[0]; first != (queue.Progress{Total: total}) {
			t.Errorf("dry run %v: first report %+v, want the queue's size and nothing done", dryRun, first)
		}
		for i := 1; i < len(got); i++ {
			if p, prev := got[i], got[i-1]; p.Scanned < prev.Scanned || p.Affected < prev.Affected || p.Total != total {
				t.Errorf("dry run %v: report %d went back: %+v after %+v", dryRun, i, p, prev)
			}
		}
		if last := got[len(got)-1]; last != (queue.Progress{Total: total, Scanned: total, Affected: 2 * perMessage}) {
			t.Errorf("dry run %v: last report %+v", dryRun, last)
		}
	}
	if st := spool.Stats(); st.Recipients != 2*perMessage {
		t.Errorf("%d recipients left, want %d", st.Recipients, 2*perMessage)
	}
	// Without a report function, the command runs as before.
	if n, err := eng.Flush(queue.Selector{}, nil); n != 0 || err != nil {
		t.Errorf("Flush of due recipients = %d, %v", n, err)
	}
}

func suspendErr(_ string, err error) error { return err }
