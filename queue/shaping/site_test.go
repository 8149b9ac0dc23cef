package shaping

import "testing"

// Without providers, Site names a site after the registrable domains of
// its MX hosts.
func TestSiteNames(t *testing.T) {
	s, err := New(Config{})
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		mx   []string
		want string
	}{
		{[]string{"gmail-smtp-in.l.google.com", "alt1.gmail-smtp-in.l.google.com", "alt4.gmail-smtp-in.l.google.com"}, "google.com"},
		{[]string{"aspmx.l.google.com", "alt1.aspmx.l.google.com", "aspmx2.googlemail.com"}, "google.com+googlemail.com"},
		{[]string{"example-com.mail.protection.outlook.com"}, "outlook.com"},
		{[]string{"hotmail-com.olc.protection.outlook.com."}, "outlook.com"},
		{[]string{"mta5.am0.yahoodns.net", "mta6.am0.yahoodns.net", "mta7.am0.yahoodns.net"}, "yahoodns.net"},
		{[]string{"mx-aol.mail.gm0.yahoodns.net"}, "yahoodns.net"},
		{[]string{"mx01.mail.icloud.com", "mx02.mail.icloud.com"}, "icloud.com"},
		{[]string{"mx1.a.example", "mx2.b.example"}, "a.example+b.example"},
		{[]string{"MX2.B.Example.", "mx1.a.example"}, "a.example+b.example"},
		{[]string{"mx.example.co.uk", "mx2.example.co.uk"}, "example.co.uk"},
		{[]string{"mx1.example.com.br"}, "example.com.br"},
		{[]string{"mx.example.ne.jp"}, "example.ne.jp"},
		{[]string{"163mx01.mxmail.netease.com", "163mx02.mxmail.netease.com"}, "netease.com"},
		{[]string{"contoso-com.l-v1.mx.microsoft"}, "mx.microsoft"},
		{[]string{"example.com"}, "example.com"}, // implicit MX
		{[]string{"192.0.2.1"}, "192.0.2.1"},
		{[]string{"localhost"}, "localhost"},
		{[]string{"", " "}, "d.example"}, // no MX hosts: the domain
		{nil, "d.example"},
	}
	for _, tt := range tests {
		if got := s.Site("D.example.", tt.mx); got != tt.want {
			t.Errorf("Site(%q) = %q, want %q", tt.mx, got, tt.want)
		}
	}
}

func TestRouteSite(t *testing.T) {
	if got := RouteSite("127.0.0.1:2526"); got != "route:127.0.0.1:2526" {
		t.Errorf("RouteSite = %q", got)
	}
	if got := RouteSite(" Relay.Example:25 "); got != "route:relay.example:25" {
		t.Errorf("RouteSite = %q", got)
	}
}
