package dkim

import (
	"crypto/ed25519"
	"crypto/rsa"
	"strings"
	"testing"
)

func TestGenerateKey(t *testing.T) {
	tests := []struct {
		algo    string
		bits    int
		wantTXT string
	}{
		{"rsa", 0, "v=DKIM1; k=rsa; p=MIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEA"}, // 2048-bit SubjectPublicKeyInfo
		{"ed25519", 0, "v=DKIM1; k=ed25519; p="},
	}
	for _, tt := range tests {
		t.Run(tt.algo, func(t *testing.T) {
			pemBytes, txt, err := GenerateKey(tt.algo, tt.bits)
			if err != nil {
				t.Fatal(err)
			}
			if !strings.HasPrefix(string(pemBytes), "-----BEGIN PRIVATE KEY-----\n") {
				t.Errorf("key is not PKCS#8 PEM:\n%s", pemBytes)
			}
			if !strings.HasPrefix(txt, tt.wantTXT) {
				t.Errorf("TXT record %q does not start with %q", txt, tt.wantTXT)
			}
			key, err := parseKey("example.com", "gen", "", pemBytes)
			if err != nil {
				t.Fatal(err)
			}
			switch pub := key.Signer.Public().(type) {
			case *rsa.PublicKey:
				if pub.N.BitLen() != 2048 {
					t.Errorf("RSA key has %d bits, want 2048", pub.N.BitLen())
				}
			case ed25519.PublicKey:
			default:
				t.Fatalf("key type %T", pub)
			}
			// The printed record is the one that verifies the key's signatures.
			records := map[string]string{"gen._domainkey.example.com": txt}
			msg := signed(t, newTestSigner(t, key), "example.com", readMessage(t, "marketing.eml"))
			if vs := verify(t, records, msg); len(vs) != 1 || vs[0].Err != nil {
				t.Fatalf("generated key does not verify through its TXT record: %+v", vs[0])
			}
		})
	}
}

func TestGenerateKeyErrors(t *testing.T) {
	tests := []struct {
		algo    string
		bits    int
		wantErr string
	}{
		{"rsa", 1024, "RSA keys are 2048 to 4096 bits, not 1024"},
		{"rsa", 8192, "RSA keys are 2048 to 4096 bits, not 8192"},
		{"ed25519", 256, "Ed25519 keys have a fixed size; got bits=256"},
		{"ecdsa", 0, `unknown key algorithm "ecdsa"; want rsa or ed25519`},
		{"RSA", 2048, `unknown key algorithm "RSA"`},
	}
	for _, tt := range tests {
		_, _, err := GenerateKey(tt.algo, tt.bits)
		if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
			t.Errorf("GenerateKey(%q, %d): got error %v, want one containing %q", tt.algo, tt.bits, err, tt.wantErr)
		}
	}
}

func TestZoneRecord(t *testing.T) {
	ed := "v=DKIM1; k=ed25519; p=11qYAYKxCrfVS/7TyWQHOg7hcvPapiMlrwIaaPcHURo="
	got, err := ZoneRecord("Mail.Example.com.", "ed1", ed)
	if want := `ed1._domainkey.mail.example.com. IN TXT "` + ed + `"`; got != want || err != nil {
		t.Errorf("got  %s, %v\nwant %s", got, err, want)
	}
	for _, bad := range [][2]string{{"example.com", ""}, {"example.com", "s 1"}, {"", "s1"}, {"a..b", "s1"}} {
		if _, err := ZoneRecord(bad[0], bad[1], ed); err == nil {
			t.Errorf("ZoneRecord(%q, %q) accepted a bad name", bad[0], bad[1])
		}
	}

	rsaKey := loadTestKey(t, "example.com", "rsa1", "rsa2048-pkcs8.pem")
	txt, err := keyRecord(rsaKey.Signer.Public())
	if err != nil {
		t.Fatal(err)
	}
	line, err := ZoneRecord("example.com", "rsa1", txt)
	if err != nil {
		t.Fatal(err)
	}
	name, strs, ok := strings.Cut(line, " IN TXT ")
	if !ok || name != "rsa1._domainkey.example.com." {
		t.Fatalf("bad record line %q", line)
	}
	parts := strings.Split(strings.Trim(strs, `"`), `" "`)
	if len(parts) != 2 {
		t.Fatalf("2048-bit RSA record split into %d strings, want 2: %s", len(parts), line)
	}
	for _, p := range parts {
		if len(p) > 255 {
			t.Errorf("string of %d characters; DNS allows 255", len(p))
		}
	}
	if strings.Join(parts, "") != txt {
		t.Errorf("strings do not join back into the record")
	}
}
