package policy

import (
	"bytes"
	"fmt"
	"runtime"
	"strings"
	"testing"
	"time"
)

// loaded is a policy with n suppression entries of n addresses, spread
// over the scopes as a real list's would be.
func loaded(b *testing.B, n int) *Policy {
	p, _ := newPolicy(b, nil)
	var buf bytes.Buffer
	buf.WriteString("address,scope,sender,list,reason\n")
	for i := range n {
		switch i % 4 {
		case 0:
			fmt.Fprintf(&buf, "user%d@example%d.com,global,,,confirmed-bounce\n", i, i%1000)
		case 1:
			fmt.Fprintf(&buf, "user%d@example%d.com,sender,shop,,complaint\n", i, i%1000)
		default:
			fmt.Fprintf(&buf, "user%d@example%d.com,list,shop,news%d,unsubscribed\n", i, i%1000, i%7)
		}
	}
	start := time.Now()
	res, err := p.Import(&buf, ImportOptions{Format: CSV})
	if err != nil || res.Added != n {
		b.Fatalf("%+v %v", res, err)
	}
	b.Logf("imported %d entries in %v", n, time.Since(start))
	// The index's memory: a second store reads the same entries.
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	start = time.Now()
	idx, err := NewPebbleStore(p.cfg.Store.(*PebbleStore).db)
	if err != nil {
		b.Fatal(err)
	}
	loadTime := time.Since(start)
	runtime.GC()
	runtime.ReadMemStats(&after)
	b.Logf("index of %d entries: %.0f MB, read in %v", n, float64(after.HeapInuse-before.HeapInuse)/1e6, loadTime)
	runtime.KeepAlive(idx)
	return p
}

// BenchmarkCheck is the cost of the recipient check at RCPT with 1
// million entries: the bound is 2 µs. "absent" asks for
// addresses that are not suppressed (nearly every RCPT), "present" for
// suppressed ones.
func BenchmarkCheck(b *testing.B) {
	const n = 1_000_000
	p := loaded(b, n)
	for _, present := range []bool{false, true} {
		name := map[bool]string{false: "absent", true: "present"}[present]
		b.Run(name, func(b *testing.B) {
			addrs := make([]string, 1<<16)
			for i := range addrs {
				j := i * 241 % n
				if present {
					addrs[i] = fmt.Sprintf("User%d@example%d.com", j, j%1000)
				} else {
					addrs[i] = fmt.Sprintf("fresh%d@example%d.com", j, j%1000)
				}
			}
			hits := 0
			for i := 0; b.Loop(); i++ {
				d, err := p.Check("shop", "marketing", "news3", addrs[i%len(addrs)])
				if err != nil {
					b.Fatal(err)
				}
				if d.Suppressed {
					hits++
				}
			}
			if present != (hits > 0) {
				b.Fatalf("%d suppressed", hits)
			}
		})
	}
}

// BenchmarkImport is an import of 1 million addresses: the issue's
// bound is 10 s.
func BenchmarkImport(b *testing.B) {
	for b.Loop() {
		b.StopTimer()
		p, _ := newPolicy(b, nil)
		var sb strings.Builder
		sb.WriteString("address\n")
		for i := range 1_000_000 {
			fmt.Fprintf(&sb, "user%d@example%d.com\n", i, i%1000)
		}
		b.StartTimer()
		res, err := p.Import(strings.NewReader(sb.String()), ImportOptions{Format: CSV, Default: Entry{Reason: Manual}})
		if err != nil || res.Added != 1_000_000 {
			b.Fatalf("%+v %v", res, err)
		}
	}
}
