package bounce

import (
	"reflect"
	"strings"
	"testing"
)

func TestFindAddresses(t *testing.T) {
	tests := map[string][]string{
		"<a.b+c@example.org>, x@y":                 {"a.b+c@example.org"},
		"nyaan%gol.com@q002.kijitora.gol.com said": {"nyaan%gol.com@q002.kijitora.gol.com"},
		"rfc822; kijitora@example.jp.":             {"kijitora@example.jp"},
		"@example.org and a@b..c and @":            nil,
		"two: a@x.org b@y.net":                     {"a@x.org", "b@y.net"},
	}
	for in, want := range tests {
		if got := findAddresses(in); !reflect.DeepEqual(got, want) {
			t.Errorf("findAddresses(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestRemoteHost(t *testing.T) {
	tests := map[string]string{
		"<a@b.c>: host mx.example.org[192.0.2.1] said: 550 no":    "mx.example.org",
		"host mx1.example.net [192.0.2.2]: 554 5.7.1 no":          "mx1.example.net",
		"Server mx22.example.org[192.0.2.222] failed with: 550 x": "mx22.example.org",
		"no host here [1.2.3.4]":                                  "",
	}
	for in, want := range tests {
		if got := remoteHost(in); got != want {
			t.Errorf("remoteHost(%q) = %q, want %q", in, got, want)
		}
	}
}

// TestTextBounces reads non-standard bounces written for this test in
// the styles of several MTAs: the recipients and reasons must come out,
// and addresses that are not recipients (senders, contacts) must not.
func TestTextBounces(t *testing.T) {
	tests := []struct {
		name string
		msg  string
		want map[string]string // recipient -> reason
	}{
		{"courier", `From: Courier mail server at mx.example.net <@>
To: sender@example.com
Subject: NOTICE: mail delivery status.

This is a delivery status notification from mx.example.net,
running the Courier mail server.

---------------------------------------------------------------------------
                           UNDELIVERABLE MAIL

Your message to the following recipients cannot be delivered:

<user1@example.org>:
    mx.example.org [192.0.2.1]:
>>> RCPT TO:<user1@example.org>
<<< 550 5.1.1 <user1@example.org>... User Unknown

<user2@example.org>:
    mx.example.org [192.0.2.1]:
>>> RCPT TO:<user2@example.org>
<<< 552 5.2.2 <user2@example.org>... Mailbox Full

If you have questions, please contact <postmaster@example.net>.
`, map[string]string{"user1@example.org": "userunknown", "user2@example.org": "mailboxfull"}},

		{"exim-two", `From: Mail Delivery System <Mailer-Daemon@mx.example.net>
To: sender@example.com
Subject: Mail delivery failed: returning message to sender

This message was created automatically by mail delivery software.

A message that you sent could not be delivered to one or more of its
recipients. This is a permanent error. The following address(es) failed:

  alice@example.org
    host mx.example.org [192.0.2.7]
    SMTP error from remote mail server after RCPT TO:<alice@example.org>:
    550 5.1.1 No such user here
  bob@example.info
    Unrouteable address

------ This is a copy of the message, including all the headers. ------

From: sender@example.com
To: alice@example.org, bob@example.info
Subject: hi
`, map[string]string{"alice@example.org": "userunknown", "bob@example.info": "hostunknown"}},

		{"qmail-two", `From: MAILER-DAEMON@mx.example.net
To: sender@example.com
Subject: failure notice

Hi. This is the qmail-send program at mx.example.net.
I'm afraid I wasn't able to deliver your message to the following addresses.
This is a permanent error; I've given up. Sorry it didn't work out.

<carol@example.org>:
192.0.2.5 does not like recipient.
Remote host said: 550 5.7.1 <carol@example.org>: Relay access denied
Giving up on 192.0.2.5.

<dave@example.org>:
Sorry, I couldn't find any host named example.org. (#5.1.2)

--- Below this line is a copy of the message.

Return-Path: <sender@example.com>
To: carol@example.org, dave@example.org
`, map[string]string{"carol@example.org": "norelaying", "dave@example.org": "hostunknown"}},

		{"x-failed-recipients wins", `From: Mail Delivery System <Mailer-Daemon@mx.example.net>
To: sender@example.com
Subject: Mail delivery failed
X-Failed-Recipients: eve@example.org

The following address failed:

  eve@example.org
    mailbox is full: retry timeout exceeded

Questions: write to helpdesk@example.net
`, map[string]string{"eve@example.org": "mailboxfull"}},

		// Reports that name the recipient on no recipient line.
		{"list manager", `From: list-owner@lists.example.net
To: sender@example.com
Subject: Returned mail: see transcript for details

Your message could not be handed on: the list member frank@example.org
has no mailbox here any more (user unknown).

--- Below this line is a copy of the message.

From: sender@example.com
To: news@lists.example.net, frank@example.org
Subject: hi
`, map[string]string{"frank@example.org": "filtered"}},

		{"forwarder", `From: Mail Delivery Subsystem <MAILER-DAEMON@fwd.example.net>
To: sender@example.com
Subject: Undelivered Mail

The mailbox this address forwards to is full. Contact postmaster@fwd.example.net.

------ This is a copy of the message, including all the headers. ------

From: sender@example.com
Delivered-To: grace@fwd.example.net
Subject: hi
`, map[string]string{"grace@fwd.example.net": "mailboxfull"}},

		{"one address said", `From: MAILER-DAEMON@old.example.net
To: sender@example.com
Subject: Returned mail

Mail for heidi@example.org could not be delivered: host not found.
`, map[string]string{"heidi@example.org": "hostunknown"}},
	}
	for _, tt := range tests {
		res, err := ParseMessage([]byte(tt.msg))
		if err != nil {
			t.Fatalf("%s: %v", tt.name, err)
		}
		got := map[string]string{}
		for _, c := range res {
			got[strings.ToLower(c.Recipient)] = c.Reason
		}
		if !reflect.DeepEqual(got, tt.want) {
			t.Errorf("%s: got %v, want %v", tt.name, got, tt.want)
		}
	}
}

// TestDSNBareLocalPart reads a report whose Final-Recipient is a bare
// local part: the address comes from the returned message.
func TestDSNBareLocalPart(t *testing.T) {
	msg := "From: MAILER-DAEMON@gw.example.net\nTo: sender@example.com\nSubject: Undeliverable\n" +
		"MIME-Version: 1.0\nContent-Type: multipart/report; report-type=delivery-status; boundary=b\n\n" +
		"--b\nContent-Type: text/plain\n\nDelivery failed.\n\n" +
		"--b\nContent-Type: message/delivery-status\n\nReporting-MTA: dns; gw.example.net\n\n" +
		"Final-Recipient: rfc822; ivan\nAction: failed\nStatus: 5.1.1\nDiagnostic-Code: smtp; 550 5.1.1 unknown user\n\n" +
		"--b\nContent-Type: text/rfc822-headers\n\nFrom: sender@example.com\nTo: Ivan <ivan@example.org>\nSubject: hi\n\n--b--\n"
	res, err := ParseMessage([]byte(msg))
	if err != nil {
		t.Fatal(err)
	}
	if len(res) != 1 || res[0].Recipient != "ivan@example.org" || res[0].Reason != "userunknown" {
		t.Fatalf("got %+v, want ivan@example.org userunknown", res)
	}
}

// TestDelayedKeepsTransientStatus: a delay report's own 4.X.X status
// stands against a permanent code its diagnostic quotes (RFC 3464
// 2.3.3).
func TestDelayedKeepsTransientStatus(t *testing.T) {
	msg := "From: MAILER-DAEMON@mx.example.net\nTo: sender@example.com\nSubject: Delayed Mail (still being retried)\n" +
		"MIME-Version: 1.0\nContent-Type: multipart/report; report-type=delivery-status; boundary=b\n\n" +
		"--b\nContent-Type: text/plain\n\nYour message has not been delivered yet; it will be retried.\n\n" +
		"--b\nContent-Type: message/delivery-status\n\nReporting-MTA: dns; mx.example.net\n\n" +
		"Final-Recipient: rfc822; judy@example.org\nAction: delayed\nStatus: 4.4.7\n" +
		"Diagnostic-Code: smtp; 550 5.7.1 try later\n\n--b--\n"
	res, err := ParseMessage([]byte(msg))
	if err != nil {
		t.Fatal(err)
	}
	if len(res) != 1 || res[0].Status != "4.4.7" || res[0].Class != "soft" {
		t.Fatalf("got %+v, want status 4.4.7, soft", res)
	}
}

// TestDSNUnusableRecipient reads a report whose Final-Recipient is no
// address and whose text names none: the returned message's recipient is
// the failed one, with the report's status.
func TestDSNUnusableRecipient(t *testing.T) {
	msg := "From: MAILER-DAEMON@gw.example.net\nTo: sender@example.com\nSubject: Undeliverable\n" +
		"MIME-Version: 1.0\nContent-Type: multipart/report; report-type=delivery-status; boundary=b\n\n" +
		"--b\nContent-Type: text/plain\n\nDelivery failed.\n\n" +
		"--b\nContent-Type: message/delivery-status\n\nReporting-MTA: dns; gw.example.net\n\n" +
		"Final-Recipient: rfc822; <>\nAction: failed\nStatus: 5.1.1\n\n" +
		"--b\nContent-Type: text/rfc822-headers\n\nFrom: sender@example.com\nTo: Judy <judy@example.org>\nSubject: hi\n\n--b--\n"
	res, err := ParseMessage([]byte(msg))
	if err != nil {
		t.Fatal(err)
	}
	if len(res) != 1 || res[0].Recipient != "judy@example.org" || res[0].Status != "5.1.1" || res[0].Reason != "userunknown" {
		t.Fatalf("got %+v, want judy@example.org with the report's 5.1.1", res)
	}
}
