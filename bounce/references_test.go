package bounce

import "testing"

// TestOtherProviderReferences replays replies in the wording of the
// published SMTP error references of Yahoo/AOL, Apple iCloud, Mimecast,
// Proofpoint, Comcast, GMX/WEB.DE, Barracuda, Cisco Secure Email, Zoho,
// Yandex and Mail.ru, and checks the reason the provider rules give.
func TestOtherProviderReferences(t *testing.T) {
	const (
		yahoo     = "mta5.am0.yahoodns.net"
		icloud    = "mx01.mail.icloud.com"
		mimecast  = "eu-smtp-inbound-1.mimecast.com"
		pphosted  = "mx0a-00123456.pphosted.com"
		comcast   = "mx1.comcast.net"
		gmx       = "mx00.emig.gmx.net"
		webde     = "mx-ha01.web.de"
		barracuda = "d123456a.ess.barracudanetworks.com"
		iphmx     = "mx1.example.iphmx.com"
		zoho      = "mx.zoho.com"
		yandex    = "mx.yandex.ru"
		mailru    = "mxs.mail.ru"
	)
	tests := []struct {
		host, cmd string
		code      int
		enhanced  string
		text      string
		reason    string
	}{
		// Yahoo Sender Hub, SMTP error codes.
		{yahoo, "CONN", 421, "4.7.0", "[TSS04] Messages from 192.0.2.1 temporarily deferred due to unexpected volume or user complaints - 4.16.55.1; see https://postmaster.yahooinc.com/error-codes", "badreputation"},
		{yahoo, "CONN", 553, "5.7.1", "[BL21] Connections will not be accepted from 192.0.2.1, because the ip is in Spamhaus's list; see https://postmaster.yahooinc.com/error-codes", "blocked"},
		{yahoo, "CONN", 553, "5.7.1", "[BL23] Connections not accepted from IP addresses on Spamhaus XBL; see https://postmaster.yahooinc.com/error-codes", "blocked"},
		{yahoo, "MAIL", 451, "", "VS1-IP Excessive unknown recipients - possible Open Relay (#4.1.8)", "blocked"},
		{yahoo, "DATA", 554, "5.7.9", "Message not accepted for policy reasons. See https://senders.yahooinc.com/error-codes", "policyviolation"},
		{yahoo, "DATA", 554, "", "Message not allowed - [PH01] Email not accepted for policy reasons. Please visit https://help.yahoo.com/kb/postmaster/SLN5067.html", "policyviolation"},
		{yahoo, "DATA", 550, "5.7.9", "This mail has been blocked because the sender is unauthenticated. Yahoo requires all senders to authenticate with either SPF or DKIM.", "authfailure"},
		{yahoo, "RCPT", 554, "", "delivery error: dd This user doesn't have a yahoo.com account (testing123@yahoo.com) [-5] - mta123.mail.mud.yahoo.com", "userunknown"},
		{yahoo, "RCPT", 554, "", "delivery error: dd Sorry your message to kijitora@yahoo.co.uk cannot be delivered. This account has been disabled or discontinued [#102].", "suspend"},
		{yahoo, "RCPT", 552, "", "1 Requested mail action aborted, mailbox full", "mailboxfull"},
		{yahoo, "MAIL", 421, "", "Max message per connection reached, closing transmission channel", "toomanyconn"},
		{yahoo, "RCPT", 450, "", "User is receiving mail too quickly", "speeding"},
		// iCloud Mail postmaster.
		{icloud, "DATA", 550, "5.7.1", "[CS01] Message rejected due to local policy. Please visit https://support.apple.com/en-us/HT204137", "spamdetected"},
		{icloud, "DATA", 554, "5.7.1", "[HM08] Message rejected due to local policy. Please visit https://support.apple.com/en-us/HT204137", "policyviolation"},
		{icloud, "CONN", 554, "5.7.0", "Blocked - see https://ipcheck.proofpoint.com/?ip=192.0.2.1", "blocked"},
		{icloud, "RCPT", 550, "5.1.1", "<kijitora@icloud.com>: unknown or illegal alias", "userunknown"},
		{icloud, "RCPT", 550, "5.1.1", "<kijitora@icloud.com>: user does not exist", "userunknown"},
		{icloud, "RCPT", 552, "5.2.2", "<kijitora@icloud.com>: user is over quota", "mailboxfull"},
		{icloud, "RCPT", 421, "4.7.1", "Messages to kijitora@icloud.com deferred due to excessive volume. Try again later - https://support.apple.com/en-us/HT204137", "speeding"},
		// Mimecast SMTP Error Codes.
		{mimecast, "RCPT", 550, "", "Invalid Recipient - https://community.mimecast.com/docs/DOC-1369#550", "userunknown"},
		{mimecast, "DATA", 550, "", "Rejected by header based Anti-Spoofing policy: kijitora@example.com", "policyviolation"},
		{mimecast, "RCPT", 550, "", "Envelope blocked - User Entry - https://community.mimecast.com/docs/DOC-1369#550", "rejected"},
		{mimecast, "RCPT", 550, "", "Rejected by header based Blocked Senders - Block policy for Header From", "rejected"},
		{mimecast, "CONN", 554, "", "Host network not allowed - https://community.mimecast.com/docs/DOC-1369#554", "policyviolation"},
		{mimecast, "CONN", 421, "", "Sender address blocked - https://community.mimecast.com/docs/DOC-1369#421", "blocked"},
		{mimecast, "RCPT", 550, "", "Local CT IP Reputation - (reject) https://community.mimecast.com/docs/DOC-1369#550", "badreputation"},
		{mimecast, "MAIL", 550, "", "SPF Sender Invalid - envelope rejected", "authfailure"},
		// Proofpoint.
		{pphosted, "CONN", 554, "5.7.0", "Blocked - see https://ipcheck.proofpoint.com/?ip=192.0.2.1", "blocked"},
		// Comcast/Xfinity.
		{comcast, "CONN", 554, "", "resimta-ch2-01v.sys.comcast.net resimta-ch2-01v.sys.comcast.net 192.0.2.1 found on one or more DNSBLs, see http://postmaster.comcast.net/smtp-error-codes.php#BL000010", "blocked"},
		{comcast, "CONN", 421, "", "resimta-ch2-01v.sys.comcast.net 192.0.2.1 rate limited, see http://postmaster.comcast.net/smtp-error-codes.php#RL000001", "speeding"},
		{comcast, "CONN", 554, "", "ES000010 dynamic/residential IP space, see http://postmaster.comcast.net/smtp-error-codes.php#ES000010", "blocked"},
		{comcast, "CONN", 421, "", "Too many sessions opened", "toomanyconn"},
		// GMX and WEB.DE.
		{gmx, "CONN", 554, "", "gmx.net (mxgmx104) Nemesis ESMTP Service not available No SMTP service IP address is block listed. For explanation visit https://postmaster.gmx.net/en/case?c=r0201", "blocked"},
		{gmx, "MAIL", 550, "", "<kijitora@example.com>: Reject due to SPF policy. The originating IP of the message is not permitted by the domain owner", "authfailure"},
		{webde, "MAIL", 421, "", "Rate limit reached. Please try again later", "speeding"},
		{webde, "RCPT", 550, "", "Requested action not taken: mailbox unavailable", "userunknown"},
		// Barracuda, Cisco Secure Email.
		{barracuda, "RCPT", 550, "5.1.1", "cuda_nsu <kijitora@example.com> Recipient address rejected: User unknown", "userunknown"},
		{barracuda, "CONN", 554, "", "Service unavailable; Client host [192.0.2.1] blocked using Barracuda Reputation; http://www.barracudanetworks.com/reputation/?r=1&ip=192.0.2.1", "blocked"},
		{iphmx, "RCPT", 550, "", "#5.1.0 Address rejected.", "userunknown"},
		{iphmx, "MAIL", 550, "", "#5.7.1 SPF unauthorized mail is prohibited.", "authfailure"},
		// Zoho, Yandex, Mail.ru.
		{zoho, "RCPT", 541, "5.4.1", "Mail rejected by destination domain", "filtered"},
		{zoho, "DATA", 552, "5.7.1", "virus Win.Test.EICAR_HDB-1 detected by Zoho Mail", "virusdetected"},
		{yandex, "DATA", 554, "5.7.1", "Message rejected under suspicion of SPAM; https://ya.cc/1IrBc", "spamdetected"},
		{mailru, "DATA", 550, "", "spam message rejected. Please visit https://help.mail.ru/notspam-support/id", "spamdetected"},
	}
	c := NewClassifier(nil)
	for _, tt := range tests {
		got := c.Classify(Reply{Command: tt.cmd, Code: tt.code, Enhanced: tt.enhanced, Text: tt.text, RemoteMTA: tt.host})
		if got.Reason != tt.reason {
			t.Errorf("%s %s %d %s %q: reason %s, want %s", tt.host, tt.cmd, tt.code, tt.enhanced, tt.text, got.Reason, tt.reason)
		}
	}
}
