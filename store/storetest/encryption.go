package storetest

import (
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nanohook/nanohook"
	"github.com/nanohook/nanohook/store"
)

// RawSecrets reads an endpoint's secret and previous_secret columns exactly
// as stored, with plain SQL that bypasses the driver's keyring: the test's
// window on what sits on disk.
type RawSecrets func(t *testing.T, s store.Store, endpointID int64) (secret, previous string)

// Keyed is a store whose keyring can be set, as both drivers' can.
type Keyed interface {
	store.Store
	SetKeyring(*store.Keyring)
}

// RunEncryption checks encryption of webhook secrets at rest against the
// stores open returns (fresh and empty, as for Run), which must be Keyed:
// secrets are sealed on disk and plaintext to callers, rows written before
// encryption keep working and are converted by ResealSecrets, keys rotate
// without an unreadable endpoint, and a missing key is caught by
// CheckSecrets instead of by every delivery, while one delivery whose secret
// cannot be opened holds back only itself. Changing the keyring of one
// open store stands in for restarting with other keys.
func RunEncryption(t *testing.T, open func(t *testing.T) store.Store, raw RawSecrets) {
	t.Run("SealedAtRest", func(t *testing.T) { t.Parallel(); testSealedAtRest(t, open, raw) })
	t.Run("PlaintextRowsKeepWorking", func(t *testing.T) { t.Parallel(); testPlaintextRows(t, open, raw) })
	t.Run("KeyRotation", func(t *testing.T) { t.Parallel(); testKeyRotation(t, open, raw) })
	t.Run("MissingKey", func(t *testing.T) { t.Parallel(); testMissingKey(t, open) })
	t.Run("UnopenableSecretPostponed", func(t *testing.T) { t.Parallel(); testUnopenableSecret(t, open) })
	t.Run("ResealDuringRotations", func(t *testing.T) { t.Parallel(); testResealDuringRotations(t, open, raw) })
}

// encBundle is a bundle on a Keyed store, with its keys.
type encBundle struct {
	*bundle
	k   Keyed
	raw RawSecrets
}

