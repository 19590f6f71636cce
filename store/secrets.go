package store

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	"github.com/nanohook/nanohook"
)

// KeySetting names the setting that holds the encryption keys, in every
// message that asks an operator to change it.
const KeySetting = "NANOHOOK_ENCRYPTION_KEY (--encryption-key)"

// sealPrefix marks a stored secret as sealed by a Keyring. The version in it
// lets a later format live next to this one; a value without it is a
// plaintext secret written before encryption was turned on.
const sealPrefix = nanohook.ReservedSecretPrefix + "1:"

// sealLabel is the additional data of every seal. It binds the ciphertext to
// its purpose, so that a value sealed under the same key for something else
// one day cannot be passed off as a webhook secret.
var sealLabel = []byte("nanohook webhook secret v1")

// kidLen is the length of a key id in hex: 32 bits of SHA-256 of the key.
// That tells an operator which key a row needs, and reveals nothing usable
// about a 256-bit random key.
const kidLen = 8

// Keyring encrypts webhook secrets at rest with AES-256-GCM. Its first key
// is the primary, which seals; every key opens, so that rows sealed under an
// older key keep working while they are resealed (key rotation).
//
// A nil *Keyring means encryption is off: Seal stores plaintext and Open
// reads plaintext, and refuses sealed values with a message naming the
// setting to fix.
type Keyring struct {
	primary string                 // kid of the key that seals
	aeads   map[string]cipher.AEAD // kid → AES-GCM with that key
	kids    []string               // in the order given, primary first
}

// ParseKeyring parses the value of NANOHOOK_ENCRYPTION_KEY: keys separated
// by commas, each 32 bytes written as base64 (standard or URL alphabet,
// padded or not) or as 64 hex digits. The first key is the primary. An
// empty (or all-blank) value returns a nil Keyring: encryption off.
//
// Errors say which entry is wrong and why, never what it contains: the
// value is a secret and errors end up in logs.
func ParseKeyring(s string) (*Keyring, error) {
	if strings.TrimSpace(s) == "" {
		return nil, nil
	}
	entries := strings.Split(s, ",")
	k := &Keyring{aeads: make(map[string]cipher.AEAD, len(entries))}
	for i, entry := range entries {
		entry = strings.TrimSpace(entry)
		where := fmt.Sprintf("%s: key %d of %d", KeySetting, i+1, len(entries))
		if entry == "" {
			return nil, fmt.Errorf("%s is empty (keys are separated by single commas)", where)
		}
		raw, err := decodeKey(entry)
		if err != nil {
			return nil, fmt.Errorf("%s %w", where, err)
		}
		sum := sha256.Sum256(raw)
		kid := hex.EncodeToString(sum[:])[:kidLen]
		if _, dup := k.aeads[kid]; dup {
			return nil, fmt.Errorf("%s is the same key as an earlier one (key id %s)", where, kid)
		}
		block, err := aes.NewCipher(raw)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", where, err)
		}
		aead, err := cipher.NewGCM(block)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", where, err)
		}
		k.aeads[kid] = aead
		k.kids = append(k.kids, kid)
	}
	k.primary = k.kids[0]
	return k, nil
}

// decodeKey decodes one key entry to its 32 bytes. The error describes the
// entry by its length only.
func decodeKey(entry string) ([]byte, error) {
	if len(entry) == 64 {
		// 64 characters of base64 would be 48 bytes: this was meant as hex.
		raw, err := hex.DecodeString(entry)
		if err != nil {
			return nil, fmt.Errorf("has 64 characters but is not hex")
		}
		return raw, nil
	}
	for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.URLEncoding, base64.RawStdEncoding, base64.RawURLEncoding} {
		raw, err := enc.DecodeString(entry)
		if err != nil {
			continue
		}
		if len(raw) != 32 {
			return nil, fmt.Errorf("decodes to %d bytes, want 32 (generate one with: openssl rand -base64 32)", len(raw))
		}
		return raw, nil
	}
	return nil, fmt.Errorf("is neither base64 nor 64 hex digits (it has %d characters; generate one with: openssl rand -base64 32)", len(entry))
}

// PrimaryKeyID is the id of the key that seals ("" for a nil Keyring).
func (k *Keyring) PrimaryKeyID() string {
	if k == nil {
		return ""
	}
	return k.primary
}

