package listcheck

import "testing"

func TestSuggest(t *testing.T) {
	tests := []struct{ domain, want string }{
		// the usual typos of the big domains
		{"gmial.com", "gmail.com"},
		{"gmal.com", "gmail.com"},
		{"gamil.com", "gmail.com"},
		{"gmail.co", "gmail.com"},
		{"gmail.con", "gmail.com"},
		{"gmailcom", "gmail.com"},
		{"hotmial.com", "hotmail.com"},
		{"hotmai.co", "hotmail.com"}, // two edits: a long label
		{"hotmail.co.uj", "hotmail.co.uk"},
		{"yaho.com", "yahoo.com"},
		{"yahoo.co", "yahoo.com"},
		{"yhaoo.fr", "yahoo.fr"},
		{"outlok.com", "outlook.com"},
		{"outlook.cm", "outlook.com"},
		{"iclod.com", "icloud.com"},
		{"googlemial.com", "googlemail.com"},
		{"protonmial.com", "protonmail.com"},
		{"comcast.met", "comcast.net"},
		{"t-onlin.de", "t-online.de"},
		{"yandex.r", "yandex.ru"},
		// short labels: an edit after the label, or a doubled letter
		{"aol.co", "aol.com"},
		{"aoll.com", "aol.com"},
		{"qq.cm", "qq.com"},
		{"163.con", "163.com"},
		{"gmx.nte", "gmx.net"},
		{"gmx.ne", "gmx.de"}, // one edit from gmx.de and from gmx.net: the first listed
		{"web.dr", "web.de"},
		// never typos: the big domains themselves, their neighbours, and
		// real domains near short labels
		{"gmail.com", ""},
		{"ymail.com", ""},
		{"mail.com", ""},
		{"email.com", ""},
		{"gmx.at", ""},
		{"live.fr", ""},
		{"mi.com", ""},
		{"263.com", ""},
		{"max.com", ""},
		{"msm.com", ""},
		{"example.com", ""},
		{"gmail.fr", ""}, // three edits
		{"gmal.co", ""},  // two edits of a five-letter label
		{"", ""},
		{"gmäil.com", "gmail.com"}, // an edit is a character, not a byte
	}
	for _, tt := range tests {
		got, ok := Suggest(tt.domain)
		if got != tt.want || ok != (tt.want != "") {
			t.Errorf("Suggest(%q) = %q, %v; want %q", tt.domain, got, ok, tt.want)
		}
	}
}

func TestDistance(t *testing.T) {
	tests := []struct {
		a, b  string
		limit int
		want  int
	}{
		{"", "", 2, 0},
		{"a", "", 2, 1},
		{"ab", "ba", 2, 1},  // transposition
		{"abc", "ca", 5, 3}, // optimal string alignment, not full Damerau
		{"kitten", "sitting", 5, 3},
		{"kitten", "sitting", 2, 3}, // beyond the limit: limit+1
		{"gmail.com", "gmial.com", 2, 1},
		{"abcdef", "abcdef", 1, 0},
		{"abcdef", "ab", 2, 3},
	}
	for _, tt := range tests {
		if got := distance(tt.a, tt.b, tt.limit); got != tt.want {
			t.Errorf("distance(%q, %q, %d) = %d, want %d", tt.a, tt.b, tt.limit, got, tt.want)
		}
	}
}

func TestRole(t *testing.T) {
	for local, want := range map[string]string{
		"postmaster": "postmaster", "Abuse": "abuse", "INFO+news": "info", "no-reply": "no-reply",
		"noreply+x+y": "noreply", "mailer-daemon": "mailer-daemon", "john": "", "info.de": "", "+info": "",
		"john+info": "",
	} {
		if got := Role(local); got != want {
			t.Errorf("Role(%q) = %q, want %q", local, got, want)
		}
	}
}

// Every shipped domain is lower case, listed once, and no typo.
func TestMailboxDomains(t *testing.T) {
	seen := map[string]bool{}
	for _, d := range mailboxDomains {
		if seen[d] {
			t.Errorf("%s listed twice", d)
		}
		seen[d] = true
		if s, ok := Suggest(d); ok {
			t.Errorf("%s is a typo of %s", d, s)
		}
	}
}
