package bounce

import (
	"os"
	"path/filepath"
	"testing"
)

// BenchmarkCorpus parses and classifies every message of the corpus;
// msgs/s is per core (run with -cpu 1).
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
	n := 0
	for b.Loop() {
		ParseMessage(msgs[n%len(msgs)])
		n++
	}
	b.ReportMetric(float64(n)/b.Elapsed().Seconds(), "msgs/s")
}

// BenchmarkClassifyReply classifies one synchronous reply.
func BenchmarkClassifyReply(b *testing.B) {
	ClassifyReply(550, "", "x")
	for b.Loop() {
		ClassifyReply(550, "", "5.7.1 Service unavailable; Client host [192.0.2.1] blocked using zen.spamhaus.org")
	}
}
