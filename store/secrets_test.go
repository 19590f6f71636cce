package store

import (
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"strings"
	"testing"

	"github.com/nanohook/nanohook"
)

// newKey returns a random 32-byte key as standard base64, as
// `openssl rand -base64 32` prints it, and its key id.
func newKey(t *testing.T) (b64, kid string) {
	t.Helper()
	raw := make([]byte, 32)
	if _, err := rand.Read(raw); err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(raw)
	return base64.StdEncoding.EncodeToString(raw), hex.EncodeToString(sum[:4])
}

func mustKeyring(t *testing.T, s string) *Keyring {
	t.Helper()
	k, err := ParseKeyring(s)
	if err != nil {
		t.Fatalf("ParseKeyring: %v", err)
	}
	if k == nil {
		t.Fatal("ParseKeyring returned no keyring for a non-empty value")
	}
	return k
}

func TestSealOpenRoundTrip(t *testing.T) {
	key, kid := newKey(t)
	k := mustKeyring(t, key)
	if k.PrimaryKeyID() != kid {
		t.Fatalf("primary key id %q, want %q (first 8 hex of SHA-256 of the key)", k.PrimaryKeyID(), kid)
	}
	long := "https://hooks.example.com/?token=" + strings.Repeat("p", nanohook.MaxURLLen-33) // the longest URL allowed
	for _, f := range []Field{FieldSecret, FieldURL} {
		for _, plain := range []string{"whsec_abc", "x", strings.Repeat("é🔑", 100), "nhenc1:looks:sealed", long} {
			sealed, err := k.Seal(f, 42, plain)
			if err != nil {
				t.Fatal(err)
			}
			if !strings.HasPrefix(sealed, "nhenc2:"+kid+":") {
				t.Fatalf("Seal(%q) = %q: want the prefix nhenc2:%s:", plain, sealed, kid)
			}
			if len(plain) >= 8 && strings.Contains(sealed, plain) {
				t.Fatalf("Seal(%q) = %q contains the plaintext", plain, sealed)
			}
			got, err := k.Open(f, 42, sealed)
			if err != nil || got != plain {
				t.Fatalf("Open(Seal(%q)) = %q, %v", plain, got, err)
			}
			if k.NeedsReseal(sealed) {
				t.Fatalf("a value sealed under the primary key needs resealing")
			}
		}
	}
	// The longest URL an endpoint may have, sealed, is what the url column
	// must hold (it has no length limit on either driver): 7 + 8 + 1 bytes
	// of prefix, then base64 of 12 + 2048 + 16.
	sealed, _ := k.Seal(FieldURL, 1<<62, long)
	if len(long) != nanohook.MaxURLLen || len(sealed) != 2784 {
		t.Fatalf("a sealed URL of %d bytes takes %d bytes, want 2784", len(long), len(sealed))
	}
	// "" is "no secret" (a dropped previous secret): stored as it is.
	if s, err := k.Seal(FieldSecret, 1, ""); s != "" || err != nil {
		t.Fatalf(`Seal("") = %q, %v; want ""`, s, err)
	}
	if k.NeedsReseal("") {
		t.Fatal(`"" needs resealing`)
	}
}

func TestSealUsesAFreshNonce(t *testing.T) {
	key, _ := newKey(t)
	k := mustKeyring(t, key)
	const n = 1000
	seen := make(map[string]bool, n)
	nonces := make(map[string]bool, n)
	for range n {
		s, err := k.Seal(FieldSecret, 1, "whsec_same")
		if err != nil {
			t.Fatal(err)
		}
		if seen[s] {
			t.Fatalf("Seal produced %q twice", s)
		}
		seen[s] = true
		raw, err := base64.RawURLEncoding.DecodeString(s[strings.LastIndex(s, ":")+1:])
		if err != nil {
			t.Fatal(err)
		}
		nonce := string(raw[:12])
		if nonces[nonce] {
			t.Fatalf("nonce %x used twice", nonce)
		}
		nonces[nonce] = true
	}
}

