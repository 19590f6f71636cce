package store

import (
	"context"
	"fmt"
)

// SecretBatch is how many endpoints one step of CheckSecrets or
// ResealSecrets reads: one short read, or one short write transaction, so
// that a big table never holds the writer or many row locks for long.
const SecretBatch = 200

// resealPasses bounds how often ResealSecrets goes over the table again
// because rows changed under it: an endpoint rotated between its read and
// its compare-and-swap is read again in the next pass.
const resealPasses = 5

// StoredSecrets is one endpoint's sealed columns (url, secret,
// previous_secret) as stored.
type StoredSecrets struct {
	ID                    int64
	URL, Secret, Previous string
}

// SecretSwap replaces one endpoint's sealed columns, but only if they still
// hold Old (compare-and-swap): a rotation or URL change in between wins.
type SecretSwap struct {
	Old                   StoredSecrets
	URL, Secret, Previous string
}

// CheckSecrets opens every stored URL and secret with k. read returns up to
// SecretBatch endpoints with ids above after, in id order, deleted ones
// included (their secrets are at rest too).
func CheckSecrets(ctx context.Context, k *Keyring, read func(ctx context.Context, after int64) ([]StoredSecrets, error)) error {
	check := k.NewSecretCheck()
	for after := int64(0); ; {
		batch, err := read(ctx, after)
		if err != nil {
			return err
		}
		for _, r := range batch {
			check.Add(r)
		}
		if len(batch) < SecretBatch {
			return check.Err()
		}
		after = batch[len(batch)-1].ID
	}
}

// ResealStep is one write transaction of a driver's ResealSecrets: read up to
// SecretBatch endpoints with ids above after (as CheckSecrets' read does),
// pass them to plan, apply the swaps plan returns, each as a
// compare-and-swap, and commit. It returns the rows read and how many swaps
// matched.
type ResealStep func(ctx context.Context, after int64, plan func([]StoredSecrets) []SecretSwap) (read []StoredSecrets, swapped int, err error)

// ResealSecrets seals under k's primary key, in the current format, every
// URL and secret that is plaintext, sealed in the first format or sealed
// under another key, one step (transaction) per batch, and goes over the
// table again while rows changed under it. A row whose values do not open is left as is and reported in the error, after the rest is done.
// driver names the store in errors.
func ResealSecrets(ctx context.Context, driver string, k *Keyring, step ResealStep) (int, error) {
	if k == nil {
		return 0, fmt.Errorf("%s: reseal secrets: %s is not set: there is no key to encrypt with", driver, KeySetting)
	}
	total := 0
	for range resealPasses {
		check := k.NewSecretCheck()
		missed := 0
		for after := int64(0); ; {
			planned := 0
			batch, swapped, err := step(ctx, after, func(rows []StoredSecrets) []SecretSwap {
				swaps := planReseal(k, check, rows)
				planned = len(swaps)
				return swaps
			})
			if err != nil {
				return total, err
			}
			// Counted once committed: a failed step changed nothing.
			total += swapped
			missed += planned - swapped
			if len(batch) < SecretBatch {
				break
			}
			after = batch[len(batch)-1].ID
		}
		if missed == 0 {
			return total, check.Err()
		}
	}
	return total, fmt.Errorf("%s: reseal secrets: endpoints kept changing during %d passes; run it again", driver, resealPasses)
}

// planReseal is the swaps that reseal rows under k's primary key; rows that
// do not open are counted in check instead, and rows already sealed under
// the primary key in the current format need none.
func planReseal(k *Keyring, check *SecretCheck, rows []StoredSecrets) []SecretSwap {
	var swaps []SecretSwap
	for _, r := range rows {
		url, c1, err1 := k.Reseal(FieldURL, r.ID, r.URL)
		secret, c2, err2 := k.Reseal(FieldSecret, r.ID, r.Secret)
		previous, c3, err3 := k.Reseal(FieldSecret, r.ID, r.Previous)
		if err1 != nil || err2 != nil || err3 != nil {
			check.Add(r)
			continue
		}
		if c1 || c2 || c3 {
			swaps = append(swaps, SecretSwap{Old: r, URL: url, Secret: secret, Previous: previous})
		}
	}
	return swaps
}
