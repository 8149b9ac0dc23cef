// Package dkim signs outgoing mail with DKIM (RFC 6376) for Drover.
//
// It owns the DKIM private keys of the From domains Drover sends for, the
// choice of header fields to sign, and the RSA signing backend. It stores
// nothing and has no key prefixes.
//
// Contract:
//
//   - A key is RSA (1024 to 4096 bits; below 2048 is accepted for keys already
//     published in DNS, with a warning in the log, since RFC 8301 makes 1024 the
//     floor and 2048 the recommendation) or Ed25519 (RFC 8463). Keys are read
//     from unencrypted PEM: PKCS#8 ("PRIVATE KEY") or PKCS#1 ("RSA PRIVATE
//     KEY"). Anything else is refused with an error that says what was found.
//   - A From domain may have several keys (typically one RSA and one Ed25519).
//     The message then gets one DKIM-Signature per key, in the order the keys
//     were given, so receivers that do not know Ed25519 still find an RSA
//     signature.
//   - Signatures use relaxed/relaxed canonicalization and SHA-256, carry d= the
//     From domain and s= the key's selector, and sign those of From, To, Cc,
//     Reply-To, Subject, Date, Message-ID, In-Reply-To, References,
//     MIME-Version, Content-Type, Content-Transfer-Encoding, List-Unsubscribe,
//     List-Unsubscribe-Post and Feedback-ID that are present, once per
//     occurrence. From is oversigned (listed once more than it occurs), so a
//     From field added in transit breaks the signature. There is no l= tag: a
//     body appended in transit breaks the signature too.
//   - Sign takes the whole message with CRLF line endings and returns only the
//     header field(s) to prepend; it never changes the message. It refuses a
//     message without a From field or with a malformed header, and signs for
//     the domain it is given, without comparing it with the From address. A
//     Signer is safe for concurrent use.
//
// Hashing of the header and body is go-msgauth's (github.com/emersion/go-msgauth);
// only the private-key operation is ours to choose. Ed25519 uses Go's
// crypto/ed25519. RSA uses OpenSSL's libcrypto (libcrypto.so.3, else
// libcrypto.so.1.1, loaded at run time through github.com/golang-fips/openssl)
// when the binary is built with cgo and the library loads, because it signs
// faster (0.73 ms against 1.25 ms per RSA-2048 signature on the AMD EPYC
// development machines; see BenchmarkRSASignDigest). Otherwise, and for any
// key OpenSSL cannot take, Go's crypto/rsa signs. Both give byte-identical
// signatures (RSA PKCS#1 v1.5 is deterministic), and each key handed to
// OpenSSL is checked against crypto/rsa when it is loaded. Which backend is
// used, and why, is logged once through log/slog's default logger.
package dkim

import (
	"bytes"
	"crypto"
	"crypto/ed25519"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strings"

	"github.com/emersion/go-msgauth/dkim"
)

// RSA key sizes, in bits, that LoadKey accepts (RFC 8301 section 3.2).
const (
	minRSABits         = 1024
	recommendedRSABits = 2048
	maxRSABits         = 4096
)

// Key is the DKIM private key of one selector of one signing domain.
type Key struct {
	// Domain is the signing domain (d=), normally the From domain.
	Domain string
	// Selector (s=) names the key: its public half is published as a TXT
	// record at Selector._domainkey.Domain.
	Selector string
	// Signer holds the private key; its Public() must be *rsa.PublicKey or
	// ed25519.PublicKey.
	Signer crypto.Signer
}

// LoadKey reads a PEM private key file: an unencrypted private key,
// PKCS#8 or PKCS#1, RSA or Ed25519, for the given signing domain and
// selector. The domain is lower-cased and loses a trailing dot. RSA keys
// get the OpenSSL backend when it is available (see the package doc).
func LoadKey(domain, selector, pemPath string) (*Key, error) {
	b, err := os.ReadFile(pemPath)
	if err != nil {
		return nil, fmt.Errorf("dkim: key for %s._domainkey.%s: %w", selector, normalizeDomain(domain), err)
	}
	return parseKey(domain, selector, " in "+pemPath, b)
}

