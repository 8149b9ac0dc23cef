package engine_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"syscall"
	"testing"
	"testing/synctest"
	"time"

	"drover/bounce"
	"drover/mta/courier"
	"drover/mta/resolve"
	"drover/queue"
	"drover/queue/engine"
	"drover/queue/shaping"
	"drover/testkit"
)

// checkWindows fails if any window of the transactions holds more than
// 1 + rate×T of them (a burst of one), the guarantee of the message rate.
func checkWindows(t *testing.T, txs []testkit.Transaction, perSecond float64) {
	t.Helper()
	for i := range txs {
		for j := i + 1; j < len(txs); j++ {
			span := txs[j].At.Sub(txs[i].At).Seconds()
			if n := j - i + 1; float64(n) > 1+perSecond*span+1e-9 {
				t.Fatalf("%d transactions within %.1fs: over the rate of %.3f/s", n, span, perSecond)
			}
		}
	}
}

// The message rate and messages-per-connection limits count SMTP
// transactions, at a real SMTP server (testkit's fake MX: go-smtp over
// in-memory pipes, inside a synctest bubble) on a fake clock: with VERP, each
// recipient of the VERP sender is a transaction of its own; the sender
// without VERP keeps one transaction per MaxRecipientsPerMessage
// recipients.
func TestTransactionsUnderRate(t *testing.T) {
	for _, verp := range []bool{false, true} {
		t.Run(fmt.Sprintf("verp=%v", verp), func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) { transactionsUnderRate(t, verp) })
		})
	}
}

func transactionsUnderRate(t *testing.T, verp bool) {
	const (
		rcptsPerTx = 5
		perConn    = 4
		shopRcpts  = 30
		otherRcpts = 10
	)
	rate, err := shaping.ParseRate("10/m")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan queue.Event, shopRcpts+otherRcpts)
	// Connections stay open between transactions, so that
	// MaxMessagesPerConnection is what closes them.
	mx, spool, closeAll := startPipeDelivery(t, shaping.Settings{
		MaxMessageRate:           &rate,
		MaxRecipientsPerMessage:  new(rcptsPerTx),
		MaxMessagesPerConnection: new(perConn),
		MaxConnections:           new(1),
	}, verp, time.Hour, func(ev queue.Event) {
		if ev.Kind != queue.EventDeferred {
			done <- ev
		}
	})
	enqueue := func(sender, from string, n int) {
		var rcpts []queue.NewRecipient
		for i := range n {
			rcpts = append(rcpts, queue.NewRecipient{Addr: fmt.Sprintf("%s%d@example.net", sender, i)})
		}
		body := []byte("Subject: s\r\n\r\nbody\r\n")
		if _, err := spool.Enqueue(&queue.Message{Sender: sender, ReturnPath: from}, rcpts, body); err != nil {
			t.Fatal(err)
		}
	}
	start := time.Now()
	enqueue("shop", "app@shop.test", shopRcpts)
	enqueue("other", "app@other.test", otherRcpts)
	for range shopRcpts + otherRcpts {
		if ev := <-done; ev.Kind != queue.EventDelivered {
			t.Fatalf("%s %s: %s", ev.Kind, ev.Recipient, ev.Text)
		}
	}
	elapsed := time.Since(start)
	if err := closeAll(); err != nil {
		t.Fatal(err)
	}
	txs := mx.Transactions()
	wantShop := shopRcpts / rcptsPerTx
	if verp {
		wantShop = shopRcpts
	}
	want := wantShop + otherRcpts/rcptsPerTx
	if len(txs) != want {
		t.Fatalf("%d transactions, want %d", len(txs), want)
	}
	perConnection := map[int]int{}
	for _, x := range txs {
		perConnection[x.Conn]++
		isShop := strings.HasPrefix(x.Rcpts[0], "shop")
		switch {
		case isShop && verp:
			if len(x.Rcpts) != 1 || !strings.HasPrefix(x.From, "bounces+") || !strings.HasSuffix(x.From, "@b.test") {
				t.Errorf("VERP transaction from %s to %v", x.From, x.Rcpts)
			}
		case isShop:
			if len(x.Rcpts) != rcptsPerTx || x.From != "app@shop.test" {
				t.Errorf("transaction from %s to %v", x.From, x.Rcpts)
			}
		default: // the sender without VERP keeps its return path and its batches
			if len(x.Rcpts) != rcptsPerTx || x.From != "app@other.test" {
				t.Errorf("transaction of the sender without VERP from %s to %v", x.From, x.Rcpts)
			}
		}
	}
	for c, n := range perConnection {
		if n > perConn {
			t.Errorf("connection %d carried %d transactions, limit %d", c, n, perConn)
		}
	}
	if min := (want + perConn - 1) / perConn; len(perConnection) < min {
		t.Errorf("%d connections for %d transactions", len(perConnection), want)
	}
	checkWindows(t, txs, rate.PerSecond())
	// The rate is used, not only respected: n transactions at 10/m take
	// (n-1)×6 s.
	if min := time.Duration(want-1) * 6 * time.Second; elapsed < min {
		t.Errorf("%d transactions in %v, want at least %v", want, elapsed, min)
	}
	t.Logf("%d transactions over %d connections in %v (fake clock)", len(txs), len(perConnection), elapsed)
}

