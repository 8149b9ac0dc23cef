package bounce

import "testing"

// TestMTAReplyTexts replays the reject and defer replies that Postfix and
// Exim themselves write, with the reply and enhanced codes they send, and
// checks the reason of each. The texts come from the MTAs' sources
// (Postfix smtpd_check.c, smtpd.c, postscreen, local; Exim smtp_in.c,
// acl.c, host.c, the smtp transport) and the restrictions they document.
func TestMTAReplyTexts(t *testing.T) {
	c := NewClassifier(nil)
	for _, tc := range []struct {
		mta, cmd string
		code     int
		enh      string
		text     string
		want     string
	}{
		// Postfix smtpd_check.c
		{"postfix", "RCPT", 550, "5.1.1", "<nobody@example.org>: Recipient address rejected: User unknown in local recipient table", "userunknown"},
		{"postfix", "RCPT", 550, "5.1.1", "<nobody@example.org>: Recipient address rejected: User unknown in virtual alias table", "userunknown"},
		{"postfix", "RCPT", 550, "5.1.1", "<nobody@example.org>: Recipient address rejected: User unknown in virtual mailbox table", "userunknown"},
		{"postfix", "RCPT", 550, "5.1.1", "<nobody@example.org>: Recipient address rejected: User unknown in relay recipient table", "userunknown"},
		{"postfix", "RCPT", 550, "", "<nobody@example.org>: Recipient address rejected: undeliverable address: host mx.example.org[192.0.2.1] said: 550 No thanks (in reply to RCPT TO command)", "userunknown"},
		{"postfix", "RCPT", 450, "4.1.2", "<kijitora@nx.example>: Recipient address rejected: Domain not found", "hostunknown"},
		{"postfix", "RCPT", 450, "", "<kijitora@nx.example>: Recipient address rejected: Domain not found", "hostunknown"},
		{"postfix", "MAIL", 450, "4.1.8", "<sender@nx.example>: Sender address rejected: Domain not found", "rejected"},
		{"postfix", "MAIL", 504, "5.5.2", "<sender>: Sender address rejected: need fully-qualified address", "rejected"},
		{"postfix", "MAIL", 550, "5.1.0", "<sender@example.jp>: Sender address rejected: undeliverable address: unknown user: \"sender\"", "rejected"},
		{"postfix", "MAIL", 553, "5.7.1", "<sender@example.jp>: Sender address rejected: not logged in", "rejected"},
		{"postfix", "RCPT", 450, "4.7.1", "Client host rejected: cannot find your hostname, [192.0.2.9]", "requireptr"},
		{"postfix", "RCPT", 550, "5.7.1", "Client host rejected: cannot find your reverse hostname, [192.0.2.9]", "requireptr"},
		{"postfix", "RCPT", 450, "4.7.25", "Client host rejected: cannot find your reverse hostname, [192.0.2.9]", "requireptr"},
		{"postfix", "RCPT", 554, "5.7.1", "<unknown[192.0.2.9]>: Client host rejected: Access denied", "blocked"},
		{"postfix", "RCPT", 504, "5.5.2", "<localhost>: Helo command rejected: need fully-qualified hostname", "blocked"},
		{"postfix", "RCPT", 501, "5.5.2", "<bad_name>: Helo command rejected: Invalid name", "blocked"},
		{"postfix", "RCPT", 450, "4.7.1", "<mail.example.invalid>: Helo command rejected: Host not found", "blocked"},
		{"postfix", "RCPT", 554, "5.7.1", "<kijitora@example.net>: Relay access denied", "norelaying"},
		{"postfix", "RCPT", 554, "5.7.1", "Service unavailable; Client host [192.0.2.9] blocked using zen.spamhaus.org; https://www.spamhaus.org/query/ip/192.0.2.9", "blocked"},
		{"postfix", "RCPT", 451, "4.3.0", "<kijitora@example.org>: Temporary lookup failure", "systemerror"},
		{"postfix", "RCPT", 451, "4.3.5", "<kijitora@example.org>: Recipient address rejected: Server configuration problem", "systemerror"},
		{"postfix", "RCPT", 450, "4.4.4", "<kijitora@example.org>: Recipient address rejected: Unable to look up mail exchanger information", "networkerror"},
		{"postfix", "RCPT", 450, "4.7.1", "<kijitora@example.org>: Recipient address rejected: Greylisted, see http://postgrey.schweikert.ch/help/example.org.html", "systemerror"},
		{"postfix", "MAIL", 552, "5.3.4", "Message size exceeds fixed limit", "mesgtoobig"},
		{"postfix", "MAIL", 452, "4.3.1", "Insufficient system storage", "systemfull"},
		// Postfix smtpd.c, postscreen, local
		{"postfix", "RCPT", 452, "4.5.3", "Error: too many recipients", "exceedlimit"},
		{"postfix", "MAIL", 450, "4.7.1", "Error: too much mail from 192.0.2.9", "speeding"},
		{"postfix", "CONN", 421, "4.7.0", "mx.example.org Error: too many connections from 192.0.2.9", "toomanyconn"},
		{"postfix", "CONN", 421, "4.3.2", "All server ports are busy", "toomanyconn"},
		{"postfix", "DATA", 451, "4.3.0", "Error: queue file write error", "systemerror"},
		{"postfix", "RCPT", 502, "5.5.2", "Error: command not recognized", "syntaxerror"},
		{"postfix", "DATA", 521, "5.5.2", "mx.example.org Error: bare <LF> received", "syntaxerror"},
		{"postfix", "", 0, "5.2.2", "cannot update mailbox /var/mail/kijitora for user kijitora. error writing message: File too large", "mailboxfull"},
		// Exim smtp_in.c, acl.c, verify.c, host.c, deliver.c, transports
		{"exim", "RCPT", 550, "", "Unrouteable address", "hostunknown"},
		{"exim", "RCPT", 550, "", "Unknown user", "userunknown"},
		{"exim", "RCPT", 550, "", "relay not permitted", "norelaying"},
		{"exim", "RCPT", 550, "", "Sender verify failed", "rejected"},
		{"exim", "RCPT", 550, "", "rejected because 192.0.2.9 is in a black list at zen.spamhaus.org", "blocked"},
		{"exim", "CONN", 554, "", "SMTP synchronization error", "syntaxerror"},
		{"exim", "RCPT", 501, "", "<kijitora@[192.0.2.1]>: domain literals not allowed\n501 Too many syntax or protocol errors", "syntaxerror"},
		{"exim", "EHLO", 501, "", "Syntactically invalid EHLO argument(s)", "syntaxerror"},
		{"exim", "DATA", 552, "", "Message size exceeds maximum permitted", "mesgtoobig"},
		{"exim", "MAIL", 452, "", "Space shortage, please try later", "systemfull"},
		{"exim", "CONN", 421, "", "Too many concurrent SMTP connections from this IP address; please try again later.", "toomanyconn"},
		{"exim", "RCPT", 550, "", "no host name found for IP address 192.0.2.9", "requireptr"},
		{"exim", "RCPT", 550, "", "host lookup failed for reverse lookup check (failed to find host name from IP address)", "requireptr"},
		{"exim", "", 0, "", "retry timeout exceeded", "expired"},
		{"exim", "", 0, "", "all hosts have been failing for a long time and were last tried after this message arrived", "expired"},
		{"exim", "", 0, "", "mailbox is full (MTA-imposed quota exceeded while writing to file /var/mail/kijitora)", "mailboxfull"},
		{"exim", "", 0, "", "lowest numbered MX record points to local host", "systemerror"},
	} {
		got := c.Classify(Reply{Command: tc.cmd, Code: tc.code, Enhanced: tc.enh, Text: tc.text})
		if got.Reason != tc.want {
			t.Errorf("%s %s %d %s %q: reason %s, want %s", tc.mta, tc.cmd, tc.code, tc.enh, tc.text, got.Reason, tc.want)
		}
	}
}
