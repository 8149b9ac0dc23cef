package mta

import (
	"fmt"
	"log/slog"
	"net"
	"net/textproto"
	"strings"
	"testing"

	"drover/mta/dkim"
	"drover/policy"
	"drover/queue"
)

// BenchmarkMarketingCopies submits a 10 KB marketing message to 50
// recipients over SMTP into a real spool (fsync on), DKIM-signed with an
// RSA-2048 key: with List-Unsubscribe links it is queued as 50 copies,
// each signed and enqueued (8 at a time); without links ("once"), as one
// message. ns/op is per message submitted.
func BenchmarkMarketingCopies(b *testing.B) {
	key, err := dkim.LoadKey("app.example", "rsa1", "dkim/testdata/rsa2048-pkcs8.pem")
	if err != nil {
		b.Fatal(err)
	}
	signer, err := dkim.NewSigner([]*dkim.Key{key})
	if err != nil {
		b.Fatal(err)
	}
	const rcpts = 50
	body := "From: news@app.example\r\nSubject: spring\r\n\r\n" + strings.Repeat(strings.Repeat("x", 76)+"\r\n", 130)
	for _, bc := range []struct {
		name  string
		links *policy.Links
	}{{"copies", &policy.Links{Tokens: testTokens(), BaseURL: "https://u.test", MailtoDomain: map[string]string{"app": "b.test"}}}, {"once", nil}} {
		b.Run(bc.name, func(b *testing.B) {
			spool, err := queue.Open(queue.Options{Dir: b.TempDir(), MinFreeSpace: -1})
			if err != nil {
				b.Fatal(err)
			}
			b.Cleanup(func() { spool.Close(b.Context()) })
			sub, err := NewSubmission(SubmissionConfig{
				Hostname:  "drover.test",
				Listeners: []Listener{{Address: "127.0.0.1:0", Mode: "plain", LoopbackSender: "app"}},
				Senders:   []*Sender{{Name: "app", FromDomains: []string{"app.example"}}},
				Queue:     spool, Signer: signer, Links: bc.links, Policy: &fakePolicy{},
				MaxMessageSize: 1 << 20, MaxRecipients: rcpts, Logger: slog.New(slog.DiscardHandler),
			})
			if err != nil {
				b.Fatal(err)
			}
			addrs, err := sub.Start()
			if err != nil {
				b.Fatal(err)
			}
			b.Cleanup(sub.Close)
			conn, err := net.Dial("tcp", addrs[0].String())
			if err != nil {
				b.Fatal(err)
			}
			c := textproto.NewConn(conn)
			b.Cleanup(func() { c.Close() })
			send := func() error {
				for _, cmd := range append([]string{"MAIL FROM:<news@app.example>"}, rcptCommands(rcpts)...) {
					if err := c.PrintfLine("%s", cmd); err != nil {
						return err
					}
					if _, _, err := c.ReadResponse(250); err != nil {
						return err
					}
				}
				c.PrintfLine("DATA")
				if _, _, err := c.ReadResponse(354); err != nil {
					return err
				}
				w := c.DotWriter()
				w.Write([]byte(body))
				w.Close()
				_, _, err := c.ReadResponse(250)
				return err
			}
			if _, _, err := c.ReadResponse(220); err != nil {
				b.Fatal(err)
			}
			c.PrintfLine("EHLO bench")
			if _, _, err := c.ReadResponse(250); err != nil {
				b.Fatal(err)
			}
			b.ResetTimer()
			for range b.N {
				if err := send(); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func rcptCommands(n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf("RCPT TO:<r%d@dest%d.test>", i, i%7)
	}
	return out
}
