package bounce

import (
	"strings"
	"testing"
)

// commandFor is the SMTP command a reply of each reason typically
// answers, so that the guards of holds let the phrase speak.
var commandFor = map[string]string{
	"spamdetected": "DATA", "virusdetected": "DATA", "contenterror": "DATA",
	"filtered": "DATA", "mesgtoobig": "DATA", "notcompliantrfc": "DATA",
	"policyviolation": "DATA", "rejected": "MAIL", "blocked": "CONN",
}

// TestEveryPhraseIsReachable replays every phrase of rules.yaml as a
// synchronous reply and checks that it gives its reason: a phrase that
// another reason's phrase shadows is a dead rule.
func TestEveryPhraseIsReachable(t *testing.T) {
	c := NewClassifier(nil)
	for i, name := range c.rs.names {
		if name == "vacation" {
			continue
		}
		cmd := commandFor[name]
		if cmd == "" {
			cmd = "RCPT"
		}
		for _, p := range c.rs.phrasesOf[i] {
			text := "550 " + strings.Join(p.frags, " x ")
			if got := c.Classify(Reply{Command: cmd, Code: 550, Text: text}); got.Reason != name {
				t.Errorf("%s reply %q: reason %s, want %s", cmd, text, got.Reason, name)
			}
		}
	}
}

// TestLastResortIsReachable replays every "lastresort" phrase as the text
// of a failure without a status code: each must give its reason.
func TestLastResortIsReachable(t *testing.T) {
	c := NewClassifier(nil)
	for _, l := range c.rs.last {
		for _, p := range l.phrases {
			text := strings.Join(p.frags, " x ")
			got := c.Classify(Reply{Command: "RSET", Text: text})
			if got.Reason != l.Reason {
				t.Errorf("text %q: reason %s, want %s", text, got.Reason, l.Reason)
			}
		}
	}
}

// TestStatusCodes checks that a bare enhanced status code gives the
// reason rules.yaml maps it to.
func TestStatusCodes(t *testing.T) {
	c := NewClassifier(nil)
	for code, want := range c.rs.status {
		full := code
		if strings.Count(code, ".") == 1 {
			full = "5." + code
		}
		cmd := commandFor[want]
		if cmd == "" {
			cmd = "RCPT"
		}
		got := c.Classify(Reply{Command: cmd, Code: 550, Enhanced: full, Text: "550 " + full + " go away please"})
		if got.Reason != want && !(want == "blocked" || got.Reason == "blocked") {
			t.Errorf("status %s: reason %s, want %s", full, got.Reason, want)
		}
		if got.Status != full {
			t.Errorf("status %s: got status %s", full, got.Status)
		}
	}
}

// TestProviderRules replays every provider rule as a reply from one of
// the provider's hosts.
func TestProviderRules(t *testing.T) {
	c := NewClassifier(nil)
	for _, p := range c.rs.providers {
		for _, r := range p.Rules {
			text := "550 " + strings.Join(r.phrase.frags, " x ")
			status := r.Status
			if len(status) < 5 {
				status += strings.Repeat(".0", (5-len(status))/2)
			}
			got := c.Classify(Reply{Command: "RCPT", Code: 550, Enhanced: status, Text: text,
				RemoteMTA: "mx1." + p.Hosts[0], Recipient: "user@example.org"})
			if got.Reason != r.Reason {
				t.Errorf("provider %s: %q (status %s): reason %s, want %s", p.Name, text, status, got.Reason, r.Reason)
			}
		}
	}
}

