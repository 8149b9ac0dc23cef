package smtp_test

import (
	"io"
	"reflect"
	"strings"
	"testing"

	"github.com/emersion/go-smtp"
)

// MAIL parameters named in Server.ExtraMailParams reach the session in
// MailOptions.Extra (keyword in upper case, value as given); others are
// still refused, and a command without them has no Extra.
func TestExtraMailParams(t *testing.T) {
	for _, tc := range []struct {
		name  string
		mail  string
		reply string
		extra map[string]string
	}{
		{"two params", "MAIL FROM:<a@b.test> x-drover-list=spring-news X-Drover-Stream=marketing SIZE=10", "250 ",
			map[string]string{"X-DROVER-LIST": "spring-news", "X-DROVER-STREAM": "marketing"}},
		{"keyword without value", "MAIL FROM:<a@b.test> X-DROVER-LIST", "250 ", map[string]string{"X-DROVER-LIST": ""}},
		{"none", "MAIL FROM:<a@b.test> SIZE=10", "250 ", nil},
		{"unknown still refused", "MAIL FROM:<a@b.test> X-DROVER-LIST=l X-OTHER=1", "500 5.5.4 ", nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			be, s, c, scanner := testServerGreeted(t, func(s *smtp.Server) {
				s.ExtraMailParams = []string{"X-DROVER-STREAM", "x-drover-list"}
			})
			defer s.Close()
			defer c.Close()
			io.WriteString(c, "EHLO localhost\r\n")
			for scanner.Scan() && !strings.HasPrefix(scanner.Text(), "250 ") {
			}
			io.WriteString(c, tc.mail+"\r\n")
			scanner.Scan()
			if !strings.HasPrefix(scanner.Text(), tc.reply) {
				t.Fatalf("MAIL reply %q, want %q", scanner.Text(), tc.reply)
			}
			io.WriteString(c, "RCPT TO:<r@d.test>\r\nDATA\r\n")
			scanner.Scan()
			scanner.Scan()
			if tc.reply != "250 " {
				return
			}
			io.WriteString(c, "Subject: x\r\n\r\nx\r\n.\r\n")
			scanner.Scan()
			if len(be.anonmsgs) != 1 {
				t.Fatalf("%d messages, want 1 (last reply %q)", len(be.anonmsgs), scanner.Text())
			}
			if got := be.anonmsgs[0].Opts.Extra; !reflect.DeepEqual(got, tc.extra) {
				t.Errorf("Extra = %v, want %v", got, tc.extra)
			}
		})
	}
}

// Without ExtraMailParams, an unknown parameter is refused as upstream
// does.
func TestExtraMailParamsOff(t *testing.T) {
	_, s, c, scanner := testServerGreeted(t)
	defer s.Close()
	defer c.Close()
	io.WriteString(c, "EHLO localhost\r\n")
	for scanner.Scan() && !strings.HasPrefix(scanner.Text(), "250 ") {
	}
	io.WriteString(c, "MAIL FROM:<a@b.test> X-DROVER-LIST=l\r\n")
	scanner.Scan()
	if !strings.HasPrefix(scanner.Text(), "500 5.5.4 ") {
		t.Errorf("MAIL reply %q, want 500 5.5.4", scanner.Text())
	}
}
