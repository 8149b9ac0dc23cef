package dkim

import (
	"crypto"
	"crypto/rsa"
	"crypto/sha256"
	"fmt"
	"os"
	"strings"
	"testing"
)

// benchMessage is a 10 KB marketing message.
func benchMessage() []byte {
	var b strings.Builder
	b.WriteString("From: \"Example News\" <news@news.example.com>\r\n" +
		"To: alice@example.org\r\n" +
		"Subject: Your June picks\r\n" +
		"Date: Mon, 02 Jun 2025 09:30:00 +0000\r\n" +
		"Message-ID: <20250602093000.3fa9c1@news.example.com>\r\n" +
		"MIME-Version: 1.0\r\n" +
		"Content-Type: text/plain; charset=UTF-8\r\n" +
		"List-Unsubscribe: <https://news.example.com/u/eyJ0IjoiYWJjIn0>\r\n" +
		"List-Unsubscribe-Post: List-Unsubscribe=One-Click\r\n" +
		"\r\n")
	for i := 0; b.Len() < 10<<10; i++ {
		fmt.Fprintf(&b, "Line %4d of this month's picks: everything   you wanted, 20%% off.\r\n", i)
	}
	return []byte(b.String())
}

// benchSigners returns the RSA-2048 key with each available backend ("go",
// and "openssl" where it loads) and the Ed25519 key, by name.
func benchSigners(b *testing.B) (rsaSigners map[string]crypto.Signer, ed crypto.Signer) {
	pemBytes, err := os.ReadFile("testdata/rsa2048-pkcs8.pem")
	if err != nil {
		b.Fatal(err)
	}
	priv, err := parsePrivateKey(pemBytes)
	if err != nil {
		b.Fatal(err)
	}
	rsaSigners = map[string]crypto.Signer{"go": priv.(*rsa.PrivateKey)}
	if s := rsaSigner(priv.(*rsa.PrivateKey), "bench"); backendName(s) == "openssl" {
		rsaSigners["openssl"] = s
	}
	return rsaSigners, loadTestKey(b, "news.example.com", "ed1", "ed25519-pkcs8.pem").Signer
}

// BenchmarkSign signs a 10 KB message: hashing by go-msgauth plus the
// private-key operation of each backend, alone and for dual signatures.
func BenchmarkSign(b *testing.B) {
	rsaSigners, ed := benchSigners(b)
	msg := benchMessage()
	run := func(name string, signers ...crypto.Signer) {
		b.Run(name, func(b *testing.B) {
			var keys []*Key
			for i, s := range signers {
				keys = append(keys, &Key{Domain: "news.example.com", Selector: fmt.Sprint("s", i), Signer: s})
			}
			signer := newTestSigner(b, keys...)
			b.SetBytes(int64(len(msg)))
			for b.Loop() {
				if _, err := signer.Sign("news.example.com", msg); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
	for _, backend := range []string{"go", "openssl"} {
		if s, ok := rsaSigners[backend]; ok {
			run("rsa2048-"+backend, s)
			run("rsa2048-"+backend+"+ed25519", s, ed)
		}
	}
	run("ed25519", ed)
}

// BenchmarkRSASignDigest measures the RSA-2048 private-key operation alone.
func BenchmarkRSASignDigest(b *testing.B) {
	rsaSigners, _ := benchSigners(b)
	digest := sha256.Sum256([]byte("x"))
	for _, backend := range []string{"go", "openssl"} {
		s, ok := rsaSigners[backend]
		if !ok {
			continue
		}
		b.Run(backend, func(b *testing.B) {
			for b.Loop() {
				if _, err := s.Sign(nil, digest[:], crypto.SHA256); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