// TestReplies covers the synchronous replies a bulk sender sees most,
// one or more per reason.
func TestReplies(t *testing.T) {
	tests := []struct {
		cmd      string
		code     int
		enhanced string
		text     string
		reason   string
		class    string
		status   string
	}{
		{"RCPT", 550, "5.1.1", "<user@example.org>: Recipient address rejected: User unknown in virtual mailbox table", "userunknown", "hard", "5.1.1"},
		{"RCPT", 550, "", "5.1.1 The email account that you tried to reach does not exist.", "userunknown", "hard", "5.1.1"},
		{"RCPT", 550, "", "No such user here", "userunknown", "hard", "5.0.911"},
		{"RCPT", 450, "4.1.1", "<user@example.org>: Recipient address rejected: unverified address", "userunknown", "hard", "4.1.1"},
		{"DATA", 550, "", "User unknown", "filtered", "soft", "5.0.910"},
		{"RCPT", 550, "5.1.2", "Host unknown", "hostunknown", "hard", "5.1.2"},
		{"RCPT", 551, "5.1.6", "User has moved; please try <new@example.org>", "hasmoved", "hard", "5.1.6"},
		{"RCPT", 552, "5.2.2", "Mailbox full", "mailboxfull", "soft", "5.2.2"},
		{"RCPT", 452, "4.2.2", "The email account that you tried to reach is over quota.", "mailboxfull", "soft", "4.2.2"},
		{"RCPT", 550, "5.2.1", "The email account that you tried to reach is disabled.", "suspend", "soft", "5.2.1"},
		{"RCPT", 525, "5.7.13", "Disabled recipient address", "suspend", "soft", "5.7.13"},
		{"MAIL", 553, "5.1.8", "Sender address rejected: Domain not found", "rejected", "soft", "5.1.8"},
		{"MAIL", 550, "", "Sender verify failed", "rejected", "soft", "5.0.918"},
		{"MAIL", 553, "5.1.0", "<app@example.com>: address does not exist", "rejected", "soft", "5.1.0"},
		{"MAIL", 550, "5.1.2", "Domain example.com does not exist", "rejected", "soft", "5.1.2"},
		{"CONN", 554, "", "mx.example.org ESMTP not accepting connections", "blocked", "soft", "5.0.971"},
		{"RCPT", 554, "5.7.1", "Service unavailable; Client host [192.0.2.1] blocked using zen.spamhaus.org", "blocked", "soft", "5.7.1"},
		{"MAIL", 421, "4.7.0", "[TSS04] Messages from 192.0.2.1 temporarily deferred due to unexpected volume or user complaints", "badreputation", "soft", "4.7.0"},
		{"DATA", 550, "5.7.25", "The IP address sending this message does not have a PTR record setup", "requireptr", "soft", "5.7.25"},
		{"DATA", 550, "5.7.26", "Unauthenticated email from example.org is not accepted due to domain's DMARC policy", "authfailure", "soft", "5.7.26"},
		{"DATA", 550, "5.7.1", "Message content rejected, UBE, id=12345", "spamdetected", "soft", "5.7.1"},
		{"DATA", 554, "5.7.1", "Message was infected with a virus: Eicar-Test-Signature", "virusdetected", "soft", "5.7.1"},
		{"DATA", 550, "5.6.0", "Improper use of 8-bit data in message header", "contenterror", "soft", "5.6.0"},
		{"DATA", 554, "5.6.0", "Message rejected as spam by Content Filtering", "spamdetected", "soft", "5.6.0"},
		{"DATA", 550, "5.7.1", "This message is not RFC 5322 compliant", "notcompliantrfc", "soft", "5.7.1"},
		{"DATA", 554, "5.7.1", "Email not accepted for policy reasons", "policyviolation", "soft", "5.7.1"},
		{"MAIL", 530, "5.7.0", "Authentication required", "securityerror", "soft", "5.7.0"},
		{"STARTTLS", 454, "4.7.0", "TLS not available due to local problem", "securityerror", "soft", "4.7.0"},
		{"DATA", 552, "5.3.4", "Message size exceeds fixed limit", "mesgtoobig", "soft", "5.3.4"},
		{"RCPT", 452, "4.5.3", "Too many recipients", "exceedlimit", "soft", "4.5.3"},
		{"CONN", 421, "4.7.0", "Too many concurrent SMTP connections; please try again later", "toomanyconn", "soft", "4.7.0"},
		{"MAIL", 450, "4.2.1", "The user you are trying to contact is receiving mail at a rate that prevents additional messages from being delivered", "speeding", "soft", "4.2.1"},
		{"RCPT", 554, "5.7.1", "<user@example.org>: Relay access denied", "norelaying", "soft", "5.7.1"},
		{"RCPT", 556, "5.1.10", "Recipient address has null MX", "notaccept", "hard", "5.1.10"},
		{"DATA", 550, "5.1.10", "RESOLVER.ADR.RecipientNotFound; Recipient not found by SMTP address lookup", "userunknown", "hard", "5.1.10"},
		{"RCPT", 550, "5.7.1", "<app@example.com>: Sender address rejected: Access denied", "rejected", "soft", "5.7.1"},
		{"RCPT", 550, "5.7.1", "Envelope sender is not allowed here", "rejected", "soft", "5.7.1"},
		{"", 0, "", "lost connection with mx.example.org while sending RCPT TO", "networkerror", "soft", "5.0.944"},
		{"", 0, "", "retry time exceeded", "expired", "soft", "5.0.947"},
		{"EHLO", 501, "5.5.2", "Syntax error in parameters or arguments", "syntaxerror", "soft", "5.5.2"},
		{"DATA", 451, "4.3.0", "Local configuration error", "systemerror", "soft", "4.3.0"},
		{"DATA", 452, "4.3.1", "Insufficient system storage", "systemfull", "soft", "4.3.1"},
		{"RCPT", 451, "", "Mail forwarding loop for user@example.org", "networkerror", "soft", "4.0.944"},
		{"DATA", 554, "", "Message expired after sitting in queue for 5 days", "expired", "soft", "5.0.947"},
		// Google's SMTP error reference and Microsoft's Exchange Online NDR
		// reference, in their words.
		{"DATA", 550, "5.7.1", "This message does not have authentication information or fails to pass authentication checks. To best protect our users from spam, the message has been blocked.", "authfailure", "soft", "5.7.1"},
		{"DATA", 550, "5.7.1", "Our system has detected that this message does not meet IPv6 sending guidelines regarding PTR records and authentication.", "requireptr", "soft", "5.7.1"},
		{"DATA", 550, "5.7.1", "Access denied, the sending IPv6 address [2001:db8::1] must have a reverse DNS record", "requireptr", "soft", "5.7.1"},
		{"RCPT", 550, "", "Bad destination mailbox address", "userunknown", "hard", "5.0.911"},
		{"MAIL", 530, "", "Must issue a STARTTLS command first.", "securityerror", "soft", "5.0.970"},
		{"MAIL", 530, "5.7.57", "Client was not authenticated to send anonymous mail during MAIL FROM", "securityerror", "soft", "5.7.57"},
		{"RCPT", 450, "4.2.1", "The user you are trying to contact is receiving mail too quickly. Please resend your message at a later time.", "speeding", "soft", "4.2.1"},
		{"DATA", 550, "5.2.121", "Recipient's per hour message receive limit from specific sender exceeded", "speeding", "soft", "5.2.121"},
		{"CONN", 421, "", "The maximum number of concurrent connections per resource forest has exceeded a limit, closing transmission channel", "toomanyconn", "soft", "4.0.925"},
		{"DATA", 554, "", "Mail message is malformed. Not accepted.", "contenterror", "soft", "5.0.960"},
		{"RCPT", 250, "2.1.5", "Ok", "delivered", "", "2.1.5"},
		{"DATA", 250, "", "Ok: queued as 12345", "delivered", "", "2.0.0"},
		{"RCPT", 550, "", "", "undefined", "soft", "5.0.900"},
		{"RCPT", 550, "", "computer says no", "onhold", "soft", "5.0.901"},
		{"MAIL", 550, "", "computer says no", "rejected", "soft", "5.0.918"},
	}
	c := NewClassifier(nil)
	for _, tt := range tests {
		got := c.Classify(Reply{Command: tt.cmd, Code: tt.code, Enhanced: tt.enhanced, Text: tt.text})
		if got.Reason != tt.reason || got.Class != tt.class || got.Status != tt.status {
			t.Errorf("%s %d %s %q: got %s/%s/%s, want %s/%s/%s", tt.cmd, tt.code, tt.enhanced, tt.text,
				got.Reason, got.Class, got.Status, tt.reason, tt.class, tt.status)
		}
		if got.Reason != "delivered" && got.Category == "" {
			t.Errorf("%q: no category", tt.text)
		}
	}
}

