package policy

import (
	"bufio"
	"bytes"
	"crypto/rand"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"

	"golang.org/x/crypto/chacha20poly1305"
)

// Token errors. Open's errors wrap one of them.
var (
	ErrBadToken     = errors.New("link is not valid")  // malformed, truncated, tampered with or forged
	ErrExpiredToken = errors.New("link has expired")   // older than Tokens.MaxAge
	ErrUnknownKey   = errors.New("link's key is gone") // made with a key no longer in the ring
)

// Key is one key of the ring that seals recipient links.
type Key struct {
	ID     byte
	Secret []byte // 32 bytes
}

// Tokens seals and opens the tokens of recipient links (unsubscribe,
// manage subscription): XChaCha20-Poly1305 over the sender, list,
// address and queue ID and the time the token was made, so a token
// cannot be forged or altered without the key and reveals nothing of
// the recipient to whoever reads the URL. The token's first byte is the
// id of the key that sealed it: Keys[0] seals, every key of the ring
// opens, so a key can be rotated in while the links already sent keep
// working until their key is dropped. Replaying a token is harmless by
// design: what it does (unsubscribe) is idempotent.
type Tokens struct {
	Keys   []Key
	MaxAge time.Duration // 0: no expiry
}

// Seal makes the token for r, made at now.
func (t *Tokens) Seal(r Recipient, now time.Time) string {
	k := t.Keys[0]
	aead, _ := chacha20poly1305.NewX(k.Secret)
	var plain []byte
	plain = binary.AppendUvarint(plain, uint64(now.Unix()))
	for _, s := range []string{r.Sender, r.List, r.Address, r.MsgID} {
		plain = binary.AppendUvarint(plain, uint64(len(s)))
		plain = append(plain, s...)
	}
	out := make([]byte, 1+aead.NonceSize(), 1+aead.NonceSize()+len(plain)+aead.Overhead())
	out[0] = k.ID
	rand.Read(out[1:])
	out = aead.Seal(out, out[1:], plain, out[:1])
	return base64.RawURLEncoding.EncodeToString(out)
}

// Open checks a token and returns what it names.
func (t *Tokens) Open(tok string, now time.Time) (Recipient, error) {
	raw, err := base64.RawURLEncoding.DecodeString(strings.TrimSpace(tok))
	if err != nil || len(raw) < 1+chacha20poly1305.NonceSizeX+chacha20poly1305.Overhead {
		return Recipient{}, ErrBadToken
	}
	var key *Key
	for i := range t.Keys {
		if t.Keys[i].ID == raw[0] {
			key = &t.Keys[i]
		}
	}
	if key == nil {
		return Recipient{}, ErrUnknownKey
	}
	aead, _ := chacha20poly1305.NewX(key.Secret)
	n := 1 + aead.NonceSize()
	plain, err := aead.Open(nil, raw[1:n], raw[n:], raw[:1])
	if err != nil {
		return Recipient{}, ErrBadToken
	}
	made, k := binary.Uvarint(plain)
	if k <= 0 {
		return Recipient{}, ErrBadToken
	}
	plain = plain[k:]
	var f [4]string
	for i := range f {
		l, k := binary.Uvarint(plain)
		if k <= 0 || uint64(len(plain)-k) < l {
			return Recipient{}, ErrBadToken
		}
		f[i] = string(plain[k : k+int(l)])
		plain = plain[k+int(l):]
	}
	if t.MaxAge > 0 && now.Sub(time.Unix(int64(made), 0)) > t.MaxAge {
		return Recipient{}, ErrExpiredToken
	}
	return Recipient{Sender: f[0], List: f[1], Address: f[2], MsgID: f[3]}, nil
}

// The key ring file holds one key a line, "ID HEX-SECRET", the sealing
// key first; '#' starts a comment.

// LoadKeys reads the key ring at path; with create, a missing file is
// made with one new key (mode 0600, written atomically by write).
func LoadKeys(path string, create bool, write func(path string, data []byte) error) ([]Key, error) {
	data, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) && create {
		keys := []Key{newKey(1)}
		return keys, write(path, formatKeys(keys))
	}
	if err != nil {
		return nil, fmt.Errorf("link keys: %w", err)
	}
	return parseKeys(path, data)
}

// RotateKeys puts a new sealing key at the head of the ring at path,
// keeping at most keep keys in all (the oldest go), and returns the ring.
func RotateKeys(path string, keep int, write func(path string, data []byte) error) ([]Key, error) {
	keys, err := LoadKeys(path, false, nil)
	if err != nil {
		return nil, err
	}
	next := keys[0].ID + 1
	if next == 0 {
		next = 1
	}
	keys = append([]Key{newKey(next)}, keys...)
	if keep > 0 && len(keys) > keep {
		keys = keys[:keep]
	}
	return keys, write(path, formatKeys(keys))
}

func newKey(id byte) Key {
	k := Key{ID: id, Secret: make([]byte, chacha20poly1305.KeySize)}
	rand.Read(k.Secret)
	return k
}

func formatKeys(keys []Key) []byte {
	var b bytes.Buffer
	b.WriteString("# Drover's keys for recipient links (unsubscribe, manage): ID SECRET; the first one seals.\n")
	for _, k := range keys {
		fmt.Fprintf(&b, "%d %s\n", k.ID, hex.EncodeToString(k.Secret))
	}
	return b.Bytes()
}

func parseKeys(path string, data []byte) ([]Key, error) {
	var keys []Key
	seen := map[byte]bool{}
	sc := bufio.NewScanner(bytes.NewReader(data))
	for line := 1; sc.Scan(); line++ {
		text := strings.TrimSpace(sc.Text())
		if text == "" || text[0] == '#' {
			continue
		}
		idText, secretText, _ := strings.Cut(text, " ")
		id, err := strconv.ParseUint(idText, 10, 8)
		secret, herr := hex.DecodeString(strings.TrimSpace(secretText))
		switch {
		case err != nil || id == 0:
			return nil, fmt.Errorf("%s:%d: key id must be a number from 1 to 255", path, line)
		case herr != nil || len(secret) != chacha20poly1305.KeySize:
			return nil, fmt.Errorf("%s:%d: secret must be %d bytes in hex", path, line, chacha20poly1305.KeySize)
		case seen[byte(id)]:
			return nil, fmt.Errorf("%s:%d: key id %d is used twice", path, line, id)
		}
		seen[byte(id)] = true
		keys = append(keys, Key{ID: byte(id), Secret: secret})
	}
	if len(keys) == 0 {
		return nil, fmt.Errorf("%s: no key", path)
	}
	return keys, nil
}
