package smtpclient

import (
	"bytes"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"drover/testkit"
)

// sinkDump reads the dump file of smtp-sink once it holds n messages. The
// dump has LF line endings and unstuffed dots.
func sinkDump(t *testing.T, dump string, n int) string {
	t.Helper()
	var b []byte
	testkit.WaitFor(t, 5*time.Second, "smtp-sink to dump "+strconv.Itoa(n)+" messages", func() bool {
		b, _ = os.ReadFile(dump)
		return bytes.Count(b, []byte("X-Client-Addr:")) >= n
	})
	return string(b)
}

func TestSmtpSink(t *testing.T) {
	body := "Subject: sink\r\n\r\n.dot\r\nbare LF\nbare CR\r.\n..\r\nend"
	wantBody := "Subject: sink\n\n.dot\nbare LF\nbare CR\n.\n..\nend\n"
	for _, tc := range []struct {
		name       string
		args       []string
		pipelining bool
	}{
		{"pipelining", nil, true},
		{"no pipelining", []string{"-p"}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			addr, dump := testkit.StartSmtpSink(t, true, tc.args...)
			c := dialT(t, addr, testConfig())
			if c.Extensions().Pipelining != tc.pipelining || !c.Extensions().DSN || !c.Extensions().EnhancedStatusCodes {
				t.Fatalf("extensions %+v", c.Extensions())
			}
			for i := range 2 {
				res, err := c.Send(t.Context(), "bounces+"+strconv.Itoa(i)+"@drover.test", []string{"BODY=8BITMIME", "RET=HDRS"},
					[]Rcpt{{Addr: "a@example.test", Params: []string{"NOTIFY=FAILURE"}}, {Addr: "b@example.test"}}, []byte(body))
				if err != nil {
					t.Fatal(err)
				}
				if res.Mail.Enhanced != "2.1.0" || !slices.Equal(codes(res.Rcpts), []int{250, 250}) || res.Data.Code != 250 {
					t.Fatalf("replies %v %v %v", res.Mail, res.Rcpts, res.Data)
				}
			}
			if err := c.Quit(); err != nil {
				t.Fatal(err)
			}
			got := sinkDump(t, dump, 2)
			for _, want := range []string{
				"X-Helo-Args: " + ehloName + "\n",
				"X-Mail-Args: <bounces+0@drover.test> BODY=8BITMIME RET=HDRS\n",
				"X-Mail-Args: <bounces+1@drover.test> BODY=8BITMIME RET=HDRS\n",
				"X-Rcpt-Args: <a@example.test> NOTIFY=FAILURE\nX-Rcpt-Args: <b@example.test>\n",
			} {
				if !strings.Contains(got, want) {
					t.Errorf("dump lacks %q:\n%s", want, got)
				}
			}
			// The body follows the three lines of the Received header.
			msgs := strings.Split(got, "X-Client-Addr:")[1:]
			for _, m := range msgs {
				_, rest, _ := strings.Cut(m, "Received: ")
				parts := strings.SplitN(rest, "\n", 4)
				if len(parts) < 4 || parts[3] != wantBody+"\n" {
					t.Errorf("body in the dump: %q, want %q", parts[len(parts)-1], wantBody+"\n")
				}
			}
		})
	}
}

func TestSmtpSinkRefusals(t *testing.T) {
	addr, _ := testkit.StartSmtpSink(t, false, "-f", "RCPT")
	c := dialT(t, addr, testConfig())
	res, err := c.Send(t.Context(), "a@drover.test", nil, []Rcpt{{Addr: "a@example.test"}, {Addr: "b@example.test"}}, []byte("x\r\n"))
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(codes(res.Rcpts), []int{500, 500}) || res.Rcpts[0].Enhanced != "5.3.0" || res.Data.Code != 0 {
		t.Fatalf("replies %v %v", res.Rcpts, res.Data)
	}
	if c.Err() != nil {
		t.Fatal(c.Err())
	}
	if err := c.Reset(); err != nil {
		t.Fatal(err)
	}
}
