package bounce

import (
	"strings"
	"testing"
)

func TestVERPRoundTrip(t *testing.T) {
	v := VERP{Key: []byte("0123456789abcdef0123456789abcdef")}
	tests := []struct {
		id     string
		idx    int
		sender string
	}{
		{"0f1e2d3c4b5a69788796a5b4c3d2e1f0", 0, "news"},
		{"01HZX3K9Q2M4N5P6R7S8T9V0W1", 12345, "shop-eu"},
		{"abc", 1, ""},
		{"", 0, "x"},
		{"ÄÖÜ+@weird id", 7, "sender with spaces"},
	}
	for _, tt := range tests {
		addr := v.Encode(tt.id, tt.idx, tt.sender, "bounce.example.org")
		if !strings.HasPrefix(addr, "bounces+") || !strings.HasSuffix(addr, "@bounce.example.org") {
			t.Fatalf("address %q", addr)
		}
		local := addr[:strings.IndexByte(addr, '@')]
		if strings.ToLower(local) != local || strings.ContainsAny(local[len("bounces+"):], "+=/") {
			t.Errorf("token not lowercase base32: %q", local)
		}
		for _, a := range []string{addr, strings.ToUpper(addr), "<" + addr + ">", "Bounce <" + addr + ">"} {
			id, idx, sender, err := v.Decode(a)
			if err != nil || id != tt.id || idx != tt.idx || sender != tt.sender {
				t.Errorf("Decode(%q) = %q %d %q %v, want %q %d %q", a, id, idx, sender, err, tt.id, tt.idx, tt.sender)
			}
		}
	}
}

// TestVERPShort: a 16-byte hex message ID and a short sender fit in
// the 64 octets RFC 5321 allows a local part.
func TestVERPShort(t *testing.T) {
	v := VERP{Key: []byte("k")}
	addr := v.Encode("0f1e2d3c4b5a69788796a5b4c3d2e1f0", 999, "newsletter", "b.example.org")
	if local := addr[:strings.IndexByte(addr, '@')]; len(local) > 64 {
		t.Errorf("local part %d octets: %s", len(local), local)
	}
}

func TestVERPRejects(t *testing.T) {
	v := VERP{Key: []byte("right key")}
	good := v.Encode("0f1e2d3c4b5a6978", 3, "news", "b.example.org")
	local, domain, _ := strings.Cut(good, "@")
	token := local[len("bounces+"):]
	flip := func(s string, i int) string {
		c := byte('a')
		if s[i] == 'a' {
			c = 'b'
		}
		return s[:i] + string(c) + s[i+1:]
	}
	bad := []string{
		"",
		"bounces@b.example.org",
		"bounces+@b.example.org",
		"bounces+0000@b.example.org",
		"other+" + token + "@" + domain,
		"bounces+" + flip(token, 0) + "@" + domain,
		"bounces+" + flip(token, len(token)/2) + "@" + domain,
		"bounces+" + flip(token, len(token)-1) + "@" + domain,
		"bounces+" + token[:len(token)-2] + "@" + domain,
		"bounces+" + token + "x@" + domain,
		"bounces+" + token + "1@" + domain, // not base32
		"bounces+" + strings.Repeat("a", 200) + "@" + domain,
	}
	for _, a := range bad {
		if _, _, _, err := v.Decode(a); err != ErrBadToken {
			t.Errorf("Decode(%q): err %v, want ErrBadToken", a, err)
		}
	}
	if _, _, _, err := (VERP{Key: []byte("wrong key")}).Decode(good); err != ErrBadToken {
		t.Errorf("other key accepted: %v", err)
	}
}
