package dkim

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/emersion/go-msgauth/dkim"
)

// crlf returns b with every line ending made CRLF, as messages are on the wire.
func crlf(b []byte) []byte {
	b = bytes.ReplaceAll(b, []byte("\r\n"), []byte("\n"))
	return bytes.ReplaceAll(b, []byte("\n"), []byte("\r\n"))
}

func readMessage(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return crlf(b)
}

func loadTestKey(t testing.TB, domain, selector, file string) *Key {
	t.Helper()
	k, err := LoadKey(domain, selector, filepath.Join("testdata", file))
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func newTestSigner(t testing.TB, keys ...*Key) *Signer {
	t.Helper()
	s, err := NewSigner(keys)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// txtRecords maps each key's TXT record name (lower case, no trailing dot)
// to its record value.
func txtRecords(t testing.TB, keys ...*Key) map[string]string {
	t.Helper()
	m := make(map[string]string)
	for _, k := range keys {
		txt, err := keyRecord(k.Signer.Public())
		if err != nil {
			t.Fatal(err)
		}
		m[k.Selector+"._domainkey."+k.Domain] = txt
	}
	return m
}

// verify checks msg with go-msgauth against records and returns one
// verification per signature.
func verify(t testing.TB, records map[string]string, msg []byte) []*dkim.Verification {
	t.Helper()
	vs, err := dkim.VerifyWithOptions(bytes.NewReader(msg), &dkim.VerifyOptions{
		LookupTXT: func(name string) ([]string, error) {
			txt, ok := records[strings.ToLower(strings.TrimSuffix(name, "."))]
			if !ok {
				return nil, errors.New("no such record: " + name)
			}
			return []string{txt}, nil
		},
	})
	if err != nil {
		t.Fatalf("verify: %v", err)
	}
	return vs
}

// signed returns msg with the signature fields prepended.
func signed(t testing.TB, s *Signer, domain string, msg []byte) []byte {
	t.Helper()
	sig, err := s.Sign(domain, msg)
	if err != nil {
		t.Fatalf("Sign: %v", err)
	}
	if sig == nil {
		t.Fatalf("Sign(%q): no signature", domain)
	}
	return append(sig, msg...)
}

func TestParseKey(t *testing.T) {
	tests := []struct {
		file    string
		domain  string
		wantErr string // empty: the key loads
	}{
		{file: "rsa2048-pkcs1.pem"},
		{file: "rsa2048-pkcs8.pem"},
		{file: "ed25519-pkcs8.pem"},
		{file: "rsa1024-pkcs1.pem"}, // accepted with a warning
		{file: "rsa512-pkcs1.pem", wantErr: "RSA key has 512 bits; DKIM needs 1024 to 4096"},
		{file: "rsa8192-pkcs1.pem", wantErr: "RSA key has 8192 bits; DKIM needs 1024 to 4096"},
		{file: "ec-p256-pkcs8.pem", wantErr: "unsupported key type *ecdsa.PrivateKey; DKIM keys are RSA or Ed25519"},
		{file: "rsa2048-public.pem", wantErr: `no private key among PEM blocks "PUBLIC KEY"`},
		{file: "ed25519-encrypted.pem", wantErr: "encrypted; decrypt it first"},
		{file: "rsa2048-pkcs1-encrypted.pem", wantErr: `PEM block "RSA PRIVATE KEY" is encrypted`},
		{file: "marketing.eml", wantErr: "no PEM data found"},
		{file: "ed25519-pkcs8.pem", domain: "news..example.com", wantErr: `domain "news..example.com" has an empty or over-long label`},
		{file: "ed25519-pkcs8.pem", domain: "news example.com", wantErr: `domain "news example.com" has character ' '`},
		{file: "ed25519-pkcs8.pem", domain: "bücher.example", wantErr: "A-label (xn--) form"},
	}
	for _, tt := range tests {
		domain := tt.domain
		if domain == "" {
			domain = "News.Example.COM."
		}
		t.Run(tt.file+"/"+domain, func(t *testing.T) {
			k, err := LoadKey(domain, "s1", filepath.Join("testdata", tt.file))
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("got error %v, want one containing %q", err, tt.wantErr)
				}
				if !strings.Contains(err.Error(), tt.file) || !strings.Contains(err.Error(), "s1._domainkey.") {
					t.Errorf("error %q does not name the file and the key", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if k.Domain != "news.example.com" || k.Selector != "s1" {
				t.Errorf("got domain %q selector %q, want news.example.com s1", k.Domain, k.Selector)
			}
		})
	}
}

func TestParseKeyErrors(t *testing.T) {
	good, err := os.ReadFile("testdata/ed25519-pkcs8.pem")
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name, selector string
		pem            []byte
		wantErr        string
	}{
		{"empty selector", "", good, "empty selector"},
		{"selector with semicolon", "s1;x=1", good, `selector "s1;x=1" has character ';'`},
		{"empty input", "s1", nil, "no PEM data found"},
		{"bad PKCS#8", "s1", []byte("-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n"), "bad PKCS#8 private key"},
		{"bad PKCS#1", "s1", []byte("-----BEGIN RSA PRIVATE KEY-----\nAAAA\n-----END RSA PRIVATE KEY-----\n"), "bad PKCS#1 RSA private key"},
		{"certificate", "s1", []byte("-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"), `no private key among PEM blocks "CERTIFICATE"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := parseKey("example.com", tt.selector, "", tt.pem)
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("got error %v, want one containing %q", err, tt.wantErr)
			}
		})
	}
}

func TestLoadKeyMissingFile(t *testing.T) {
	_, err := LoadKey("example.com", "s1", "testdata/nope.pem")
	if !errors.Is(err, fs.ErrNotExist) || !strings.Contains(err.Error(), "testdata/nope.pem") {
		t.Fatalf("got %v, want a not-exist error naming the file", err)
	}
}

func TestSignVerify(t *testing.T) {
	rsaKey := loadTestKey(t, "news.example.com", "rsa1", "rsa2048-pkcs8.pem")
	edKey := loadTestKey(t, "news.example.com", "ed1", "ed25519-pkcs8.pem")
	tests := []struct {
		name     string
		keys     []*Key
		wantAlgo []string
	}{
		{"rsa", []*Key{rsaKey}, []string{"rsa-sha256"}},
		{"ed25519", []*Key{edKey}, []string{"ed25519-sha256"}},
		{"dual", []*Key{rsaKey, edKey}, []string{"rsa-sha256", "ed25519-sha256"}},
	}
	for _, tt := range tests {
		for _, file := range []string{"marketing.eml", "transactional.eml"} {
			t.Run(tt.name+"/"+file, func(t *testing.T) {
				msg := readMessage(t, file)
				s := newTestSigner(t, tt.keys...)
				sig, err := s.Sign("news.example.com", msg)
				if err != nil {
					t.Fatal(err)
				}
				if n := bytes.Count(sig, []byte("DKIM-Signature:")); n != len(tt.keys) {
					t.Fatalf("got %d DKIM-Signature fields, want %d:\n%s", n, len(tt.keys), sig)
				}
				if !bytes.HasSuffix(sig, []byte("\r\n")) || bytes.Contains(bytes.ReplaceAll(sig, []byte("\r\n"), nil), []byte("\n")) {
					t.Fatalf("signature fields are not CRLF-terminated lines:\n%q", sig)
				}
				for i, algo := range tt.wantAlgo {
					if !strings.Contains(sigField(t, sig, i), "a="+algo+";") {
						t.Errorf("signature %d is not %s:\n%s", i, algo, sigField(t, sig, i))
					}
					if !strings.Contains(sigField(t, sig, i), "c=relaxed/relaxed;") {
						t.Errorf("signature %d is not relaxed/relaxed:\n%s", i, sigField(t, sig, i))
					}
				}
				vs := verify(t, txtRecords(t, tt.keys...), append(sig, msg...))
				if len(vs) != len(tt.keys) {
					t.Fatalf("got %d verifications, want %d", len(vs), len(tt.keys))
				}
				for _, v := range vs {
					if v.Err != nil || v.Domain != "news.example.com" {
						t.Errorf("signature of %s: %v", v.Domain, v.Err)
					}
				}
			})
		}
	}
}

// sigField returns the i-th DKIM-Signature field of sig, unfolded.
func sigField(t testing.TB, sig []byte, i int) string {
	t.Helper()
	fields := strings.Split(string(sig), "DKIM-Signature:")[1:]
	if i >= len(fields) {
		t.Fatalf("no signature %d in %q", i, sig)
	}
	return strings.NewReplacer("\r\n ", "", "\r\n", "").Replace(fields[i])
}

func TestSignedHeaderFields(t *testing.T) {
	tests := []struct {
		file string
		want string
	}{
		// Received, Return-Path and X-Mailer are not signed; From is
		// listed once more than it occurs.
		{"marketing.eml", "From:From:To:Reply-To:Subject:Date:Message-ID:MIME-Version:Content-Type:List-Unsubscribe:List-Unsubscribe-Post:Feedback-ID"},
		{"transactional.eml", "From:From:To:Cc:Subject:Date:Message-ID:In-Reply-To:References:MIME-Version:Content-Type:Content-Transfer-Encoding"},
	}
	key := loadTestKey(t, "example.com", "s1", "ed25519-pkcs8.pem")
	s := newTestSigner(t, key)
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			msg := signed(t, s, "example.com", readMessage(t, tt.file))
			vs := verify(t, txtRecords(t, key), msg)
			if got := strings.Join(vs[0].HeaderKeys, ":"); got != tt.want {
				t.Errorf("h=%s\nwant %s", got, tt.want)
			}
		})
	}
}

// TestSignedMessageInTransit changes a signed message the way relays do
// (which relaxed canonicalization must survive) and the way forgers do
// (which must break the signature).
func TestSignedMessageInTransit(t *testing.T) {
	key := loadTestKey(t, "shop.example.net", "s1", "rsa2048-pkcs1.pem")
	s := newTestSigner(t, key)
	msg := signed(t, s, "shop.example.net", readMessage(t, "transactional.eml"))
	records := txtRecords(t, key)
	replace := func(old, new string) func(string) string {
		return func(m string) string {
			if !strings.Contains(m, old) {
				t.Fatalf("message has no %q", old)
			}
			return strings.Replace(m, old, new, 1)
		}
	}
	tests := []struct {
		name   string
		change func(string) string
		pass   bool
	}{
		{"unchanged", func(m string) string { return m }, true},
		{"header name case and spacing", replace("Subject:    Receipt   for order 1042  \r\n", "SUBJECT: Receipt for order 1042\r\n"), true},
		{"header refolded", replace("To: \"Bob\" <bob@example.org>,\r\n\t\"Carol\"   <carol@example.org>", "To: \"Bob\" <bob@example.org>, \"Carol\"\r\n <carol@example.org>"), true},
		{"body whitespace runs", replace("  Item: blue mug    x2\r\n", " Item: blue mug x2 \t \r\n"), true},
		{"trailing blank lines", func(m string) string { return m + "\r\n\r\n" }, true},
		{"unsigned field added", func(m string) string { return "Received: from relay.example.org\r\n" + m }, true},
		{"subject changed", replace("Receipt   for order 1042", "Receipt   for order 1043"), false},
		{"second From added", func(m string) string { return "From: <ceo@shop.example.net>\r\n" + m }, false},
		{"body changed", replace("18.00 EUR", "1800.00 EUR"), false},
		{"body appended", func(m string) string { return m + "P.S. wire the money to ...\r\n" }, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			vs := verify(t, records, []byte(tt.change(string(msg))))
			if len(vs) != 1 {
				t.Fatalf("got %d verifications, want 1", len(vs))
			}
			if pass := vs[0].Err == nil; pass != tt.pass {
				t.Errorf("verification error %v; want pass=%v", vs[0].Err, tt.pass)
			}
		})
	}
}

func TestSignDomain(t *testing.T) {
	s := newTestSigner(t, loadTestKey(t, "News.Example.com.", "s1", "ed25519-pkcs8.pem"))
	msg := readMessage(t, "marketing.eml")
	for _, domain := range []string{"news.example.com", "NEWS.example.COM", "news.example.com."} {
		sig, err := s.Sign(domain, msg)
		if err != nil || !bytes.Contains(sig, []byte("d=news.example.com;")) {
			t.Errorf("Sign(%q) = %q, %v; want a signature with d=news.example.com", domain, sig, err)
		}
	}
	for _, domain := range []string{"example.com", "other.example.com", ""} {
		sig, err := s.Sign(domain, msg)
		if sig != nil || err != nil {
			t.Errorf("Sign(%q) = %q, %v; want nil, nil", domain, sig, err)
		}
	}
}

func TestSignRejectsBadMessage(t *testing.T) {
	s := newTestSigner(t, loadTestKey(t, "example.com", "s1", "ed25519-pkcs8.pem"))
	tests := []struct {
		name, msg, wantErr string
	}{
		{"no From", "To: a@example.org\r\nSubject: hi\r\n\r\nbody\r\n", "message has no From field"},
		{"From only as continuation", "To: a@example.org,\r\n From: b@example.org\r\n\r\nbody\r\n", "message has no From field"},
		{"continuation first", " folded\r\nFrom: a@example.com\r\n\r\nbody\r\n", "message header starts with a continuation line"},
		{"field without colon", "From: a@example.com\r\nSubject hi\r\n\r\nbody\r\n", `malformed header field "Subject hi"`},
		{"space in field name", "From: a@example.com\r\nX Mailer: x\r\n\r\nbody\r\n", `malformed header field "X Mailer: x"`},
		{"no end of header", "From: a@example.com\r\nSubject: hi\r\n", "message header does not end with a blank line"},
		{"empty", "", "message header does not end with a blank line"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := s.Sign("example.com", []byte(tt.msg))
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("got error %v, want one containing %q", err, tt.wantErr)
			}
		})
	}
}

func TestNewSignerErrors(t *testing.T) {
	ed := loadTestKey(t, "example.com", "s1", "ed25519-pkcs8.pem")
	ec, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name    string
		keys    []*Key
		wantErr string
	}{
		{"nil key", []*Key{nil}, "key 0 has no private key"},
		{"no signer", []*Key{{Domain: "example.com", Selector: "s1"}}, "key 0 has no private key"},
		{"ECDSA", []*Key{{Domain: "example.com", Selector: "s1", Signer: ec}}, "unsupported key type *ecdsa.PublicKey"},
		{"bad domain", []*Key{{Domain: "exa mple.com", Selector: "s1", Signer: ed.Signer}}, `domain "exa mple.com" has character ' '`},
		{"same selector twice", []*Key{ed, {Domain: "EXAMPLE.com", Selector: "s1", Signer: ed.Signer}}, "two keys for s1._domainkey.example.com"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := NewSigner(tt.keys)
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("got error %v, want one containing %q", err, tt.wantErr)
			}
		})
	}
}

func TestSignConcurrently(t *testing.T) {
	rsaKey := loadTestKey(t, "news.example.com", "rsa1", "rsa2048-pkcs1.pem")
	edKey := loadTestKey(t, "news.example.com", "ed1", "ed25519-pkcs8.pem")
	s := newTestSigner(t, rsaKey, edKey)
	records := txtRecords(t, rsaKey, edKey)
	msg := readMessage(t, "marketing.eml")
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for range 5 {
				sig, err := s.Sign("news.example.com", msg)
				if err != nil {
					t.Error(err)
					return
				}
				for _, v := range verify(t, records, append(sig, msg...)) {
					if v.Err != nil {
						t.Error(v.Err)
					}
				}
			}
		})
	}
	wg.Wait()
}

// FuzzSign checks that any message Sign accepts gets a signature that
// go-msgauth verifies, and that no input makes Sign panic.
func FuzzSign(f *testing.F) {
	for _, name := range []string{"marketing.eml", "transactional.eml"} {
		f.Add(readMessage(f, name))
	}
	f.Add([]byte("From: a@example.com\r\nFrom: b@example.com\r\n\r\n"))
	f.Add([]byte("from:a@example.com\r\n\tcontinued\r\nCc:\r\n\r\n\r\n\r\n"))
	key := loadTestKey(f, "example.com", "s1", "ed25519-pkcs8.pem")
	s := newTestSigner(f, key)
	records := txtRecords(f, key)
	f.Fuzz(func(t *testing.T, msg []byte) {
		sig, err := s.Sign("example.com", msg)
		if err != nil {
			return
		}
		if !bytes.HasPrefix(sig, []byte("DKIM-Signature:")) || !bytes.HasSuffix(sig, []byte("\r\n")) {
			t.Fatalf("malformed signature field %q", sig)
		}
		if !bytes.Contains(msg, []byte("\r\n\r\n")) || bytes.Contains(bytes.ReplaceAll(msg, []byte("\r\n"), nil), []byte("\n")) {
			return // not CRLF throughout: outside Sign's contract
		}
		vs, err := dkim.VerifyWithOptions(bytes.NewReader(append(sig, msg...)), &dkim.VerifyOptions{
			LookupTXT: func(name string) ([]string, error) { return []string{records[strings.TrimSuffix(name, ".")]}, nil },
		})
		if err != nil {
			t.Fatalf("verify: %v", err)
		}
		if len(vs) == 0 || vs[0].Err != nil {
			t.Fatalf("own signature does not verify: %+v", vs)
		}
	})
}