// KeyIDs are the ids of every key, primary first (nil for a nil Keyring).
func (k *Keyring) KeyIDs() []string {
	if k == nil {
		return nil
	}
	return slices.Clone(k.kids)
}

// Seal encrypts a secret under the primary key as
// "nhenc1:<kid>:<base64url(nonce || ciphertext)>", with a fresh random
// nonce each time. A nil Keyring returns plain unchanged, and so does every
// Keyring for "": the empty string means "no secret" (a dropped previous
// secret), and the SQL compares it as such.
func (k *Keyring) Seal(plain string) (string, error) {
	if k == nil || plain == "" {
		return plain, nil
	}
	aead := k.aeads[k.primary]
	buf := make([]byte, aead.NonceSize(), aead.NonceSize()+len(plain)+aead.Overhead())
	if _, err := rand.Read(buf); err != nil {
		return "", fmt.Errorf("seal secret: %w", err)
	}
	buf = aead.Seal(buf, buf, []byte(plain), sealLabel)
	return sealPrefix + k.primary + ":" + base64.RawURLEncoding.EncodeToString(buf), nil
}

// ErrSecretSealed is wrapped by every error of Open about a sealed value it
// cannot open; callers branch on it to tell a key problem from a storage
// failure.
var ErrSecretSealed = errors.New("webhook secret cannot be decrypted")

// SecretUnopenedError is the last_error of a delivery whose endpoint's secret
// cannot be opened. Customers read last_error, so it names no key id,
// endpoint or setting; the operator finds those with `nanohook secrets
// check`.
const SecretUnopenedError = "the endpoint's signing secret cannot be decrypted on this server; an operator must fix the encryption key"

// SecretRetryDelay is how far a claim pushes back a delivery whose secret
// it cannot open, without counting an attempt. Long enough that the claimer
// does not trip over it at every poll, short enough that a node with the key
// (or this one, restarted with it) takes it soon.
const SecretRetryDelay = time.Minute

// Open returns the plaintext of a stored secret. A value without the
// "nhenc1:" prefix is returned as it is: rows written before encryption was
// turned on keep working, and ResealSecrets converts them.
func (k *Keyring) Open(stored string) (string, error) {
	kid, body, sealed := splitSealed(stored)
	if !sealed {
		return stored, nil
	}
	if k == nil {
		return "", fmt.Errorf("%w: secret is encrypted; set NANOHOOK_ENCRYPTION_KEY (or --encryption-key)", ErrSecretSealed)
	}
	aead, ok := k.aeads[kid]
	if !ok {
		return "", fmt.Errorf("%w: secret is encrypted with key %s, which is not in %s; add that key", ErrSecretSealed, kid, KeySetting)
	}
	buf, err := base64.RawURLEncoding.DecodeString(body)
	if err != nil || len(buf) < aead.NonceSize()+aead.Overhead() {
		return "", fmt.Errorf("%w: secret sealed with key %s is malformed", ErrSecretSealed, kid)
	}
	plain, err := aead.Open(nil, buf[:aead.NonceSize()], buf[aead.NonceSize():], sealLabel)
	if err != nil {
		return "", fmt.Errorf("%w: secret sealed with key %s fails authentication (altered or corrupt)", ErrSecretSealed, kid)
	}
	return string(plain), nil
}

// NeedsReseal reports whether ResealSecrets should rewrite a stored value:
// a plaintext secret, or one sealed under a key other than the primary. A
// nil Keyring has nothing to seal with, and "" is no secret.
func (k *Keyring) NeedsReseal(stored string) bool {
	if k == nil || stored == "" {
		return false
	}
	kid, _, sealed := splitSealed(stored)
	return !sealed || kid != k.primary
}

// Reseal is what ResealSecrets does to one stored value: when NeedsReseal,
// it opens the value and seals it under the primary key (changed true);
// otherwise it returns stored as it is.
func (k *Keyring) Reseal(stored string) (out string, changed bool, err error) {
	if !k.NeedsReseal(stored) {
		return stored, false, nil
	}
	plain, err := k.Open(stored)
	if err != nil {
		return stored, false, err
	}
	out, err = k.Seal(plain)
	if err != nil {
		return stored, false, err
	}
	return out, true, nil
}

