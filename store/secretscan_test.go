package store

import (
	"context"
	"fmt"
	"strings"
	"testing"
)

// table is an endpoints table in memory for ResealSecrets' steps: the
// compare-and-swap rule is the drivers' (the three columns must still hold
// what was read), and interfere, when set, changes rows between a step's read and
// its writes, as a concurrent rotation on another node would.
type table struct {
	rows      map[int64]*StoredSecrets
	ids       []int64
	interfere func(step int, rows map[int64]*StoredSecrets)
	steps     int
}

func newTable(n int, secret func(i int) string) *table {
	t := &table{rows: map[int64]*StoredSecrets{}}
	for i := 1; i <= n; i++ {
		t.rows[int64(i)] = &StoredSecrets{ID: int64(i), URL: fmt.Sprintf("https://hooks.example.com/%d?token=t%d", i, i), Secret: secret(i)}
		t.ids = append(t.ids, int64(i))
	}
	return t
}

func (t *table) step(_ context.Context, after int64, plan func([]StoredSecrets) []SecretSwap) ([]StoredSecrets, int, error) {
	t.steps++
	var batch []StoredSecrets
	for _, id := range t.ids {
		if id > after && len(batch) < SecretBatch {
			batch = append(batch, *t.rows[id])
		}
	}
	swaps := plan(batch)
	if t.interfere != nil {
		t.interfere(t.steps, t.rows)
	}
	swapped := 0
	for _, w := range swaps {
		r := t.rows[w.Old.ID]
		if r.URL == w.Old.URL && r.Secret == w.Old.Secret && r.Previous == w.Old.Previous {
			r.URL, r.Secret, r.Previous = w.URL, w.Secret, w.Previous
			swapped++
		}
	}
	return batch, swapped, nil
}

// TestResealSecretsPasses drives the pass and batch loop both drivers use:
// every row ends sealed under the primary key, a row changed under a step is
// read again in the next pass, and a table that never settles is reported
// rather than looped over for ever.
func TestResealSecretsPasses(t *testing.T) {
	ctx := context.Background()
	oldKey, _ := newKey(t)
	newKeyB64, newKID := newKey(t)
	old := mustKeyring(t, oldKey)
	both := mustKeyring(t, newKeyB64+","+oldKey)
	sealedOld := func(i int) string { // endpoint i's secret, under old
		v, err := old.Seal(FieldSecret, int64(i), "whsec_endpoint_secret")
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	const n = 2*SecretBatch + 7 // three batches

	t.Run("all rows, in batches", func(t *testing.T) {
		tab := newTable(n, sealedOld)
		got, err := ResealSecrets(ctx, "test", both, tab.step)
		if err != nil || got != n {
			t.Fatalf("ResealSecrets = %d, %v; want %d, nil", got, err, n)
		}
		if tab.steps != 3 {
			t.Errorf("%d steps, want 3 (one per batch of %d)", tab.steps, SecretBatch)
		}
		for id, r := range tab.rows {
			if !strings.HasPrefix(r.Secret, sealPrefix+newKID+":") || !strings.HasPrefix(r.URL, sealPrefix+newKID+":") {
				t.Fatalf("row %d still %.20q, %.20q", id, r.URL, r.Secret)
			}
			if u, err := both.Open(FieldURL, id, r.URL); err != nil || u != fmt.Sprintf("https://hooks.example.com/%d?token=t%d", id, id) {
				t.Fatalf("row %d's URL opens as %q, %v", id, u, err)
			}
		}
		if got, err := ResealSecrets(ctx, "test", both, tab.step); err != nil || got != 0 {
			t.Errorf("a second run resealed %d, %v; want 0", got, err)
		}
	})

	t.Run("a row changed under a step is read again", func(t *testing.T) {
		tab := newTable(n, sealedOld)
		tab.interfere = func(step int, rows map[int64]*StoredSecrets) {
			if step == 2 { // a rotation during the second batch
				rows[SecretBatch+1].Previous = rows[SecretBatch+1].Secret
				rows[SecretBatch+1].Secret = sealedOld(SecretBatch + 1)
			}
		}
		got, err := ResealSecrets(ctx, "test", both, tab.step)
		if err != nil || got != n {
			t.Fatalf("ResealSecrets = %d, %v; want %d, nil", got, err, n)
		}
		if tab.steps != 6 {
			t.Errorf("%d steps, want 6 (a second pass over the 3 batches)", tab.steps)
		}
		r := tab.rows[SecretBatch+1]
		if !strings.HasPrefix(r.Secret, sealPrefix+newKID+":") || !strings.HasPrefix(r.Previous, sealPrefix+newKID+":") {
			t.Errorf("the rotated row was not resealed: %q, %q", r.Secret[:20], r.Previous[:20])
		}
	})

	t.Run("a table that never settles is an error", func(t *testing.T) {
		tab := newTable(1, sealedOld)
		tab.interfere = func(_ int, rows map[int64]*StoredSecrets) { rows[1].Secret = sealedOld(1) }
		if _, err := ResealSecrets(ctx, "test", both, tab.step); err == nil || !strings.Contains(err.Error(), "kept changing") {
			t.Fatalf("err = %v, want 'kept changing'", err)
		}
		if tab.steps != resealPasses {
			t.Errorf("%d steps, want %d passes", tab.steps, resealPasses)
		}
	})

	t.Run("rows that do not open are reported after the rest", func(t *testing.T) {
		stranger, _ := newKey(t)
		foreign := mustKeyring(t, stranger)
		tab := newTable(3, sealedOld)
		tab.rows[2].Secret, _ = foreign.Seal(FieldSecret, 2, "whsec_other")
		got, err := ResealSecrets(ctx, "test", both, tab.step)
		if got != 2 || err == nil {
			t.Fatalf("ResealSecrets = %d, %v; want 2 and an error naming the row", got, err)
		}
	})

	t.Run("no key", func(t *testing.T) {
		if _, err := ResealSecrets(ctx, "test", nil, newTable(1, sealedOld).step); err == nil || !strings.Contains(err.Error(), KeySetting) {
			t.Fatalf("err = %v, want one naming %s", err, KeySetting)
		}
	})
}

// TestCheckSecretsReadsEveryBatch: the check reads until a short batch and
// counts every row that does not open.
func TestCheckSecretsReadsEveryBatch(t *testing.T) {
	k, _ := newKey(t)
	stranger, _ := newKey(t)
	foreign := mustKeyring(t, stranger)
	tab := newTable(2*SecretBatch, func(i int) string { return "whsec_plain_secret" })
	last := tab.rows[int64(2*SecretBatch)]
	last.URL, _ = foreign.Seal(FieldURL, last.ID, last.URL)
	reads := 0
	err := CheckSecrets(context.Background(), mustKeyring(t, k), func(_ context.Context, after int64) ([]StoredSecrets, error) {
		reads++
		var batch []StoredSecrets
		for _, id := range tab.ids {
			if id > after && len(batch) < SecretBatch {
				batch = append(batch, *tab.rows[id])
			}
		}
		return batch, nil
	})
	if err == nil || reads != 3 {
		t.Fatalf("CheckSecrets read %d batches and returned %v; want 3 reads and the last row reported", reads, err)
	}
}