// TestNoCommandIsRCPT: a reply without its command is read as the
// answer to RCPT TO.
func TestNoCommandIsRCPT(t *testing.T) {
	got := NewClassifier(nil).Classify(Reply{Code: 550, Text: "User unknown"})
	if got.Reason != "userunknown" || got.Command != "RCPT" || got.ReplyCode != "550" {
		t.Fatalf("got %+v", got)
	}
}

// TestProviderByHost: a provider's rules apply to its MX hosts and its
// recipients' domain.
func TestProviderByHost(t *testing.T) {
	text := "550 : User unknown"
	c := NewClassifier(nil)
	if got := c.Classify(Reply{Code: 550, Text: text, Recipient: "x@ezweb.ne.jp"}); got.Reason != "filtered" {
		t.Errorf("au recipient: %s, want filtered", got.Reason)
	}
	if got := c.Classify(Reply{Code: 550, Text: text, RemoteMTA: "lsean.ezweb.ne.jp"}); got.Reason != "filtered" {
		t.Errorf("au host: %s, want filtered", got.Reason)
	}
	if got := c.Classify(Reply{Code: 550, Text: text, RemoteMTA: "mx.example.org", Recipient: "x@example.org"}); got.Reason != "userunknown" {
		t.Errorf("other host: %s, want userunknown", got.Reason)
	}
}

