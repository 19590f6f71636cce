package webhook

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"hash"
	"strconv"
)

// SignatureScheme prefixes every signature value, so that a future scheme can
// be sent next to this one and receivers can tell them apart.
const SignatureScheme = "v1="

// Sign returns "v1=" + lowercase hex HMAC-SHA256(secret, "<timestamp>.<body>").
// The key is the UTF-8 bytes of secret exactly as given (a whsec_ prefix
// included). Receivers use it to fabricate deliveries in their tests; senders
// signing many bodies with one secret should use a Signer.
func Sign(secret string, timestamp int64, body []byte) string {
	return NewSigner(secret).Sign(timestamp, body)
}

// Signer signs bodies with one secret, reusing its HMAC state so that signing
// costs no allocation beyond the result. A Signer is not safe for concurrent
// use; give each goroutine its own.
type Signer struct {
	mac hash.Hash
	buf [24]byte
	sum [sha256.Size]byte
}

// NewSigner returns a Signer keyed with the UTF-8 bytes of secret.
func NewSigner(secret string) *Signer {
	return &Signer{mac: hmac.New(sha256.New, []byte(secret))}
}

// Sign returns the signature header value of body sent at timestamp, the same
// string the package-level Sign returns.
func (s *Signer) Sign(timestamp int64, body []byte) string {
	var b [len(SignatureScheme) + 2*sha256.Size]byte
	return string(s.AppendSign(b[:0], timestamp, body))
}

// AppendSign appends the signature header value ("v1=" and 64 hex digits) of
// body sent at timestamp to dst, for callers that build headers in a reused
// buffer.
func (s *Signer) AppendSign(dst []byte, timestamp int64, body []byte) []byte {
	s.mac.Reset()
	prefix := strconv.AppendInt(s.buf[:0], timestamp, 10)
	prefix = append(prefix, '.')
	s.mac.Write(prefix)
	s.mac.Write(body)
	sum := s.mac.Sum(s.sum[:0])
	dst = append(dst, SignatureScheme...)
	return hex.AppendEncode(dst, sum)
}