// parseKey parses the PEM bytes of a key as LoadKey describes; source
// says where they come from, for errors.
func parseKey(domain, selector, source string, pemBytes []byte) (*Key, error) {
	domain = normalizeDomain(domain)
	where := selector + "._domainkey." + domain + source
	if err := checkName("domain", domain); err != nil {
		return nil, fmt.Errorf("dkim: key for %s: %w", where, err)
	}
	if err := checkName("selector", selector); err != nil {
		return nil, fmt.Errorf("dkim: key for %s: %w", where, err)
	}
	priv, err := parsePrivateKey(pemBytes)
	if err != nil {
		return nil, fmt.Errorf("dkim: key for %s: %w", where, err)
	}
	k := &Key{Domain: domain, Selector: selector}
	switch priv := priv.(type) {
	case *rsa.PrivateKey:
		bits := priv.N.BitLen()
		if bits < minRSABits || bits > maxRSABits {
			return nil, fmt.Errorf("dkim: key for %s: RSA key has %d bits; DKIM needs %d to %d (%d recommended)",
				where, bits, minRSABits, maxRSABits, recommendedRSABits)
		}
		if bits < recommendedRSABits {
			slog.Warn("dkim: weak RSA key; generate a 2048-bit one", "key", where, "bits", bits)
		}
		if err := priv.Validate(); err != nil {
			return nil, fmt.Errorf("dkim: key for %s: invalid RSA key: %w", where, err)
		}
		k.Signer = rsaSigner(priv, where)
	case ed25519.PrivateKey:
		k.Signer = priv
	default:
		return nil, fmt.Errorf("dkim: key for %s: unsupported key type %T; DKIM keys are RSA or Ed25519", where, priv)
	}
	return k, nil
}

// parsePrivateKey returns the first private key in pemBytes.
func parsePrivateKey(pemBytes []byte) (crypto.PrivateKey, error) {
	var seen []string
	rest := pemBytes
	for {
		var block *pem.Block
		block, rest = pem.Decode(rest)
		if block == nil {
			break
		}
		if _, encrypted := block.Headers["Proc-Type"]; encrypted {
			return nil, fmt.Errorf("PEM block %q is encrypted; decrypt it first (openssl pkey -in KEY -out KEY.plain)", block.Type)
		}
		switch block.Type {
		case "PRIVATE KEY":
			k, err := x509.ParsePKCS8PrivateKey(block.Bytes)
			if err != nil {
				return nil, fmt.Errorf("bad PKCS#8 private key: %w", err)
			}
			return k, nil
		case "RSA PRIVATE KEY":
			k, err := x509.ParsePKCS1PrivateKey(block.Bytes)
			if err != nil {
				return nil, fmt.Errorf("bad PKCS#1 RSA private key: %w", err)
			}
			return k, nil
		case "ENCRYPTED PRIVATE KEY":
			return nil, errors.New("PEM private key is encrypted; decrypt it first (openssl pkey -in KEY -out KEY.plain)")
		}
		seen = append(seen, fmt.Sprintf("%q", block.Type))
	}
	if len(seen) == 0 {
		return nil, errors.New("no PEM data found; want a PEM private key (-----BEGIN PRIVATE KEY-----)")
	}
	return nil, fmt.Errorf("no private key among PEM blocks %s; want \"PRIVATE KEY\" (PKCS#8) or \"RSA PRIVATE KEY\" (PKCS#1)",
		strings.Join(seen, ", "))
}

func normalizeDomain(domain string) string {
	return strings.ToLower(strings.TrimSuffix(domain, "."))
}

// checkName accepts a DNS name in ASCII (letters, digits, hyphen, underscore,
// dots between labels), so a domain or selector can neither break the
// DKIM-Signature field nor name the wrong TXT record.
func checkName(what, name string) error {
	if name == "" {
		return fmt.Errorf("empty %s", what)
	}
	if len(name) > 253 {
		return fmt.Errorf("%s %q is longer than 253 characters", what, name)
	}
	for label := range strings.SplitSeq(name, ".") {
		if label == "" || len(label) > 63 {
			return fmt.Errorf("%s %q has an empty or over-long label", what, name)
		}
		for _, c := range []byte(label) {
			ok := c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_'
			if !ok {
				return fmt.Errorf("%s %q has character %q; use letters, digits, '-' and the A-label (xn--) form of international names", what, name, c)
			}
		}
	}
	return nil
}

// signedFields are the header fields signed when present, in the order they
// appear in h=.
var signedFields = []string{
	"From", "To", "Cc", "Reply-To", "Subject", "Date", "Message-ID",
	"In-Reply-To", "References", "MIME-Version", "Content-Type",
	"Content-Transfer-Encoding", "List-Unsubscribe", "List-Unsubscribe-Post",
	"Feedback-ID",
}

// Signer signs messages with the keys of their signing domain.
type Signer struct {
	keys map[string][]*Key // by lower-cased domain
}

