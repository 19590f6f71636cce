package delivery

import (
	"fmt"
	"testing"

	"github.com/nanohook/nanohook/webhook"
)

// TestSignersMatchSign: a worker's cached signers give exactly what
// webhook.Sign gives, secret by secret, also once the cache has been
// cleared for holding too many, and a nil cache signs too.
func TestSignersMatchSign(t *testing.T) {
	body := []byte(`{"event":"job.completed","task_id":"t1"}`)
	ss := newSigners()
	for round := range 2 {
		for i := range maxSigners + 10 {
			secret := fmt.Sprintf("whsec_%d", i)
			ts := int64(1735000000 + i + round)
			if got, want := ss.sign(secret, ts, body), webhook.Sign(secret, ts, body); got != want {
				t.Fatalf("round %d, secret %d: %s, want %s", round, i, got, want)
			}
		}
		if len(ss.m) > maxSigners {
			t.Fatalf("the cache holds %d signers, more than %d", len(ss.m), maxSigners)
		}
	}
	var none *signers
	if got, want := none.sign("s3cret-value", 1, body), webhook.Sign("s3cret-value", 1, body); got != want {
		t.Fatalf("nil signers: %s, want %s", got, want)
	}
}
