//go:build !cgo || !unix

package dkim

import (
	"crypto"
	"crypto/rsa"
	"errors"
)

// errNoOpenSSL says why this build never uses OpenSSL.
var errNoOpenSSL = errors.New("built without cgo (or not for unix), so OpenSSL cannot be loaded")

func loadLibcrypto() (string, error) { return "", errNoOpenSSL }

func newOpenSSLSigner(*rsa.PrivateKey) (crypto.Signer, error) { return nil, errNoOpenSSL }
