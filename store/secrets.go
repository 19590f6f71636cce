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
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/nanohook/nanohook"
)

// KeySetting names the setting that holds the encryption keys, in every
// message that asks an operator to change it.
const KeySetting = "NANOHOOK_ENCRYPTION_KEY (--encryption-key)"

// sealPrefix marks a value sealed by a Keyring in the current format: the
// additional data of its seal names the endpoint and the field it belongs to
// (sealAD). The version in it lets a later format live next to this one; a
// value with neither prefix is plaintext written before encryption was
// turned on.
const sealPrefix = nanohook.ReservedSecretPrefix + "2:"

// sealPrefixV1 marks a secret sealed by the first format, whose additional
// data is sealLabelV1 alone: bound to its purpose but not to its endpoint.
// Such values still open, as secrets only, and ResealSecrets rewrites them
// in the current format.
const sealPrefixV1 = nanohook.ReservedSecretPrefix + "1:"

// sealLabelV1 is the additional data of every seal of the first format.
var sealLabelV1 = []byte("nanohook webhook secret v1")

// Field is what a sealed value is for. The additional data of a seal names
// its field and its endpoint's id (sealAD), so a value only opens where it
// was written: someone who can write the database but lacks the key cannot
// make their endpoint B use what they cannot read of endpoint A by copying
// it: A's sealed URL (B's events would reach A's receiver with A's token),
// A's sealed secret (B's deliveries, which B's owner receives, would be
// signed with it), nor a sealed secret as a URL. Such a writer can still
// store a plaintext value of their own, which is read as is: that is how
// rows written before encryption keep working.
type Field uint8

const (
	// FieldSecret is an endpoint's secret or previous secret. Both columns
	// share it, since a rotation copies the one into the other as stored.
	FieldSecret Field = iota + 1
	// FieldURL is an endpoint's URL, whose query may hold a token.
	FieldURL
)

// String names the field in errors.
func (f Field) String() string {
	switch f {
	case FieldSecret:
		return "secret"
	case FieldURL:
		return "URL"
	}
	return fmt.Sprintf("field %d", uint8(f))
}

// sealAD is the additional data of a current seal: the format, the field and
// the endpoint, e.g. "nanohook endpoint url v2:42".
func sealAD(f Field, endpointID int64) []byte {
	label := fmt.Sprintf("nanohook endpoint field %d v2:", uint8(f))
	switch f {
	case FieldSecret:
		label = "nanohook endpoint secret v2:"
	case FieldURL:
		label = "nanohook endpoint url v2:"
	}
	return strconv.AppendInt([]byte(label), endpointID, 10)
}

// kidLen is the length of a key id in hex: 32 bits of SHA-256 of the key.
// That tells an operator which key a row needs, and reveals nothing usable
// about a 256-bit random key.
const kidLen = 8

// Keyring encrypts endpoint URLs and webhook secrets at rest with
// AES-256-GCM. Its first key
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

// Seal encrypts the field f of endpoint endpointID under the primary key as
// "nhenc2:<kid>:<base64url(nonce || ciphertext)>", with a fresh random nonce
// each time and sealAD(f, endpointID) as additional data. A nil Keyring
// returns plain unchanged, and so does every Keyring for "": the empty
// string means "no secret" (a dropped previous secret), and the SQL compares
// it as such.
func (k *Keyring) Seal(f Field, endpointID int64, plain string) (string, error) {
	if k == nil || plain == "" {
		return plain, nil
	}
	aead := k.aeads[k.primary]
	buf := make([]byte, aead.NonceSize(), aead.NonceSize()+len(plain)+aead.Overhead())
	if _, err := rand.Read(buf); err != nil {
		return "", fmt.Errorf("seal %s: %w", f, err)
	}
	buf = aead.Seal(buf, buf, []byte(plain), sealAD(f, endpointID))
	return sealPrefix + k.primary + ":" + base64.RawURLEncoding.EncodeToString(buf), nil
}

// ErrSecretSealed is wrapped by every error of Open about a sealed value it
// cannot open; callers branch on it to tell a key problem from a storage
// failure.
var ErrSecretSealed = errors.New("endpoint secret or URL cannot be decrypted")

