package storetest

import (
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nanohook/nanohook"
	"github.com/nanohook/nanohook/store"
)

// Raw is the test's window on what sits on disk, with plain SQL (or plain
// file reads) that bypass the driver's keyring.
type Raw struct {
	// Endpoint reads an endpoint's url, secret and previous_secret columns
	// exactly as stored.
	Endpoint func(t *testing.T, s store.Store, id int64) store.StoredSecrets
	// SetEndpoint overwrites them with r's, as someone who can write the
	// database but lacks the key could.
	SetEndpoint func(t *testing.T, s store.Store, r store.StoredSecrets)
	// Holds reports whether text appears anywhere the database keeps it: for
	// SQLite in the bytes of its file and WAL, for PostgreSQL in any row of
	// its tables read as text.
	Holds func(t *testing.T, s store.Store, text string) bool
}

// Keyed is a store whose keyring can be set, as both drivers' can.
type Keyed interface {
	store.Store
	SetKeyring(*store.Keyring)
}

// RunEncryption checks encryption of endpoint URLs and secrets at rest
// against the stores open returns (fresh and empty, as for Run), which must
// be Keyed: URLs and secrets are sealed on disk and plaintext to callers,
// rows written before encryption keep working and are converted by
// ResealSecrets, keys rotate without an unreadable endpoint, a sealed value
// copied to another endpoint does not open there, and a missing key is
// caught by CheckSecrets instead of by every delivery, while one delivery
// whose URL or secret cannot be opened holds back only itself. Changing the
// keyring of one open store stands in for restarting with other keys.
func RunEncryption(t *testing.T, open func(t *testing.T) store.Store, raw Raw) {
	t.Run("SealedAtRest", func(t *testing.T) { t.Parallel(); testSealedAtRest(t, open, raw) })
	t.Run("PlaintextRowsKeepWorking", func(t *testing.T) { t.Parallel(); testPlaintextRows(t, open, raw) })
	t.Run("KeyRotation", func(t *testing.T) { t.Parallel(); testKeyRotation(t, open, raw) })
	t.Run("MissingKey", func(t *testing.T) { t.Parallel(); testMissingKey(t, open, raw) })
	t.Run("UnopenableSecretPostponed", func(t *testing.T) { t.Parallel(); testUnopenable(t, open, raw, store.FieldSecret) })
	t.Run("UnopenableURLPostponed", func(t *testing.T) { t.Parallel(); testUnopenable(t, open, raw, store.FieldURL) })
	t.Run("SealsBoundToTheirEndpoint", func(t *testing.T) { t.Parallel(); testSealsBound(t, open, raw) })
	t.Run("ResealDuringRotations", func(t *testing.T) { t.Parallel(); testResealDuringRotations(t, open, raw) })
}

// encBundle is a bundle on a Keyed store, with its window on the disk.
type encBundle struct {
	*bundle
	k   Keyed
	raw Raw
}

func setupKeyed(t *testing.T, open func(t *testing.T) store.Store, raw Raw) *encBundle {
	t.Helper()
	b := setup(t, open)
	k, ok := b.s.(Keyed)
	if !ok {
		t.Fatalf("%T has no SetKeyring method", b.s)
	}
	return &encBundle{bundle: b, k: k, raw: raw}
}

// stored is the endpoint's sealed columns as they sit on disk.
func (b *encBundle) stored(t *testing.T, id int64) store.StoredSecrets {
	t.Helper()
	r := b.raw.Endpoint(t, b.s, id)
	r.ID = id
	return r
}

// overwrite writes r's columns to its row behind the driver's back.
func (b *encBundle) overwrite(t *testing.T, r store.StoredSecrets) {
	t.Helper()
	b.raw.SetEndpoint(t, b.s, r)
	equal(t, fmt.Sprintf("endpoint %d's columns after overwriting them", r.ID), b.stored(t, r.ID), r)
}

// testKey is a fresh random key in the form `openssl rand -base64 32`
// prints.
func testKey(t *testing.T) string {
	t.Helper()
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return base64.StdEncoding.EncodeToString(b)
}

