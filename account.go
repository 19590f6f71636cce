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

// NewEventID makes a public event id: "evt_" and 128 random bits.
func NewEventID() string { return "evt_" + randomToken(16) }

func randomToken(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)
}
