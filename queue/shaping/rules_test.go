package shaping

import (
	"fmt"
	"strings"
	"testing"
)

// replies are real-world remote replies, split as the SMTP client reports
// them (code, enhanced code, text without either), with the sample rule
// that must match ("" for none). cmd/drover tests the shipped rules on
// many more.
var replies = []struct {
	code     int
	enhanced string
	text     string
	rule     string
}{
	{421, "4.7.28", "[192.0.2.1] Our system has detected an unusual rate of unsolicited mail originating from your IP address. To protect our users from spam, mail sent from your IP address has been temporarily rate limited. Please visit https://support.google.com/mail/?p=UnsolicitedRateLimitError to review our Bulk Email Senders Guidelines. d75a77b69052e-4b0a1c1si123 - gsmtp", "google-rate-limited"},
	{421, "4.7.0", "[192.0.2.1] Our system has detected an unusual rate of unsolicited mail originating from your IP address. To protect our users from spam, mail sent from your IP address has been temporarily rate limited. Please visit https://support.google.com/mail/?p=UnsolicitedRateLimitError to review our Bulk Email Senders Guidelines. x12si99 - gsmtp", "google-unusual-rate"},
	{450, "4.2.1", "The user you are trying to contact is receiving mail at a rate that prevents additional messages from being delivered. Please resend your message at a later time. If the user is able to receive mail at that time, your message will be delivered. For more information, please visit https://support.google.com/mail/?p=ReceivingRate - gsmtp", ""},
	{550, "5.1.1", "The email account that you tried to reach does not exist. Please try double-checking the recipient's email address for typos or unnecessary spaces. https://support.google.com/mail/?p=NoSuchUser - gsmtp", ""},
	{550, "5.7.1", "Unfortunately, messages from [192.0.2.1] weren't sent. Please contact your Internet service provider since part of their network is on our block list (S3150). You can also refer your provider to http://mail.live.com/mail/troubleshooting.aspx#errors. [AM2PEPF0001C70E.eurprd05.prod.outlook.com]", "microsoft-blocklist"},
	{421, "4.7.0", "[TSS04] Messages from 192.0.2.1 temporarily deferred due to unexpected volume or user complaints - 4.16.55.1; see https://postmaster.yahooinc.com/error-codes", "yahoo-deferred"},
	{554, "5.7.9", "Message not accepted for policy reasons.  See https://postmaster.yahooinc.com/error-codes", ""},
	{421, "", "Too many concurrent SMTP connections from this IP address; please try again later.", "too-many-connections"},
	{421, "4.3.2", "The maximum number of concurrent server connections has exceeded a limit, closing transmission channel", "too-many-connections"},
	{554, "5.7.1", "Service unavailable; Client host [192.0.2.1] blocked using zen.spamhaus.org; https://www.spamhaus.org/query/ip/192.0.2.1", "dnsbl-listed"},
	{554, "5.7.1", "Service unavailable; Sender address [news@example.com] blocked using dbl.spamhaus.org; https://www.spamhaus.org/query/domain/example.com", ""},
	{421, "4.7.0", "Rate limit exceeded, try again later", "rate-limited"},
	{451, "4.7.1", "You are being throttled. Please try again later.", "rate-limited"},
	{451, "4.7.1", "Greylisted, please try again in 5 minutes", ""},
	{0, "4.4.2", "dial tcp 192.0.2.1:25: connect: connection timed out", ""},
	{0, "", "", ""},
}

