package main

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"drover/configs"
	"drover/queue/shaping"
)

// shippedShaper is the shaping of the embedded default configuration:
// the built-in limits and the shipped providers and rules.
func shippedShaper(t *testing.T) *shaping.Shaper {
	t.Helper()
	cfg, err := configs.Load("")
	if err != nil {
		t.Fatal(err)
	}
	s, err := newShaper(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// The shipped providers (configs/providers/providers.yaml) reach the
// shaper: each provider's MX hosts make one site, with its limits.
func TestShippedProviders(t *testing.T) {
	s := shippedShaper(t)
	tests := []struct {
		mx       []string
		provider string
		site     string
	}{
		{[]string{"gmail-smtp-in.l.google.com", "alt1.gmail-smtp-in.l.google.com"}, "google", "google.com"},
		{[]string{"smtp.google.com"}, "google", "google.com"},
		{[]string{"aspmx2.googlemail.com"}, "google", "google.com"},
		{[]string{"aspmx.l.google.com", "alt1.aspmx.l.google.com", "aspmx2.googlemail.com", "aspmx3.googlemail.com"}, "google", "google.com"},
		{[]string{"aspmx.l.google.com", "mx.backup.example"}, "google", "backup.example+google.com"},
		{[]string{"example-com.mail.protection.outlook.com"}, "microsoft", "outlook.com"},
		{[]string{"hotmail-com.olc.protection.outlook.com"}, "microsoft", "outlook.com"},
		{[]string{"contoso-com.l-v1.mx.microsoft"}, "microsoft", "outlook.com"},
		{[]string{"mta6.am0.yahoodns.net"}, "yahoo", "yahoodns.net"},
		{[]string{"mx-aol.mail.gm0.yahoodns.net"}, "yahoo", "yahoodns.net"},
		{[]string{"mailin-01.mx.aol.com"}, "yahoo", "yahoodns.net"},
		{[]string{"mx01.mail.icloud.com"}, "apple", "icloud.com"},
		{[]string{"mx1a1.comcast.net"}, "comcast", "comcast.net"},
		{[]string{"mx00.gmx.net"}, "gmx", "gmx.net"},
		{[]string{"mx-ha03.web.de"}, "gmx", "gmx.net"},
		{[]string{"mxs.mail.ru"}, "mailru", "mail.ru"},
		{[]string{"mx3.qq.com"}, "qq", "qq.com"},
		{[]string{"mxbiz1.qq.com"}, "qq", "qq.com"},
		{[]string{"163mx01.mxmail.netease.com"}, "netease", "netease.com"},
		{[]string{"mx.yahoo.co.jp"}, "", "yahoo.co.jp"},
		{[]string{"mx.example.com"}, "", "example.com"},
	}
	for _, tt := range tests {
		site := s.Site("x.example", tt.mx)
		_, prov := s.Resolve(site, "", tt.mx)
		if prov != tt.provider || site != tt.site {
			t.Errorf("%q: provider %q site %q, want %q %q", tt.mx, prov, site, tt.provider, tt.site)
		}
	}
	l, _ := s.Resolve("google.com", "", []string{"gmail-smtp-in.l.google.com"})
	if l.TLS != shaping.TLSMTASTS || l.MaxMessagesPerConnection != 100 || l.MaxRecipientsPerMessage != 100 {
		t.Errorf("google limits %+v", l)
	}
	l, _ = s.Resolve("qq.com", "", []string{"mx1.qq.com"})
	if l.MaxMessageRate != (shaping.Rate{Count: 300, Per: time.Minute}) {
		t.Errorf("qq limits %+v", l)
	}
	for _, r := range s.Rules() {
		if r.Action == shaping.ActionBounce {
			t.Errorf("shipped rule %q bounces", r.Name)
		}
	}
}

// The embedded default's shaping.default restates shaping.BuiltinLimits
// (but for tls: mta-sts), so a site no provider matches gets them.
func TestDefaultShapingIsBuiltin(t *testing.T) {
	l, prov := shippedShaper(t).Resolve("x.example", "", []string{"mx.x.example"})
	want := shaping.BuiltinLimits
	want.TLS = shaping.TLSMTASTS
	if l != want || prov != "" {
		t.Errorf("Resolve = %+v, %q; want %+v", l, prov, want)
	}
}

// replies are real-world remote replies, split as the SMTP client reports
// them (code, enhanced code, text without either), with the shipped rule
// that must match ("" for none).
var shippedReplies = []struct {
	code     int
	enhanced string
	text     string
	rule     string
}{
	// Google.
	{421, "4.7.28", "[192.0.2.1] Our system has detected an unusual rate of unsolicited mail originating from your IP address. To protect our users from spam, mail sent from your IP address has been temporarily rate limited. Please visit https://support.google.com/mail/?p=UnsolicitedRateLimitError to review our Bulk Email Senders Guidelines. d75a77b69052e-4b0a1c1si123 - gsmtp", "google-rate-limited"},
	{421, "4.7.0", "[192.0.2.1] Our system has detected an unusual rate of unsolicited mail originating from your IP address. To protect our users from spam, mail sent from your IP address has been temporarily rate limited. Please visit https://support.google.com/mail/?p=UnsolicitedRateLimitError to review our Bulk Email Senders Guidelines. x12si99 - gsmtp", "google-unusual-rate"},
	{550, "5.7.1", "[192.0.2.1] Our system has detected an unusual rate of unsolicited mail originating from your IP address. To protect our users from spam, mail sent from your IP address has been blocked. Please visit https://support.google.com/mail/?p=UnsolicitedIPError to review our Bulk Email Senders Guidelines. - gsmtp", "google-unusual-rate"},
	{450, "4.2.1", "The user you are trying to contact is receiving mail at a rate that prevents additional messages from being delivered. Please resend your message at a later time. If the user is able to receive mail at that time, your message will be delivered. For more information, please visit https://support.google.com/mail/?p=ReceivingRate - gsmtp", ""},
	{550, "5.1.1", "The email account that you tried to reach does not exist. Please try double-checking the recipient's email address for typos or unnecessary spaces. https://support.google.com/mail/?p=NoSuchUser - gsmtp", ""},
	{452, "4.2.2", "The recipient's inbox is out of storage space. Please direct the recipient to https://support.google.com/mail/?p=OverQuotaTemp - gsmtp", ""},
	// Microsoft.
	{451, "4.7.650", "The mail server [192.0.2.1] has been temporarily rate limited due to IP reputation. For e-mail delivery information, see https://aka.ms/postmaster (S775) [Name=Protocol Filter Agent][AGT=PFA][MxId=11BA8F4B9C1D2E3F] [BN1NAM02FT012.eop-nam02.prod.protection.outlook.com]", "microsoft-rate-limited"},
	{451, "4.7.500", "Server busy. Please try again later from [192.0.2.1]. (S77714) [DM3NAM02FT040.eop-nam02.prod.protection.outlook.com]", "microsoft-server-busy"},
	{550, "5.7.1", "Unfortunately, messages from [192.0.2.1] weren't sent. Please contact your Internet service provider since part of their network is on our block list (S3150). You can also refer your provider to http://mail.live.com/mail/troubleshooting.aspx#errors. [AM2PEPF0001C70E.eurprd05.prod.outlook.com]", "microsoft-blocklist"},
	{550, "5.7.1", "Unfortunately, messages from [192.0.2.1] weren't sent. Please contact your Internet service provider since part of their network is on our block list (S3140). You can also refer your provider to http://mail.live.com/mail/troubleshooting.aspx#errors.", "microsoft-blocklist"},
	{550, "5.7.606", "Access denied, banned sending IP [192.0.2.1]. To request removal from this list please visit https://sender.office.com/ and follow the directions.", "microsoft-banned-ip"},
	{550, "5.5.0", "Requested action not taken: mailbox unavailable (S2017062302). [DB5EUR03FT011.eop-EUR03.prod.protection.outlook.com]", ""},
	// Yahoo / AOL.
	{421, "4.7.0", "[TSS04] Messages from 192.0.2.1 temporarily deferred due to unexpected volume or user complaints - 4.16.55.1; see https://postmaster.yahooinc.com/error-codes", "yahoo-deferred"},
	{421, "4.7.0", "[TS01] Messages from 192.0.2.1 temporarily deferred due to user complaints - 4.16.55.1; see http://postmaster.yahoo.com/421-ts01.html", "yahoo-deferred"},
	{421, "4.7.0", "[TSS09] All messages from 192.0.2.1 will be permanently deferred; Retrying will NOT succeed. See https://postmaster.yahooinc.com/error-codes", "yahoo-blocked"},
	{554, "5.7.9", "Message not accepted for policy reasons. [TSS09] All messages from 192.0.2.1 will be permanently deferred; Retrying will NOT succeed. See https://postmaster.yahooinc.com/error-codes", "yahoo-blocked"},
	{421, "4.7.1", "[TS03] All messages from 192.0.2.1 will be permanently deferred; Retrying will NOT succeed. See http://postmaster.yahoo.com/421-ts03.html", "yahoo-blocked"},
	{554, "5.7.9", "Message not accepted for policy reasons.  See https://postmaster.yahooinc.com/error-codes", ""},
	{552, "1", "Requested mail action aborted, mailbox not found", ""},
	// Too many connections.
	{421, "4.7.0", "Too many connections from your IP", "too-many-connections"},
	{421, "", "Too many concurrent SMTP connections from this IP address; please try again later.", "too-many-connections"},
	{421, "4.7.0", "mx.example.net Error: too many connections from 192.0.2.1", "too-many-connections"},
	{421, "4.3.2", "The maximum number of concurrent server connections has exceeded a limit, closing transmission channel", "too-many-connections"},
	{421, "", "Too many sessions opened", "too-many-connections"},
	// Blocklists.
	{554, "5.7.1", "Service unavailable; Client host [192.0.2.1] blocked using zen.spamhaus.org; https://www.spamhaus.org/query/ip/192.0.2.1", "dnsbl-listed"},
	{554, "5.7.1", "Service unavailable; Client host [2001:db8::1] blocked using b.barracudacentral.org; http://www.barracudanetworks.com/reputation/?pr=1&ip=2001:db8::1", "dnsbl-listed"},
	{550, "5.7.1", "192.0.2.1 is listed in sbl.spamhaus.org", "dnsbl-listed"},
	{554, "5.7.1", "Service unavailable; Sender address [news@example.com] blocked using dbl.spamhaus.org; https://www.spamhaus.org/query/domain/example.com", ""},
	// QQ, NetEase.
	{550, "", "Ip frequency limited [http://service.mail.qq.com/cgi-bin/help?subtype=1&&id=20022&&no=1000725]", "qq-frequency-limited"},
	{421, "", "HL:ICC 192.0.2.1 connections exceeded the limit. http://mail.163.com/help/help_spam_16.htm?ip=192.0.2.1&hostid=mx14&time=1700000000", "netease-throttled"},
	{421, "", "HL:IFC 192.0.2.1 sent too much mail in a short time", "netease-throttled"},
	// Generic.
	{421, "4.7.0", "Rate limit exceeded, try again later", "rate-limited"},
	{451, "4.7.1", "You are being throttled. Please try again later.", "rate-limited"},
	{451, "4.7.1", "Greylisted, please try again in 5 minutes", ""},
	{450, "4.2.0", "<bob@example.com>: Recipient address rejected: Too many messages for this recipient", ""},
	{0, "4.4.2", "dial tcp 192.0.2.1:25: connect: connection timed out", ""},
	{0, "", "", ""},
}

func TestShippedRules(t *testing.T) {
	s := shippedShaper(t)
	for _, tt := range shippedReplies {
		got := s.Match(tt.code, tt.enhanced, tt.text)
		if name := ruleName(got); name != tt.rule {
			t.Errorf("Match(%d, %q, %.60q) = %q, want %q", tt.code, tt.enhanced, tt.text, name, tt.rule)
		}
		// The same reply as one line, codes in the text.
		line := tt.text
		if tt.enhanced != "" {
			line = tt.enhanced + " " + line
		}
		if tt.code != 0 {
			line = fmt.Sprintf("%d-%s", tt.code, line)
		}
		if got := s.Match(0, "", line); ruleName(got) != tt.rule {
			t.Errorf("Match(0, \"\", %.70q) = %q, want %q", line, ruleName(got), tt.rule)
		}
	}
}

func ruleName(r *shaping.Rule) string {
	if r == nil {
		return ""
	}
	return r.Name
}

// What queue/shaping and mta/resolve find wrong in a file names its key
// and line, as configs' own errors do; every problem at once, in the order
// of their lines.
func TestConfigErrorsNameKeyAndLine(t *testing.T) {
	cases := []struct {
		name, yaml string
		want       []string
	}{
		{"zero limit", "shaping:\n  default:\n    max_connections: 0\n",
			[]string{"line 3: shaping.default.max_connections: 0 is less than 1"}},
		{"bad rule", "shaping:\n  rules:\n    - {name: x, action: slow, factor: 2, duration: 1m, code: 421}\n",
			[]string{"line 3: shaping.rules[0].factor: 2 is not between 0 and 1"}},
		{"rule without duration", "shaping:\n  rules:\n    - name: x\n      code: 421\n      action: suspend\n",
			[]string{"line 3: shaping.rules[0].duration: required for action suspend"}},
		{"bad tls", "shaping:\n  domains:\n    a.example:\n      tls: maybe\n",
			[]string{`line 4: shaping.domains.a.example.tls: "maybe" is not one of`}},
		{"bad rate", "shaping:\n  sites:\n    google.com:\n      max_message_rate: fast\n",
			[]string{`line 4: shaping.sites.google.com.max_message_rate: rate "fast": want COUNT/PERIOD`}},
		{"bad mx", "shaping:\n  providers:\n    google:\n      mx: [\"*.google.com\", \"mx*.google.com\"]\n",
			[]string{`line 4: shaping.providers.google.mx[1]: "mx*.google.com": only a leading`}},
		{"blank domain", "shaping:\n  domains:\n    \" \": {max_connections: 2}\n",
			[]string{`line 3: shaping.domains[" "]: empty name`}},
		{"bad route", "routes:\n  \"*.test\": \"127.0.0.1:99999\"\n",
			[]string{`line 2: routes.*.test: target "127.0.0.1:99999": port must be 1-65535`}},
		{"all at once", "routes:\n  \"a..test\": h\nshaping:\n  rules:\n    - {name: x, code: 250, action: none}\n  default:\n    max_message_rate: 0/s\n    max_age: -1h\n",
			[]string{
				"line 2: routes.a..test: pattern: not a domain",
				"line 5: shaping.rules[0].code: 250 is not a 4xx or 5xx reply code",
				`line 7: shaping.default.max_message_rate: rate "0/s"`,
				"line 8: shaping.default.max_age: -1h0m0s is not a positive duration",
			}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			cfg, err := configs.Parse([]byte(tc.yaml))
			if err != nil {
				t.Fatalf("configs.Parse: %v", err)
			}
			_, err = buildStatic(cfg)
			if err == nil {
				t.Fatal("no error")
			}
			got := strings.Split(err.Error(), "\n")
			if len(got) != len(tc.want) {
				t.Fatalf("error\n%v\nwant %d lines", err, len(tc.want))
			}
			for i, w := range tc.want {
				if !strings.HasPrefix(got[i], w) {
					t.Errorf("line %d of the error = %q, want it to start with %q", i, got[i], w)
				}
			}
			var ke *configs.KeyError
			if !errors.As(err, &ke) || ke.Line == 0 {
				t.Errorf("error %v carries no *configs.KeyError with a line", err)
			}
		})
	}
}

// A problem in the shipped defaults names the shipped file, its key and
// line.
func TestShippedErrorsNameTheShippedFile(t *testing.T) {
	cfg, err := configs.Parse(nil)
	if err != nil {
		t.Fatal(err)
	}
	shipped, err := configs.LoadShipped()
	if err != nil {
		t.Fatal(err)
	}
	*shipped.Providers["google"].MaxConnections = 0
	shipped.Rules[1].Factor = 3
	sc, problems := shapingConfig(&cfg.Shaping, shipped)
	if len(problems) != 0 {
		t.Fatalf("conversion: %v", problems)
	}
	_, err = shaping.New(sc)
	var found shaping.Errors
	if !errors.As(err, &found) {
		t.Fatalf("shaping.New: %v", err)
	}
	got := keyErrors(cfg, shipped, found).Error()
	for _, want := range []string{
		fmt.Sprintf("%s: line %d: providers.google.max_connections: 0 is less than 1", configs.ShippedFile, shipped.Line("providers.google.max_connections")),
		fmt.Sprintf("%s: line %d: rules[1].factor: 3 is not between 0 and 1", configs.ShippedFile, shipped.Line("rules[1].factor")),
	} {
		if !strings.Contains(got, want) {
			t.Errorf("error\n%s\ndoes not contain %q", got, want)
		}
	}
}