func TestOpenPlaintextPassesThrough(t *testing.T) {
	key, _ := newKey(t)
	for _, k := range []*Keyring{nil, mustKeyring(t, key)} {
		for _, s := range []string{"whsec_old_plain", "", "https://hooks.example.com/x?token=y", "nhenc3:abc:def"} {
			got, err := k.Open(FieldURL, 1, s)
			if err != nil || got != s {
				t.Fatalf("Open(%q) = %q, %v; want it unchanged", s, got, err)
			}
		}
	}
	var none *Keyring
	if s, err := none.Seal(FieldURL, 1, "whsec_x"); s != "whsec_x" || err != nil {
		t.Fatalf("nil Keyring: Seal = %q, %v; want the plaintext", s, err)
	}
	if none.NeedsReseal("whsec_x") {
		t.Fatal("nil Keyring: NeedsReseal is true with nothing to seal with")
	}
	if !mustKeyring(t, key).NeedsReseal("whsec_x") {
		t.Fatal("a plaintext secret does not need resealing")
	}
}

func TestOpenRefusesWhatItCannotOpen(t *testing.T) {
	keyA, kidA := newKey(t)
	keyB, _ := newKey(t)
	a, b := mustKeyring(t, keyA), mustKeyring(t, keyB)
	sealed, err := a.Seal(FieldSecret, 7, "whsec_secret")
	if err != nil {
		t.Fatal(err)
	}

	check := func(name string, k *Keyring, v string, wants ...string) {
		t.Helper()
		got, err := k.Open(FieldSecret, 7, v)
		if err == nil {
			t.Fatalf("%s: Open = %q, want an error", name, got)
		}
		if !errors.Is(err, ErrSecretSealed) {
			t.Errorf("%s: %v does not wrap ErrSecretSealed", name, err)
		}
		for _, w := range wants {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("%s: error %q lacks %q", name, err, w)
			}
		}
		if strings.Contains(err.Error(), keyA) || strings.Contains(err.Error(), keyB) {
			t.Errorf("%s: error %q shows a key", name, err)
		}
	}
	check("no keyring", nil, sealed, "secret is encrypted; set NANOHOOK_ENCRYPTION_KEY")
	check("wrong key", b, sealed, kidA, "NANOHOOK_ENCRYPTION_KEY")

	// Every bit of the sealed body is authenticated.
	body := sealed[strings.LastIndex(sealed, ":")+1:]
	raw, _ := base64.RawURLEncoding.DecodeString(body)
	prefix := strings.TrimSuffix(sealed, body)
	for _, i := range []int{0, 11, 12, len(raw) / 2, len(raw) - 1} {
		bad := bytes.Clone(raw)
		bad[i] ^= 1
		check("flipped byte", a, prefix+base64.RawURLEncoding.EncodeToString(bad), "fails authentication (altered")
	}
	check("truncated", a, prefix+base64.RawURLEncoding.EncodeToString(raw[:20]), "malformed")
	check("not base64", a, prefix+"!!!", "malformed")
	check("no body", a, "nhenc2:"+kidA, "malformed")
	check("no body, first format", a, "nhenc1:"+kidA, "malformed")

	// A ciphertext sealed for another purpose (other additional data) under
	// the same key does not open as a webhook secret.
	other := sealWithLabel(t, a, "whsec_secret", []byte("something else"))
	check("other label", a, other, "fails authentication")
	// Nor does one sealed for another endpoint, or as a URL.
	forOther, _ := a.Seal(FieldSecret, 8, "whsec_secret")
	check("another endpoint's", a, forOther, "secret sealed with key "+kidA+" fails authentication")
	asURL, _ := a.Seal(FieldURL, 7, "whsec_secret")
	check("sealed as a URL", a, asURL, "fails authentication")
	if _, err := a.Open(FieldURL, 7, sealed); !errors.Is(err, ErrSecretSealed) || !strings.Contains(err.Error(), "URL sealed with key") {
		t.Fatalf("a secret opened as a URL: %v", err)
	}
}

// The first release sealed secrets as "nhenc1:…" with sealLabelV1 alone.
// legacySealed is one it wrote under legacyKey.
const (
	legacyKey    = "a0a1a2a3a4a5a6a7a8a9aaabacadaeafb0b1b2b3b4b5b6b7b8b9babbbcbdbebf"
	legacySealed = "nhenc1:00e98867:zptZ1adr9N0mD-k59vSBvBIqSRbULLy0XFQfLLt3ZmZoBLzubbOlXV6SmMkzNlTDzgdOohuoyFSCmw"
	legacyPlain  = "whsec_legacy_v1_fixture_secret"
)