// SecretUnopenedError is the last_error of a delivery whose endpoint's URL
// or secret cannot be opened. Customers read last_error, so it names no key
// id, endpoint or setting; the operator finds those with `nanohook secrets
// check`.
const SecretUnopenedError = "the endpoint's URL or signing secret cannot be decrypted on this server; an operator must fix the encryption key"

// SecretRetryDelay is how far a claim pushes back a delivery whose
// endpoint's URL or secret it cannot open, without counting an attempt.
// Long enough that the claimer does not trip over it at every poll, short
// enough that a node with the key (or this one, restarted with it) takes it
// soon.
const SecretRetryDelay = time.Minute

// Open returns the plaintext of the stored field f of endpoint endpointID.
// A value without a seal prefix is returned as it is: rows written before
// encryption was turned on keep working, and ResealSecrets converts them. A
// value sealed for another endpoint or field fails authentication, as an
// altered one does; a first-format value opens as a secret only.
func (k *Keyring) Open(f Field, endpointID int64, stored string) (string, error) {
	v := splitSealed(stored)
	if !v.sealed {
		return stored, nil
	}
	if k == nil {
		return "", fmt.Errorf("%w: %s is encrypted; set NANOHOOK_ENCRYPTION_KEY (or --encryption-key)", ErrSecretSealed, f)
	}
	aead, ok := k.aeads[v.kid]
	if !ok {
		return "", fmt.Errorf("%w: %s is encrypted with key %s, which is not in %s; add that key", ErrSecretSealed, f, v.kid, KeySetting)
	}
	buf, err := base64.RawURLEncoding.DecodeString(v.body)
	if err != nil || len(buf) < aead.NonceSize()+aead.Overhead() {
		return "", fmt.Errorf("%w: %s sealed with key %s is malformed", ErrSecretSealed, f, v.kid)
	}
	ad := sealAD(f, endpointID)
	if v.version == 1 {
		if f != FieldSecret {
			// The first format only ever sealed secrets: this one was
			// copied here.
			return "", fmt.Errorf("%w: %s sealed with key %s fails authentication (altered, corrupt or copied from elsewhere)", ErrSecretSealed, f, v.kid)
		}
		ad = sealLabelV1
	}
	plain, err := aead.Open(nil, buf[:aead.NonceSize()], buf[aead.NonceSize():], ad)
	if err != nil {
		return "", fmt.Errorf("%w: %s sealed with key %s fails authentication (altered, corrupt or copied from elsewhere)", ErrSecretSealed, f, v.kid)
	}
	return string(plain), nil
}

// NeedsReseal reports whether ResealSecrets should rewrite a stored value:
// plaintext, sealed in the first format (not bound to its endpoint), or
// sealed under a key other than the primary. A nil Keyring has nothing to
// seal with, and "" is no secret.
func (k *Keyring) NeedsReseal(stored string) bool {
	if k == nil || stored == "" {
		return false
	}
	v := splitSealed(stored)
	return !v.sealed || v.version != 2 || v.kid != k.primary
}

// Reseal is what ResealSecrets does to one stored value: when NeedsReseal,
// it opens the value and seals it under the primary key in the current
// format (changed true); otherwise it returns stored as it is.
func (k *Keyring) Reseal(f Field, endpointID int64, stored string) (out string, changed bool, err error) {
	if !k.NeedsReseal(stored) {
		return stored, false, nil
	}
	plain, err := k.Open(f, endpointID, stored)
	if err != nil {
		return stored, false, err
	}
	out, err = k.Seal(f, endpointID, plain)
	if err != nil {
		return stored, false, err
	}
	return out, true, nil
}

// sealedValue is a stored value taken apart by splitSealed.
type sealedValue struct {
	sealed    bool
	version   int // 1 or 2
	kid, body string
}

// splitSealed splits "nhenc2:<kid>:<body>" (or "nhenc1:…"); sealed is false
// for anything else, which is then plaintext.
func splitSealed(stored string) sealedValue {
	v := sealedValue{version: 2}
	rest, ok := strings.CutPrefix(stored, sealPrefix)
	if !ok {
		if rest, ok = strings.CutPrefix(stored, sealPrefixV1); !ok {
			return sealedValue{}
		}
		v.version = 1
	}
	v.sealed = true
	v.kid, v.body, ok = strings.Cut(rest, ":")
	if !ok {
		// A prefix without the rest is still a sealed value (a damaged
		// one): treating it as plaintext would sign with garbage silently.
		v.kid, v.body = rest, ""
	}
	return v
}