func setupKeyed(t *testing.T, open func(t *testing.T) store.Store, raw RawSecrets) *encBundle {
	t.Helper()
	b := setup(t, open)
	k, ok := b.s.(Keyed)
	if !ok {
		t.Fatalf("%T has no SetKeyring method", b.s)
	}
	return &encBundle{bundle: b, k: k, raw: raw}
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

// secretEndpoint creates an endpoint with the given secret, subscribed to
// job.completed.
func (b *encBundle) secretEndpoint(t *testing.T, accountID int64, secret string) nanohook.Endpoint {
	t.Helper()
	e, err := b.s.CreateEndpoint(b.ctx, store.CreateEndpointParams{
		AccountID: accountID,
		URL:       fmt.Sprintf("https://hooks.example.com/enc/%d", keySeq.Add(1)),
		Events:    []nanohook.EventType{nanohook.EventJobCompleted},
		Secret:    secret,
		Now:       b.now,
	})
	requireNoError(t, err)
	equal(t, "CreateEndpoint's secret", e.Secret, secret)
	return e
}

// rotate rotates an endpoint's secret, keeping the previous one for a day.
func (b *encBundle) rotate(t *testing.T, accountID, id int64, secret string) {
	t.Helper()
	e, err := b.s.RotateSecret(b.ctx, store.RotateSecretParams{AccountID: accountID, ID: id, Secret: secret,
		PreviousValidUntil: b.now.Add(24 * time.Hour), Now: b.now})
	requireNoError(t, err)
	equal(t, "RotateSecret's secret", e.Secret, secret)
}

// requireSealed fails unless v is sealed under the key kid and does not
// contain plain.
func requireSealed(t *testing.T, what, v, kid, plain string) {
	t.Helper()
	if !strings.HasPrefix(v, "nhenc1:"+kid+":") {
		t.Fatalf("%s is stored as %q, want it sealed under key %s", what, v, kid)
	}
	if strings.Contains(v, plain) {
		t.Fatalf("%s stored as %q contains its plaintext", what, v)
	}
}

// readsAs checks every read path gives the endpoint's plaintext secret:
// GetEndpoint, ListEndpoints and UpdateEndpoint.
func (b *encBundle) readsAs(t *testing.T, accountID, id int64, secret string) {
	t.Helper()
	e, err := b.s.GetEndpoint(b.ctx, accountID, id)
	requireNoError(t, err)
	equal(t, fmt.Sprintf("GetEndpoint(%d).Secret", id), e.Secret, secret)
	list, err := b.s.ListEndpoints(b.ctx, store.ListEndpointsParams{AccountID: accountID, AfterID: id - 1, Limit: 1})
	requireNoError(t, err)
	if len(list) != 1 || list[0].ID != id {
		t.Fatalf("ListEndpoints after %d: %v", id-1, list)
	}
	equal(t, fmt.Sprintf("ListEndpoints[%d].Secret", id), list[0].Secret, secret)
	desc := "touched"
	e, err = b.s.UpdateEndpoint(b.ctx, store.UpdateEndpointParams{AccountID: accountID, ID: id, Description: &desc, Now: b.now})
	requireNoError(t, err)
	equal(t, fmt.Sprintf("UpdateEndpoint(%d).Secret", id), e.Secret, secret)
}

// claimSecrets publishes one event for the account and claims its
// deliveries, returning the secrets each endpoint's claim carried.
func (b *encBundle) claimSecrets(t *testing.T, accountID int64) map[int64][2]string {
	t.Helper()
	b.publish(t, b.event(accountID))
	out := map[int64][2]string{}
	for _, c := range b.claim(t, b.now, 1000) {
		out[c.EndpointID] = [2]string{c.Secret, c.PreviousSecret}
	}
	b.now = b.now.Add(time.Second) // the leases of these claims do not matter further
	return out
}

func testSealedAtRest(t *testing.T, open func(t *testing.T) store.Store, raw RawSecrets) {
	b := setupKeyed(t, open, raw)
	k := keyring(t, testKey(t))
	kid := k.PrimaryKeyID()
	b.k.SetKeyring(k)
	a, _ := b.account(t, "enc")

	e := b.secretEndpoint(t, a.ID, "whsec_first_secret_value")
	sec, prev := raw(t, b.s, e.ID)
	requireSealed(t, "a new endpoint's secret", sec, kid, "whsec_first_secret_value")
	equal(t, "a new endpoint's previous secret", prev, "")
	b.readsAs(t, a.ID, e.ID, "whsec_first_secret_value")

	b.rotate(t, a.ID, e.ID, "whsec_second_secret_value")
	sec, prev = raw(t, b.s, e.ID)
	requireSealed(t, "the rotated secret", sec, kid, "whsec_second_secret_value")
	requireSealed(t, "the previous secret", prev, kid, "whsec_first_secret_value")
	b.readsAs(t, a.ID, e.ID, "whsec_second_secret_value")

	got := b.claimSecrets(t, a.ID)
	equal(t, "claimed secrets", got[e.ID], [2]string{"whsec_second_secret_value", "whsec_first_secret_value"})

	c, err := b.s.CreateTestDelivery(b.ctx, store.TestDeliveryParams{AccountID: a.ID, EndpointID: e.ID,
		EventID: nanohook.NewEventID(), Payload: []byte(`{}`), Now: b.now, LeaseUntil: b.now.Add(time.Minute), Owner: "test"})
	requireNoError(t, err)
	equal(t, "test delivery's secrets", [2]string{c.Secret, c.PreviousSecret},
		[2]string{"whsec_second_secret_value", "whsec_first_secret_value"})

	requireNoError(t, b.s.CheckSecrets(b.ctx))
	n, err := b.s.ResealSecrets(b.ctx)
	requireNoError(t, err)
	equal(t, "endpoints resealed when all are under the primary key", n, 0)
	sec2, _ := raw(t, b.s, e.ID)
	equal(t, "stored secret after a reseal with nothing to do", sec2, sec)
}

func testPlaintextRows(t *testing.T, open func(t *testing.T) store.Store, raw RawSecrets) {
	b := setupKeyed(t, open, raw)
	a, _ := b.account(t, "plain")
	// Written before encryption was turned on: one rotated, one plain, one
	// deleted (its secret is at rest too).
	e1 := b.secretEndpoint(t, a.ID, "plain_secret_one")
	b.rotate(t, a.ID, e1.ID, "plain_secret_one_b")
	e2 := b.secretEndpoint(t, a.ID, "plain_secret_two")
	e3 := b.secretEndpoint(t, a.ID, "plain_secret_three")
	requireNoError(t, b.s.DeleteEndpoint(b.ctx, a.ID, e3.ID, b.now))
	sec, prev := raw(t, b.s, e1.ID)
	equal(t, "a secret written without a keyring", sec, "plain_secret_one_b")
	equal(t, "a previous secret written without a keyring", prev, "plain_secret_one")

	k := keyring(t, testKey(t))
	b.k.SetKeyring(k)
	requireNoError(t, b.s.CheckSecrets(b.ctx))
	b.readsAs(t, a.ID, e1.ID, "plain_secret_one_b")
	b.readsAs(t, a.ID, e2.ID, "plain_secret_two")
	got := b.claimSecrets(t, a.ID)
	equal(t, "claim of a plaintext endpoint", got[e1.ID], [2]string{"plain_secret_one_b", "plain_secret_one"})
	equal(t, "claim of a plaintext endpoint", got[e2.ID], [2]string{"plain_secret_two", ""})

	n, err := b.s.ResealSecrets(b.ctx)
	requireNoError(t, err)
	equal(t, "endpoints resealed", n, 3)
	sec, prev = raw(t, b.s, e1.ID)
	requireSealed(t, "a resealed secret", sec, k.PrimaryKeyID(), "plain_secret_one_b")
	requireSealed(t, "a resealed previous secret", prev, k.PrimaryKeyID(), "plain_secret_one")
	sec, prev = raw(t, b.s, e2.ID)
	requireSealed(t, "a resealed secret", sec, k.PrimaryKeyID(), "plain_secret_two")
	equal(t, "an absent previous secret after resealing", prev, "")
	sec, _ = raw(t, b.s, e3.ID)
	requireSealed(t, "a deleted endpoint's resealed secret", sec, k.PrimaryKeyID(), "plain_secret_three")

	b.readsAs(t, a.ID, e1.ID, "plain_secret_one_b")
	b.readsAs(t, a.ID, e2.ID, "plain_secret_two")
	got = b.claimSecrets(t, a.ID)
	equal(t, "claim after resealing", got[e1.ID], [2]string{"plain_secret_one_b", "plain_secret_one"})
	n, err = b.s.ResealSecrets(b.ctx)
	requireNoError(t, err)
	equal(t, "endpoints resealed a second time", n, 0)
}

func testKeyRotation(t *testing.T, open func(t *testing.T) store.Store, raw RawSecrets) {
	b := setupKeyed(t, open, raw)
	oldKey, newKey := testKey(t), testKey(t)
	old := keyring(t, oldKey)
	b.k.SetKeyring(old)
	a, _ := b.account(t, "rot")
	// More endpoints than one reseal batch, so that batches are crossed.
	const n = 450
	secrets := map[int64]string{}
	var first nanohook.Endpoint
	for i := range n {
		s := fmt.Sprintf("whsec_rotation_%03d", i)
		e := b.secretEndpoint(t, a.ID, s)
		secrets[e.ID] = s
		if i == 0 {
			first = e
		}
	}
	b.rotate(t, a.ID, first.ID, "whsec_rotation_first_b")
	secrets[first.ID] = "whsec_rotation_first_b"

	// Step 1: "new,old". Everything still opens; new secrets go under new.
	both := keyring(t, newKey, oldKey)
	b.k.SetKeyring(both)
	requireNoError(t, b.s.CheckSecrets(b.ctx))
	b.readsAs(t, a.ID, first.ID, "whsec_rotation_first_b")
	late := b.secretEndpoint(t, a.ID, "whsec_rotation_late")
	secrets[late.ID] = "whsec_rotation_late"
	sec, _ := raw(t, b.s, late.ID)
	requireSealed(t, "a secret written under new,old", sec, both.PrimaryKeyID(), "whsec_rotation_late")

	// Step 2: reseal moves every row sealed under old (and only those).
	moved, err := b.s.ResealSecrets(b.ctx)
	requireNoError(t, err)
	equal(t, "endpoints resealed", moved, n)
	for id, s := range secrets {
		sec, prev := raw(t, b.s, id)
		requireSealed(t, fmt.Sprintf("endpoint %d's secret", id), sec, both.PrimaryKeyID(), s)
		if prev != "" {
			requireSealed(t, fmt.Sprintf("endpoint %d's previous secret", id), prev, both.PrimaryKeyID(), "whsec_rotation_000")
		}
	}

	// Step 3: "new" alone. Every endpoint opens, on every path.
	b.k.SetKeyring(keyring(t, newKey))
	requireNoError(t, b.s.CheckSecrets(b.ctx))
	b.readsAs(t, a.ID, first.ID, "whsec_rotation_first_b")
	b.readsAs(t, a.ID, late.ID, "whsec_rotation_late")
	got := b.claimSecrets(t, a.ID)
	equal(t, "endpoints claimed", len(got), len(secrets))
	for id, s := range secrets {
		if got[id][0] != s {
			t.Fatalf("endpoint %d claimed with secret %q, want %q", id, got[id][0], s)
		}
	}
	equal(t, "the rotated endpoint's previous secret", got[first.ID][1], "whsec_rotation_000")
	page, err := b.s.ListEndpoints(b.ctx, store.ListEndpointsParams{AccountID: a.ID, Limit: 1000})
	requireNoError(t, err)
	equal(t, "endpoints listed", len(page), len(secrets))
	for _, e := range page {
		equal(t, fmt.Sprintf("endpoint %d's listed secret", e.ID), e.Secret, secrets[e.ID])
	}
}

func testMissingKey(t *testing.T, open func(t *testing.T) store.Store) {
	b := setupKeyed(t, open, nil)
	rawA, rawB := testKey(t), testKey(t)
	keyA := keyring(t, rawA)
	b.k.SetKeyring(keyA)
	a, _ := b.account(t, "missing")
	e1 := b.secretEndpoint(t, a.ID, "whsec_missing_one")
	e2 := b.secretEndpoint(t, a.ID, "whsec_missing_two")
	b.publish(t, b.event(a.ID))

	// Restarted with an unrelated key: the check names the missing key and
	// counts the endpoints; reads and claims fail on it rather than sign
	// with something else.
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
	got := map[int64]string{}
	for _, c := range claims {
		if c.EventType == nanohook.EventPing {
			t.Fatalf("the ping that failed to open its secret was claimed: %+v", c.Lease)
		}
		got[c.EndpointID] = c.Secret
	}
	equal(t, "deliveries claimed with the key back", len(claims), 2)
	equal(t, "endpoint 1's claimed secret", got[e1.ID], "whsec_missing_one")
	equal(t, "endpoint 2's claimed secret", got[e2.ID], "whsec_missing_two")
	b.readsAs(t, a.ID, e3.ID, "whsec_missing_plain")
}

func testResealDuringRotations(t *testing.T, open func(t *testing.T) store.Store, raw RawSecrets) {
	b := setupKeyed(t, open, raw)
	a, _ := b.account(t, "race")
	const n = 300
	ids := make([]int64, n)
	for i := range n {
		ids[i] = b.secretEndpoint(t, a.ID, fmt.Sprintf("whsec_race_%03d", i)).ID
	}
	k := keyring(t, testKey(t))
	b.k.SetKeyring(k)

	// Rotations race the reseal: none may be undone by it.
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
		sec, prev := raw(t, b.s, id)
		requireSealed(t, fmt.Sprintf("endpoint %d's secret", id), sec, k.PrimaryKeyID(), "whsec_race")
		requireSealed(t, fmt.Sprintf("endpoint %d's previous secret", id), prev, k.PrimaryKeyID(), "whsec_race")
		p, err := k.Open(prev)
		requireNoError(t, err)
		equal(t, fmt.Sprintf("endpoint %d's previous secret", id), p, fmt.Sprintf("whsec_race_%03d", i))
	}
	got := b.claimSecrets(t, a.ID)
	for i, id := range ids {
		equal(t, fmt.Sprintf("endpoint %d's claimed secrets", id), got[id],
			[2]string{fmt.Sprintf("whsec_race_%03d_b", i), fmt.Sprintf("whsec_race_%03d", i)})
	}
}

