package policy

import (
	"bytes"
	"fmt"
	"testing"
)

// BenchmarkCheckConsent is the cost of the recipient check where the
// list requires consent (one point read of the latest record), with
// 200,000 addresses consented, against a list that requires none.
func BenchmarkCheckConsent(b *testing.B) {
	const n = 200_000
	p, _ := newPolicy(b, func(c *Config) {
		c.Senders = map[string]SenderRules{"shop": {ConsentRequired: []string{"news"}}}
	})
	var buf bytes.Buffer
	buf.WriteString("address,time,source,text\n")
	for i := range n {
		fmt.Fprintf(&buf, "user%d@example%d.com,2026-11-01T10:00:00Z,form,Yes please.\n", i, i%1000)
	}
	if res, err := p.ImportConsent(&buf, ConsentImportOptions{Format: CSV, Sender: "shop", List: "news"}); err != nil || res.Added != n {
		b.Fatalf("%+v %v", res, err)
	}
	for _, list := range []string{"news", "offers"} {
		b.Run(list, func(b *testing.B) {
			addrs := make([]string, 1<<14)
			for i := range addrs {
				j := i * 241 % n
				addrs[i] = fmt.Sprintf("user%d@example%d.com", j, j%1000)
			}
			for i := 0; b.Loop(); i++ {
				if d, err := p.Check("shop", "marketing", list, addrs[i%len(addrs)]); err != nil || d.Suppressed {
					b.Fatal(d, err)
				}
			}
		})
	}
}
