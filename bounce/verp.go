package bounce

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base32"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"strings"
)

// VERP makes and reads the return paths of outgoing mail:
// bounces+TOKEN@bounce-domain, where TOKEN names the message, the
// recipient (its index in the message) and the sender, and carries an
// HMAC-SHA256 tag (truncated to 48 bits) under Key so that it cannot be
// forged or guessed.
//
// TOKEN is lowercase base32 (RFC 4648 alphabet, no padding), because some
// servers change the case of local parts. A message ID written as even-
// length hexadecimal is stored in half the room. With a 16-byte message
// ID and a short sender name the whole local part stays within the 64
// octets RFC 5321 allows; longer IDs give longer (still working) tokens.
type VERP struct {
	Key []byte
}

// VERPPrefix is the local part before the token.
const VERPPrefix = "bounces"

// ErrBadToken is returned by VERP.Decode for an address that is not a
// VERP address made with the key: malformed, garbled or forged.
var ErrBadToken = errors.New("bounce: invalid VERP token")

// verpTagLen is the length of the HMAC tag: 48 bits, so a forger must
// send on the order of 2^47 bounces to get one accepted.
const verpTagLen = 6

var verpEncoding = base32.NewEncoding("abcdefghijklmnopqrstuvwxyz234567").WithPadding(base32.NoPadding)

// Encode returns the return path for recipient number rcptIndex of
// message msgID sent by sender: bounces+TOKEN@domain. rcptIndex must not
// be negative.
func (v VERP) Encode(msgID string, rcptIndex int, sender string, domain string) string {
	if rcptIndex < 0 {
		rcptIndex = 0
	}
	id := []byte(msgID)
	flag := uint64(0)
	if b, err := hex.DecodeString(msgID); err == nil && len(msgID) > 0 && strings.ToLower(msgID) == msgID {
		id, flag = b, 1
	}
	payload := make([]byte, 0, 2*binary.MaxVarintLen64+len(id)+len(sender)+verpTagLen)
	payload = binary.AppendUvarint(payload, uint64(len(id))<<1|flag)
	payload = append(payload, id...)
	payload = binary.AppendUvarint(payload, uint64(rcptIndex))
	payload = append(payload, sender...)
	payload = append(payload, v.tag(payload)...)
	return VERPPrefix + "+" + verpEncoding.EncodeToString(payload) + "@" + domain
}

// Decode reads a return path made by Encode with the same key. Case is
// ignored, and so are a display name and angle brackets around the
// address.
func (v VERP) Decode(addr string) (msgID string, rcptIndex int, sender string, err error) {
	if i := strings.LastIndexByte(addr, '<'); i >= 0 {
		addr = addr[i+1:]
	}
	addr = strings.TrimSpace(strings.TrimRight(strings.TrimSpace(addr), ">"))
	at := strings.LastIndexByte(addr, '@')
	if at < 0 {
		return "", 0, "", ErrBadToken
	}
	local := strings.ToLower(addr[:at])
	plus := strings.IndexByte(local, '+')
	if plus < 0 || local[:plus] != VERPPrefix {
		return "", 0, "", ErrBadToken
	}
	token := local[plus+1:]
	raw, derr := verpEncoding.DecodeString(token)
	if derr != nil || len(raw) < verpTagLen+2 || verpEncoding.EncodeToString(raw) != token {
		return "", 0, "", ErrBadToken
	}
	payload, tag := raw[:len(raw)-verpTagLen], raw[len(raw)-verpTagLen:]
	if !hmac.Equal(tag, v.tag(payload)) {
		return "", 0, "", ErrBadToken
	}
	n, k := binary.Uvarint(payload)
	if k <= 0 || n>>1 > uint64(len(payload)-k) {
		return "", 0, "", ErrBadToken
	}
	payload = payload[k:]
	id := payload[:n>>1]
	payload = payload[n>>1:]
	idx, k := binary.Uvarint(payload)
	if k <= 0 || idx > 1<<31 {
		return "", 0, "", ErrBadToken
	}
	msgID = string(id)
	if n&1 == 1 {
		msgID = hex.EncodeToString(id)
	}
	return msgID, int(idx), string(payload[k:]), nil
}

func (v VERP) tag(payload []byte) []byte {
	m := hmac.New(sha256.New, v.Key)
	m.Write([]byte("drover-verp-v1\x00"))
	m.Write(payload)
	return m.Sum(nil)[:verpTagLen]
}
