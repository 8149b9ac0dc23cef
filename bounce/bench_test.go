package bounce

import (
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"
)

// cpuTime is the CPU time (user and system) the process has used.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkCorpus parses and classifies every message of the corpus in
// turn. msgs/s is per wall-clock second (run with -cpu 1 on an idle
// machine); msgs/cpu-s divides by the CPU time the process used, which
// is the per-core figure on a shared, loaded machine too.
func BenchmarkCorpus(b *testing.B) {
	paths, _ := filepath.Glob("testdata/corpus/emails/*.eml")
	var msgs [][]byte
	size := 0
	for _, p := range paths {
		m, err := os.ReadFile(p)
		if err != nil {
			b.Fatal(err)
		}
		msgs = append(msgs, m)
		size += len(m)
	}
	ParseMessage(msgs[0]) // load the rules outside the timer
	b.SetBytes(int64(size / len(msgs)))
	b.ResetTimer()
	cpu0 := cpuTime()
	n := 0
	for b.Loop() {
		ParseMessage(msgs[n%len(msgs)])
		n++
	}
	cpu := cpuTime() - cpu0
	b.ReportMetric(float64(n)/b.Elapsed().Seconds(), "msgs/s")
	if cpu > 0 {
		b.ReportMetric(float64(n)/cpu.Seconds(), "msgs/cpu-s")
	}
}

// BenchmarkClassifyReply classifies one synchronous reply.
func BenchmarkClassifyReply(b *testing.B) {
	c := NewClassifier(nil)
	r := Reply{Code: 550, Text: "5.7.1 Service unavailable; Client host [192.0.2.1] blocked using zen.spamhaus.org"}
	for b.Loop() {
		c.Classify(r)
	}
}
