package dkim

import (
	"crypto"
	"crypto/rsa"
	"log/slog"
	"sync"
)

// rsaBackend loads OpenSSL once and logs which RSA backend the process uses.
// It returns OpenSSL's version text, or why OpenSSL is not used.
var rsaBackend = sync.OnceValues(func() (string, error) {
	version, err := loadLibcrypto()
	if err != nil {
		slog.Info("dkim: RSA signing with Go's crypto/rsa", "reason", err)
		return "", err
	}
	slog.Info("dkim: RSA signing with OpenSSL", "version", version)
	return version, nil
})

// rsaSigner returns an OpenSSL signer for priv when OpenSSL is loaded and
// takes the key, else priv itself.
func rsaSigner(priv *rsa.PrivateKey, where string) crypto.Signer {
	if _, err := rsaBackend(); err != nil {
		return priv
	}
	s, err := newOpenSSLSigner(priv)
	if err != nil {
		slog.Warn("dkim: OpenSSL cannot sign with this key; using Go's crypto/rsa", "key", where, "err", err)
		return priv
	}
	return s
}

// backendName names what computes signatures for s: "openssl" or "go".
func backendName(s crypto.Signer) string {
	if b, ok := s.(interface{ backend() string }); ok {
		return b.backend()
	}
	return "go"
}
