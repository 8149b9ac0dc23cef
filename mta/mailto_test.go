package mta

import (
	"bytes"
	"errors"
	"log/slog"
	"mime"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"drover/bounce"
	"drover/policy"
	"drover/queue"
)

// fakeUnsubscriber records the unsubscribes; err makes them fail.
type fakeUnsubscriber struct {
	mu    sync.Mutex
	err   error
	calls []unsubscribeCall
}

type unsubscribeCall struct {
	r      policy.Recipient
	source string
}

func (f *fakeUnsubscriber) Unsubscribe(r policy.Recipient, source string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.err != nil {
		return f.err
	}
	f.calls = append(f.calls, unsubscribeCall{r, source})
	return nil
}

func (f *fakeUnsubscriber) recorded() []unsubscribeCall {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.calls)
}

// startInbound runs an inbound listener for bounce domain b.test on a
// loopback port.
func startInbound(t *testing.T, tokens *policy.Tokens, u policy.Unsubscriber) (string, *eventRecorder) {
	t.Helper()
	rec := &eventRecorder{}
	cfg := InboundConfig{Address: "127.0.0.1:0", Hostname: "drover.test", BounceDomains: []string{"b.test"},
		VERP: bounce.VERP{Key: []byte("0123456789abcdef")}, MaxMessageSize: 1 << 20, OnEvent: rec.add,
		Tokens: tokens, Unsubscriber: u, Logger: slog.New(slog.DiscardHandler), DomainSenders: map[string]string{"b.test": "owner"}}
	in := NewInbound(cfg)
	addr, err := in.Start()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(in.Close)
	return addr.String(), rec
}

// Mail to unsubscribe@ a bounce domain unsubscribes the recipient its
// token names (from the Subject, encoded or not, else the first text
// line); a forged, expired or missing token is accepted and changes
// nothing; a store error gets 451 4.3.0; other local parts are still
// refused.
func TestInboundUnsubscribeMailbox(t *testing.T) {
	tokens := testTokens()
	tokens.MaxAge = 24 * time.Hour
	r := policy.Recipient{Sender: "app", List: "spring-news", Address: "a@dest.test", MsgID: "Q1"}
	tok := tokens.Seal(r, time.Now())
	forger := &policy.Tokens{Keys: []policy.Key{{ID: 1, Secret: bytes.Repeat([]byte{8}, 32)}}}
	u := &fakeUnsubscriber{}
	addr, rec := startInbound(t, tokens, u)
	d := dial(t, addr)
	d.expect("EHLO mx.dest.test", 250)
	send := func(to, msg string, code int) string {
		t.Helper()
		d.expect("MAIL FROM:<a@dest.test>", 250)
		d.expect("RCPT TO:<"+to+">", 250)
		return d.data(msg, code)
	}
	for _, tc := range []struct {
		name, to, msg string
		unsubscribes  bool
	}{
		{"subject", "unsubscribe@b.test", "From: a@dest.test\r\nSubject: unsubscribe " + tok + "\r\n\r\n", true},
		{"encoded subject", "Unsubscribe@B.test", "From: a@dest.test\r\nSubject: " + mime.QEncoding.Encode("utf-8", "unsubscribe "+tok) + "\r\n\r\n", true},
		{"token alone", "unsubscribe@b.test", "Subject: " + tok + "\r\n\r\n", true},
		{"first text line", "unsubscribe@b.test", "Subject: please\r\nContent-Type: multipart/alternative; boundary=xx\r\n\r\n" +
			"--xx\r\nContent-Type: text/html\r\n\r\n<p>no</p>\r\n--xx\r\nContent-Type: text/plain\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n\r\n" +
			"unsubscribe " + tok[:40] + "=\r\n" + tok[40:] + "\r\n--xx--\r\n", true},
		{"forged", "unsubscribe@b.test", "Subject: unsubscribe " + forger.Seal(r, time.Now()) + "\r\n\r\n", false},
		{"expired", "unsubscribe@b.test", "Subject: unsubscribe " + tokens.Seal(r, time.Now().Add(-48*time.Hour)) + "\r\n\r\n", false},
		{"altered", "unsubscribe@b.test", "Subject: unsubscribe " + tok[:len(tok)-2] + "AA\r\n\r\n", false},
		{"no token", "unsubscribe@b.test", "Subject: stop it\r\n\r\nplease stop\r\n", false},
	} {
		before := len(u.recorded())
		send(tc.to, tc.msg, 250)
		calls := u.recorded()
		if !tc.unsubscribes {
			if len(calls) != before {
				t.Errorf("%s: unsubscribed %v", tc.name, calls[before:])
			}
			continue
		}
		if len(calls) != before+1 || calls[before] != (unsubscribeCall{r, "mailto"}) {
			t.Errorf("%s: unsubscribes %v, want one of %+v by mailto", tc.name, calls[before:], r)
		}
	}

	u.mu.Lock()
	u.err = errors.New("disk on fire")
	u.mu.Unlock()
	if got := send("unsubscribe@b.test", "Subject: unsubscribe "+tok+"\r\n\r\n", 451); got != "4.3.0 Unsubscribe not recorded: local policy store error, try again later" {
		t.Errorf("store error: reply %q", got)
	}

	d.expect("MAIL FROM:<a@dest.test>", 250)
	d.expectText("RCPT TO:<someone@b.test>", 550, "5.1.1 No such user: this server accepts only bounces and feedback reports")
	d.expectText("RCPT TO:<unsubscribe@elsewhere.test>", 550, "5.1.1 No such user: this server accepts only bounces and feedback reports")
	if n := len(rec.lines(t, queue.EventBounced)) + len(rec.lines(t, queue.EventComplained)); n != 0 {
		t.Errorf("unsubscribe mail read as %d reports", n)
	}
}