// TestAdminRules: rules from the config come first, are checked, and
// limited by status and host.
func TestAdminRules(t *testing.T) {
	if err := CheckRules([]Rule{{Pattern: "(", Reason: "blocked"}}); err == nil {
		t.Error("bad pattern accepted")
	}
	if err := CheckRules([]Rule{{Pattern: "x", Reason: "nonsense"}}); err == nil {
		t.Error("unknown reason accepted")
	}
	c := NewClassifier([]Rule{
		{Pattern: `our custom wording \d+`, Reason: "mailboxfull"},
		{Pattern: `user unknown`, Status: "5.1.", Host: "example.net", Reason: "suspend"},
		{Pattern: "(", Reason: "blocked"}, // invalid: left out
	})
	if got := c.Classify(Reply{Code: 550, Enhanced: "5.1.1", Text: "our custom wording 42, user unknown"}); got.Reason != "mailboxfull" {
		t.Errorf("custom rule: %s", got.Reason)
	}
	if got := c.Classify(Reply{Code: 550, Enhanced: "5.1.1", Text: "User unknown", RemoteMTA: "mx.example.net"}); got.Reason != "suspend" {
		t.Errorf("host rule: %s", got.Reason)
	}
	if got := c.Classify(Reply{Code: 550, Enhanced: "5.1.1", Text: "User unknown", RemoteMTA: "mx.example.com"}); got.Reason != "userunknown" {
		t.Errorf("host rule applied elsewhere: %s", got.Reason)
	}
	if got := c.Classify(Reply{Code: 450, Enhanced: "4.2.0", Text: "User unknown", RemoteMTA: "mx.example.net"}); got.Reason == "suspend" {
		t.Errorf("status prefix ignored: %s", got.Reason)
	}
}

// TestHardBounceRule is the README's rule.
func TestHardBounceRule(t *testing.T) {
	for _, r := range Reasons {
		want := r == "userunknown" || r == "hostunknown" || r == "hasmoved" || r == "notaccept"
		if got := hardBounce(r, false); got != want {
			t.Errorf("%s permanent: hard=%v", r, got)
		}
	}
	if hardBounce("notaccept", true) {
		t.Error("temporary notaccept is hard")
	}
	if !hardBounce("userunknown", true) {
		t.Error("temporary userunknown is soft")
	}
}

