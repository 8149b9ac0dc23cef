package dkim

import (
	"crypto"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"fmt"
	"strings"
)

// GenerateKey makes a new private key, algo "rsa" (bits from 2048 to 4096;
// 0 means 2048) or "ed25519" (bits must be 0). It returns the key as PKCS#8
// PEM and the value of its DNS TXT record ("v=DKIM1; k=...; p=..."), unsplit;
// see ZoneRecord.
func GenerateKey(algo string, bits int) (pemBytes []byte, txtRecord string, err error) {
	var priv crypto.Signer
	switch algo {
	case "rsa":
		if bits == 0 {
			bits = recommendedRSABits
		}
		if bits < recommendedRSABits || bits > maxRSABits {
			return nil, "", fmt.Errorf("dkim: RSA keys are %d to %d bits, not %d", recommendedRSABits, maxRSABits, bits)
		}
		priv, err = rsa.GenerateKey(rand.Reader, bits)
	case "ed25519":
		if bits != 0 {
			return nil, "", fmt.Errorf("dkim: Ed25519 keys have a fixed size; got bits=%d", bits)
		}
		_, priv, err = ed25519.GenerateKey(rand.Reader)
	default:
		return nil, "", fmt.Errorf("dkim: unknown key algorithm %q; want rsa or ed25519", algo)
	}
	if err != nil {
		return nil, "", fmt.Errorf("dkim: generate %s key: %w", algo, err)
	}
	der, err := x509.MarshalPKCS8PrivateKey(priv)
	if err != nil {
		return nil, "", fmt.Errorf("dkim: encode %s key: %w", algo, err)
	}
	txt, err := keyRecord(priv.Public())
	if err != nil {
		return nil, "", err
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), txt, nil
}

// keyRecord returns the DKIM key record (RFC 6376 section 3.6.1) for pub:
// for RSA, p= is the DER SubjectPublicKeyInfo; for Ed25519 (RFC 8463), the
// 32 raw bytes.
func keyRecord(pub crypto.PublicKey) (string, error) {
	switch pub := pub.(type) {
	case *rsa.PublicKey:
		der, err := x509.MarshalPKIXPublicKey(pub)
		if err != nil {
			return "", fmt.Errorf("dkim: encode RSA public key: %w", err)
		}
		return "v=DKIM1; k=rsa; p=" + base64.StdEncoding.EncodeToString(der), nil
	case ed25519.PublicKey:
		return "v=DKIM1; k=ed25519; p=" + base64.StdEncoding.EncodeToString(pub), nil
	default:
		return "", fmt.Errorf("dkim: unsupported public key type %T", pub)
	}
}

// ZoneRecord returns the zone-file line that publishes txt, a TXT record value
// such as GenerateKey's, for selector at domain:
//
//	sel._domainkey.example.com. IN TXT "v=DKIM1; k=rsa; p=MIIB..." "..."
//
// The value is split into quoted strings of at most 255 characters, as DNS
// requires; verifiers join them back. It refuses a domain or selector that
// LoadKey would refuse.
func ZoneRecord(domain, selector, txt string) (string, error) {
	domain = normalizeDomain(domain)
	if err := checkName("domain", domain); err != nil {
		return "", fmt.Errorf("dkim: %w", err)
	}
	if err := checkName("selector", selector); err != nil {
		return "", fmt.Errorf("dkim: %w", err)
	}
	var b strings.Builder
	b.WriteString(selector + "._domainkey." + domain + ". IN TXT")
	for _, s := range splitTXT(txt) {
		b.WriteString(` "` + s + `"`)
	}
	return b.String(), nil
}

// splitTXT splits a TXT value into DNS character-strings of at most 255
// bytes. DKIM records are base64 and tag syntax, so nothing needs escaping.
func splitTXT(txt string) []string {
	var parts []string
	for len(txt) > 255 {
		parts = append(parts, txt[:255])
		txt = txt[255:]
	}
	return append(parts, txt)
}
