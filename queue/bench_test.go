package queue

import (
	"crypto/rand"
	"syscall"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
)

// walSyncs returns how many times Pebble has synced its WAL.
func walSyncs(tb testing.TB, s *Spool) uint64 {
	var m dto.Metric
	if err := s.db.Metrics().LogWriter.FsyncLatency.Write(&m); err != nil {
		tb.Fatal(err)
	}
	return m.GetHistogram().GetSampleCount()
}

// cpuTime returns the CPU time (user and system) used by the process.
func cpuTime(tb testing.TB) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		tb.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func benchBody() []byte {
	body := make([]byte, 10<<10)
	rand.Read(body)
	return body
}

func benchMessage() *Message {
	return &Message{Sender: "acme", ReturnPath: "bounces+x@acme.test", Stream: "marketing", Campaign: "spring", ClientAddr: "127.0.0.1"}
}

// BenchmarkEnqueue enqueues 10 KB messages with one recipient, durably
// (Sync), from 16 goroutines per CPU as SMTP sessions would: the WAL syncs
// are shared (syncs/op well below 1). The serial case pays one sync each.
// cpu-ns/op is the CPU time of the whole process per message.
func BenchmarkEnqueue(b *testing.B) {
	for _, bc := range []struct {
		name string
		par  int
	}{{"serial", 0}, {"parallel", 16}} {
		b.Run(bc.name, func(b *testing.B) {
			s := openSpool(b, Options{})
			body := benchBody()
			rcpts := []NewRecipient{{Addr: "someone@example.com"}}
			syncs, cpu := walSyncs(b, s), cpuTime(b)
			b.ReportAllocs()
			b.ResetTimer()
			if bc.par == 0 {
				for range b.N {
					if _, err := s.Enqueue(benchMessage(), rcpts, body); err != nil {
						b.Fatal(err)
					}
				}
			} else {
				b.SetParallelism(bc.par)
				b.RunParallel(func(pb *testing.PB) {
					for pb.Next() {
						if _, err := s.Enqueue(benchMessage(), rcpts, body); err != nil {
							b.Error(err)
							return
						}
					}
				})
			}
			b.StopTimer()
			b.ReportMetric(float64(walSyncs(b, s)-syncs)/float64(b.N), "syncs/op")
			b.ReportMetric(float64(cpuTime(b)-cpu)/float64(b.N), "cpu-ns/op")
		})
	}
}
