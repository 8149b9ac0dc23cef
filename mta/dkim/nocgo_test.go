//go:build !cgo || !unix

package dkim

import "testing"

func TestRSAWithoutOpenSSL(t *testing.T) {
	key := loadTestKey(t, "example.com", "s1", "rsa2048-pkcs8.pem")
	if got := backendName(key.Signer); got != "go" {
		t.Fatalf("backend %q without cgo, want go", got)
	}
	records := txtRecords(t, key)
	msg := signed(t, newTestSigner(t, key), "example.com", readMessage(t, "marketing.eml"))
	if vs := verify(t, records, msg); len(vs) != 1 || vs[0].Err != nil {
		t.Fatalf("pure-Go RSA signature does not verify: %+v", vs)
	}
}
