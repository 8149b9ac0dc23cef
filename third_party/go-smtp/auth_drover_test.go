package smtp_test

import (
	"bufio"
	"errors"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"
)

// closingBackend's sessions refuse AUTH: with authErr at the AUTH
// command, or with saslErr after the credentials.
type closingBackend struct{ authErr, saslErr error }

func (b closingBackend) NewSession(*smtp.Conn) (smtp.Session, error) { return closingSession{b}, nil }

type closingSession struct{ b closingBackend }

func (s closingSession) AuthMechanisms() []string { return []string{sasl.Plain} }

func (s closingSession) Auth(string) (sasl.Server, error) {
	if s.b.authErr != nil {
		return nil, s.b.authErr
	}
	return sasl.NewPlainServer(func(_, _, _ string) error { return s.b.saslErr }), nil
}

func (closingSession) Mail(string, *smtp.MailOptions) error { return nil }
func (closingSession) Rcpt(string, *smtp.RcptOptions) error { return nil }
func (closingSession) Data(io.Reader) error                 { return nil }
func (closingSession) Reset()                               {}
func (closingSession) Logout() error                        { return nil }

// A 421 refusal of AUTH closes the connection after the reply; any other
// refusal leaves it open.
func TestAuthRefusal421Closes(t *testing.T) {
	tooMany := &smtp.SMTPError{Code: 421, EnhancedCode: smtp.EnhancedCode{4, 7, 0}, Message: "Too many failed login attempts, closing connection"}
	wrong := &smtp.SMTPError{Code: 535, EnhancedCode: smtp.EnhancedCode{5, 7, 8}, Message: "Authentication credentials invalid"}
	for _, tc := range []struct {
		name   string
		be     closingBackend
		reply  string
		closes bool
	}{
		{"credentials 421", closingBackend{saslErr: tooMany}, "421 4.7.0 Too many", true},
		{"command 421", closingBackend{authErr: tooMany}, "421 4.7.0 Too many", true},
		{"credentials 535", closingBackend{saslErr: wrong}, "535 5.7.8 ", false},
		{"credentials plain error", closingBackend{saslErr: errors.New("bad")}, "454 4.7.0 bad", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			l, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			s := smtp.NewServer(tc.be)
			s.Domain = "localhost"
			s.AllowInsecureAuth = true
			go s.Serve(l)
			defer s.Close()
			c, err := net.Dial("tcp", l.Addr().String())
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			c.SetDeadline(time.Now().Add(10 * time.Second))
			sc := bufio.NewScanner(c)
			io.WriteString(c, "EHLO localhost\r\nAUTH PLAIN AHVzZXJuYW1lAHBhc3N3b3Jk\r\nNOOP\r\n")
			var lines []string
			for sc.Scan() {
				lines = append(lines, sc.Text())
				if strings.HasPrefix(sc.Text(), "250 2.0.0 I have") {
					break
				}
			}
			var got string
			for _, l := range lines {
				if !strings.HasPrefix(l, "220") && !strings.HasPrefix(l, "250") {
					got = l
				}
			}
			if !strings.HasPrefix(got, tc.reply) {
				t.Errorf("AUTH reply %q, want %q... (all: %q)", got, tc.reply, lines)
			}
			answeredNOOP := strings.HasPrefix(lines[len(lines)-1], "250 2.0.0 I have")
			if tc.closes && answeredNOOP {
				t.Errorf("connection still open after the 421: %q", lines)
			}
			if !tc.closes && !answeredNOOP {
				t.Errorf("connection closed after %q: %q", got, lines)
			}
		})
	}
}
