package engine

import (
	"context"
	"crypto/rand"
	"syscall"
	"testing"
	"time"

	"drover/queue"
)

// cpuTime returns the CPU time (user and system) used by the process.
func cpuTime(tb testing.TB) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		tb.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

type nopCourier struct{}

func (nopCourier) Open(context.Context, string, *Plan, string) (Conn, error) { return nopConn{}, nil }

type nopConn struct{}

func (nopConn) Deliver(_ context.Context, _ *queue.Message, _ string, rcpts []queue.Recipient, _ []byte) ([]queue.Result, error) {
	res := make([]queue.Result, len(rcpts))
	for i := range res {
		res[i] = queue.Result{Status: queue.Delivered, Code: 250}
	}
	return res, nil
}

func (nopConn) Close() error { return nil }

// BenchmarkEnqueueDeliver runs messages through the spool and the engine:
// durable enqueue from 16 goroutines per CPU, scheduling, delivery through
// a no-op courier over 20 destinations, and deletion. cpu-ns/op is the CPU
// time of the whole process (Pebble's background work included) per
// message.
func BenchmarkEnqueueDeliver(b *testing.B) {
	tb := newTestbed(b, queue.Options{}, Config{Courier: nopCourier{}})
	s := tb.spool
	body := make([]byte, 10<<10)
	rand.Read(body)
	var rcpts [20][]queue.NewRecipient
	for i := range rcpts {
		rcpts[i] = []queue.NewRecipient{{Addr: "someone@example" + string(rune('a'+i)) + ".com"}}
	}
	b.ReportAllocs()
	b.SetParallelism(16)
	cpu := cpuTime(b)
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		i := 0
		for pb.Next() {
			i++
			msg := &queue.Message{Sender: "acme", ReturnPath: "bounces+x@acme.test", Stream: "marketing", Campaign: "spring", ClientAddr: "127.0.0.1"}
			if _, err := s.Enqueue(msg, rcpts[i%len(rcpts)], body); err != nil {
				b.Error(err)
				return
			}
		}
	})
	for s.Stats().Messages > 0 {
		time.Sleep(time.Millisecond)
	}
	b.StopTimer()
	b.ReportMetric(float64(cpuTime(b)-cpu)/float64(b.N), "cpu-ns/op")
}