// TestFirstFormatSecrets: a secret the first release sealed opens, for any
// endpoint (it is bound to none), as a secret only; it needs resealing even
// under the primary key, and Reseal binds it to its endpoint.
func TestFirstFormatSecrets(t *testing.T) {
	k := mustKeyring(t, legacyKey)
	for _, id := range []int64{1, 99} {
		if got, err := k.Open(FieldSecret, id, legacySealed); err != nil || got != legacyPlain {
			t.Fatalf("Open(first-format secret) for endpoint %d = %q, %v", id, got, err)
		}
	}
	if got, err := k.Open(FieldURL, 1, legacySealed); !errors.Is(err, ErrSecretSealed) || !strings.Contains(err.Error(), "fails authentication") {
		t.Fatalf("a first-format secret opened as a URL: %q, %v", got, err)
	}
	if !k.NeedsReseal(legacySealed) {
		t.Fatal("a first-format secret under the primary key does not need resealing")
	}
	out, changed, err := k.Reseal(FieldSecret, 5, legacySealed)
	if err != nil || !changed || !strings.HasPrefix(out, "nhenc2:00e98867:") {
		t.Fatalf("Reseal(first-format secret) = %q, %v, %v", out, changed, err)
	}
	if got, err := k.Open(FieldSecret, 5, out); err != nil || got != legacyPlain {
		t.Fatalf("Open(resealed) = %q, %v", got, err)
	}
	if _, err := k.Open(FieldSecret, 6, out); err == nil {
		t.Fatal("a resealed first-format secret opens for another endpoint")
	}
	// A first-format value forged for this key opens only with the old
	// label: sealWithLabel's sealPrefix is the current format.
	v1 := strings.Replace(sealWithLabel(t, k, "whsec_x", sealLabelV1), sealPrefix, sealPrefixV1, 1)
	if got, err := k.Open(FieldSecret, 3, v1); err != nil || got != "whsec_x" {
		t.Fatalf("Open(first format) = %q, %v", got, err)
	}
}

// sealWithLabel is Seal with different additional data.
func sealWithLabel(t *testing.T, k *Keyring, plain string, label []byte) string {
	t.Helper()
	aead := k.aeads[k.primary]
	nonce := make([]byte, aead.NonceSize())
	if _, err := rand.Read(nonce); err != nil {
		t.Fatal(err)
	}
	out := aead.Seal(nonce, nonce, []byte(plain), label)
	return sealPrefix + k.primary + ":" + base64.RawURLEncoding.EncodeToString(out)
}

func TestParseKeyring(t *testing.T) {
	raw := make([]byte, 32)
	for i := range raw {
		raw[i] = byte(i * 7)
	}
	forms := map[string]string{
		"std base64":      base64.StdEncoding.EncodeToString(raw),
		"url base64":      base64.URLEncoding.EncodeToString(raw),
		"raw url base64":  base64.RawURLEncoding.EncodeToString(raw),
		"hex":             hex.EncodeToString(raw),
		"upper hex":       strings.ToUpper(hex.EncodeToString(raw)),
		"spaces around":   "  " + hex.EncodeToString(raw) + "\n",
		"raw std base64":  base64.RawStdEncoding.EncodeToString(raw),
		"padded std form": base64.StdEncoding.EncodeToString(raw),
	}
	var want string
	for name, s := range forms {
		k, err := ParseKeyring(s)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if want == "" {
			want = k.PrimaryKeyID()
		}
		if k.PrimaryKeyID() != want {
			t.Fatalf("%s: key id %s, want %s: the forms decode to different keys", name, k.PrimaryKeyID(), want)
		}
	}
	if k, err := ParseKeyring("  "); k != nil || err != nil {
		t.Fatalf("ParseKeyring(blank) = %v, %v; want encryption off", k, err)
	}

	good := base64.StdEncoding.EncodeToString(raw)
	short := base64.StdEncoding.EncodeToString(raw[:16])
	for _, c := range []struct{ in, want string }{
		{good + "," + short, "key 2 of 2 decodes to 16 bytes, want 32"},
		{"not a key!", "key 1 of 1 is neither base64 nor 64 hex digits (it has 10 characters"},
		{"c2hvcnQ=", "key 1 of 1 decodes to 5 bytes, want 32"},
		{good + ",," + hex.EncodeToString(raw[:31]) + "aa", "key 2 of 3 is empty"},
		{good + "," + hex.EncodeToString(raw), "key 2 of 2 is the same key as an earlier one"},
		{strings.Repeat("z", 64), "key 1 of 1 has 64 characters but is not hex"},
	} {
		_, err := ParseKeyring(c.in)
		if err == nil {
			t.Fatalf("ParseKeyring(%q) succeeded", c.in)
		}
		msg := err.Error()
		if !strings.Contains(msg, "NANOHOOK_ENCRYPTION_KEY (--encryption-key)") || !strings.Contains(msg, c.want) {
			t.Errorf("ParseKeyring(%q) = %q; want the setting named and %q", c.in, msg, c.want)
		}
		for _, part := range strings.Split(c.in, ",") {
			if len(part) >= 8 && strings.Contains(msg, part) {
				t.Errorf("error %q echoes a key", msg)
			}
		}
	}
}

