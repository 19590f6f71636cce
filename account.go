package nanohook

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"time"
)

// Account is a customer of the platform; every endpoint, event and delivery
// belongs to exactly one.
type Account struct {
	ID        int64
	Name      string
	CreatedAt time.Time
}

// APIKey authenticates a caller as an account. Only a hash of the key is
// stored; the key itself is shown once when it is made.
type APIKey struct {
	ID        int64
	AccountID int64
	Hash      []byte
	CreatedAt time.Time
}

// MaxAccountNameLen bounds account names.
const MaxAccountNameLen = 200

// APIKeyPrefix starts every API key, so that leaked keys are easy to find
// with secret scanners.
const APIKeyPrefix = "nhk_"

// NewAPIKey makes a random API key and the hash that is stored for it.
func NewAPIKey() (key string, hash []byte) {
	key = APIKeyPrefix + randomToken(32)
	return key, HashAPIKey(key)
}

// HashAPIKey is the stored form of a key. Keys carry 256 random bits, so a
// plain SHA-256 is enough (no password stretching needed) and lets the key be
// looked up by its hash.
func HashAPIKey(key string) []byte {
	sum := sha256.Sum256([]byte(key))
	return sum[:]
}

// SecretPrefix starts every generated signing secret.
const SecretPrefix = "whsec_"

// NewSecret makes a signing secret: "whsec_" and 32 random bytes in base64.
func NewSecret() string {
	b := make([]byte, 32)
	_, _ = rand.Read(b) // crypto/rand.Read never fails on Linux
	return SecretPrefix + base64.StdEncoding.EncodeToString(b)
}

// NewEventID makes a public event id: "evt_" and 26 characters, the time
// it was made (Unix milliseconds, 10 characters) then 80 random bits (16),
// five bits a character in Crockford's base32 alphabet, lower case. Digits
// and lower-case letters sort alike in every collation (byte order, C,
// en_US and the like), so ids sort by the millisecond they were made in.
//
// The order is for the storage, not for callers: a new id lands at the end
// of the events' unique index, where the previous one did, so a publish
// dirties one or two pages of it instead of about one page per event
// (random ids fell anywhere in the index).
func NewEventID() string { return newEventID(time.Now()) }

// idAlphabet is Crockford's base32 alphabet (no i, l, o, u), lower case,
// in ASCII order.
const idAlphabet = "0123456789abcdefghjkmnpqrstvwxyz"

func newEventID(now time.Time) string {
	var random [10]byte
	_, _ = rand.Read(random[:])
	b := make([]byte, 0, 4+26)
	b = append(b, "evt_"...)
	ms := uint64(now.UnixMilli()) & (1<<50 - 1)
	for shift := 45; shift >= 0; shift -= 5 {
		b = append(b, idAlphabet[ms>>shift&31])
	}
	var bits uint64
	n := 0
	for _, c := range random {
		bits, n = bits<<8|uint64(c), n+8
		for n >= 5 {
			n -= 5
			b = append(b, idAlphabet[bits>>n&31])
		}
	}
	return string(b)
}

func randomToken(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)
}