// SecretCheck tallies the stored values a Keyring cannot open, endpoint by
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

// Add checks the stored URL, secret and previous secret of one endpoint and
// reports whether all three open; an endpoint that fails is counted once,
// by the first value that does not open.
func (c *SecretCheck) Add(r StoredSecrets) bool {
	for _, v := range []struct {
		f      Field
		stored string
	}{{FieldURL, r.URL}, {FieldSecret, r.Secret}, {FieldSecret, r.Previous}} {
		if _, err := c.k.Open(v.f, r.ID, v.stored); err != nil {
			c.fail(r.ID, v.stored)
			return false
		}
	}
	return true
}

// fail counts one endpoint whose stored value v does not open.
func (c *SecretCheck) fail(endpointID int64, v string) {
	c.rows++
	if len(c.firstIDs) < 5 {
		c.firstIDs = append(c.firstIDs, endpointID)
	}
	kid := splitSealed(v).kid
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
		parts = append(parts, fmt.Sprintf("%d failing authentication under a configured key (altered, corrupt or copied from another endpoint)", c.damaged))
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
// and goes through it for every endpoint URL and secret it writes or reads.
type Secrets struct{ k atomic.Pointer[Keyring] }

// Set replaces the keyring; nil stores new values as plaintext and refuses
// sealed ones.
func (s *Secrets) Set(k *Keyring) { s.k.Store(k) }

// Keyring is the keyring now in use (nil: none).
func (s *Secrets) Keyring() *Keyring { return s.k.Load() }

// Seal is the stored form of the field f of endpoint endpointID about to be
// written.
func (s *Secrets) Seal(f Field, endpointID int64, plain string) (string, error) {
	return s.k.Load().Seal(f, endpointID, plain)
}

// Open is the plaintext of the stored field f of endpoint endpointID, with
// the endpoint named in the error.
func (s *Secrets) Open(f Field, endpointID int64, stored string) (string, error) {
	plain, err := s.k.Load().Open(f, endpointID, stored)
	if err != nil {
		return "", fmt.Errorf("endpoint %d: %w", endpointID, err)
	}
	return plain, nil
}

// OpenEndpoint opens e's URL and secret, as read from its row, in place.
func (s *Secrets) OpenEndpoint(e *nanohook.Endpoint) error {
	k := s.k.Load()
	url, err := k.Open(FieldURL, e.ID, e.URL)
	if err != nil {
		return fmt.Errorf("endpoint %d: %w", e.ID, err)
	}
	secret, err := k.Open(FieldSecret, e.ID, e.Secret)
	if err != nil {
		return fmt.Errorf("endpoint %d: %w", e.ID, err)
	}
	e.URL, e.Secret = url, secret
	return nil
}

// OpenedEndpoint is e, as scanned from its row (with err, the scan's
// error), with its URL and secret opened: a driver's readEndpoint is
// s.OpenedEndpoint(scanEndpoint(row)). A scan error is returned as it is,
// so that callers can tell no row from a failure.
func (s *Secrets) OpenedEndpoint(e nanohook.Endpoint, err error) (nanohook.Endpoint, error) {
	if err != nil {
		return e, err
	}
	if err := s.OpenEndpoint(&e); err != nil {
		return nanohook.Endpoint{}, err
	}
	return e, nil
}

// OpenClaim opens the URL, secret and previous secret of a claimed (or
// test) delivery, as read from its endpoint's row, in place. On error c is
// left as it was.
func (s *Secrets) OpenClaim(c *ClaimedDelivery) error {
	k := s.k.Load()
	url, err := k.Open(FieldURL, c.EndpointID, c.URL)
	if err != nil {
		return fmt.Errorf("endpoint %d: %w", c.EndpointID, err)
	}
	secret, err := k.Open(FieldSecret, c.EndpointID, c.Secret)
	if err != nil {
		return fmt.Errorf("endpoint %d: %w", c.EndpointID, err)
	}
	previous, err := k.Open(FieldSecret, c.EndpointID, c.PreviousSecret)
	if err != nil {
		return fmt.Errorf("endpoint %d: %w", c.EndpointID, err)
	}
	c.URL, c.Secret, c.PreviousSecret = url, secret, previous
	return nil
}
