package mta

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"strings"
	"testing"
	"time"
)

// quiet takes the logs of listeners failed on purpose.
var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

// recordListen is a listen hook that keeps the listeners it opens.
type recordListen struct{ lns []net.Listener }

func (r *recordListen) listen(network, address string) (net.Listener, error) {
	ln, err := net.Listen(network, address)
	if err == nil {
		r.lns = append(r.lns, ln)
	}
	return ln, err
}

// Submission is healthy from Start until a listener stops accepting or
// Shutdown begins, and says which.
func TestSubmissionHealthy(t *testing.T) {
	sub, err := NewSubmission(SubmissionConfig{
		Hostname:  "drover.test",
		Listeners: []Listener{{Address: "127.0.0.1:0", Mode: "plain"}, {Address: "127.0.0.1:0", Mode: "plain"}},
		Queue:     &fakeQueue{},
		Logger:    quiet,
	})
	if err != nil {
		t.Fatal(err)
	}
	rec := &recordListen{}
	sub.listen = rec.listen
	if err := sub.Healthy(); !errors.Is(err, errNotStarted) {
		t.Errorf("before Start: %v", err)
	}
	addrs, err := sub.Start()
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close()
	if err := sub.Healthy(); err != nil {
		t.Fatalf("after Start: %v", err)
	}

	// The second listener fails under the server (as when its socket
	// breaks): its accept loop returns.
	rec.lns[1].Close()
	<-(*sub.loops.Load())[1].done
	err = sub.Healthy()
	if err == nil || !strings.Contains(err.Error(), addrs[1].String()) || !strings.Contains(err.Error(), "stopped") {
		t.Errorf("after a listener failed: %v, want it named as stopped", err)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	sub.Shutdown(ctx)
	if err := sub.Healthy(); !errors.Is(err, errDraining) {
		t.Errorf("after Shutdown: %v", err)
	}
}

// Inbound is healthy from Start until its listener stops or it is closed;
// Close frees its address.
func TestInboundHealthyAndClose(t *testing.T) {
	in := NewInbound(InboundConfig{Address: "127.0.0.1:0", Hostname: "drover.test", Logger: quiet})
	if err := in.Healthy(); !errors.Is(err, errNotStarted) {
		t.Errorf("before Start: %v", err)
	}
	in.Close() // before Start: nothing to do
	addr, err := in.Start()
	if err != nil {
		t.Fatal(err)
	}
	if err := in.Healthy(); err != nil {
		t.Fatalf("after Start: %v", err)
	}
	in.Close()
	<-in.loop.Load().done
	if err := in.Healthy(); err == nil || !strings.Contains(err.Error(), "closed") {
		t.Errorf("after Close: %v", err)
	}
	ln, err := net.Listen("tcp", addr.String())
	if err != nil {
		t.Fatalf("address still taken after Close: %v", err)
	}
	ln.Close()

	// A listener that fails under the server is reported as stopped.
	in = NewInbound(InboundConfig{Address: "127.0.0.1:0", Hostname: "drover.test", Logger: quiet})
	rec := &recordListen{}
	in.listen = rec.listen
	if _, err := in.Start(); err != nil {
		t.Fatal(err)
	}
	defer in.Close()
	rec.lns[0].Close()
	<-in.loop.Load().done
	if err := in.Healthy(); err == nil || !strings.Contains(err.Error(), "stopped") {
		t.Errorf("after the listener failed: %v", err)
	}
}

// A Start that fails on its second listener closes the first at once.
func TestSubmissionStartFailureClosesListeners(t *testing.T) {
	taken, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()
	rec := &recordListen{}
	sub, err := NewSubmission(SubmissionConfig{
		Hostname:  "drover.test",
		Listeners: []Listener{{Address: "127.0.0.1:0", Mode: "plain"}, {Address: taken.Addr().String(), Mode: "plain"}},
		Queue:     &fakeQueue{},
		Logger:    quiet,
	})
	if err != nil {
		t.Fatal(err)
	}
	sub.listen = rec.listen
	if _, err := sub.Start(); err == nil {
		t.Fatal("Start on a taken address succeeded")
	}
	if len(rec.lns) != 1 {
		t.Fatalf("%d listeners opened, want 1", len(rec.lns))
	}
	ln, err := net.Listen("tcp", rec.lns[0].Addr().String())
	if err != nil {
		t.Fatalf("first listener still open: %v", err)
	}
	ln.Close()
	if err := sub.Healthy(); err == nil {
		t.Error("healthy after a failed Start")
	}
}
