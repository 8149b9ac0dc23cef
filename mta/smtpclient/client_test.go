package smtpclient

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"net"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/emersion/go-smtp"

	"drover/testkit"
)

const ehloName = "out1.drover.test"

func testConfig() Config {
	return Config{Hostname: ehloName, CommandTimeout: 5 * time.Second, DataTimeout: 5 * time.Second, ConnectTimeout: 5 * time.Second}
}

func dialT(t *testing.T, addr string, cfg Config) *Client {
	t.Helper()
	c, err := Dial(t.Context(), addr, cfg)
	if err != nil {
		t.Fatalf("Dial: %v", err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func codes(rs []Reply) []int {
	var out []int
	for _, r := range rs {
		out = append(out, r.Code)
	}
	return out
}

// testSendRefusals sends to three recipients, one refused and one deferred.
func testSendRefusals(t *testing.T, mx *testkit.MX) *Client {
	c := dialT(t, mx.Addr, testConfig())
	res, err := c.Send(t.Context(), "bounces@drover.test", nil, []Rcpt{
		{Addr: "a@example.test"}, {Addr: "refuse@example.test"}, {Addr: "defer@example.test"},
	}, []byte("Subject: hi\r\n\r\nhello\r\n"))
	if err != nil {
		t.Fatal(err)
	}
	if res.Mail.Code != 250 || !slices.Equal(codes(res.Rcpts), []int{250, 550, 451}) || res.Data.Code != 250 {
		t.Fatalf("replies %v %v %v", res.Mail, res.Rcpts, res.Data)
	}
	if r := res.Rcpts[1]; r.Enhanced != "5.1.1" || r.Text != "no such user" {
		t.Errorf("refusal %#v", r)
	}
	msgs := mx.Transactions()
	if len(msgs) != 1 || !slices.Equal(msgs[0].Rcpts, []string{"a@example.test"}) || string(msgs[0].Data) != "Subject: hi\r\n\r\nhello\r\n" {
		t.Fatalf("server got %+v", msgs)
	}
	return c
}

func TestSendPipelined(t *testing.T) {
	mx := testkit.StartMX(t, testkit.MXOptions{})
	c := testSendRefusals(t, mx)
	if !c.Extensions().Pipelining {
		t.Fatal("PIPELINING not seen")
	}
	// MAIL, the RCPTs and DATA reached the server in one read.
	want := "MAIL FROM:<bounces@drover.test>\r\nRCPT TO:<a@example.test>\r\nRCPT TO:<refuse@example.test>\r\nRCPT TO:<defer@example.test>\r\nDATA\r\n"
	for _, e := range mx.Wire(0) {
		if e.Read && strings.HasPrefix(e.Data, "MAIL") {
			if e.Data != want {
				t.Errorf("first write of the transaction: %q, want %q", e.Data, want)
			}
			return
		}
	}
	t.Error("no MAIL seen")
}

func TestLocalAddr(t *testing.T) {
	mx := testkit.StartMX(t, testkit.MXOptions{})
	cfg := testConfig()
	cfg.LocalAddr = netip.MustParseAddr("127.0.0.2")
	c := dialT(t, mx.Addr, cfg)
	if got := c.LocalAddr().(*net.TCPAddr).IP.String(); got != "127.0.0.2" {
		t.Errorf("local address %s", got)
	}
	if got := c.RemoteAddr().String(); got != mx.Addr {
		t.Errorf("remote address %s", got)
	}
}

func TestSendStepwise(t *testing.T) {
	mx := testkit.StartMX(t, testkit.MXOptions{NoPipelining: true})
	c := testSendRefusals(t, mx)
	if c.Extensions().Pipelining {
		t.Fatal("PIPELINING seen")
	}
	// Each command was read alone, and answered before the next came.
	var reads []string
	lastRead := false
	for _, e := range mx.Wire(0) {
		if e.Read {
			if lastRead {
				t.Errorf("two reads without a reply between: %q", e.Data)
			}
			reads = append(reads, e.Data)
		}
		lastRead = e.Read
	}
	want := []string{"EHLO " + ehloName + "\r\n", "MAIL FROM:<bounces@drover.test>\r\n", "RCPT TO:<a@example.test>\r\n", "RCPT TO:<refuse@example.test>\r\n", "RCPT TO:<defer@example.test>\r\n", "DATA\r\n", "Subject: hi\r\n\r\nhello\r\n.\r\n"}
	if !slices.Equal(reads, want) {
		t.Errorf("reads:\n%q\nwant\n%q", reads, want)
	}
}

func TestAllRecipientsRefused(t *testing.T) {
	for _, pipelining := range []bool{true, false} {
		mx := testkit.StartMX(t, testkit.MXOptions{NoPipelining: !pipelining})
		c := dialT(t, mx.Addr, testConfig())
		rcpts := []Rcpt{{Addr: "refuse1@example.test"}, {Addr: "defer@example.test"}}
		res, err := c.Send(t.Context(), "", nil, rcpts, []byte("BODY-MARKER\r\n"))
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(codes(res.Rcpts), []int{550, 451}) {
			t.Errorf("pipelining %v: rcpt replies %v", pipelining, res.Rcpts)
		}
		// Then the connection is still good for the next message.
		if _, err := c.Send(t.Context(), "", nil, []Rcpt{{Addr: "ok@example.test"}}, []byte("second\r\n")); err != nil {
			t.Fatal(err)
		}
		sent := mx.Sent(0)
		if strings.Contains(sent, "BODY-MARKER") || !strings.Contains(sent, "RSET\r\n") {
			t.Errorf("pipelining %v: body sent or no RSET:\n%s", pipelining, sent)
		}
		if !pipelining && strings.Count(sent, "DATA\r\n") != 1 {
			t.Errorf("DATA sent without a recipient:\n%s", sent)
		}
		if len(mx.Transactions()) != 1 {
			t.Errorf("messages: %d", len(mx.Transactions()))
		}
	}
}

func TestDataRefusedAndReuse(t *testing.T) {
	mx := testkit.StartMX(t, testkit.MXOptions{})
	c := dialT(t, mx.Addr, testConfig())
	res, err := c.Send(t.Context(), "a@drover.test", nil, []Rcpt{{Addr: "x@example.test"}}, []byte("REJECT-ME\r\n"))
	if err != nil {
		t.Fatal(err)
	}
	if res.Data.Code != 554 || res.Data.Enhanced != "5.6.0" {
		t.Errorf("data reply %v", res.Data)
	}
	for i := range 3 {
		res, err := c.Send(t.Context(), "a@drover.test", nil, []Rcpt{{Addr: "x@example.test"}}, []byte("ok\r\n"))
		if err != nil || res.Data.Code != 250 {
			t.Fatalf("message %d: %v %v", i, res.Data, err)
		}
	}
	if err := c.Quit(); err != nil {
		t.Fatal(err)
	}
	if n := len(mx.Transactions()); n != 3 {
		t.Errorf("messages %d", n)
	}
	if _, err := c.Send(t.Context(), "a@drover.test", nil, []Rcpt{{Addr: "x@example.test"}}, nil); err == nil {
		t.Error("Send after Quit worked")
	}
}

func TestStartTLS(t *testing.T) {
	cert, pool := testkit.SelfSigned(t, "mx.test", "127.0.0.1")
	serverTLS := &tls.Config{Certificates: []tls.Certificate{cert}}

	t.Run("opportunistic", func(t *testing.T) {
		mx := testkit.StartMX(t, testkit.MXOptions{TLS: serverTLS})
		c := testSendRefusals(t, mx)
		if !c.TLS() {
			t.Fatal("no TLS")
		}
		if st, ok := c.TLSConnectionState(); !ok || st.Version < tls.VersionTLS12 {
			t.Errorf("TLS state %v %v", st.Version, ok)
		}
		// The same EHLO name before STARTTLS and inside TLS.
		if got := mx.Hellos(); !slices.Equal(got, []testkit.Hello{{Name: ehloName}, {Name: ehloName, TLS: true}}) {
			t.Errorf("EHLO names: %v", got)
		}
		if got := mx.Sent(0); !strings.HasPrefix(got, "EHLO "+ehloName+"\r\nSTARTTLS\r\n") {
			t.Errorf("clear text: %q", got[:min(len(got), 80)])
		}
		if c.Extensions().StartTLS {
			t.Error("STARTTLS still announced inside TLS")
		}
	})

	t.Run("required verified", func(t *testing.T) {
		mx := testkit.StartMX(t, testkit.MXOptions{TLS: serverTLS})
		cfg := testConfig()
		cfg.TLSMode = TLSRequired
		cfg.TLS = &tls.Config{RootCAs: pool, ServerName: "mx.test"}
		c := dialT(t, mx.Addr, cfg)
		if !c.TLS() {
			t.Fatal("no TLS")
		}
	})

	t.Run("not offered", func(t *testing.T) {
		mx := testkit.StartMX(t, testkit.MXOptions{})
		c := dialT(t, mx.Addr, testConfig())
		if c.TLS() {
			t.Fatal("TLS")
		}
		if _, err := c.Send(t.Context(), "a@drover.test", nil, []Rcpt{{Addr: "x@example.test"}}, []byte("plain\r\n")); err != nil {
			t.Fatal(err)
		}
		if got := mx.Hellos(); !slices.Equal(got, []testkit.Hello{{Name: ehloName}}) {
			t.Errorf("greetings %v", got)
		}
		if mx.Wire(1) != nil {
			t.Error("a second connection; want the fallback on the same connection")
		}

		cfg := testConfig()
		cfg.TLSMode = TLSRequired
		if _, err := Dial(t.Context(), mx.Addr, cfg); !errors.Is(err, ErrTLS) {
			t.Errorf("required without STARTTLS: %v", err)
		}
	})

	t.Run("handshake fails", func(t *testing.T) {
		mx := testkit.StartMX(t, testkit.MXOptions{TLS: serverTLS})
		cfg := testConfig()
		cfg.TLS = &tls.Config{RootCAs: x509.NewCertPool()} // trusts nothing
		c := dialT(t, mx.Addr, cfg)
		if c.TLS() {
			t.Fatal("TLS")
		}
		if _, err := c.Send(t.Context(), "a@drover.test", nil, []Rcpt{{Addr: "x@example.test"}}, []byte("plain\r\n")); err != nil {
			t.Fatal(err)
		}
		if n := len(mx.Transactions()); n != 1 {
			t.Fatalf("messages %d", n)
		}
		if got := mx.Sent(1); !strings.HasPrefix(got, "EHLO "+ehloName+"\r\nMAIL") {
			t.Errorf("second connection: %q", got)
		}

		cfg.TLSMode = TLSRequired
		if _, err := Dial(t.Context(), mx.Addr, cfg); !errors.Is(err, ErrTLS) {
			t.Errorf("required with a bad certificate: %v", err)
		}
	})
}

func TestBodyOnTheWire(t *testing.T) {
	mx := testkit.StartMX(t, testkit.MXOptions{})
	c := dialT(t, mx.Addr, testConfig())
	body := "Subject: dots\r\n\r\n.leading dot\r\n..two\nbare LF\rbare CR\r\n.\r\nMAIL FROM:<smuggled@evil>\n.\nlast line without newline"
	wire := "Subject: dots\r\n\r\n..leading dot\r\n...two\r\nbare LF\r\nbare CR\r\n..\r\nMAIL FROM:<smuggled@evil>\r\n..\r\nlast line without newline\r\n.\r\n"
	if _, err := c.Send(t.Context(), "a@drover.test", []string{"BODY=8BITMIME"}, []Rcpt{{Addr: "x@example.test"}}, []byte(body)); err != nil {
		t.Fatal(err)
	}
	sent := mx.Sent(0)
	_, data, ok := strings.Cut(sent, "DATA\r\n")
	if !ok || data != wire {
		t.Errorf("on the wire:\n%q\nwant\n%q", data, wire)
	}
	msgs := mx.Transactions()
	if len(msgs) != 1 {
		t.Fatalf("messages %d", len(msgs))
	}
	if got, want := string(msgs[0].Data), string(normalise([]byte(body))); got != want {
		t.Errorf("server read:\n%q\nwant\n%q", got, want)
	}
	if msgs[0].MailOpts.Body != smtp.Body8BitMIME {
		t.Errorf("BODY %q", msgs[0].MailOpts.Body)
	}
}

func TestParametersDropped(t *testing.T) {
	mailParams := []string{"BODY=8BITMIME", "RET=HDRS", "ENVID=QQ314159", "SMTPUTF8", "SIZE=100"}
	rcpts := []Rcpt{{Addr: "x@example.test", Params: []string{"NOTIFY=FAILURE,DELAY", "ORCPT=rfc822;x+2By@example.test"}}}

	mx := testkit.StartMX(t, testkit.MXOptions{DSN: true, SMTPUTF8: true})
	c := dialT(t, mx.Addr, testConfig())
	if _, err := c.Send(t.Context(), "a@drover.test", mailParams, rcpts, []byte("x\r\n")); err != nil {
		t.Fatal(err)
	}
	if sent := mx.Sent(0); !strings.Contains(sent, "MAIL FROM:<a@drover.test> BODY=8BITMIME RET=HDRS ENVID=QQ314159 SMTPUTF8 SIZE=100\r\nRCPT TO:<x@example.test> NOTIFY=FAILURE,DELAY ORCPT=rfc822;x+2By@example.test\r\n") {
		t.Errorf("with DSN:\n%s", sent)
	}
	m := mx.Transactions()[0]
	if m.MailOpts.Return != smtp.DSNReturnHeaders || m.MailOpts.EnvelopeID != "QQ314159" || m.RcptOpts[0].OriginalRecipient != "x+y@example.test" {
		t.Errorf("server parsed %+v %+v", m.MailOpts, m.RcptOpts[0])
	}

	mx = testkit.StartMX(t, testkit.MXOptions{})
	c = dialT(t, mx.Addr, testConfig())
	if _, err := c.Send(t.Context(), "a@drover.test", mailParams, rcpts, []byte("x\r\n")); err != nil {
		t.Fatal(err)
	}
	if sent := mx.Sent(0); !strings.Contains(sent, "MAIL FROM:<a@drover.test> BODY=8BITMIME SIZE=100\r\nRCPT TO:<x@example.test>\r\n") {
		t.Errorf("without DSN:\n%s", sent)
	}

	// A server without ESMTP extensions gets no parameters at all.
	s := startScript(t, "220 old\r\n", func(line string) string {
		switch {
		case strings.HasPrefix(line, "EHLO"):
			return "250 old\r\n"
		case line == "DATA":
			return "354 go\r\n"
		case line == "QUIT":
			return ""
		}
		return "250 ok\r\n"
	})
	c = dialT(t, s.addr, testConfig())
	if _, err := c.Send(t.Context(), "a@drover.test", mailParams, rcpts, []byte("x\r\n")); err != nil {
		t.Fatal(err)
	}
	if got := s.lines(); !slices.Contains(got, "MAIL FROM:<a@drover.test>") || !slices.Contains(got, "RCPT TO:<x@example.test>") {
		t.Errorf("plain server got %q", got)
	}
}

func TestInvalidInput(t *testing.T) {
	mx := testkit.StartMX(t, testkit.MXOptions{})
	c := dialT(t, mx.Addr, testConfig())
	for _, tc := range []struct {
		from   string
		params []string
		rcpts  []Rcpt
	}{
		{"a@b\r\nRCPT TO:<evil>", nil, []Rcpt{{Addr: "x@y"}}},
		{"a@b", []string{"RET=HDRS\r\nRCPT TO:<evil>"}, []Rcpt{{Addr: "x@y"}}},
		{"a@b", []string{"A B"}, []Rcpt{{Addr: "x@y"}}},
		{"a@b", []string{""}, []Rcpt{{Addr: "x@y"}}},
		{"a@b", nil, []Rcpt{{Addr: "x@y\n"}}},
		{"a@b", nil, []Rcpt{{Addr: "x@y", Params: []string{"NOTIFY=\x00"}}}},
		{"a@b", nil, []Rcpt{{Addr: ""}}},
		{"a@b", nil, nil},
	} {
		if _, err := c.Send(t.Context(), tc.from, tc.params, tc.rcpts, nil); !errors.Is(err, ErrInvalidInput) {
			t.Errorf("%q %q %q: %v", tc.from, tc.params, tc.rcpts, err)
		}
	}
	if c.Err() != nil {
		t.Fatalf("client unusable after invalid input: %v", c.Err())
	}
	if got := mx.Sent(0); got != "EHLO "+ehloName+"\r\n" {
		t.Errorf("sent %q", got)
	}
	if _, err := Dial(t.Context(), mx.Addr, Config{}); !errors.Is(err, ErrInvalidInput) {
		t.Errorf("no hostname: %v", err)
	}
	if _, err := Dial(t.Context(), mx.Addr, Config{Hostname: "a b"}); !errors.Is(err, ErrInvalidInput) {
		t.Errorf("bad hostname: %v", err)
	}
}

func TestScripted(t *testing.T) {
	ok := func(line string) string {
		switch {
		case strings.HasPrefix(line, "EHLO"):
			return "250-mx\r\n250 PIPELINING\r\n"
		case line == "DATA":
			return "354 go\r\n"
		case line == "QUIT":
			return ""
		}
		return "250 2.0.0 ok\r\n"
	}
	rcpt := []Rcpt{{Addr: "x@example.test"}}

	t.Run("HELO fallback", func(t *testing.T) {
		s := startScript(t, "220-first\r\n220 second\r\n", func(line string) string {
			if strings.HasPrefix(line, "EHLO") {
				return "502 5.5.1 what\r\n"
			}
			return ok(line)
		})
		c := dialT(t, s.addr, testConfig())
		if (c.Extensions() != Extensions{}) {
			t.Errorf("extensions after HELO: %+v", c.Extensions())
		}
		if _, err := c.Send(t.Context(), "a@drover.test", nil, rcpt, []byte("x")); err != nil {
			t.Fatal(err)
		}
		if got := s.lines()[:2]; !slices.Equal(got, []string{"EHLO " + ehloName, "HELO " + ehloName}) {
			t.Errorf("got %q", got)
		}
	})

	t.Run("greeting refused", func(t *testing.T) {
		s := startScript(t, "554 5.7.1 go away\r\n", ok)
		_, err := Dial(t.Context(), s.addr, testConfig())
		var e *Error
		if !errors.As(err, &e) || e.Code != 554 || e.Command != "greeting" || e.Code/100 != 5 {
			t.Fatalf("error %v", err)
		}
		if got := s.lines(); !slices.Equal(got, []string{"QUIT"}) {
			t.Errorf("got %q", got)
		}
	})

	t.Run("EHLO temporary failure", func(t *testing.T) {
		s := startScript(t, "220 hi\r\n", func(string) string { return "421 4.3.2 shutting down\r\n" })
		_, err := Dial(t.Context(), s.addr, testConfig())
		var e *Error
		if !errors.As(err, &e) || e.Code != 421 || e.Command != "EHLO" || e.Code/100 == 5 {
			t.Fatalf("error %v", err)
		}
	})

	t.Run("421 during the transaction", func(t *testing.T) {
		s := startScript(t, "220 hi\r\n", func(line string) string {
			if strings.HasPrefix(line, "RCPT TO:<b") {
				return "421 4.7.0 too many\r\n"
			}
			return ok(line)
		})
		c := dialT(t, s.addr, testConfig())
		res, err := c.Send(t.Context(), "a@drover.test", nil, []Rcpt{{Addr: "a@x"}, {Addr: "b@x"}, {Addr: "c@x"}}, []byte("x"))
		var e *Error
		if !errors.As(err, &e) || e.Code != 421 || c.Err() == nil {
			t.Fatalf("error %v, Err %v", err, c.Err())
		}
		if !slices.Equal(codes(res.Rcpts), []int{250, 421, 0}) || res.Data.Code != 0 {
			t.Errorf("replies %v %v", res.Rcpts, res.Data)
		}
		if _, err := c.Send(t.Context(), "a@drover.test", nil, rcpt, nil); err != c.Err() {
			t.Errorf("after 421: %v", err)
		}
	})

	t.Run("pipelined DATA accepted without recipients", func(t *testing.T) {
		s := startScript(t, "220 hi\r\n", func(line string) string {
			if strings.HasPrefix(line, "RCPT") {
				return "550 5.1.1 no\r\n"
			}
			return ok(line)
		})
		c := dialT(t, s.addr, testConfig())
		res, err := c.Send(t.Context(), "a@drover.test", nil, rcpt, []byte("SECRET"))
		if err != nil || res.Data.Code != 0 {
			t.Fatalf("%v %v", res, err)
		}
		if got := s.lines(); got[len(got)-1] != "<data>" {
			t.Errorf("got %q", got)
		}
		if c.Err() != nil {
			t.Error(c.Err())
		}
	})

	t.Run("STARTTLS injection", func(t *testing.T) {
		s := startScript(t, "220 hi\r\n", func(line string) string {
			switch line {
			case "STARTTLS":
				return "220 go ahead\r\n250 injected\r\n"
			}
			return "250-mx\r\n250 STARTTLS\r\n"
		})
		if _, err := Dial(t.Context(), s.addr, testConfig()); !errors.Is(err, ErrProtocol) {
			t.Fatalf("error %v", err)
		}
	})

	t.Run("STARTTLS refused", func(t *testing.T) {
		s := startScript(t, "220 hi\r\n", func(line string) string {
			if line == "STARTTLS" {
				return "454 4.7.0 TLS not available\r\n"
			}
			return ok(line)
		})
		c := dialT(t, s.addr, testConfig())
		if c.TLS() {
			t.Error("TLS")
		}
		if _, err := c.Send(t.Context(), "a@drover.test", nil, rcpt, nil); err != nil {
			t.Fatal(err)
		}
	})

	t.Run("malformed reply", func(t *testing.T) {
		s := startScript(t, "220 hi\r\n", func(line string) string {
			if strings.HasPrefix(line, "MAIL") {
				return "hello?\r\n"
			}
			return ok(line)
		})
		c := dialT(t, s.addr, testConfig())
		if _, err := c.Send(t.Context(), "a@drover.test", nil, rcpt, nil); !errors.Is(err, ErrProtocol) || c.Err() == nil {
			t.Fatalf("error %v", err)
		}
	})

	// The server stalls on RCPT until the test ends: the command timeout,
	// or the cancelled context, ends the wait, on the bubble's clock.
	stall := func(t *testing.T) Config {
		p := testkit.NewPipes("192.0.2.1:25")
		end := make(chan struct{})
		t.Cleanup(func() { close(end) })
		serveScript(t, p, "220 hi\r\n", func(line string) string {
			if strings.HasPrefix(line, "RCPT") {
				<-end
			}
			return ok(line)
		})
		cfg := testConfig()
		cfg.Dial = p.Dial
		return cfg
	}

	t.Run("timeout", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			cfg := stall(t)
			cfg.CommandTimeout = 200 * time.Millisecond
			c := dialT(t, "192.0.2.1:25", cfg)
			start := time.Now()
			_, err := c.Send(t.Context(), "a@drover.test", nil, rcpt, nil)
			if err == nil || c.Err() == nil || time.Since(start) != cfg.CommandTimeout {
				t.Fatalf("error %v after %v", err, time.Since(start))
			}
		})
	})

	t.Run("context cancelled", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			c := dialT(t, "192.0.2.1:25", stall(t))
			ctx, cancel := context.WithCancel(t.Context())
			time.AfterFunc(100*time.Millisecond, cancel)
			start := time.Now()
			_, err := c.Send(ctx, "a@drover.test", nil, rcpt, nil)
			if !errors.Is(err, context.Canceled) || time.Since(start) != 100*time.Millisecond {
				t.Fatalf("error %v after %v", err, time.Since(start))
			}
			if c.Err() == nil {
				t.Error("client usable after a cancelled transaction")
			}
		})
	})

	t.Run("RSET refused", func(t *testing.T) {
		s := startScript(t, "220 hi\r\n", func(line string) string {
			switch line {
			case "DATA":
				return "554 5.5.1 no\r\n"
			case "RSET":
				return "500 what\r\n"
			}
			return ok(line)
		})
		c := dialT(t, s.addr, testConfig())
		res, err := c.Send(t.Context(), "a@drover.test", nil, rcpt, nil)
		if err == nil || res.Data.Code != 554 || c.Err() == nil {
			t.Fatalf("%v %v", res, err)
		}
	})
}

