package mta

import (
	"net"
	"strings"
	"testing"

	"drover/bounce"
	"drover/testkit"
)

// Paths that RFC 5321 does not allow are refused with 553 and the
// reason, quoted as the client gave them, and never queued.
func TestSubmissionRefusesBadPaths(t *testing.T) {
	s := startServer(t, false)
	cases := []struct {
		name, mail, rcpt string // rcpt "": the MAIL is refused
		enhanced         string
		words            []string
	}{
		{"two @ in MAIL", "<app@@example.com>", "", "5.1.7", []string{"<app@@example.com>", "two @"}},
		{"trailing dot in MAIL", "<news@app.example.>", "", "5.1.7", []string{"<news@app.example.>", "domain ends with a dot"}},
		{"two @ in RCPT", "<news@app.example>", "<bad@@example.net>", "5.1.3", []string{"<bad@@example.net>", "two @"}},
		{"empty label", "<news@app.example>", "<user@example..net>", "5.1.3", []string{"<user@example..net>", "empty label in domain"}},
		{"hyphen at label start", "<news@app.example>", "<user@-bad-.net>", "5.1.3", []string{"<user@-bad-.net>", "label starts with a hyphen"}},
		{"two dots in local part", "<news@app.example>", "<john..doe@example.net>", "5.1.3", []string{"two dots in a row"}},
		{"long local part", "<news@app.example>", "<" + strings.Repeat("x", 65) + "@example.net>", "5.1.3", []string{"local part longer than 64 octets"}},
		{"control character", "<news@app.example>", "<a\x01b@example.net>", "5.1.3", []string{"<a?b@example.net>", "control character 0x01"}},
		{"UTF-8 without SMTPUTF8", "<news@app.example>", "<pelé@bücher.example>", "5.6.7", []string{"<pelé@bücher.example>", "SMTPUTF8"}},
		{"bad U-label", "<news@app.example> SMTPUTF8", "<pelé@bü-.example>", "5.1.3", []string{"invalid internationalized domain name"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			d := dial(t, s.plain)
			d.expect("EHLO client.test", 250)
			cmd := "MAIL FROM:" + tc.mail
			if tc.rcpt != "" {
				d.expect(cmd, 250)
				cmd = "RCPT TO:" + tc.rcpt
			}
			reply := d.expect(cmd, 553)
			if !strings.HasPrefix(reply, tc.enhanced+" ") {
				t.Errorf("%q: reply %q, want enhanced code %s", cmd, reply, tc.enhanced)
			}
			for _, w := range tc.words {
				if !strings.Contains(reply, w) {
					t.Errorf("%q: reply %q lacks %q", cmd, reply, w)
				}
			}
			if tc.rcpt != "" {
				d.expect("RCPT TO:<good@example.net>", 250)
				d.data("From: news@app.example\r\n\r\nhi\r\n", 250)
				if _, rcpts, _ := s.q.last(t); len(rcpts) != 1 || rcpts[0].Addr != "good@example.net" {
					t.Errorf("queued recipients %+v, want only good@example.net", rcpts)
				}
			}
		})
	}
}

// A quoted local part is a path: accepted, echoed and queued with its
// quotes; the sender's domain is matched case-insensitively.
func TestSubmissionQuotedLocalPart(t *testing.T) {
	s := startServer(t, false)
	d := dial(t, s.plain)
	d.expect("EHLO client.test", 250)
	d.expect(`MAIL FROM:<"news desk"@APP.Example>`, 250)
	d.expect(`RCPT TO:<"q x"@example.net>`, 250)
	d.expect(`RCPT TO:<"a\"b"@Example.NET>`, 250)
	d.expect(`RCPT TO:<"plain"@example.net>`, 250)
	d.data("From: news@app.example\r\n\r\nhi\r\n", 250)
	msg, rcpts, _ := s.q.last(t)
	if msg.ReturnPath != `"news desk"@app.example` {
		t.Errorf("return path %q, want %q", msg.ReturnPath, `"news desk"@app.example`)
	}
	var got []string
	for _, r := range rcpts {
		got = append(got, r.Addr)
	}
	if want := []string{`"q x"@example.net`, `"a\"b"@example.net`, "plain@example.net"}; strings.Join(got, " ") != strings.Join(want, " ") {
		t.Errorf("queued recipients %q, want %q", got, want)
	}
}

// With SMTPUTF8 on MAIL (offered by the listener), UTF-8 local parts and
// U-labels are paths; without it they are refused.
func TestSubmissionSMTPUTF8Paths(t *testing.T) {
	s := startServer(t, false)
	d := dial(t, s.plain)
	if ehlo := d.expect("EHLO client.test", 250); !strings.Contains(ehlo, "SMTPUTF8") {
		t.Fatalf("SMTPUTF8 not offered: %q", ehlo)
	}
	d.expect("MAIL FROM:<news@app.example>", 250)
	if reply := d.expect("RCPT TO:<pelé@Bücher.example>", 553); !strings.HasPrefix(reply, "5.6.7 ") {
		t.Errorf("UTF-8 recipient without SMTPUTF8: %q, want 553 5.6.7", reply)
	}
	d.expect("RSET", 250)
	d.expect("MAIL FROM:<news@app.example> SMTPUTF8", 250)
	d.expect("RCPT TO:<pelé@Bücher.example>", 250)
	d.data("From: news@app.example\r\n\r\nhi\r\n", 250)
	if _, rcpts, _ := s.q.last(t); len(rcpts) != 1 || rcpts[0].Addr != "pelé@bücher.example" {
		t.Errorf("queued recipients %+v, want pelé@bücher.example", rcpts)
	}
}

// The inbound listener refuses a recipient that is no path with 553
// 5.1.3 before looking it up.
func TestInboundPathSyntax(t *testing.T) {
	verp := bounce.VERP{Key: []byte("0123456789abcdef")}
	in := NewInbound(InboundConfig{Address: "127.0.0.1:25", Hostname: "drover.test", BounceDomains: []string{"b.test"}, VERP: verp, MaxMessageSize: 1 << 20})
	p := testkit.NewPipes("127.0.0.1:25")
	in.listen = func(string, string) (net.Listener, error) { return p, nil }
	if _, err := in.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(in.Close)
	d := dialPipe(t, p)
	d.expect("EHLO x", 250)
	d.expect("MAIL FROM:<>", 250)
	if reply := d.expect("RCPT TO:<fbl@@b.test>", 553); !strings.HasPrefix(reply, "5.1.3 ") || !strings.Contains(reply, "two @") {
		t.Errorf("reply %q", reply)
	}
	d.expect("RCPT TO:<FBL@B.test>", 250)
}
