package sqlshared

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/nanohook/nanohook"
)

// fakeRows is rows of ints, closable the way pgx's are (Close()).
type fakeRows struct {
	vals   []int
	i      int
	err    error
	closed bool
}

func (r *fakeRows) Next() bool { r.i++; return r.i <= len(r.vals) }
func (r *fakeRows) Err() error { return r.err }
func (r *fakeRows) Close()     { r.closed = true }
func (r *fakeRows) Scan(dest ...any) error {
	*dest[0].(*int) = r.vals[r.i-1]
	return nil
}

func scanInt(s Scanner) (v int, err error) { return v, s.Scan(&v) }

func TestCollect(t *testing.T) {
	r := &fakeRows{vals: []int{3, 1, 2}}
	got, err := Collect(r, scanInt)
	if err != nil || len(got) != 3 || got[0] != 3 || got[2] != 2 || !r.closed {
		t.Fatalf("Collect = %v, %v (closed %v)", got, err, r.closed)
	}
	empty, err := Collect(&fakeRows{}, scanInt)
	if err != nil || empty == nil || len(empty) != 0 {
		t.Fatalf("Collect of no rows = %#v, %v; want an empty, non-nil slice", empty, err)
	}
	failed := errors.New("connection lost")
	if _, err := Collect(&fakeRows{vals: []int{1}, err: failed}, scanInt); !errors.Is(err, failed) {
		t.Fatalf("Collect error = %v, want %v", err, failed)
	}
	if _, err := CollectQuery(nil, failed, scanInt); !errors.Is(err, failed) {
		t.Fatalf("CollectQuery error = %v, want the query's", err)
	}
}

func TestInTxValue(t *testing.T) {
	runs := 0
	inTx := func(ctx context.Context, op string, fn func(tx string) error) error {
		runs++
		if err := fn("tx1"); err != nil { // a first run that is retried
			return err
		}
		return fn("tx2")
	}
	got, err := InTxValue(context.Background(), inTx, "op", func(tx string) (string, error) { return tx, nil })
	if err != nil || got != "tx2" || runs != 1 {
		t.Fatalf("InTxValue = %q, %v; want the last run's value", got, err)
	}
	failed := errors.New("refused")
	got, err = InTxValue(context.Background(), inTx, "op", func(tx string) (string, error) { return "partial", failed })
	if !errors.Is(err, failed) || got != "" {
		t.Fatalf("InTxValue = %q, %v; want the zero value and the error", got, err)
	}
}

func TestNumbered(t *testing.T) {
	if got := Numbered(PruneEventsWindowSQL); strings.Contains(got, "$") || !strings.Contains(got, "LIMIT ?2") || !strings.Contains(got, "< ?1") {
		t.Fatalf("Numbered = %s", got)
	}
	for _, q := range []string{SecretsAfterSQL, DeliveryByIDSQL, PruneDeliveriesSQL, PruneEventsWindowSQL} {
		// Numbered may only meet '$' in parameters.
		for i := range len(q) {
			if q[i] == '$' && (i+1 == len(q) || q[i+1] < '1' || q[i+1] > '9') {
				t.Errorf("a '$' that is no parameter in %s", q)
			}
		}
	}
}

// TestPruneDeliveriesSQLFinished: the statuses pruned are the final ones
// of nanohook, spelled as the root package spells them.
func TestPruneDeliveriesSQLFinished(t *testing.T) {
	for _, s := range []nanohook.DeliveryStatus{nanohook.DeliverySucceeded, nanohook.DeliveryFailed, nanohook.DeliveryCancelled} {
		if !strings.Contains(PruneDeliveriesSQL, "'"+string(s)+"'") {
			t.Errorf("PruneDeliveriesSQL does not prune %s deliveries", s)
		}
	}
	if strings.Contains(PruneDeliveriesSQL, "'"+string(nanohook.DeliveryPending)+"'") {
		t.Error("PruneDeliveriesSQL names pending deliveries")
	}
}