func TestManyRecipientsPipelined(t *testing.T) {
	mx := testkit.StartMX(t, testkit.MXOptions{})
	c := dialT(t, mx.Addr, testConfig())
	var rcpts []Rcpt
	want := make([]int, 0, 250)
	for i := range 250 {
		addr := "user" + strings.Repeat("x", i%7) + "@example.test"
		code := 250
		if i%10 == 3 {
			addr, code = "refuse"+addr, 550
		}
		rcpts = append(rcpts, Rcpt{Addr: addr})
		want = append(want, code)
	}
	res, err := c.Send(t.Context(), "a@drover.test", nil, rcpts, []byte("x\r\n"))
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(codes(res.Rcpts), want) || res.Data.Code != 250 {
		t.Fatalf("replies %v", codes(res.Rcpts))
	}
	if n := len(mx.Transactions()[0].Rcpts); n != 225 {
		t.Errorf("server has %d recipients", n)
	}
}

func TestDialErrors(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	if _, err := Dial(t.Context(), addr, testConfig()); err == nil || !strings.Contains(err.Error(), "connect") {
		t.Errorf("nothing listening: %v", err)
	}
	if _, err := Dial(t.Context(), "no-port", testConfig()); !errors.Is(err, ErrInvalidInput) {
		t.Errorf("bad address: %v", err)
	}
	cfg := testConfig()
	cfg.TLSMode = TLSMode(9)
	if _, err := Dial(t.Context(), addr, cfg); !errors.Is(err, ErrInvalidInput) {
		t.Errorf("bad TLS mode: %v", err)
	}

	// Required, and the server refuses STARTTLS.
	s := startScript(t, "220 hi\r\n", func(line string) string {
		switch {
		case strings.HasPrefix(line, "EHLO"):
			return "250-mx\r\n250 STARTTLS\r\n"
		case line == "STARTTLS":
			return "454 4.7.0 TLS not available\r\n"
		}
		return "221 bye\r\n"
	})
	cfg = testConfig()
	cfg.TLSMode = TLSRequired
	if _, err := Dial(t.Context(), s.addr, cfg); !errors.Is(err, ErrTLS) || !strings.Contains(err.Error(), "454") {
		t.Errorf("required, refused: %v", err)
	}
	if got := s.lines(); !slices.Equal(got, []string{"EHLO " + ehloName, "STARTTLS", "QUIT"}) {
		t.Errorf("got %q", got)
	}

	// A cancelled context.
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if _, err := Dial(ctx, s.addr, testConfig()); !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled: %v", err)
	}
}