// NewSigner returns a Signer for keys. It refuses a nil or incomplete key and
// two keys with the same domain and selector. It logs each key and the
// backend that will sign with it at debug level.
func NewSigner(keys []*Key) (*Signer, error) {
	s := &Signer{keys: make(map[string][]*Key)}
	seen := make(map[string]bool)
	for i, k := range keys {
		if k == nil || k.Signer == nil {
			return nil, fmt.Errorf("dkim: key %d has no private key", i)
		}
		domain := normalizeDomain(k.Domain)
		if err := checkName("domain", domain); err != nil {
			return nil, fmt.Errorf("dkim: key %d: %w", i, err)
		}
		if err := checkName("selector", k.Selector); err != nil {
			return nil, fmt.Errorf("dkim: key %d: %w", i, err)
		}
		where := k.Selector + "._domainkey." + domain
		var algo string
		switch k.Signer.Public().(type) {
		case *rsa.PublicKey:
			algo = "rsa-sha256"
		case ed25519.PublicKey:
			algo = "ed25519-sha256"
		default:
			return nil, fmt.Errorf("dkim: key for %s: unsupported key type %T; DKIM keys are RSA or Ed25519", where, k.Signer.Public())
		}
		if seen[where] {
			return nil, fmt.Errorf("dkim: two keys for %s", where)
		}
		seen[where] = true
		s.keys[domain] = append(s.keys[domain], &Key{Domain: domain, Selector: k.Selector, Signer: k.Signer})
		slog.Debug("dkim: signing key", "key", where, "algorithm", algo, "backend", backendName(k.Signer))
	}
	return s, nil
}

// Sign returns the DKIM-Signature header field(s) for msg, folded and
// CRLF-terminated, to be prepended to msg as they are; nil and no error when
// there is no key for domain. msg is the whole message (header, blank line,
// body) with CRLF line endings; it must have a From field.
func (s *Signer) Sign(domain string, msg []byte) ([]byte, error) {
	keys := s.keys[normalizeDomain(domain)]
	if len(keys) == 0 {
		return nil, nil
	}
	fields, err := headerKeys(msg)
	if err != nil {
		return nil, fmt.Errorf("dkim: sign for %s: %w", domain, err)
	}
	var out []byte
	for _, k := range keys {
		sig, err := signOne(k, fields, msg)
		if err != nil {
			return nil, fmt.Errorf("dkim: sign with %s._domainkey.%s: %w", k.Selector, k.Domain, err)
		}
		out = append(out, sig...)
	}
	return out, nil
}

func signOne(k *Key, fields []string, msg []byte) (string, error) {
	ds, err := dkim.NewSigner(&dkim.SignOptions{
		Domain:                 k.Domain,
		Selector:               k.Selector,
		Signer:                 k.Signer,
		Hash:                   crypto.SHA256,
		HeaderCanonicalization: dkim.CanonicalizationRelaxed,
		BodyCanonicalization:   dkim.CanonicalizationRelaxed,
		HeaderKeys:             fields,
	})
	if err != nil {
		return "", err
	}
	if _, err := ds.Write(msg); err != nil {
		// Close reports why the write failed; the write error itself is
		// only "closed pipe".
		if cerr := ds.Close(); cerr != nil {
			return "", cerr
		}
		return "", err
	}
	if err := ds.Close(); err != nil {
		return "", err
	}
	return ds.Signature(), nil
}

// isFieldName reports whether name is an RFC 5322 field name: printable
// ASCII but the colon.
func isFieldName(name []byte) bool {
	if len(name) == 0 {
		return false
	}
	for _, c := range name {
		if c < 33 || c > 126 || c == ':' {
			return false
		}
	}
	return true
}

// headerKeys returns the h= list for msg: each signed field once per
// occurrence, and From once more.
func headerKeys(msg []byte) ([]string, error) {
	count := make(map[string]int)
	rest := msg
	for {
		line, after, found := bytes.Cut(rest, []byte("\n"))
		if !found {
			return nil, errors.New("message header does not end with a blank line")
		}
		rest = after
		line = bytes.TrimSuffix(line, []byte("\r"))
		if len(line) == 0 {
			break
		}
		if line[0] == ' ' || line[0] == '\t' {
			if len(count) == 0 {
				return nil, errors.New("message header starts with a continuation line")
			}
			continue // continuation of the previous field
		}
		name, _, colon := bytes.Cut(line, []byte(":"))
		name = bytes.TrimRight(name, " \t") // obsolete syntax allows WSP before the colon
		if !colon || !isFieldName(name) {
			return nil, fmt.Errorf("malformed header field %.40q", line)
		}
		count[strings.ToLower(string(name))]++
	}
	if count["from"] == 0 {
		return nil, errors.New("message has no From field")
	}
	var keys []string
	for _, f := range signedFields {
		n := count[strings.ToLower(f)]
		if f == "From" {
			n++
		}
		for range n {
			keys = append(keys, f)
		}
	}
	return keys, nil
}