// splitSealed splits "nhenc1:<kid>:<body>"; sealed is false for anything
// else, which is then plaintext.
func splitSealed(stored string) (kid, body string, sealed bool) {
	rest, ok := strings.CutPrefix(stored, sealPrefix)
	if !ok {
		return "", "", false
	}
	kid, body, ok = strings.Cut(rest, ":")
	if !ok {
		// A prefix without the rest is still a sealed value (a damaged
		// one): treating it as plaintext would sign with garbage silently.
		return rest, "", true
	}
	return kid, body, true
}

// SecretCheck tallies the stored secrets a Keyring cannot open, endpoint by
// endpoint, so that CheckSecrets and ResealSecrets report every problem at
// once, by key, instead of stopping at the first row.
type SecretCheck struct {
	k        *Keyring
	rows     int
	noKey    int            // sealed while encryption is off
	unknown  map[string]int // kid missing from the keyring → rows
	damaged  int            // known key, but fails to open
	firstIDs []int64        // a few endpoint ids, for the message
}

// NewSecretCheck starts a tally against k (which may be nil).
func (k *Keyring) NewSecretCheck() *SecretCheck {
	return &SecretCheck{k: k, unknown: map[string]int{}}
}

// Add checks the stored secret and previous secret of one endpoint and
// reports whether both open.
func (c *SecretCheck) Add(endpointID int64, stored ...string) bool {
	for _, v := range stored {
		if _, err := c.k.Open(v); err != nil {
			c.Fail(endpointID, v)
			return false
		}
	}
	return true
}

// Fail counts one endpoint whose stored value v does not open.
func (c *SecretCheck) Fail(endpointID int64, v string) {
	c.rows++
	if len(c.firstIDs) < 5 {
		c.firstIDs = append(c.firstIDs, endpointID)
	}
	kid, _, _ := splitSealed(v)
	switch {
	case c.k == nil:
		c.noKey++
	case c.k.aeads[kid] == nil:
		c.unknown[kid]++
	default:
		c.damaged++
	}
}

// Err is nil when every endpoint added opened, else one error (wrapping
// ErrSecretSealed) that says how many endpoints fail, under which key ids,
// and which setting to fix.
func (c *SecretCheck) Err() error {
	if c.rows == 0 {
		return nil
	}
	var parts []string
	if c.noKey > 0 {
		parts = append(parts, fmt.Sprintf("%d encrypted while NANOHOOK_ENCRYPTION_KEY is not set (set it, or --encryption-key)", c.noKey))
	}
	for _, kid := range slices.Sorted(maps.Keys(c.unknown)) {
		parts = append(parts, fmt.Sprintf("%d encrypted with key %s, which is not in %s (add it)", c.unknown[kid], kid, KeySetting))
	}
	if c.damaged > 0 {
		parts = append(parts, fmt.Sprintf("%d failing authentication under a configured key (altered or corrupt)", c.damaged))
	}
	ids := make([]string, len(c.firstIDs))
	for i, id := range c.firstIDs {
		ids[i] = fmt.Sprint(id)
	}
	more := ""
	if c.rows > len(c.firstIDs) {
		more = ", …"
	}
	return fmt.Errorf("%w for %d endpoint(s) (ids %s%s): %s", ErrSecretSealed, c.rows,
		strings.Join(ids, ", "), more, strings.Join(parts, "; "))
}

// Secrets is a store's keyring, swapped atomically: each driver keeps one
// and goes through it for every secret it writes or reads.
type Secrets struct{ k atomic.Pointer[Keyring] }

// Set replaces the keyring; nil stores new secrets as plaintext and refuses
// sealed ones.
func (s *Secrets) Set(k *Keyring) { s.k.Store(k) }

// Keyring is the keyring now in use (nil: none).
func (s *Secrets) Keyring() *Keyring { return s.k.Load() }

// Seal is the stored form of a secret about to be written.
func (s *Secrets) Seal(secret string) (string, error) { return s.k.Load().Seal(secret) }

// Open is the plaintext of an endpoint's stored secret, with the endpoint
// named in the error.
func (s *Secrets) Open(endpointID int64, stored string) (string, error) {
	plain, err := s.k.Load().Open(stored)
	if err != nil {
		return "", fmt.Errorf("endpoint %d: %w", endpointID, err)
	}
	return plain, nil
}
