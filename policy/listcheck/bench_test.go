package listcheck

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"net/netip"
	"runtime"
	"testing"
	"time"
)

// instantResolver answers at once: every domain has one MX host, shared
// by the domains of one site (1 in 100), and every host an address.
type instantResolver struct{}

func (instantResolver) MX(ctx context.Context, domain string) ([]string, error) {
	return []string{fmt.Sprintf("mx%d.site.example", len(domain)%100)}, nil
}

func (instantResolver) Addrs(ctx context.Context, host string) ([]netip.Addr, error) {
	return []netip.Addr{netip.MustParseAddr("192.0.2.1")}, nil
}

// listGen streams a list of n rows as a list exported from a shop looks:
// a header, three columns, half the addresses at five big providers and
// the rest over 50,000 domains, with 1% typos, 1% role accounts, 1%
// invalid addresses and 2% duplicates in other case. The same n gives the
// same bytes.
type listGen struct {
	n, i int
	rng  *rand.Rand
	prev []string
	buf  bytes.Buffer
}

func newListGen(n int) *listGen {
	g := &listGen{n: n, rng: rand.New(rand.NewPCG(1, 2))}
	g.buf.WriteString("email,first_name,last_name\n")
	return g
}

var bigDomains = []string{"gmail.com", "yahoo.com", "hotmail.com", "outlook.com", "icloud.com"}

func (g *listGen) Read(p []byte) (int, error) {
	for g.buf.Len() < len(p) && g.i < g.n {
		i := g.i
		g.i++
		var addr string
		switch n := g.rng.IntN(100); {
		case n < 2 && len(g.prev) > 0:
			addr = "X" + g.prev[g.rng.IntN(len(g.prev))][1:] // a duplicate, other case
		case n < 3:
			addr = fmt.Sprintf("user%d@gmial.com", i)
		case n < 4:
			addr = fmt.Sprintf("info+%d@shop%d.example", i, g.rng.IntN(50_000))
		case n < 5:
			addr = fmt.Sprintf("user %d@shop.example", i)
		case n < 50:
			addr = fmt.Sprintf("x%d.user@%s", i, bigDomains[g.rng.IntN(len(bigDomains))])
		default:
			addr = fmt.Sprintf("x%d.user@shop%d.example", i, g.rng.IntN(50_000))
		}
		if len(g.prev) < 1000 {
			g.prev = append(g.prev, addr)
		}
		fmt.Fprintf(&g.buf, "%s,First%d,\"Last, %d\"\n", addr, i, i)
	}
	if g.buf.Len() == 0 {
		return 0, io.EOF
	}
	return g.buf.Read(p)
}

// BenchmarkCheckMillion checks a million rows, streamed as from a file,
// with DNS answered at once: what a check costs besides the network
// (making the rows is in the time, a tenth of it). peak-heap-MB is the
// largest heap seen while it runs, garbage not yet collected included.
func BenchmarkCheckMillion(b *testing.B) {
	size, _ := io.Copy(io.Discard, newListGen(1_000_000))
	b.SetBytes(size)
	b.ReportAllocs()
	var peak uint64
	stop := make(chan struct{})
	sampled := make(chan struct{})
	go func() {
		defer close(sampled)
		var ms runtime.MemStats
		t := time.NewTicker(20 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-stop:
				return
			case <-t.C:
				runtime.ReadMemStats(&ms)
				peak = max(peak, ms.HeapInuse)
			}
		}
	}()
	var s Summary
	for b.Loop() {
		var err error
		s, err = Check(context.Background(), newListGen(1_000_000), io.Discard, io.Discard, Options{
			Resolver: instantResolver{},
			Suppressed: func(ctx context.Context, addrs []string) (map[string]string, error) {
				return nil, nil
			},
		})
		if err != nil {
			b.Fatal(err)
		}
	}
	close(stop)
	<-sampled
	if s.Rows != 1_000_000 || s.Duplicates == 0 || s.Typos == 0 || s.RoleAccounts == 0 || s.InvalidSyntax == 0 {
		b.Fatalf("summary %+v", s)
	}
	b.ReportMetric(float64(s.Rows)*float64(b.N)/b.Elapsed().Seconds(), "rows/s")
	b.ReportMetric(float64(peak)/(1<<20), "peak-heap-MB")
}
