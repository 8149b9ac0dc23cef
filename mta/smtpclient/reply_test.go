package smtpclient

import (
	"bufio"
	"errors"
	"io"
	"regexp"
	"strings"
	"testing"
)

func readerClient(in string) *Client {
	return &Client{r: bufio.NewReaderSize(strings.NewReader(in), readBufferSize), strs: make(map[string]string)}
}

func TestReadReply(t *testing.T) {
	tests := []struct {
		in   string
		want Reply
	}{
		{"250 OK\r\n", Reply{250, "", "OK"}},
		{"250\r\n", Reply{250, "", ""}},
		{"250 \r\n", Reply{250, "", ""}},
		{"250 2.1.5 Ok\r\n", Reply{250, "2.1.5", "Ok"}},
		{"550 5.1.1 <x@example.com>: Recipient address rejected: User unknown\r\n",
			Reply{550, "5.1.1", "<x@example.com>: Recipient address rejected: User unknown"}},
		// Gmail style: the enhanced code repeats on every line.
		{"550-5.7.1 [192.0.2.1] The IP you're using to send mail is not\r\n550-5.7.1 authorized to send email directly to our servers.\r\n550 5.7.1 https://support.google.com/mail 7si123 - gsmtp\r\n",
			Reply{550, "5.7.1", "[192.0.2.1] The IP you're using to send mail is not authorized to send email directly to our servers. https://support.google.com/mail 7si123 - gsmtp"}},
		{"220-mx.example.com ESMTP\r\n220-second line\r\n220 third\r\n", Reply{220, "", "mx.example.com ESMTP second line third"}},
		// A bare LF ends a line too; a continuation without text.
		{"421-4.7.0 busy\n421-\n421 4.7.0 try later\n", Reply{421, "4.7.0", "busy try later"}},
		// The class of the enhanced code must match the reply code.
		{"550 4.7.1 mismatched\r\n", Reply{550, "", "4.7.1 mismatched"}},
		{"452 4.5.3 Too many recipients\r\n", Reply{452, "4.5.3", "Too many recipients"}},
		{"250 2.0.0\r\n", Reply{250, "2.0.0", ""}},
		{"250 2.0.00000 x\r\n", Reply{250, "", "2.0.00000 x"}},
		{"250 2.1.5x\r\n", Reply{250, "", "2.1.5x"}},
		{"250 2..5 x\r\n", Reply{250, "", "2..5 x"}},
		{"250 2.123.456 x\r\n", Reply{250, "2.123.456", "x"}},
		// Control characters do not survive into the text.
		{"250 a\tb\rc\x00d\r\n", Reply{250, "", "a b c d"}},
	}
	for _, tt := range tests {
		c := readerClient(tt.in)
		got, err := c.readReply(nil)
		if err != nil {
			t.Errorf("%q: %v", tt.in, err)
			continue
		}
		if got != tt.want {
			t.Errorf("%q:\n got %#v\nwant %#v", tt.in, got, tt.want)
		}
	}
}

func TestReadReplyErrors(t *testing.T) {
	tests := []struct {
		in   string
		want error
	}{
		{"", io.EOF},
		{"250-more\r\n", io.ErrUnexpectedEOF},
		{"250 no newline", io.ErrUnexpectedEOF},
		{"25\r\n", ErrProtocol},
		{"199 too low\r\n", ErrProtocol},
		{"600 too high\r\n", ErrProtocol},
		{"2x0 ok\r\n", ErrProtocol},
		{"250_ok\r\n", ErrProtocol},
		{"250-a\r\n251 b\r\n", ErrProtocol},
		{"250 " + strings.Repeat("x", readBufferSize) + "\r\n", ErrProtocol},
		{strings.Repeat("250-x\r\n", maxReplyLines+1), ErrProtocol},
	}
	for _, tt := range tests {
		c := readerClient(tt.in)
		if _, err := c.readReply(nil); !errors.Is(err, tt.want) {
			t.Errorf("%.30q: error %v, want %v", tt.in, err, tt.want)
		}
	}
}

func TestParseExtensions(t *testing.T) {
	c := readerClient("250-mx.example.com Hello\r\n250-PIPELINING\r\n250-SIZE 35882577\r\n250-8bitmime\r\n250-STARTTLS\r\n250-AUTH=LOGIN\r\n250-ENHANCEDSTATUSCODES\r\n250-DSN\r\n250 SMTPUTF8\r\n")
	ext := make(map[string]string)
	if _, err := c.readReply(func(n int, text []byte) {
		if n > 0 {
			parseExtension(ext, text)
		}
	}); err != nil {
		t.Fatal(err)
	}
	c.ext = ext
	want := Extensions{Pipelining: true, EightBitMIME: true, SMTPUTF8: true, DSN: true, EnhancedStatusCodes: true, StartTLS: true, Size: true, MaxSize: 35882577}
	if got := c.Extensions(); got != want {
		t.Errorf("got %+v, want %+v", got, want)
	}
	if _, ok := c.ext["AUTH=LOGIN"]; ok {
		t.Error("malformed keyword AUTH=LOGIN recorded")
	}
	if p, ok := c.ext["SIZE"]; !ok || p != "35882577" {
		t.Errorf("SIZE parameters %q, %v", p, ok)
	}
}

var enhancedRE = regexp.MustCompile(`^[245]\.[0-9]{1,3}\.[0-9]{1,3}$`)

// FuzzReadReply feeds arbitrary server output to the reply reader: it must
// not panic, and whatever it returns must be a sane, one-line reply.
func FuzzReadReply(f *testing.F) {
	f.Add("250 OK\r\n")
	f.Add("250-mx\r\n250-PIPELINING\r\n250 SIZE 100\r\n")
	f.Add("550-5.7.1 a\r\n550 5.7.1 b\r\n")
	f.Add("421 4.7.0 go\n")
	f.Add("250-\r\n250\r\n")
	f.Fuzz(func(t *testing.T, in string) {
		c := readerClient(in)
		for range 10 {
			r, err := c.readReply(func(n int, text []byte) { parseExtension(make(map[string]string), text) })
			if err != nil {
				return
			}
			if r.Code < 200 || r.Code > 599 {
				t.Fatalf("code %d", r.Code)
			}
			if r.Enhanced != "" && (!enhancedRE.MatchString(r.Enhanced) || int(r.Enhanced[0]-'0') != r.Code/100) {
				t.Fatalf("enhanced code %q for %d", r.Enhanced, r.Code)
			}
			if n := len(r.Text); hasControl(r.Text) || n > 0 && (isBlank(r.Text[0]) || isBlank(r.Text[n-1])) {
				t.Fatalf("text %q", r.Text)
			}
		}
	})
}

func TestStrings(t *testing.T) {
	for _, tt := range []struct{ got, want string }{
		{Reply{}.String(), "no reply"},
		{Reply{Code: 250}.String(), "250"},
		{Reply{Code: 550, Enhanced: "5.1.1", Text: "unknown"}.String(), "550 5.1.1 unknown"},
		{(&Error{Command: "RCPT", Reply: Reply{Code: 421, Text: "bye"}}).Error(), "smtpclient: RCPT: 421 bye"},
		{TLSRequired.String(), "required"},
		{TLSOpportunistic.String(), "opportunistic"},
		{TLSDisabled.String(), "disabled"},
		{TLSMode(7).String(), "TLSMode(7)"},
	} {
		if tt.got != tt.want {
			t.Errorf("got %q, want %q", tt.got, tt.want)
		}
	}
}
