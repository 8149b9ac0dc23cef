package bounce

import (
	"bytes"
	"strings"
	"testing"
	"time"
)

func testDSNInput() DSNInput {
	when := time.Date(2026, 4, 29, 23, 34, 45, 0, time.UTC)
	return DSNInput{
		ReportingMTA:    "mta1.drover.example",
		From:            "postmaster@drover.example",
		To:              "sender@shop.example",
		EnvID:           "QQ314159",
		OriginalHeaders: []byte("From: sender@shop.example\nTo: a@example.org, b@example.net\nSubject: Offer\nMessage-ID: <m1@shop.example>\n"),
		OriginalBody:    []byte("Hello\nworld\n"),
		Recipients: []DSNRecipient{
			{Addr: "a@example.org", ORCPT: "rfc822;a@example.org", Action: "failed", Status: "5.1.1",
				RemoteMTA: "mx.example.org", Diagnostic: "smtp; 550 5.1.1 <a@example.org>... User unknown", LastAttempt: when},
			{Addr: "b@example.net", Action: "delayed", Status: "4.2.2", RemoteMTA: "mx.example.net",
				Diagnostic: "452 4.2.2 Mailbox full", LastAttempt: when, WillRetryUntil: when.Add(72 * time.Hour)},
		},
		Arrival:   when.Add(-time.Hour),
		MessageID: "dsn1@mta1.drover.example",
		Date:      when,
	}
}

func TestNewDSN(t *testing.T) {
	in := testDSNInput()
	out := NewDSN(in)
	if bytes.Contains(bytes.ReplaceAll(out, []byte("\r\n"), nil), []byte("\n")) {
		t.Error("bare LF in DSN")
	}
	s := string(out)
	for _, want := range []string{
		"From: Mail Delivery System <postmaster@drover.example>\r\n",
		"To: <sender@shop.example>\r\n",
		"Subject: Undelivered Mail Returned to Sender\r\n",
		"Date: Wed, 29 Apr 2026 23:34:45 +0000\r\n",
		"Message-ID: <dsn1@mta1.drover.example>\r\n",
		"Auto-Submitted: auto-replied\r\n",
		"MIME-Version: 1.0\r\n",
		"Content-Type: multipart/report; report-type=delivery-status;",
		"Content-Type: message/delivery-status\r\n",
		"Reporting-MTA: dns; mta1.drover.example\r\n",
		"Original-Envelope-Id: QQ314159\r\n",
		"Original-Recipient: rfc822;a@example.org\r\n",
		"Final-Recipient: rfc822; a@example.org\r\n",
		"Action: failed\r\n",
		"Status: 5.1.1\r\n",
		"Remote-MTA: dns; mx.example.org\r\n",
		"Diagnostic-Code: smtp; 550 5.1.1 <a@example.org>... User unknown\r\n",
		"Action: delayed\r\n",
		"Will-Retry-Until: ",
		"Diagnostic-Code: smtp; 452 4.2.2 Mailbox full\r\n",
		"Content-Type: text/rfc822-headers\r\n",
		"Subject: Offer\r\n",
	} {
		if !strings.Contains(s, want) {
			t.Errorf("DSN lacks %q", want)
		}
	}
	if strings.Contains(s, "Hello") {
		t.Error("RET=HDRS returned the body")
	}

	// The DSN reads back as what it says.
	res, err := ParseMessage(out)
	if err != nil || len(res) != 2 {
		t.Fatalf("parsed back: %v %v", res, err)
	}
	if c := res[0]; c.Recipient != "a@example.org" || c.Reason != "userunknown" || c.Class != "hard" ||
		c.Status != "5.1.1" || c.OriginalMessageID != "m1@shop.example" || c.EnvelopeID != "QQ314159" {
		t.Errorf("first recipient read back as %+v", c)
	}
	if c := res[1]; c.Recipient != "b@example.net" || c.Reason != "mailboxfull" || c.Status != "4.2.2" {
		t.Errorf("second recipient read back as %+v", c)
	}
}

func TestNewDSNFull(t *testing.T) {
	in := testDSNInput()
	in.Ret = "FULL"
	in.Recipients = in.Recipients[1:]
	s := string(NewDSN(in))
	if !strings.Contains(s, "Content-Type: message/rfc822\r\n") || !strings.Contains(s, "\r\n\r\nHello\r\nworld\r\n") {
		t.Errorf("RET=FULL lacks the message:\n%s", s)
	}
	if !strings.Contains(s, "Subject: Delayed Mail (still being retried)\r\n") {
		t.Error("delay-only DSN has the wrong subject")
	}
}

// TestNewDSNNoInjection: line breaks in the input cannot add fields.
func TestNewDSNNoInjection(t *testing.T) {
	in := testDSNInput()
	in.To = "sender@shop.example\r\nBcc: victim@example.com"
	in.Recipients[0].Diagnostic = "smtp; 550 no\r\nX-Injected: yes"
	s := string(NewDSN(in))
	if strings.Contains(s, "\r\nBcc:") || strings.Contains(s, "\r\nX-Injected:") {
		t.Errorf("header injection:\n%s", s)
	}
}

// TestNewDSNDefaults: a minimal input still makes a well-formed DSN.
func TestNewDSNDefaults(t *testing.T) {
	s := string(NewDSN(DSNInput{To: "s@example.org", Recipients: []DSNRecipient{{Addr: "r@example.net"}}}))
	for _, want := range []string{"Reporting-MTA: dns; localhost\r\n", "Status: 5.0.0\r\n", "Action: failed\r\n", "Message-ID: <"} {
		if !strings.Contains(s, want) {
			t.Errorf("lacks %q", want)
		}
	}
}
