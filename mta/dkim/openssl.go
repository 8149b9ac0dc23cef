//go:build cgo && unix

package dkim

import (
	"crypto"
	"crypto/rsa"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"math/big"
	"strings"

	"github.com/golang-fips/openssl/v2"
	"github.com/golang-fips/openssl/v2/bbig"
)

// libcryptoNames are the libcrypto sonames tried, newest first. Debian and
// Ubuntu ship libcrypto.so.3 in libssl3, which nearly every system has.
var libcryptoNames = []string{"libcrypto.so.3", "libcrypto.so.1.1"}

// loadLibcrypto loads the first of libcryptoNames that dlopen finds. Only
// the first openssl.Init in a process takes effect, so it is called once,
// through rsaBackend.
func loadLibcrypto() (string, error) {
	for _, name := range libcryptoNames {
		if exists, _ := openssl.CheckVersion(name); !exists {
			continue
		}
		if err := openssl.Init(name); err != nil {
			return "", fmt.Errorf("load %s: %w", name, err)
		}
		return openssl.VersionText(), nil
	}
	return "", fmt.Errorf("none of %s found", strings.Join(libcryptoNames, ", "))
}

// opensslRSA signs SHA-256 digests with RSA PKCS#1 v1.5 in libcrypto.
type opensslRSA struct {
	pub  *rsa.PublicKey
	priv *openssl.PrivateKeyRSA
}

// newOpenSSLSigner copies priv into libcrypto and checks, once, that a
// signature made there verifies with crypto/rsa. libcrypto must be loaded.
func newOpenSSLSigner(priv *rsa.PrivateKey) (*opensslRSA, error) {
	if len(priv.Primes) != 2 {
		return nil, fmt.Errorf("RSA key has %d primes; OpenSSL is used for two-prime keys only", len(priv.Primes))
	}
	priv.Precompute()
	pc := priv.Precomputed
	k, err := openssl.NewPrivateKeyRSA(
		bbig.Enc(priv.N), bbig.Enc(big.NewInt(int64(priv.E))), bbig.Enc(priv.D),
		bbig.Enc(priv.Primes[0]), bbig.Enc(priv.Primes[1]),
		bbig.Enc(pc.Dp), bbig.Enc(pc.Dq), bbig.Enc(pc.Qinv))
	if err != nil {
		return nil, fmt.Errorf("import RSA key: %w", err)
	}
	s := &opensslRSA{pub: &priv.PublicKey, priv: k}
	digest := sha256.Sum256([]byte("drover dkim OpenSSL self-test"))
	sig, err := s.Sign(nil, digest[:], crypto.SHA256)
	if err != nil {
		return nil, fmt.Errorf("self-test: %w", err)
	}
	if err := rsa.VerifyPKCS1v15(s.pub, crypto.SHA256, digest[:], sig); err != nil {
		return nil, fmt.Errorf("self-test: OpenSSL signature does not verify: %w", err)
	}
	return s, nil
}

// Public returns the *rsa.PublicKey.
func (s *opensslRSA) Public() crypto.PublicKey { return s.pub }

// Sign signs a SHA-256 digest with PKCS#1 v1.5, the only scheme DKIM's
// rsa-sha256 uses. PKCS#1 v1.5 needs no randomness, so rand is unused.
func (s *opensslRSA) Sign(_ io.Reader, digest []byte, opts crypto.SignerOpts) ([]byte, error) {
	if _, pss := opts.(*rsa.PSSOptions); pss || opts.HashFunc() != crypto.SHA256 {
		return nil, errors.New("OpenSSL RSA signer: only PKCS#1 v1.5 with SHA-256 is supported")
	}
	if len(digest) != sha256.Size {
		return nil, fmt.Errorf("OpenSSL RSA signer: digest is %d bytes, want %d", len(digest), sha256.Size)
	}
	sig, err := openssl.SignRSAPKCS1v15(s.priv, crypto.SHA256, digest)
	if err != nil {
		return nil, fmt.Errorf("OpenSSL RSA sign: %w", err)
	}
	return sig, nil
}

func (s *opensslRSA) backend() string { return "openssl" }