// Without Tokens and an Unsubscriber, the unsubscribe mailbox is no
// mailbox.
func TestInboundUnsubscribeMailboxOff(t *testing.T) {
	addr, _ := startInbound(t, nil, nil)
	d := dial(t, addr)
	d.expect("EHLO mx.dest.test", 250)
	d.expect("MAIL FROM:<a@dest.test>", 250)
	d.expect("RCPT TO:<unsubscribe@b.test>", 550)
}

func TestMailtoTokens(t *testing.T) {
	for _, tc := range []struct {
		msg  string
		want []string
	}{
		{"Subject: unsubscribe T1\r\n\r\nT2\r\n", []string{"T1", "T2"}},
		{"Subject: Unsubscribe: T1\r\n\r\n", []string{"T1"}},
		{"Subject: unsubscribe%20T1\r\n\r\n", []string{"T1"}},
		{"Subject: unsubscribe\r\n\r\n\r\n  unsubscribe T2  \r\nmore\r\n", []string{"T2"}},
		{"Subject: =?iso-8859-1?q?unsubscribe_T1?=\r\n\r\n", []string{"T1"}},
		{"Subject: two words\r\n\r\n", nil},
		{"Content-Type: text/plain\r\nContent-Transfer-Encoding: base64\r\n\r\ndW5zdWJzY3JpYmUgVDI=\r\n", []string{"T2"}},
		{"Content-Type: text/html\r\n\r\nT2\r\n", nil},
		{"Content-Type: multipart/mixed; boundary=\"b\"\r\n\r\n--b\r\n\r\nT2\r\n--b--\r\n", []string{"T2"}},
	} {
		if got := mailtoTokens([]byte(tc.msg)); !slices.Equal(got, tc.want) {
			t.Errorf("mailtoTokens(%q) = %q, want %q", tc.msg, got, tc.want)
		}
	}
}

func FuzzMailtoTokens(f *testing.F) {
	f.Add([]byte("Subject: unsubscribe T1\r\n\r\nT2\r\n"))
	f.Add([]byte("Content-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\nContent-Type: multipart/mixed; boundary=c\r\n\r\n--c\r\n\r\nT\r\n--c--\r\n--b--\r\n"))
	f.Fuzz(func(t *testing.T, msg []byte) {
		mailtoTokens(msg) // must not panic nor hang
	})
}

// A feedback report to fbl@ is mapped to its message and sender through
// the VERP return path the report quotes (ARF's Original-Mail-From), so
// that the complaint suppresses the address for the right sender.
func TestFeedbackReportFindsItsSender(t *testing.T) {
	addr, rec := startInbound(t, nil, nil)
	verp := bounce.VERP{Key: []byte("0123456789abcdef")}
	rp := verp.Encode("0123456789abcdef", 0, "shop", "b.test")
	other := bounce.VERP{Key: []byte("another key 0123")}.Encode("fedcba9876543210", 0, "forged", "b.test")
	d := dial(t, addr)
	d.expect("EHLO isp.test", 250)
	d.expect("MAIL FROM:<>", 250)
	d.expect("RCPT TO:<fbl@b.test>", 250)
	d.data("From: fbl@isp.test\r\nTo: fbl@b.test\r\nSubject: report\r\nMIME-Version: 1.0\r\n"+
		"Content-Type: multipart/report; report-type=feedback-report; boundary=\"F\"\r\n\r\n"+
		"--F\r\nContent-Type: text/plain\r\n\r\nA complaint.\r\n"+
		"--F\r\nContent-Type: message/feedback-report\r\n\r\nFeedback-Type: abuse\r\nUser-Agent: isp/1.0\r\nVersion: 1\r\n"+
		"Original-Mail-From: <"+strings.ToUpper(other)+">\r\nOriginal-Mail-From: <"+strings.ToUpper(rp)+">\r\nOriginal-Rcpt-To: <kept@dest.test>\r\n"+
		"--F\r\nContent-Type: message/rfc822\r\n\r\nFrom: news@shop.test\r\nTo: kept@dest.test\r\n\r\nhi\r\n--F--\r\n", 250)
	evs := rec.lines(t, queue.EventComplained)
	if len(evs) != 1 || evs[0]["sender"] != "shop" || evs[0]["id"] != "0123456789abcdef" || evs[0]["rcpt"] != "kept@dest.test" {
		t.Fatalf("complaints %+v", evs)
	}
	// Without a return path, the report is the sender's whose bounce
	// domain's fbl@ took it.
	d.expect("MAIL FROM:<>", 250)
	d.expect("RCPT TO:<fbl@b.test>", 250)
	d.data("From: fbl@isp.test\r\nTo: fbl@b.test\r\nSubject: report\r\nMIME-Version: 1.0\r\n"+
		"Content-Type: multipart/report; report-type=feedback-report; boundary=\"F\"\r\n\r\n"+
		"--F\r\nContent-Type: message/feedback-report\r\n\r\nFeedback-Type: abuse\r\nUser-Agent: isp/1.0\r\nVersion: 1\r\nOriginal-Rcpt-To: <other@dest.test>\r\n"+
		"--F\r\nContent-Type: message/rfc822\r\n\r\nFrom: news@shop.test\r\nTo: other@dest.test\r\n\r\nhi\r\n--F--\r\n", 250)
	evs = rec.lines(t, queue.EventComplained)
	if len(evs) != 2 || evs[1]["sender"] != "owner" || evs[1]["rcpt"] != "other@dest.test" {
		t.Fatalf("complaints %+v", evs)
	}
}