func TestFindStatus(t *testing.T) {
	tests := map[string]string{
		"550 5.1.1 <a@example.org>... User unknown":                 "5.1.1",
		"host 192.0.2.153 said 550 5.2.2 full":                      "5.2.2",
		"5.1.0 - Unknown address error 550-'5.7.1 <x@y.z>... no":    "5.7.1",
		"sorry (#5.1.1 - chkusr)":                                   "5.1.1",
		"451 4.7.650 The mail server [192.0.2.25] has been limited": "4.7.650",
		"Exim 4.72 at 10.4.5.6 said nothing":                        "",
		"version 5.2.3.4":                                           "",
		"":                                                          "",
	}
	for in, want := range tests {
		if got := findStatus(in); got != want {
			t.Errorf("findStatus(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestMatchTextJoinsMultilineReplies(t *testing.T) {
	got := matchText("550-5.7.1 Messages with multiple\n550-5.7.1 addresses in From: header\n550 5.7.1 are not accepted.")
	if !strings.Contains(got, "messages with multiple addresses in from: header are not accepted") {
		t.Errorf("got %q", got)
	}
	got = matchText("550 5.1.351 Remote server returned unknown recipient -> 550 : User unknown")
	if !strings.Contains(got, "-> 550 : user unknown") {
		t.Errorf("inner reply lost: %q", got)
	}
}

// powerMTACategories are the 17 bounce categories of PowerMTA.
var powerMTACategories = []string{"bad-mailbox", "bad-domain", "inactive-mailbox", "quota-issues",
	"spam-related", "policy-related", "message-expired", "content-related", "protocol-errors",
	"relaying-issues", "routing-errors", "no-answer-from-host", "bad-connection", "invalid-sender",
	"bad-configuration", "virus-related", "other"}

// TestCategories: every category is a PowerMTA name, and every name is
// used.
func TestCategories(t *testing.T) {
	c := NewClassifier(nil)
	valid := map[string]bool{}
	for _, n := range powerMTACategories {
		valid[n] = true
	}
	used := map[string]bool{"other": true}
	for r, cat := range c.rs.category {
		if !valid[cat] {
			t.Errorf("reason %s: category %q is no PowerMTA category", r, cat)
		}
		used[cat] = true
	}
	for _, cr := range c.rs.catRules {
		if !valid[cr.Category] {
			t.Errorf("category rule %q: %q is no PowerMTA category", cr.Phrase, cr.Category)
		}
		used[cr.Category] = true
	}
	for _, n := range powerMTACategories {
		if !used[n] {
			t.Errorf("PowerMTA category %s is never given", n)
		}
	}
	if got := NewClassifier(nil).Classify(Reply{Command: "CONN", Code: 421, Enhanced: "4.4.2", Text: "connect to mx.example.org[192.0.2.1]:25: Connection timed out"}); got.Category != "no-answer-from-host" {
		t.Errorf("timeout: category %s (%s)", got.Category, got.Reason)
	}
}

// A connection that failed before any reply is a network error, however
// its text reads and although the status table reads X.4.1 in a returned
// bounce as an expiry; a permanent DNS answer stays what it says.
func TestLocalConnectionFailures(t *testing.T) {
	c := NewClassifier(nil)
	for _, tt := range []struct {
		reply  Reply
		reason string
	}{
		{Reply{Command: "CONN", Enhanced: "4.4.1", Text: "smtpclient: connect: dial tcp 192.0.2.1:25: connect: connection refused"}, "networkerror"},
		{Reply{Command: "CONN", Enhanced: "4.4.1", Text: "dial tcp 192.0.2.1:25: i/o timeout"}, "networkerror"},
		{Reply{Command: "CONN", Enhanced: "4.4.2", Text: "smtpclient: greeting: EOF"}, "networkerror"},
		{Reply{Command: "CONN", Enhanced: "4.4.3", Text: "lookup mx.example.net: server misbehaving"}, "networkerror"},
		{Reply{Command: "CONN", Enhanced: "4.4.4", Text: "no address for mx.example.net"}, "networkerror"},
		{Reply{Command: "CONN", Enhanced: "5.1.2", Text: "no such domain"}, "hostunknown"},
	} {
		if got := c.Classify(tt.reply); got.Reason != tt.reason || got.Class != "soft" && tt.reason != "hostunknown" {
			t.Errorf("%+v: %s/%s, want %s/soft", tt.reply, got.Reason, got.Class, tt.reason)
		}
	}
}

// TestProviderReferences replays replies of Google's SMTP error reference
// (support.google.com/a/answer/3726730), Microsoft's Exchange Online NDR
// reference and Outlook.com's postmaster codes from the provider's hosts,
// in the references' words.
func TestProviderReferences(t *testing.T) {
	const google, microsoft = "mx.google.com", "example-com.mail.protection.outlook.com"
	tests := []struct {
		cmd      string
		code     int
		enhanced string
		text     string
		host     string
		reason   string
	}{
		{"RCPT", 553, "5.1.2", "We weren't able to find the recipient domain. Please check for any spelling errors.", google, "hostunknown"},
		{"MAIL", 450, "4.2.1", "Peak SMTP relay limit exceeded for customer. This is a temporary error.", google, "speeding"},
		{"RCPT", 452, "4.5.3", "Domain policy size per transaction exceeded, please try this recipient in a separate transaction.", google, "exceedlimit"},
		{"RCPT", 421, "4.7.0", "TLS required for RCPT domain, closing connection.", google, "securityerror"},
		{"DATA", 550, "5.7.26", "Your email has been blocked because the sender is unauthenticated. Gmail requires all senders to authenticate with either SPF or DKIM.", google, "authfailure"},
		{"DATA", 421, "4.7.30", "Your email has been rate limited because DKIM authentication didn't pass for this message.", google, "authfailure"},
		{"DATA", 421, "4.7.0", "Gmail has detected that this message is suspicious due to the nature of the content and/or the links within.", google, "spamdetected"},
		{"DATA", 550, "5.7.1", "The user or domain that you are sending to (or from) has a policy that prohibited the mail that you sent.", google, "policyviolation"},
		{"DATA", 550, "5.7.1", "This message violates example.com email policy. - gcdp <sessionid> - gsmtp", google, "policyviolation"},
		{"MAIL", 550, "5.7.0", "Mail relay denied.", google, "norelaying"},
		{"RCPT", 550, "5.7.606", "Access denied, banned sending IP [192.0.2.1]. To request removal from this list please visit https://sender.office.com/", microsoft, "blocked"},
		{"RCPT", 550, "5.7.645", "Access denied, banned sending IP [192.0.2.1].", microsoft, "blocked"},
		{"RCPT", 550, "5.7.64", "TenantAttribution; Relay Access Denied", microsoft, "norelaying"},
		{"MAIL", 550, "5.7.511", "Access denied, banned sender[192.0.2.1]. To delist the address, email delist@microsoft.com", microsoft, "blocked"},
		{"MAIL", 550, "5.7.502", "Access denied, banned sender", microsoft, "rejected"},
		{"MAIL", 550, "5.7.705", "Access denied, tenant has exceeded threshold", microsoft, "rejected"},
		{"RCPT", 550, "5.7.133", "RESOLVER.RST.SenderNotAuthenticatedForGroup; Sender not authenticated for group", microsoft, "filtered"},
		{"RCPT", 550, "5.7.124", "Sender not in allowed-senders list", microsoft, "filtered"},
		{"MAIL", 451, "4.7.500", "Server busy. Please try again later from [192.0.2.1]. (AS843)", microsoft, "speeding"},
		{"MAIL", 451, "4.7.650", "The mail server [192.0.2.1] has been temporarily rate limited due to IP reputation.", microsoft, "badreputation"},
		{"RCPT", 550, "5.2.122", "Recipient's per hour message receive limit exceeded", microsoft, "speeding"},
		{"RCPT", 550, "5.2.2", "Submission quota exceeded", microsoft, "speeding"},
		{"", 451, "4.7.321", "starttls-not-supported: Destination mail server must support TLS to receive mail.", microsoft, "failedstarttls"},
		{"CONN", 550, "", "SC-001 (BAY0-MC1-F23) Unfortunately, messages from 192.0.2.1 weren't sent. You can tell them that Hotmail does not relay dynamically-assigned IP ranges.", microsoft, "blocked"},
		{"MAIL", 421, "", "RP-001 (BAY0-MC1-F23) Unfortunately, some messages from 192.0.2.1 weren't sent. We have limits for how many messages can be sent per hour and per day.", microsoft, "speeding"},
	}
	c := NewClassifier(nil)
	for _, tt := range tests {
		got := c.Classify(Reply{Command: tt.cmd, Code: tt.code, Enhanced: tt.enhanced, Text: tt.text, RemoteMTA: tt.host})
		if got.Reason != tt.reason {
			t.Errorf("%s %d %s %q from %s: reason %s, want %s", tt.cmd, tt.code, tt.enhanced, tt.text, tt.host, got.Reason, tt.reason)
		}
	}
}
