package mta

import (
	"context"
	"testing"
	"time"

	"drover/bounce"
)

// An idle client does not hold up the inbound listener's shutdown, and
// nothing but bounce and feedback addresses is accepted.
func TestInboundShutdownAndRecipients(t *testing.T) {
	verp := bounce.VERP{Key: []byte("0123456789abcdef")}
	in := NewInbound(InboundConfig{Address: "127.0.0.1:0", Hostname: "drover.test", BounceDomains: []string{"b.test"}, VERP: verp, MaxMessageSize: 1 << 20})
	addr, err := in.Start()
	if err != nil {
		t.Fatal(err)
	}
	d := dial(t, addr.String())
	d.expect("EHLO x", 250)
	d.expect("MAIL FROM:<>", 250)
	d.expect("RCPT TO:<someone@b.test>", 550)
	d.expect("RCPT TO:<x@elsewhere.test>", 550)
	d.expect("RCPT TO:<fbl@b.test>", 250)
	d.expect("RCPT TO:<"+verp.Encode("m1", 0, "shop", "b.test")+">", 250)

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
}
