package smtpclient

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"net"
	"strings"
	"testing"

	"drover/testkit"
)

// startFastSink runs a minimal SMTP server that accepts everything, answers
// pipelined commands in batches and allocates nothing per message, so that
// the allocations a benchmark reports are the client's.
func startFastSink(tb testing.TB) string {
	tb.Helper()
	return testkit.Serve(tb, nil, serveFastSink)
}

func serveFastSink(c net.Conn) {
	defer c.Close()
	r := bufio.NewReaderSize(c, 64<<10)
	w := bufio.NewWriterSize(c, 4096)
	w.WriteString("220 sink ESMTP\r\n")
	w.Flush()
	inData := false
	for {
		line, err := r.ReadSlice('\n')
		switch {
		case errors.Is(err, bufio.ErrBufferFull) && inData:
			continue
		case err != nil:
			return
		case inData:
			if len(line) == 3 && line[0] == '.' {
				inData = false
				w.WriteString("250 2.0.0 Ok: queued as 3F2A1B0C\r\n")
			}
		case bytes.HasPrefix(line, []byte("EHLO")):
			w.WriteString("250-sink\r\n250-PIPELINING\r\n250-8BITMIME\r\n250-SIZE 52428800\r\n250 ENHANCEDSTATUSCODES\r\n")
		case bytes.HasPrefix(line, []byte("DATA")):
			w.WriteString("354 End data with <CR><LF>.<CR><LF>\r\n")
			inData = true
		case bytes.HasPrefix(line, []byte("QUIT")):
			w.WriteString("221 2.0.0 Bye\r\n")
			w.Flush()
			return
		default:
			w.WriteString("250 2.1.0 Ok\r\n")
		}
		if r.Buffered() == 0 {
			if w.Flush() != nil {
				return
			}
		}
	}
}

// benchBody is a typical 10 kB marketing message: headers, then 76-column
// quoted-printable lines.
var benchBody = []byte("From: News <news@drover.test>\r\nTo: <user@example.test>\r\nSubject: This week\r\nMIME-Version: 1.0\r\nContent-Type: text/html; charset=utf-8\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n" +
	strings.Repeat("<p>Lorem ipsum dolor sit amet, consectetur adipiscing elit, sed do eiusm=\r\n", 130))

func benchmarkSend(b *testing.B, addr string, nrcpt int) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	c, err := Dial(ctx, addr, Config{Hostname: ehloName, TLSMode: TLSDisabled})
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	rcpts := make([]Rcpt, nrcpt)
	for i := range rcpts {
		rcpts[i] = Rcpt{Addr: "user" + string(rune('a'+i%26)) + "@example.test", Params: []string{"NOTIFY=FAILURE"}}
	}
	params := []string{"BODY=8BITMIME"}
	b.SetBytes(int64(len(benchBody)))
	b.ReportAllocs()
	for b.Loop() {
		res, err := c.Send(ctx, "bounces+abc@drover.test", params, rcpts, benchBody)
		if err != nil || res.Data.Code != 250 {
			b.Fatal(res.Data, err)
		}
	}
}

// BenchmarkSend measures Send over loopback against startFastSink.
func BenchmarkSend(b *testing.B) {
	addr := startFastSink(b)
	b.Run("1rcpt", func(b *testing.B) { benchmarkSend(b, addr, 1) })
	b.Run("10rcpt", func(b *testing.B) { benchmarkSend(b, addr, 10) })
}

// BenchmarkSendSmtpSink measures Send against Postfix's smtp-sink, the
// reference peer.
func BenchmarkSendSmtpSink(b *testing.B) {
	addr, _ := testkit.StartSmtpSink(b, false)
	b.Run("1rcpt", func(b *testing.B) { benchmarkSend(b, addr, 1) })
	b.Run("10rcpt", func(b *testing.B) { benchmarkSend(b, addr, 10) })
}