// testUnopenableSecret: one endpoint's secret cannot be opened after start
// (sealed under a key this node lacks: a reseal with "new,old" while serve
// runs with "old"). Its delivery is first in due order; the claim must
// still hand out the delivery behind it, and push the bad one back without
// counting an attempt, with a reason a customer may read. With the key
// back, it is claimed once its postponement is over.
func testUnopenableSecret(t *testing.T, open func(t *testing.T) store.Store) {
	b := setupKeyed(t, open, nil)
	rawA, rawB := testKey(t), testKey(t)
	keyA := keyring(t, rawA)
	b.k.SetKeyring(keyA)
	a, _ := b.account(t, "unopenable")
	bad := b.secretEndpoint(t, a.ID, "whsec_unopenable_bad")
	b.k.SetKeyring(keyring(t, rawB))
	good := b.secretEndpoint(t, a.ID, "whsec_unopenable_good")
	b.publish(t, b.event(a.ID))

	claims := b.claim(t, b.now, 10)
	if len(claims) != 1 || claims[0].EndpointID != good.ID {
		t.Fatalf("claim with one unopenable secret: %d claims %+v, want only endpoint %d's delivery", len(claims), claims, good.ID)
	}
	equal(t, "the good delivery's secret", claims[0].Secret, "whsec_unopenable_good")
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
	// as its first attempt, with the right secret.
	b.k.SetKeyring(keyring(t, rawB, rawA))
	claims = b.claim(t, b.now.Add(store.SecretRetryDelay), 10)
	if len(claims) != 1 || claims[0].DeliveryID != d.ID {
		t.Fatalf("claim with the key back: %d claims %+v, want delivery %d", len(claims), claims, d.ID)
	}
	equal(t, "the postponed delivery's secret", claims[0].Secret, "whsec_unopenable_bad")
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
}
