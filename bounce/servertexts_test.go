package bounce

import "testing"

// TestServerReplyTexts replays replies as receiving servers write them
// (Sendmail, qmail, Dovecot, Cyrus, Exchange Server, hMailServer,
// OpenSMTPD), from their sources and documentation.
func TestServerReplyTexts(t *testing.T) {
	tests := []struct {
		cmd      string
		code     int
		enhanced string
		text     string
		reason   string
	}{
		// Sendmail (cf/m4/proto.m4, cf/feature/dnsbl.m4, sendmail/*.c)
		{"MAIL", 553, "5.5.4", "<root>... Domain name required for sender address root", "rejected"},
		{"MAIL", 553, "", "<root@host>... Real domain name required for sender address", "rejected"},
		{"MAIL", 553, "5.1.8", "<s@nx.example>... Domain of sender address s@nx.example does not exist", "rejected"},
		{"RCPT", 550, "5.7.1", "<u@example.net>... Relaying denied. Proper authentication required.", "norelaying"},
		{"CONN", 550, "5.7.1", "Mail from 192.0.2.1 refused by blackhole site zen.spamhaus.org", "blocked"},
		{"RCPT", 550, "5.7.1", "Mail from 192.0.2.1 refused by blackhole site bl.example.net", "blocked"},
		{"RCPT", 451, "4.4.1", "reply: read error from mx.example.org.", "networkerror"},
		{"CONN", 451, "", "Deferred: Connection timed out with mx.example.org.", "networkerror"},
		{"MAIL", 503, "5.0.0", "Polite people say HELO first", "syntaxerror"},
		{"RCPT", 503, "5.0.0", "Need MAIL before RCPT", "syntaxerror"},
		{"MAIL", 452, "4.4.5", "Insufficient disk space; try again later", "systemfull"},
		// qmail (qmail-smtpd.c, qmail-remote.c, qmail-local.c)
		{"DATA", 552, "", "sorry, that message size exceeds my databytes limit (#5.3.4)", "mesgtoobig"},
		{"DATA", 451, "", "qqt failure (#4.3.0)", "systemerror"},
		{"RCPT", 451, "", "Connected to 192.0.2.1 but connection died. (#4.4.2)", "networkerror"},
		{"RCPT", 451, "", "CNAME lookup failed temporarily. (#4.4.3)", "networkerror"},
		{"RCPT", 451, "", "System resources temporarily unavailable. (#4.3.0)", "systemerror"},
		{"DATA", 554, "", "SMTP cannot transfer messages with partial final lines. (#5.6.2)", "contenterror"},
		{"DATA", 554, "", "This message is looping: it already has my Delivered-To line. (#5.4.6)", "networkerror"},
		// Dovecot LMTP (src/lmtp/lmtp-local.c, lib-storage, plugins/quota)
		{"RCPT", 550, "5.1.1", "<u@example.org> User doesn't exist: u@example.org", "userunknown"},
		{"RCPT", 550, "", "Mailbox doesn't exist: INBOX", "userunknown"},
		{"RCPT", 452, "", "<u@example.org> Quota exceeded (mailbox for user is full)", "mailboxfull"},
		{"RCPT", 451, "", "<u@example.org> Temporary internal error", "systemerror"},
		{"RCPT", 451, "4.3.0", "<u@example.org> Too many concurrent deliveries for user", "toomanyconn"},
		{"RCPT", 451, "", "<u@example.org> Too many concurrent deliveries for user", "toomanyconn"},
		{"RCPT", 451, "", "<u@example.org> Invalid user settings. Refer to server log for more information.", "systemerror"},
		// Cyrus lmtpd (imap/lmtpengine.c)
		{"DATA", 554, "", "Message contains bare newlines", "contenterror"},
		{"DATA", 554, "", "Message contains NUL characters", "contenterror"},
		{"DATA", 554, "", "Message contains invalid header", "contenterror"},
		{"DATA", 451, "", "System I/O error", "systemerror"},
		// Microsoft Exchange Server
		{"RCPT", 550, "5.7.1", "Unable to relay", "norelaying"},
		{"RCPT", 452, "", "Insufficient system resources", "systemfull"},
		{"CONN", 421, "", "The maximum number of concurrent server connections has exceeded a limit, closing transmission channel", "toomanyconn"},
		{"MAIL", 550, "5.7.1", "Client does not have permissions to send as this sender", "rejected"},
		{"DATA", 554, "", "STOREDRV.Deliver.Exception:QuotaExceededException.MapiExceptionShutoffQuotaExceeded; Failed to process message", "mailboxfull"},
		{"DATA", 550, "", "ROUTING.SizeLimit; message size exceeds fixed maximum size for route", "mesgtoobig"},
		{"RCPT", 554, "5.4.4", "SMTPSEND.DNS.NonExistentDomain; nonexistent domain", "hostunknown"},
		{"RCPT", 554, "", "SMTPSEND.DNS.NonExistentDomain; nonexistent domain", "hostunknown"},
		{"DATA", 550, "5.7.1", "Sender ID (PRA) Not Permitted", "authfailure"},
		// hMailServer
		{"RCPT", 550, "", "Delivery is not allowed to this address.", "norelaying"},
		// OpenSMTPD (usr.sbin/smtpd/smtp_session.c, mta.c)
		{"RCPT", 550, "", "Invalid recipient: <u@example.org>", "userunknown"},
		{"MAIL", 530, "", "Sender rejected", "rejected"},
		{"RCPT", 550, "", "Loop detected", "networkerror"},
	}
	c := NewClassifier(nil)
	for _, tt := range tests {
		got := c.Classify(Reply{Command: tt.cmd, Code: tt.code, Enhanced: tt.enhanced, Text: tt.text})
		if got.Reason != tt.reason {
			t.Errorf("%s %d %s %q: reason %s, want %s", tt.cmd, tt.code, tt.enhanced, tt.text, got.Reason, tt.reason)
		}
	}
}