// startPipeDelivery starts the real courier and an engine delivering from
// a new spool to a fake MX over in-memory pipes, under settings (TLS off)
// and idle (0: the default idle timeout); the sender "shop" uses VERP
// when verp is set. closeAll closes the engine, then the spool.
func startPipeDelivery(tb testing.TB, settings shaping.Settings, verp bool, idle time.Duration, onEvent func(queue.Event)) (mx *testkit.MX, spool *queue.Spool, closeAll func() error) {
	tb.Helper()
	mx = testkit.StartMX(tb, testkit.MXOptions{NoTCP: true})
	settings.TLS = new(shaping.TLSDisabled)
	sh, err := shaping.New(shaping.Config{Default: settings})
	if err != nil {
		tb.Fatal(err)
	}
	routes, err := resolve.NewRoutes(map[string]string{"*": "192.0.2.1:25"})
	if err != nil {
		tb.Fatal(err)
	}
	env := &courier.Senders{VERP: bounce.VERP{Key: []byte("0123456789abcdef")}, BounceDomain: map[string]string{}}
	if verp {
		env.BounceDomain["shop"] = "b.test"
	}
	discard := slog.New(slog.DiscardHandler)
	cour := courier.New(courier.Config{Hostname: "out.test", Routes: routes, Dial: mx.Dial, Logger: discard,
		Shaping: shaping.NewCurrent(sh), Envelope: env})
	spool, err = queue.Open(queue.Options{Dir: tb.TempDir(), NoSync: true, Logger: discard, OnEvent: onEvent})
	if err != nil {
		tb.Fatal(err)
	}
	eng, err := engine.New(engine.Config{Spool: spool, Planner: cour, Courier: cour, Logger: discard, IdleTimeout: idle})
	if err != nil {
		tb.Fatal(err)
	}
	eng.Start()
	return mx, spool, func() error {
		return errors.Join(eng.Close(context.Background()), spool.Close(context.Background()))
	}
}

// BenchmarkDelivery measures the engine's and the courier's cost per
// recipient through a real SMTP server on in-memory pipes, with and
// without VERP (one transaction per recipient): messages of 100
// recipients, unlimited rates. cpu-ns/rcpt is the process's CPU time
// (both sides of the pipe) per recipient.
func BenchmarkDelivery(b *testing.B) {
	for _, verp := range []bool{false, true} {
		b.Run(fmt.Sprintf("verp=%v", verp), func(b *testing.B) { benchDelivery(b, verp) })
	}
}

func benchDelivery(b *testing.B, verp bool) {
	done := make(chan struct{}, 1024)
	_, spool, closeAll := startPipeDelivery(b, shaping.Settings{}, verp, 0, func(ev queue.Event) {
		if ev.Kind == queue.EventDelivered {
			done <- struct{}{}
		}
	})
	defer closeAll()
	body := bytes.Repeat([]byte("0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcde\r\n"), 160)
	body = append([]byte("Subject: bench\r\n\r\n"), body...)
	b.ResetTimer()
	cpu0 := cpuTime(b)
	go func() {
		for sent := 0; sent < b.N; {
			n := min(100, b.N-sent)
			rcpts := make([]queue.NewRecipient, n)
			for i := range rcpts {
				rcpts[i].Addr = fmt.Sprintf("r%d@example.net", sent+i)
			}
			sent += n
			if _, err := spool.Enqueue(&queue.Message{Sender: "shop", ReturnPath: "app@shop.test"}, rcpts, body); err != nil {
				b.Error(err)
				return
			}
		}
	}()
	for range b.N {
		<-done
	}
	b.StopTimer()
	b.ReportMetric(float64(cpuTime(b)-cpu0)/float64(b.N), "cpu-ns/rcpt")
}

// cpuTime is the process's CPU time (user and system).
func cpuTime(tb testing.TB) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		tb.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
