package shaping

import "time"

// sampleProviders and sampleRules stand in for the shipped defaults
// (configs/providers/providers.yaml, which cmd/drover passes and tests):
// a few of them, written out, fresh on every call.
func sampleProviders() map[string]Provider {
	return map[string]Provider{
		"google": {
			MX:       []string{"*.google.com", "*.googlemail.com"},
			Settings: Settings{MaxConnections: new(20), MaxMessagesPerConnection: new(100), TLS: new(TLSMTASTS)},
		},
		"microsoft": {
			MX:       []string{"*.protection.outlook.com", "*.mx.microsoft"},
			Settings: Settings{MaxConnections: new(20), MaxMessagesPerConnection: new(100)},
		},
		"yahoo": {
			MX:       []string{"*.yahoodns.net", "*.mx.aol.com"},
			Settings: Settings{MaxConnections: new(10), MaxMessagesPerConnection: new(20)},
		},
		"apple": {
			MX:       []string{"*.mail.icloud.com"},
			Settings: Settings{MaxConnections: new(5), MaxMessagesPerConnection: new(50)},
		},
		"qq": {
			MX:       []string{"*.qq.com"},
			Settings: Settings{MaxConnections: new(5), MaxMessageRate: &Rate{300, time.Minute}},
		},
	}
}

func sampleRules() []Rule {
	return []Rule{
		{Name: "google-rate-limited", Status: "4.7.28", Action: ActionSlow, Factor: 0.5, Duration: 30 * time.Minute},
		{Name: "google-unusual-rate", Pattern: `unusual rate of unsolicited mail`, Action: ActionSlow, Factor: 0.5, Duration: 30 * time.Minute},
		{Name: "microsoft-blocklist", Pattern: `\((S3140|S3150)\)`, Action: ActionSuspend, Duration: time.Hour},
		{Name: "yahoo-deferred", Pattern: `\[(TSS04|TS01|TS02)\]`, Action: ActionSlow, Factor: 0.5, Duration: time.Hour},
		{Name: "dnsbl-listed", Pattern: `client host \[[0-9a-f.:]+\] blocked using|\b(zen|sbl|xbl|pbl|sbl-xbl)\.spamhaus\.org\b|spamhaus\.org/query/ip/`, Action: ActionSuspend, Duration: 30 * time.Minute},
		{Name: "too-many-connections", Pattern: `too many (concurrent |simultaneous |parallel |open )?(smtp )?(connections|sessions)|maximum number of (concurrent )?(server )?connections`, Action: ActionSlow, Factor: 0.5, Duration: 10 * time.Minute},
		{Name: "rate-limited", Pattern: `\brate[ -]?limit|\bthrottl|too many (messages|mails|e-?mails) from`, Action: ActionSlow, Factor: 0.5, Duration: 15 * time.Minute},
	}
}

// sampleConfig is a Config with the sample providers and rules as the
// shipped ones.
func sampleConfig() Config {
	return Config{ShippedProviders: sampleProviders(), ShippedRules: sampleRules()}
}
