package main

import (
	"fmt"
	"net/smtp"
	"strings"
	"testing"
	"time"

	"drover/testkit"
)

// One recipient is refused during delivery; another is accepted and later
// a DSN for it arrives at the inbound listener, addressed to the VERP
// return path it was sent with. Both become bounced events with the right
// class and reason, mapped back to the message and sender.
func TestBouncesSyncAndAsync(t *testing.T) {
	mx := startMX(t)
	inbound := freePort(t)
	d := startDrover(t, t.TempDir(), fmt.Sprintf(`bounces:
  inbound_address: %q
senders:
  default:
    from_domains: [shop.test]
    bounce_domain: bounce.shop.test
    dsn: false
routes:
  "*.test": %q
`, inbound, mx.Addr))
	if err := smtp.SendMail(d.smtp, nil, "orders@shop.test", []string{"refuse-me@dest.test", "kept@dest.test"},
		[]byte("From: orders@shop.test\r\nMessage-ID: <order-1@shop.test>\r\nSubject: order\r\nX-Drover-Stream: transactional\r\n\r\nthanks\r\n")); err != nil {
		t.Fatal(err)
	}
	got := mx.Wait(t, 1, 20*time.Second)[0]
	if got.Rcpts[0] != "kept@dest.test" || !strings.HasPrefix(got.From, "bounces+") || !strings.HasSuffix(got.From, "@bounce.shop.test") {
		t.Fatalf("delivered %q -> %q, want a VERP return path", got.From, got.Rcpts)
	}

	// Only bounce and feedback addresses are accepted.
	c, err := smtp.Dial(inbound)
	if err != nil {
		t.Fatal(err)
	}
	c.Mail("")
	if err := c.Rcpt("someone@bounce.shop.test"); err == nil || !strings.Contains(err.Error(), "550") {
		t.Errorf("inbound accepted a plain address: %v", err)
	}
	if err := c.Rcpt("bounces+forgedtoken@bounce.shop.test"); err == nil {
		t.Error("inbound accepted a forged token")
	}
	if err := c.Rcpt("x@elsewhere.example"); err == nil {
		t.Error("inbound relays")
	}
	c.Quit()

	dsn := "From: MAILER-DAEMON@mx.dest.test\r\nTo: " + got.From + "\r\nSubject: Undelivered Mail Returned to Sender\r\n" +
		"MIME-Version: 1.0\r\nContent-Type: multipart/report; report-type=delivery-status; boundary=\"B\"\r\n\r\n" +
		"--B\r\nContent-Type: text/plain\r\n\r\nThe mailbox is full.\r\n" +
		"--B\r\nContent-Type: message/delivery-status\r\n\r\nReporting-MTA: dns; mx.dest.test\r\n\r\n" +
		"Final-Recipient: rfc822; kept@dest.test\r\nAction: failed\r\nStatus: 5.2.2\r\n" +
		"Diagnostic-Code: smtp; 552 5.2.2 Mailbox full: quota exceeded\r\n" +
		"--B\r\nContent-Type: text/rfc822-headers\r\n\r\nMessage-ID: <order-1@shop.test>\r\n--B--\r\n"
	if err := smtp.SendMail(inbound, nil, "", []string{got.From}, []byte(dsn)); err != nil {
		t.Fatal(err)
	}

	var sync, async map[string]any
	testkit.WaitFor(t, 10*time.Second, "both bounce events", func() bool {
		for _, ev := range d.mailLog() {
			if ev["event"] != "bounced" {
				continue
			}
			switch ev["rcpt"] {
			case "refuse-me@dest.test":
				sync = ev
			case "kept@dest.test":
				async = ev
			}
		}
		return sync != nil && async != nil
	})
	if sync["class"] != "hard" || sync["reason"] != "userunknown" || sync["status"] != "5.1.1" {
		t.Errorf("sync bounce: %v", sync)
	}
	if async["class"] != "soft" || async["reason"] != "mailboxfull" || async["status"] != "5.2.2" ||
		async["id"] != sync["id"] || async["sender"] != "default" || strings.Trim(async["message_id"].(string), "<>") != "order-1@shop.test" {
		t.Errorf("async bounce: %v (sync %v)", async, sync)
	}

	// A feedback report to fbl@ becomes a complaint.
	arf := "From: fbl@isp.example\r\nTo: fbl@bounce.shop.test\r\nSubject: abuse report\r\nMIME-Version: 1.0\r\n" +
		"Content-Type: multipart/report; report-type=feedback-report; boundary=\"F\"\r\n\r\n" +
		"--F\r\nContent-Type: text/plain\r\n\r\nA complaint.\r\n" +
		"--F\r\nContent-Type: message/feedback-report\r\n\r\nFeedback-Type: abuse\r\nUser-Agent: isp/1.0\r\nVersion: 1\r\nOriginal-Rcpt-To: <kept@dest.test>\r\n" +
		"--F\r\nContent-Type: message/rfc822\r\n\r\nFrom: orders@shop.test\r\nTo: kept@dest.test\r\nMessage-ID: <order-1@shop.test>\r\n\r\nthanks\r\n--F--\r\n"
	if err := smtp.SendMail(inbound, nil, "", []string{"fbl@bounce.shop.test"}, []byte(arf)); err != nil {
		t.Fatal(err)
	}
	testkit.WaitFor(t, 10*time.Second, "the complaint", func() bool {
		for _, ev := range d.mailLog() {
			if ev["event"] == "complained" && ev["rcpt"] == "kept@dest.test" && ev["feedback_type"] == "abuse" {
				return true
			}
		}
		return false
	})
	d.stop()
}