func keyring(t *testing.T, keys ...string) *store.Keyring {
	t.Helper()
	k, err := store.ParseKeyring(strings.Join(keys, ","))
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// The first release sealed secrets as "nhenc1:…", bound to their purpose
// but not to their endpoint. legacySealed is such a secret, written by that
// release under legacyKey (key id 00e98867): rows like it must keep
// opening, as secrets only, until a reseal rewrites them.
const (
	legacyKey    = "a0a1a2a3a4a5a6a7a8a9aaabacadaeafb0b1b2b3b4b5b6b7b8b9babbbcbdbebf"
	legacyKeyID  = "00e98867"
	legacySealed = "nhenc1:00e98867:zptZ1adr9N0mD-k59vSBvBIqSRbULLy0XFQfLLt3ZmZoBLzubbOlXV6SmMkzNlTDzgdOohuoyFSCmw"
	legacyPlain  = "whsec_legacy_v1_fixture_secret"
)

// token is a random value for a URL's query: found anywhere on disk, it can
// only have come from that URL in clear.
func token(t *testing.T) string {
	t.Helper()
	b := make([]byte, 16)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return "tok" + hex.EncodeToString(b)
}

// tokenURL is a unique endpoint URL whose query holds tok.
func tokenURL(tok string) string {
	return fmt.Sprintf("https://hooks.example.com/enc/%d?token=%s", keySeq.Add(1), tok)
}

// urlEndpoint creates an endpoint with the given URL and secret, subscribed
// to job.completed.
func (b *encBundle) urlEndpoint(t *testing.T, accountID int64, url, secret string) nanohook.Endpoint {
	t.Helper()
	e, err := b.s.CreateEndpoint(b.ctx, store.CreateEndpointParams{
		AccountID: accountID,
		URL:       url,
		Events:    []nanohook.EventType{nanohook.EventJobCompleted},
		Secret:    secret,
		Now:       b.now,
	})
	requireNoError(t, err)
	equal(t, "CreateEndpoint's URL", e.URL, url)
	equal(t, "CreateEndpoint's secret", e.Secret, secret)
	return e
}

// secretEndpoint creates an endpoint with the given secret and a URL with a
// token of its own, subscribed to job.completed.
func (b *encBundle) secretEndpoint(t *testing.T, accountID int64, secret string) nanohook.Endpoint {
	t.Helper()
	return b.urlEndpoint(t, accountID, tokenURL(token(t)), secret)
}

// rotate rotates an endpoint's secret, keeping the previous one for a day.
func (b *encBundle) rotate(t *testing.T, accountID, id int64, secret string) {
	t.Helper()
	e, err := b.s.RotateSecret(b.ctx, store.RotateSecretParams{AccountID: accountID, ID: id, Secret: secret,
		PreviousValidUntil: b.now.Add(24 * time.Hour), Now: b.now})
	requireNoError(t, err)
	equal(t, "RotateSecret's secret", e.Secret, secret)
}

// setURL changes an endpoint's URL.
func (b *encBundle) setURL(t *testing.T, accountID, id int64, url string) {
	t.Helper()
	e, err := b.s.UpdateEndpoint(b.ctx, store.UpdateEndpointParams{AccountID: accountID, ID: id, URL: &url, Now: b.now})
	requireNoError(t, err)
	equal(t, "UpdateEndpoint's URL", e.URL, url)
}

// requireSealed fails unless v is sealed under the key kid, in the current
// format, and does not contain plain.
func requireSealed(t *testing.T, what, v, kid, plain string) {
	t.Helper()
	if !strings.HasPrefix(v, "nhenc2:"+kid+":") {
		t.Fatalf("%s is stored as %.80q, want it sealed under key %s", what, v, kid)
	}
	if strings.Contains(v, plain) {
		t.Fatalf("%s stored as %q contains its plaintext", what, v)
	}
}

// requireNotOnDisk fails if the database holds text anywhere.
func (b *encBundle) requireNotOnDisk(t *testing.T, what, text string) {
	t.Helper()
	if b.raw.Holds(t, b.s, text) {
		t.Fatalf("the database holds %s (%q) in clear", what, text)
	}
}

// readsAs checks every read path gives the endpoint's plaintext URL and
// secret: GetEndpoint, ListEndpoints and UpdateEndpoint.
func (b *encBundle) readsAs(t *testing.T, accountID, id int64, url, secret string) {
	t.Helper()
	e, err := b.s.GetEndpoint(b.ctx, accountID, id)
	requireNoError(t, err)
	equal(t, fmt.Sprintf("GetEndpoint(%d).URL", id), e.URL, url)
	equal(t, fmt.Sprintf("GetEndpoint(%d).Secret", id), e.Secret, secret)
	list, err := b.s.ListEndpoints(b.ctx, store.ListEndpointsParams{AccountID: accountID, AfterID: id - 1, Limit: 1})
	requireNoError(t, err)
	if len(list) != 1 || list[0].ID != id {
		t.Fatalf("ListEndpoints after %d: %v", id-1, list)
	}
	equal(t, fmt.Sprintf("ListEndpoints[%d].URL", id), list[0].URL, url)
	equal(t, fmt.Sprintf("ListEndpoints[%d].Secret", id), list[0].Secret, secret)
	desc := "touched"
	e, err = b.s.UpdateEndpoint(b.ctx, store.UpdateEndpointParams{AccountID: accountID, ID: id, Description: &desc, Now: b.now})
	requireNoError(t, err)
	equal(t, fmt.Sprintf("UpdateEndpoint(%d).URL", id), e.URL, url)
	equal(t, fmt.Sprintf("UpdateEndpoint(%d).Secret", id), e.Secret, secret)
}

// claimedAs is what a claim carried for an endpoint.
type claimedAs struct{ URL, Secret, Previous string }

// claimAll publishes one event for the account and claims its deliveries,
// returning what each endpoint's claim carried.
func (b *encBundle) claimAll(t *testing.T, accountID int64) map[int64]claimedAs {
	t.Helper()
	b.publish(t, b.event(accountID))
	out := map[int64]claimedAs{}
	for _, c := range b.claim(t, b.now, 1000) {
		out[c.EndpointID] = claimedAs{c.URL, c.Secret, c.PreviousSecret}
	}
	b.now = b.now.Add(time.Second) // the leases of these claims do not matter further
	return out
}

func testSealedAtRest(t *testing.T, open func(t *testing.T) store.Store, raw Raw) {
	b := setupKeyed(t, open, raw)
	k := keyring(t, testKey(t))
	kid := k.PrimaryKeyID()
	b.k.SetKeyring(k)
	a, _ := b.account(t, "enc")

	tok := token(t)
	url := tokenURL(tok)
	e := b.urlEndpoint(t, a.ID, url, "whsec_first_secret_value")
	r := b.stored(t, e.ID)
	requireSealed(t, "a new endpoint's URL", r.URL, kid, tok)
	requireSealed(t, "a new endpoint's secret", r.Secret, kid, "whsec_first_secret_value")
	equal(t, "a new endpoint's previous secret", r.Previous, "")
	b.readsAs(t, a.ID, e.ID, url, "whsec_first_secret_value")
	// Updating other fields leaves the sealed URL as it was.
	equal(t, "the stored URL after an update of the description", b.stored(t, e.ID).URL, r.URL)

	b.rotate(t, a.ID, e.ID, "whsec_second_secret_value")
	r = b.stored(t, e.ID)
	requireSealed(t, "the rotated secret", r.Secret, kid, "whsec_second_secret_value")
	requireSealed(t, "the previous secret", r.Previous, kid, "whsec_first_secret_value")
	b.readsAs(t, a.ID, e.ID, url, "whsec_second_secret_value")

	got := b.claimAll(t, a.ID)
	equal(t, "claimed", got[e.ID], claimedAs{url, "whsec_second_secret_value", "whsec_first_secret_value"})

	c, err := b.s.CreateTestDelivery(b.ctx, store.TestDeliveryParams{AccountID: a.ID, EndpointID: e.ID,
		EventID: nanohook.NewEventID(), Payload: []byte(`{}`), Now: b.now, LeaseUntil: b.now.Add(time.Minute), Owner: "test"})
	requireNoError(t, err)
	equal(t, "test delivery", claimedAs{c.URL, c.Secret, c.PreviousSecret},
		claimedAs{url, "whsec_second_secret_value", "whsec_first_secret_value"})

	// A new URL is sealed as the first was.
	tok2 := token(t)
	url2 := tokenURL(tok2)
	b.setURL(t, a.ID, e.ID, url2)
	requireSealed(t, "a changed URL", b.stored(t, e.ID).URL, kid, tok2)
	b.readsAs(t, a.ID, e.ID, url2, "whsec_second_secret_value")
	equal(t, "the URL claimed after a change", b.claimAll(t, a.ID)[e.ID].URL, url2)

	// Neither URL nor secret is anywhere on disk in clear, while the sealed
	// values are: the window does see the rows.
	for _, v := range []struct{ what, text string }{
		{"the first URL's token", tok}, {"the second URL's token", tok2},
		{"the first secret", "whsec_first_secret_value"}, {"the second secret", "whsec_second_secret_value"},
	} {
		b.requireNotOnDisk(t, v.what, v.text)
	}
	if !raw.Holds(t, b.s, b.stored(t, e.ID).URL) {
		t.Fatal("Raw.Holds does not find the sealed URL: it cannot see the rows")
	}

	requireNoError(t, b.s.CheckSecrets(b.ctx))
	before := b.stored(t, e.ID)
	n, err := b.s.ResealSecrets(b.ctx)
	requireNoError(t, err)
	equal(t, "endpoints resealed when all are under the primary key", n, 0)
	equal(t, "stored values after a reseal with nothing to do", b.stored(t, e.ID), before)
}

func testPlaintextRows(t *testing.T, open func(t *testing.T) store.Store, raw Raw) {
	b := setupKeyed(t, open, raw)
	a, _ := b.account(t, "plain")
	// Written before encryption was turned on: one rotated, one plain, one
	// deleted (its URL and secret are at rest too).
	tok1, tok2, tok3 := token(t), token(t), token(t)
	url1, url2, url3 := tokenURL(tok1), tokenURL(tok2), tokenURL(tok3)
	e1 := b.urlEndpoint(t, a.ID, url1, "plain_secret_one")
	b.rotate(t, a.ID, e1.ID, "plain_secret_one_b")
	e2 := b.urlEndpoint(t, a.ID, url2, "plain_secret_two")
	e3 := b.urlEndpoint(t, a.ID, url3, "plain_secret_three")
	requireNoError(t, b.s.DeleteEndpoint(b.ctx, a.ID, e3.ID, b.now))
	equal(t, "an endpoint written without a keyring", b.stored(t, e1.ID),
		store.StoredSecrets{ID: e1.ID, URL: url1, Secret: "plain_secret_one_b", Previous: "plain_secret_one"})

	k := keyring(t, testKey(t))
	kid := k.PrimaryKeyID()
	b.k.SetKeyring(k)
	requireNoError(t, b.s.CheckSecrets(b.ctx))
	b.readsAs(t, a.ID, e1.ID, url1, "plain_secret_one_b")
	b.readsAs(t, a.ID, e2.ID, url2, "plain_secret_two")
	got := b.claimAll(t, a.ID)
	equal(t, "claim of a plaintext endpoint", got[e1.ID], claimedAs{url1, "plain_secret_one_b", "plain_secret_one"})
	equal(t, "claim of a plaintext endpoint", got[e2.ID], claimedAs{url2, "plain_secret_two", ""})

	n, err := b.s.ResealSecrets(b.ctx)
	requireNoError(t, err)
	equal(t, "endpoints resealed", n, 3)
	r := b.stored(t, e1.ID)
	requireSealed(t, "a resealed URL", r.URL, kid, tok1)
	requireSealed(t, "a resealed secret", r.Secret, kid, "plain_secret_one_b")
	requireSealed(t, "a resealed previous secret", r.Previous, kid, "plain_secret_one")
	r = b.stored(t, e2.ID)
	requireSealed(t, "a resealed URL", r.URL, kid, tok2)
	requireSealed(t, "a resealed secret", r.Secret, kid, "plain_secret_two")
	equal(t, "an absent previous secret after resealing", r.Previous, "")
	r = b.stored(t, e3.ID)
	requireSealed(t, "a deleted endpoint's resealed URL", r.URL, kid, tok3)
	requireSealed(t, "a deleted endpoint's resealed secret", r.Secret, kid, "plain_secret_three")

	b.readsAs(t, a.ID, e1.ID, url1, "plain_secret_one_b")
	b.readsAs(t, a.ID, e2.ID, url2, "plain_secret_two")
	got = b.claimAll(t, a.ID)
	equal(t, "claim after resealing", got[e1.ID], claimedAs{url1, "plain_secret_one_b", "plain_secret_one"})
	equal(t, "claim after resealing", got[e2.ID], claimedAs{url2, "plain_secret_two", ""})
	n, err = b.s.ResealSecrets(b.ctx)
	requireNoError(t, err)
	equal(t, "endpoints resealed a second time", n, 0)
}

func testKeyRotation(t *testing.T, open func(t *testing.T) store.Store, raw Raw) {
	b := setupKeyed(t, open, raw)
	oldKey, newKey := testKey(t), testKey(t)
	old := keyring(t, oldKey)
	b.k.SetKeyring(old)
	a, _ := b.account(t, "rot")
	// More endpoints than one reseal batch, so that batches are crossed.
	const n = 450
	type plain struct{ url, secret string }
	want := map[int64]plain{}
	var first nanohook.Endpoint
	for i := range n {
		p := plain{tokenURL(fmt.Sprintf("rotation%03d", i)), fmt.Sprintf("whsec_rotation_%03d", i)}
		e := b.urlEndpoint(t, a.ID, p.url, p.secret)
		want[e.ID] = p
		if i == 0 {
			first = e
		}
	}
	b.rotate(t, a.ID, first.ID, "whsec_rotation_first_b")
	want[first.ID] = plain{want[first.ID].url, "whsec_rotation_first_b"}

	// Step 1: "new,old". Everything still opens; new values go under new.
	both := keyring(t, newKey, oldKey)
	b.k.SetKeyring(both)
	requireNoError(t, b.s.CheckSecrets(b.ctx))
	b.readsAs(t, a.ID, first.ID, want[first.ID].url, "whsec_rotation_first_b")
	late := b.secretEndpoint(t, a.ID, "whsec_rotation_late")
	want[late.ID] = plain{late.URL, "whsec_rotation_late"}
	r := b.stored(t, late.ID)
	requireSealed(t, "a URL written under new,old", r.URL, both.PrimaryKeyID(), "token=")
	requireSealed(t, "a secret written under new,old", r.Secret, both.PrimaryKeyID(), "whsec_rotation_late")

	// Step 2: reseal moves every row sealed under old (and only those).
	moved, err := b.s.ResealSecrets(b.ctx)
	requireNoError(t, err)
	equal(t, "endpoints resealed", moved, n)
	for id, p := range want {
		r := b.stored(t, id)
		requireSealed(t, fmt.Sprintf("endpoint %d's URL", id), r.URL, both.PrimaryKeyID(), p.url)
		requireSealed(t, fmt.Sprintf("endpoint %d's secret", id), r.Secret, both.PrimaryKeyID(), p.secret)
		if r.Previous != "" {
			requireSealed(t, fmt.Sprintf("endpoint %d's previous secret", id), r.Previous, both.PrimaryKeyID(), "whsec_rotation_000")
		}
	}

	// Step 3: "new" alone. Every endpoint opens, on every path.
	b.k.SetKeyring(keyring(t, newKey))
	requireNoError(t, b.s.CheckSecrets(b.ctx))
	b.readsAs(t, a.ID, first.ID, want[first.ID].url, "whsec_rotation_first_b")
	b.readsAs(t, a.ID, late.ID, late.URL, "whsec_rotation_late")
	got := b.claimAll(t, a.ID)
	equal(t, "endpoints claimed", len(got), len(want))
	for id, p := range want {
		if got[id].URL != p.url || got[id].Secret != p.secret {
			t.Fatalf("endpoint %d claimed with %q and secret %q, want %q and %q", id, got[id].URL, got[id].Secret, p.url, p.secret)
		}
	}
	equal(t, "the rotated endpoint's previous secret", got[first.ID].Previous, "whsec_rotation_000")
	page, err := b.s.ListEndpoints(b.ctx, store.ListEndpointsParams{AccountID: a.ID, Limit: 1000})
	requireNoError(t, err)
	equal(t, "endpoints listed", len(page), len(want))
	for _, e := range page {
		equal(t, fmt.Sprintf("endpoint %d's listed", e.ID), plain{e.URL, e.Secret}, want[e.ID])
	}
}

func testMissingKey(t *testing.T, open func(t *testing.T) store.Store, raw Raw) {
	b := setupKeyed(t, open, raw)
	rawA, rawB := testKey(t), testKey(t)
	keyA := keyring(t, rawA)
	b.k.SetKeyring(keyA)
	a, _ := b.account(t, "missing")
	e1 := b.secretEndpoint(t, a.ID, "whsec_missing_one")
	e2 := b.secretEndpoint(t, a.ID, "whsec_missing_two")
	b.publish(t, b.event(a.ID))

	// Restarted with an unrelated key: the check names the missing key and
	// counts the endpoints; reads and claims fail on it rather than send
	// somewhere or sign with something else.
	keyB := keyring(t, rawB)
	b.k.SetKeyring(keyB)
	err := b.s.CheckSecrets(b.ctx)
	if !errors.Is(err, store.ErrSecretSealed) {
		t.Fatalf("CheckSecrets with the wrong key: %v, want store.ErrSecretSealed", err)
	}
	for _, w := range []string{"2 endpoint(s)", "key " + keyA.PrimaryKeyID(), "NANOHOOK_ENCRYPTION_KEY"} {
		if !strings.Contains(err.Error(), w) {
			t.Errorf("CheckSecrets error %q lacks %q", err, w)
		}
	}
	if _, err := b.s.GetEndpoint(b.ctx, a.ID, e1.ID); !errors.Is(err, store.ErrSecretSealed) {
		t.Fatalf("GetEndpoint with the wrong key: %v", err)
	}
	// A claim does not fail on them (that would stop every delivery behind
	// them) but hands them back for later.
	if c, err := store.ClaimDue(b.ctx, b.s, store.ClaimDueParams{Now: b.now, LeaseUntil: b.now.Add(time.Hour), Limit: 10}); err != nil || len(c) != 0 {
		t.Fatalf("ClaimDeliveries with the wrong key: %d claims, %v; want none and no error", len(c), err)
	}
	if _, err := b.s.CreateTestDelivery(b.ctx, store.TestDeliveryParams{AccountID: a.ID, EndpointID: e2.ID,
		EventID: nanohook.NewEventID(), Payload: []byte(`{}`), Now: b.now, LeaseUntil: b.now.Add(time.Hour)}); !errors.Is(err, store.ErrSecretSealed) {
		t.Fatalf("CreateTestDelivery with the wrong key: %v", err)
	}
	// A plaintext row is resealed even so; the others are reported.
	b.k.SetKeyring(nil)
	e3 := b.secretEndpoint(t, a.ID, "whsec_missing_plain")
	b.k.SetKeyring(keyB)
	n, err := b.s.ResealSecrets(b.ctx)
	if !errors.Is(err, store.ErrSecretSealed) || !strings.Contains(err.Error(), keyA.PrimaryKeyID()) {
		t.Fatalf("ResealSecrets with the wrong key: %v", err)
	}
	equal(t, "endpoints resealed around the unreadable ones", n, 1)
	requireSealed(t, "the plaintext URL resealed around the unreadable ones", b.stored(t, e3.ID).URL, keyB.PrimaryKeyID(), "token=")

	// Encryption off: sealed rows are refused with the setting to fix, and
	// there is nothing to reseal with.
	b.k.SetKeyring(nil)
	if err := b.s.CheckSecrets(b.ctx); err == nil || !strings.Contains(err.Error(), "NANOHOOK_ENCRYPTION_KEY is not set") {
		t.Fatalf("CheckSecrets without keys: %v", err)
	}
	if _, err := b.s.ResealSecrets(b.ctx); err == nil || !strings.Contains(err.Error(), "NANOHOOK_ENCRYPTION_KEY") {
		t.Fatalf("ResealSecrets without keys: %v", err)
	}

	// The claim and the ping left nothing leased: with the key back, the
	// published deliveries are claimable once their postponement is over,
	// and no ping is among them.
	b.k.SetKeyring(keyring(t, rawB, rawA))
	requireNoError(t, b.s.CheckSecrets(b.ctx))
	claims := b.claim(t, b.now.Add(store.SecretRetryDelay), 10)
	got := map[int64]claimedAs{}
	for _, c := range claims {
		if c.EventType == nanohook.EventPing {
			t.Fatalf("the ping that failed to open its endpoint was claimed: %+v", c.Lease)
		}
		got[c.EndpointID] = claimedAs{c.URL, c.Secret, c.PreviousSecret}
	}
	equal(t, "deliveries claimed with the key back", len(claims), 2)
	equal(t, "endpoint 1's claim", got[e1.ID], claimedAs{e1.URL, "whsec_missing_one", ""})
	equal(t, "endpoint 2's claim", got[e2.ID], claimedAs{e2.URL, "whsec_missing_two", ""})
	b.readsAs(t, a.ID, e3.ID, e3.URL, "whsec_missing_plain")
}

// testUnopenable: one endpoint's secret (or URL) cannot be opened after
// start (sealed under a key this node lacks: a reseal with "new,old" while
// serve runs with "old"). Its delivery is first in due order; the claim must
// still hand out the delivery behind it, and push the bad one back without
// counting an attempt, with a reason a customer may read. With the key
// back, it is claimed once its postponement is over.
func testUnopenable(t *testing.T, open func(t *testing.T) store.Store, raw Raw, f store.Field) {
	b := setupKeyed(t, open, raw)
	rawA, rawB := testKey(t), testKey(t)
	keyA := keyring(t, rawA)
	b.k.SetKeyring(keyA)
	a, _ := b.account(t, "unopenable")
	bad := b.secretEndpoint(t, a.ID, "whsec_unopenable_bad")
	// Under "B,A" the other field is written again, under B: only f is
	// left under A.
	b.k.SetKeyring(keyring(t, rawB, rawA))
	badURL := bad.URL
	switch f {
	case store.FieldSecret:
		badURL = tokenURL(token(t))
		b.setURL(t, a.ID, bad.ID, badURL)
	case store.FieldURL:
		_, err := b.s.RotateSecret(b.ctx, store.RotateSecretParams{AccountID: a.ID, ID: bad.ID,
			Secret: "whsec_unopenable_bad", PreviousValidUntil: b.now, Now: b.now}) // no previous secret
		requireNoError(t, err)
	}
	r := b.stored(t, bad.ID)
	if other := map[store.Field]string{store.FieldSecret: r.URL, store.FieldURL: r.Secret}[f]; !strings.HasPrefix(other, "nhenc2:"+keyring(t, rawB).PrimaryKeyID()+":") {
		t.Fatalf("the endpoint's other field is %.40q, want it under key B", other)
	}
	b.k.SetKeyring(keyring(t, rawB))
	good := b.secretEndpoint(t, a.ID, "whsec_unopenable_good")
	b.publish(t, b.event(a.ID))

	err := b.s.CheckSecrets(b.ctx)
	if !errors.Is(err, store.ErrSecretSealed) || !strings.Contains(err.Error(), "1 endpoint(s) (ids "+fmt.Sprint(bad.ID)+")") ||
		!strings.Contains(err.Error(), "key "+keyA.PrimaryKeyID()) {
		t.Fatalf("CheckSecrets with endpoint %d's %s under a missing key: %v", bad.ID, f, err)
	}
	if _, err := b.s.GetEndpoint(b.ctx, a.ID, bad.ID); !errors.Is(err, store.ErrSecretSealed) || !strings.Contains(err.Error(), f.String()) {
		t.Fatalf("GetEndpoint with its %s under a missing key: %v", f, err)
	}

	claims := b.claim(t, b.now, 10)
	if len(claims) != 1 || claims[0].EndpointID != good.ID {
		t.Fatalf("claim with one unopenable %s: %d claims %+v, want only endpoint %d's delivery", f, len(claims), claims, good.ID)
	}
	equal(t, "the good delivery", claimedAs{claims[0].URL, claims[0].Secret, claims[0].PreviousSecret},
		claimedAs{good.URL, "whsec_unopenable_good", ""})
	equal(t, "the good delivery's attempt", claims[0].Attempt, 1)

	list, err := b.s.ListDeliveries(b.ctx, store.ListDeliveriesParams{AccountID: a.ID, EndpointID: bad.ID, Limit: 10})
	requireNoError(t, err)
	equal(t, "deliveries of the unopenable endpoint", len(list), 1)
	d, attempts := b.delivery(t, a.ID, list[0].ID)
	equal(t, "the postponed delivery's status", d.Status, nanohook.DeliveryPending)
	equal(t, "the postponed delivery's attempt count", d.Attempts, 0)
	equal(t, "the postponed delivery's recorded attempts", len(attempts), 0)
	equal(t, "the postponed delivery's last_error", d.LastError, store.SecretUnopenedError)
	sameTime(t, "the postponed delivery's next attempt", d.NextAttemptAt, b.now.Add(store.SecretRetryDelay))

	// Nothing more until then, and the next claims do not fail either.
	b.complete(t, claims[0], b.now, nanohook.DeliverySucceeded, 200, "", time.Time{})
	for _, at := range []time.Time{b.now, b.now.Add(store.SecretRetryDelay - time.Microsecond)} {
		if c := b.claim(t, at, 10); len(c) != 0 {
			t.Fatalf("claim at %v, before the postponement is over: %d claims, want none", at, len(c))
		}
	}

	// The key is back (a restart with "B,A"): the delivery is taken when due,
	// as its first attempt, with the right URL and secret.
	b.k.SetKeyring(keyring(t, rawB, rawA))
	claims = b.claim(t, b.now.Add(store.SecretRetryDelay), 10)
	if len(claims) != 1 || claims[0].DeliveryID != d.ID {
		t.Fatalf("claim with the key back: %d claims %+v, want delivery %d", len(claims), claims, d.ID)
	}
	equal(t, "the postponed delivery", claimedAs{claims[0].URL, claims[0].Secret, claims[0].PreviousSecret},
		claimedAs{badURL, "whsec_unopenable_bad", ""})
	equal(t, "the postponed delivery's attempt", claims[0].Attempt, 1)

	// A ping to the endpoint without its key fails for the caller with the
	// detail, and whatever it recorded shows customers only the generic
	// reason: no key id, no endpoint id, no setting.
	b.k.SetKeyring(keyring(t, rawB))
	_, err = b.s.CreateTestDelivery(b.ctx, store.TestDeliveryParams{AccountID: a.ID, EndpointID: bad.ID,
		EventID: nanohook.NewEventID(), Payload: []byte(`{}`), Now: b.now, LeaseUntil: b.now.Add(time.Hour), Owner: "test"})
	if !errors.Is(err, store.ErrSecretSealed) || !strings.Contains(err.Error(), keyA.PrimaryKeyID()) {
		t.Fatalf("CreateTestDelivery without the key: %v, want store.ErrSecretSealed naming key %s", err, keyA.PrimaryKeyID())
	}
	list, err = b.s.ListDeliveries(b.ctx, store.ListDeliveriesParams{AccountID: a.ID, EndpointID: bad.ID, Limit: 10})
	requireNoError(t, err)
	for _, d := range list {
		if d.EventType == nanohook.EventPing {
			equal(t, "the failed ping's status", d.Status, nanohook.DeliveryFailed)
			equal(t, "the failed ping's last_error", d.LastError, store.SecretUnopenedError)
		}
		for _, leak := range []string{keyA.PrimaryKeyID(), "NANOHOOK", fmt.Sprint(bad.ID)} {
			if strings.Contains(d.LastError, leak) {
				t.Fatalf("delivery %d's last_error %q shows customers %q", d.ID, d.LastError, leak)
			}
		}
	}

	// A reseal under "B,A" moves the last value under A; then B alone
	// opens everything.
	b.k.SetKeyring(keyring(t, rawB, rawA))
	n, err := b.s.ResealSecrets(b.ctx)
	requireNoError(t, err)
	equal(t, "endpoints resealed", n, 1)
	b.k.SetKeyring(keyring(t, rawB))
	requireNoError(t, b.s.CheckSecrets(b.ctx))
	b.readsAs(t, a.ID, bad.ID, badURL, "whsec_unopenable_bad")
}

// testSealsBound: a sealed URL or secret copied to another endpoint's row,
// or from one column to another, does not open there, so that someone who
// can write the database but lacks the key cannot make their own endpoint
// deliver to another tenant's URL (with its token) or sign with another
// tenant's secret. Secrets sealed by the first release (bound to nothing
// but their purpose) still open, as secrets only, until a reseal binds
// them.
func testSealsBound(t *testing.T, open func(t *testing.T) store.Store, raw Raw) {
	b := setupKeyed(t, open, raw)
	primary := testKey(t)
	k := keyring(t, primary, legacyKey)
	kid := k.PrimaryKeyID()
	equal(t, "the first release's key id", keyring(t, legacyKey).PrimaryKeyID(), legacyKeyID)
	b.k.SetKeyring(k)
	victim, _ := b.account(t, "victim")
	attacker, _ := b.account(t, "attacker")
	ev := b.secretEndpoint(t, victim.ID, "whsec_victim_secret")
	ea := b.secretEndpoint(t, attacker.ID, "whsec_attacker_secret")
	rv, ra := b.stored(t, ev.ID), b.stored(t, ea.ID)

	refused := func(what string, id int64, accountID int64) {
		t.Helper()
		if e, err := b.s.GetEndpoint(b.ctx, accountID, id); !errors.Is(err, store.ErrSecretSealed) ||
			!strings.Contains(err.Error(), "fails authentication") {
			t.Fatalf("%s: GetEndpoint = %q, %q, %v; want it refused as failing authentication", what, e.URL, e.Secret, err)
		}
		err := b.s.CheckSecrets(b.ctx)
		if !errors.Is(err, store.ErrSecretSealed) || !strings.Contains(err.Error(), fmt.Sprintf("1 endpoint(s) (ids %d)", id)) ||
			!strings.Contains(err.Error(), "failing authentication") {
			t.Fatalf("%s: CheckSecrets = %v; want endpoint %d reported", what, err, id)
		}
	}

	// The victim's sealed URL in the attacker's row: the attacker's
	// deliveries are held back, never sent there.
	b.overwrite(t, withURL(ra, rv.URL))
	refused("the victim's URL in the attacker's row", ea.ID, attacker.ID)
	b.publish(t, b.event(attacker.ID))
	if c := b.claim(t, b.now, 10); len(c) != 0 {
		t.Fatalf("claimed %+v with another endpoint's sealed URL", c)
	}
	// The victim's sealed secret in the attacker's row: never used.
	b.overwrite(t, withSecret(ra, rv.Secret))
	refused("the victim's secret in the attacker's row", ea.ID, attacker.ID)
	if _, err := b.s.CreateTestDelivery(b.ctx, b.ping(attacker.ID, ea.ID)); !errors.Is(err, store.ErrSecretSealed) {
		t.Fatalf("a ping signed with another endpoint's sealed secret: %v", err)
	}
	b.overwrite(t, ra)
	// A sealed secret as the same endpoint's URL.
	b.overwrite(t, withURL(rv, rv.Secret))
	refused("a sealed secret as a URL", ev.ID, victim.ID)
	b.overwrite(t, rv)
	requireNoError(t, b.s.CheckSecrets(b.ctx))
	b.readsAs(t, victim.ID, ev.ID, ev.URL, "whsec_victim_secret")
	b.readsAs(t, attacker.ID, ea.ID, ea.URL, "whsec_attacker_secret")

	// A secret of the first format opens as a secret wherever it is (it was
	// bound to nothing more), but never as a URL; a reseal binds it.
	b.overwrite(t, withURL(ra, legacySealed))
	refused("a first-format secret as a URL", ea.ID, attacker.ID)
	b.overwrite(t, withSecret(ra, legacySealed))
	requireNoError(t, b.s.CheckSecrets(b.ctx))
	b.readsAs(t, attacker.ID, ea.ID, ea.URL, legacyPlain)
	n, err := b.s.ResealSecrets(b.ctx)
	requireNoError(t, err)
	equal(t, "endpoints resealed", n, 1)
	requireSealed(t, "a resealed first-format secret", b.stored(t, ea.ID).Secret, kid, legacyPlain)
	b.readsAs(t, attacker.ID, ea.ID, ea.URL, legacyPlain)
	b.k.SetKeyring(keyring(t, primary))
	requireNoError(t, b.s.CheckSecrets(b.ctx))
}

// withURL is r with another stored URL.
func withURL(r store.StoredSecrets, url string) store.StoredSecrets {
	r.URL = url
	return r
}

// withSecret is r with another stored secret.
func withSecret(r store.StoredSecrets, secret string) store.StoredSecrets {
	r.Secret = secret
	return r
}

func testResealDuringRotations(t *testing.T, open func(t *testing.T) store.Store, raw Raw) {
	b := setupKeyed(t, open, raw)
	a, _ := b.account(t, "race")
	const n = 300
	ids := make([]int64, n)
	urls := make([]string, n)
	for i := range n {
		e := b.secretEndpoint(t, a.ID, fmt.Sprintf("whsec_race_%03d", i))
		ids[i], urls[i] = e.ID, e.URL
	}
	k := keyring(t, testKey(t))
	b.k.SetKeyring(k)

	// Rotations and URL changes race the reseal: none may be undone by it.
	newURL := func(i int) string { return fmt.Sprintf("https://hooks.example.com/race/%d?token=moved%03d", ids[i], i) }
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := n - 1; i >= 0; i-- {
			if _, err := b.s.RotateSecret(b.ctx, store.RotateSecretParams{AccountID: a.ID, ID: ids[i],
				Secret: fmt.Sprintf("whsec_race_%03d_b", i), PreviousValidUntil: b.now.Add(time.Hour), Now: b.now}); err != nil {
				t.Errorf("rotate %d: %v", ids[i], err)
				return
			}
			if i%2 == 0 {
				u := newURL(i)
				if _, err := b.s.UpdateEndpoint(b.ctx, store.UpdateEndpointParams{AccountID: a.ID, ID: ids[i], URL: &u, Now: b.now}); err != nil {
					t.Errorf("update %d: %v", ids[i], err)
					return
				}
			}
		}
	}()
	_, err := b.s.ResealSecrets(b.ctx)
	wg.Wait()
	requireNoError(t, err)
	// Once the rotations are over, one more reseal catches what they copied
	// into previous_secret behind the first.
	_, err = b.s.ResealSecrets(b.ctx)
	requireNoError(t, err)
	for i, id := range ids {
		if i%2 == 0 {
			urls[i] = newURL(i)
		}
		r := b.stored(t, id)
		requireSealed(t, fmt.Sprintf("endpoint %d's URL", id), r.URL, k.PrimaryKeyID(), "token=")
		requireSealed(t, fmt.Sprintf("endpoint %d's secret", id), r.Secret, k.PrimaryKeyID(), "whsec_race")
		requireSealed(t, fmt.Sprintf("endpoint %d's previous secret", id), r.Previous, k.PrimaryKeyID(), "whsec_race")
		p, err := k.Open(store.FieldSecret, id, r.Previous)
		requireNoError(t, err)
		equal(t, fmt.Sprintf("endpoint %d's previous secret", id), p, fmt.Sprintf("whsec_race_%03d", i))
		u, err := k.Open(store.FieldURL, id, r.URL)
		requireNoError(t, err)
		equal(t, fmt.Sprintf("endpoint %d's URL", id), u, urls[i])
	}
	got := b.claimAll(t, a.ID)
	for i, id := range ids {
		equal(t, fmt.Sprintf("endpoint %d's claim", id), got[id],
			claimedAs{urls[i], fmt.Sprintf("whsec_race_%03d_b", i), fmt.Sprintf("whsec_race_%03d", i)})
	}
}
