package mta

import (
	"context"
	"net"
	"testing"
	"testing/synctest"
	"time"

	"drover/bounce"
	"drover/testkit"
)

// An idle client does not hold up the inbound listener's shutdown, and
// nothing but bounce and feedback addresses is accepted.
func TestInboundShutdownAndRecipients(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		verp := bounce.VERP{Key: []byte("0123456789abcdef")}
		in := NewInbound(InboundConfig{Address: "127.0.0.1:25", Hostname: "drover.test", BounceDomains: []string{"b.test"}, VERP: verp, MaxMessageSize: 1 << 20})
		p := testkit.NewPipes("127.0.0.1:25")
		in.listen = func(string, string) (net.Listener, error) { return p, nil }
		if _, err := in.Start(); err != nil {
			t.Fatal(err)
		}
		d := dialPipe(t, p)
		d.expect("EHLO x", 250)
		d.expect("MAIL FROM:<>", 250)
		d.expect("RCPT TO:<someone@b.test>", 550)
		d.expect("RCPT TO:<x@elsewhere.test>", 550)
		d.expect("RCPT TO:<fbl@b.test>", 250)
		d.expect("RCPT TO:<"+verp.Encode("m1", 0, "shop", "b.test")+">", 250)

		// On the bubble's clock: waiting for the idle client would last
		// until the context's end.
		start := time.Now()
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := in.Shutdown(ctx); err != nil {
			t.Fatal(err)
		}
		if time.Since(start) > 5*time.Second {
			t.Errorf("shutdown waited %v for an idle client", time.Since(start))
		}
		if _, _, err := d.c.ReadResponse(0); err == nil {
			t.Error("session still open after Shutdown")
		}
	})
}
