//go:build cgo && unix

package dkim

import (
	"bytes"
	"crypto"
	"crypto/rsa"
	"crypto/sha1"
	"crypto/sha256"
	"os"
	"strings"
	"testing"
)

// needOpenSSL skips the test when libcrypto cannot be loaded, or fails it
// under CI, which installs libssl3.
func needOpenSSL(t testing.TB) {
	t.Helper()
	if _, err := rsaBackend(); err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("OpenSSL not loaded under CI: %v", err)
		}
		t.Skipf("OpenSSL not loaded: %v", err)
	}
}

func TestOpenSSLSignerMatchesGo(t *testing.T) {
	needOpenSSL(t)
	for _, file := range []string{"rsa2048-pkcs1.pem", "rsa2048-pkcs8.pem", "rsa1024-pkcs1.pem"} {
		t.Run(file, func(t *testing.T) {
			key := loadTestKey(t, "example.com", "s1", file)
			if got := backendName(key.Signer); got != "openssl" {
				t.Fatalf("LoadKey chose backend %q, want openssl", got)
			}
			goKey := key.Signer.(*opensslRSA).pub
			pemBytes, _ := os.ReadFile("testdata/" + file)
			priv, err := parsePrivateKey(pemBytes)
			if err != nil {
				t.Fatal(err)
			}
			for _, text := range []string{"", "one", strings.Repeat("x", 10000)} {
				digest := sha256.Sum256([]byte(text))
				osslSig, err := key.Signer.Sign(nil, digest[:], crypto.SHA256)
				if err != nil {
					t.Fatal(err)
				}
				if err := rsa.VerifyPKCS1v15(goKey, crypto.SHA256, digest[:], osslSig); err != nil {
					t.Fatalf("OpenSSL signature does not verify with crypto/rsa: %v", err)
				}
				goSig, err := priv.(*rsa.PrivateKey).Sign(nil, digest[:], crypto.SHA256)
				if err != nil {
					t.Fatal(err)
				}
				if !bytes.Equal(osslSig, goSig) {
					t.Fatal("OpenSSL and crypto/rsa PKCS#1 v1.5 signatures differ")
				}
			}
		})
	}
}

func TestOpenSSLSignerRefusesOtherSchemes(t *testing.T) {
	needOpenSSL(t)
	key := loadTestKey(t, "example.com", "s1", "rsa2048-pkcs8.pem")
	sha1Digest := sha1.Sum([]byte("x"))
	sha256Digest := sha256.Sum256([]byte("x"))
	tests := []struct {
		name    string
		digest  []byte
		opts    crypto.SignerOpts
		wantErr string
	}{
		{"SHA-1", sha1Digest[:], crypto.SHA1, "only PKCS#1 v1.5 with SHA-256"},
		{"PSS", sha256Digest[:], &rsa.PSSOptions{Hash: crypto.SHA256}, "only PKCS#1 v1.5 with SHA-256"},
		{"short digest", sha1Digest[:], crypto.SHA256, "digest is 20 bytes, want 32"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := key.Signer.Sign(nil, tt.digest, tt.opts)
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("got error %v, want one containing %q", err, tt.wantErr)
			}
		})
	}
}

func TestLoadLibcryptoMissing(t *testing.T) {
	saved := libcryptoNames
	t.Cleanup(func() { libcryptoNames = saved })
	libcryptoNames = []string{"libcrypto-drover-test.so.0"}
	_, err := loadLibcrypto()
	if err == nil || !strings.Contains(err.Error(), "none of libcrypto-drover-test.so.0 found") {
		t.Fatalf("got %v, want a not-found error", err)
	}
}