// TestTwoKeyRotation is the operator's procedure: "new,old" opens
// everything and seals under new, Reseal moves old values to new, then
// "new" alone opens them all and refuses what was left under old.
func TestTwoKeyRotation(t *testing.T) {
	oldKey, oldKid := newKey(t)
	newKey_, newKid := newKey(t)
	old := mustKeyring(t, oldKey)
	both := mustKeyring(t, newKey_+", "+oldKey)
	if both.PrimaryKeyID() != newKid || strings.Join(both.KeyIDs(), ",") != newKid+","+oldKid {
		t.Fatalf("key ids %v, primary %s; want %s first", both.KeyIDs(), both.PrimaryKeyID(), newKid)
	}

	underOld, _ := old.Seal(FieldSecret, 1, "whsec_one")
	if !both.NeedsReseal(underOld) {
		t.Fatal("a value under the old key does not need resealing")
	}
	if got, err := both.Open(FieldSecret, 1, underOld); err != nil || got != "whsec_one" {
		t.Fatalf("new,old: Open(old value) = %q, %v", got, err)
	}
	stored := []string{underOld, "whsec_plain"}
	for i, v := range stored {
		out, changed, err := both.Reseal(FieldSecret, 1, v)
		if err != nil || !changed || !strings.HasPrefix(out, "nhenc2:"+newKid+":") {
			t.Fatalf("Reseal(%q) = %q, %v, %v", v, out, changed, err)
		}
		stored[i] = out
		if again, changed, _ := both.Reseal(FieldSecret, 1, out); changed || again != out {
			t.Fatal("resealing twice rewrites the value")
		}
	}
	only := mustKeyring(t, newKey_)
	for i, want := range []string{"whsec_one", "whsec_plain"} {
		if got, err := only.Open(FieldSecret, 1, stored[i]); err != nil || got != want {
			t.Fatalf("new alone: Open = %q, %v; want %q", got, err, want)
		}
	}
	if _, err := only.Open(FieldSecret, 1, underOld); err == nil || !strings.Contains(err.Error(), oldKid) {
		t.Fatalf("new alone opened a value left under the old key (err %v)", err)
	}

	// The tally names each missing key with its count, whichever column
	// holds the value.
	urlOld, _ := old.Seal(FieldURL, 4, "https://hooks.example.com/?token=t")
	check := only.NewSecretCheck()
	check.Add(StoredSecrets{ID: 1, Secret: stored[0]})
	check.Add(StoredSecrets{ID: 2, Secret: underOld}) // sealed for endpoint 1, under old: reported by key
	check.Add(StoredSecrets{ID: 3, Secret: "whsec_plain", Previous: underOld})
	check.Add(StoredSecrets{ID: 4, URL: urlOld, Secret: "whsec_plain"})
	check.Add(StoredSecrets{ID: 5, Secret: stored[0]}) // endpoint 1's, copied
	err := check.Err()
	if err == nil || !errors.Is(err, ErrSecretSealed) {
		t.Fatalf("check: %v", err)
	}
	for _, w := range []string{"4 endpoint(s) (ids 2, 3, 4, 5)", "3 encrypted with key " + oldKid,
		"1 failing authentication under a configured key (altered, corrupt or copied from another endpoint)"} {
		if !strings.Contains(err.Error(), w) {
			t.Errorf("check error %q lacks %q", err, w)
		}
	}
	var none *Keyring
	check = none.NewSecretCheck()
	check.Add(StoredSecrets{ID: 1, Secret: stored[0]})
	if err := check.Err(); err == nil || !strings.Contains(err.Error(), "NANOHOOK_ENCRYPTION_KEY is not set") {
		t.Fatalf("check without keys: %v", err)
	}
}
