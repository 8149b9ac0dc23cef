package mta

import (
	"strings"
	"testing"
	"time"

	"drover/queue"
)

func TestDSNNotifier(t *testing.T) {
	body := []byte("From: a@shop.example\r\nSubject: order\r\nMessage-ID: <o1@shop.example>\r\n\r\nsecret body\r\n")
	failed := []queue.Failed{
		{Recipient: queue.Recipient{Addr: "gone@dest.example", ORCPT: "rfc822;gone@dest.example"},
			Result: queue.Result{Status: queue.Permanent, Code: 550, Enhanced: "5.1.1", Text: "no such user", Remote: "mx.dest.example[192.0.2.1]:25"}},
		{Recipient: queue.Recipient{Addr: "quiet@dest.example", Notify: "NEVER"}, Result: queue.Result{Status: queue.Permanent, Code: 550}},
		{Recipient: queue.Recipient{Addr: "old@dest.example"}, Expired: true, Result: queue.Result{Enhanced: "4.4.7", Text: "message expired after 9 attempts"}},
	}
	cases := []struct {
		name    string
		msg     queue.Message
		want    []string
		notWant []string
	}{
		{"failure DSN, headers only", queue.Message{ID: "m1", ReturnPath: "a@shop.example", WantDSN: true, EnvID: "env-7", Received: time.Now()},
			[]string{"Final-Recipient: rfc822; gone@dest.example", "Original-Recipient: rfc822;gone@dest.example", "Status: 5.1.1",
				"Diagnostic-Code: smtp; 550 5.1.1 no such user", "Original-Envelope-Id: env-7", "Final-Recipient: rfc822; old@dest.example", "Status: 4.4.7",
				"Subject: order", "Auto-Submitted: auto-replied"},
			[]string{"quiet@dest.example", "secret body"}},
		{"RET=FULL returns the body", queue.Message{ID: "m2", ReturnPath: "a@shop.example", WantDSN: true, Ret: "FULL"},
			[]string{"secret body", "message/rfc822"}, nil},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			q := &fakeQueue{}
			n := &DSNNotifier{Hostname: "drover.test", Queue: q}
			if err := n.OnFailure(&c.msg, body, failed); err != nil {
				t.Fatal(err)
			}
			msg, rcpts, dsn := q.last(t)
			if msg.ReturnPath != "" || len(rcpts) != 1 || rcpts[0].Addr != "a@shop.example" {
				t.Errorf("DSN envelope %q -> %+v, want null sender to the return path", msg.ReturnPath, rcpts)
			}
			for _, w := range c.want {
				if !strings.Contains(dsn, w) {
					t.Errorf("DSN lacks %q:\n%s", w, dsn)
				}
			}
			for _, w := range c.notWant {
				if strings.Contains(dsn, w) {
					t.Errorf("DSN has %q:\n%s", w, dsn)
				}
			}
		})
	}

	// No DSN for a DSN, to bounce addresses, or when the sender wants none.
	for _, m := range []queue.Message{
		{ReturnPath: "", WantDSN: true},
		{ReturnPath: "MAILER-DAEMON@isp.example", WantDSN: true},
		{ReturnPath: "bounces+abc@bounce.shop.example", WantDSN: true},
		{ReturnPath: "x@bounce.shop.example", WantDSN: true},
		{ReturnPath: "a@shop.example", WantDSN: false},
	} {
		q := &fakeQueue{}
		n := &DSNNotifier{Hostname: "drover.test", Queue: q, BounceDomains: map[string]bool{"bounce.shop.example": true}}
		n.OnFailure(&m, body, failed)
		n.OnDelay(&m, nil, []queue.Recipient{{Addr: "x@dest.example", Notify: "DELAY"}}, time.Time{})
		if len(q.msgs) != 0 {
			t.Errorf("return path %q (want dsn %v): DSN sent", m.ReturnPath, m.WantDSN)
		}
	}
}

func TestDelayNotice(t *testing.T) {
	msg := &queue.Message{ID: "m", Sender: "app", ReturnPath: "a@shop.example", WantDSN: true}
	rcpts := []queue.Recipient{
		{Addr: "asked@dest.example", Notify: "FAILURE,DELAY", LastError: "451 4.2.0 mailbox busy"},
		{Addr: "failonly@dest.example", Notify: "FAILURE"},
		{Addr: "default@dest.example"},
	}
	q := &fakeQueue{}
	n := &DSNNotifier{Hostname: "drover.test", Queue: q}
	header := []byte("From: a@shop.example\r\nSubject: spring sale\r\n\r\n")
	until := time.Date(2026, 12, 7, 10, 0, 0, 0, time.UTC)
	if err := n.OnDelay(msg, header, rcpts, until); err != nil {
		t.Fatal(err)
	}
	_, _, dsn := q.last(t)
	if !strings.Contains(dsn, "Action: delayed") || !strings.Contains(dsn, "asked@dest.example") ||
		strings.Contains(dsn, "failonly@") || strings.Contains(dsn, "default@") {
		t.Errorf("delay DSN:\n%s", dsn)
	}
	// Will-Retry-Until is the recipients' expiry; the returned header is
	// the message's.
	if !strings.Contains(dsn, "Will-Retry-Until: Mon, 07 Dec 2026 10:00:00 +0000") {
		t.Errorf("delay DSN without the expiry as Will-Retry-Until:\n%s", dsn)
	}
	if i := strings.Index(dsn, "text/rfc822-headers"); i < 0 || !strings.Contains(dsn[i:], "Subject: spring sale") {
		t.Errorf("delay DSN without the message's header:\n%s", dsn)
	}
	// The sender option covers recipients without NOTIFY.
	q = &fakeQueue{}
	n.Queue, n.DelayDSN = q, map[string]bool{"app": true}
	n.OnDelay(msg, header, rcpts, until)
	if _, _, dsn := q.last(t); !strings.Contains(dsn, "default@dest.example") || strings.Contains(dsn, "failonly@") {
		t.Errorf("delay DSN with the sender option:\n%s", dsn)
	}
}