func TestMatchSample(t *testing.T) {
	s, err := New(sampleConfig())
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range replies {
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

func ruleName(r *Rule) string {
	if r == nil {
		return ""
	}
	return r.Name
}

func TestMatchConditions(t *testing.T) {
	cfg := sampleConfig()
	cfg.Rules = []Rule{
		{Name: "exact", Status: "4.7.2", Action: "slow", Factor: 0.5, Duration: 1},
		{Name: "prefix", Status: "4.3.", Code: 451, Action: "suspend", Duration: 1},
		{Name: "class", Status: "5", Pattern: `^mailbox full$`, Action: "bounce"},
		{Name: "code-and-text", Code: 452, Pattern: `over QUOTA`, Action: "bounce"},
		{Name: "exception", Code: 421, Pattern: `maintenance`, Action: "none"},
	}
	s, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		code     int
		enhanced string
		text     string
		want     string
	}{
		{450, "4.7.2", "x", "exact"},
		{450, "4.7.28", "x", "google-rate-limited"}, // "exact" (4.7.2) does not match 4.7.28
		{451, "4.3.0", "x", "prefix"},
		{451, "4.3.12", "x", "prefix"},
		{421, "4.3.0", "x", ""}, // code must match too
		{451, "4.30.0", "x", ""},
		{552, "5.2.2", "Mailbox FULL", "class"},
		{552, "5.2.2", "the mailbox full thing", ""},
		{452, "", "user is over quota", "code-and-text"},
		{421, "4.7.0", "down for maintenance; too many connections", ""}, // exception beats the shipped rule
		{421, "4.7.0", "too many connections", "too-many-connections"},
	}
	for _, tt := range tests {
		if got := ruleName(s.Match(tt.code, tt.enhanced, tt.text)); got != tt.want {
			t.Errorf("Match(%d, %q, %q) = %q, want %q", tt.code, tt.enhanced, tt.text, got, tt.want)
		}
	}
}

func TestLeadingCodes(t *testing.T) {
	tests := []struct {
		in        string
		code      int
		enh, rest string
	}{
		{"421-4.7.28 [1.2.3.4] text", 421, "4.7.28", "[1.2.3.4] text"},
		{"421 4.7.0 text", 421, "4.7.0", "text"},
		{"421 text", 421, "", "text"},
		{"5.1.1 no such user", 0, "5.1.1", "no such user"},
		{"550", 550, "", ""},
		{"550 5.1.1", 550, "5.1.1", ""},
		{"4.7.1234 x", 0, "", "4.7.1234 x"},
		{"4.7 x", 0, "", "4.7 x"},
		{"1234 x", 0, "", "1234 x"},
		{"dial tcp", 0, "", "dial tcp"},
		{"", 0, "", ""},
	}
	for _, tt := range tests {
		code, enh, rest := leadingCodes(tt.in)
		if code != tt.code || enh != tt.enh || rest != tt.rest {
			t.Errorf("leadingCodes(%q) = %d %q %q, want %d %q %q", tt.in, code, enh, rest, tt.code, tt.enh, tt.rest)
		}
	}
}

func TestMatchAllocs(t *testing.T) {
	if raceEnabled {
		t.Skip("the race detector makes sync.Pool (used by regexp) drop items")
	}
	s, err := New(sampleConfig())
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range replies {
		if n := testing.AllocsPerRun(10, func() { s.Match(tt.code, tt.enhanced, tt.text) }); n != 0 {
			t.Errorf("Match(%.40q) allocates %v times", tt.text, n)
		}
	}
}

// BenchmarkMatch measures Match over the sample rules on the sample
// replies: matching early, late and not at all.
func BenchmarkMatch(b *testing.B) {
	s, err := New(sampleConfig())
	if err != nil {
		b.Fatal(err)
	}
	for _, c := range []struct{ name, text string }{
		{"first", "[192.0.2.1] Our system has detected an unusual rate"},
		{"last", "Rate limit exceeded"},
		{"none", "The user you are trying to contact is receiving mail at a rate"},
	} {
		var r = replies[0]
		for _, x := range replies {
			if strings.HasPrefix(x.text, c.text) {
				r = x
				break
			}
		}
		b.Run(c.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				s.Match(r.code, r.enhanced, r.text)
			}
		})
	}
	b.Run("all", func(b *testing.B) {
		for b.Loop() {
			for _, r := range replies {
				s.Match(r.code, r.enhanced, r.text)
			}
		}
	})
}
