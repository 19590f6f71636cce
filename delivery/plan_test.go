package delivery

import (
	"testing"
	"time"

	"github.com/nanohook/nanohook/store"
)

// quotaOf returns endpoint id's quota in qs (0 if none).
func quotaOf(qs []store.EndpointQuota, id int64) int {
	n := 0
	for _, q := range qs {
		if q.EndpointID == id {
			n += q.Limit
		}
	}
	return n
}

func total(qs []store.EndpointQuota) int {
	n := 0
	for _, q := range qs {
		n += q.Limit
	}
	return n
}

// TestPlanSharesAcrossAccountsFirst: an account with eight endpoints and a
// deep, old backlog does not get more of a scarce round than an account
// with one endpoint whose work just fell due: slots go to the account with
// the fewest in flight first, then alternate.
func TestPlanSharesAcrossAccountsFirst(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	var due []dueEndpoint
	for i := range 8 { // account 2: eight endpoints due long ago
		due = append(due, dueEndpoint{endpoint: int64(10 + i), account: 2, dueAt: t0.Add(-time.Hour)})
	}
	due = append(due, dueEndpoint{endpoint: 99, account: 1, dueAt: t0})
	room := []int{8, 8, 8, 8, 8, 8, 8, 8, 8}

	t.Run("equal load: alternate, the older work first", func(t *testing.T) {
		qs := plan(due, rooms{fair: room, burst: room, account: map[int64]int{1: 100, 2: 100}}, 6, 0)
		if got := quotaOf(qs, 99); got != 3 {
			t.Fatalf("the one-endpoint account got %d of 6 slots, want 3: %v", got, qs)
		}
		if total(qs) != 6 {
			t.Fatalf("planned %d slots of 6: %v", total(qs), qs)
		}
	})
	t.Run("the busier account comes after", func(t *testing.T) {
		// Account 2 already has 80 in flight (room 20 of 100), account 1 none.
		qs := plan(due, rooms{fair: room, burst: room, account: map[int64]int{1: 100, 2: 20}}, 4, 0)
		if got := quotaOf(qs, 99); got != 4 {
			t.Fatalf("the idle account got %d of 4 slots, want all 4: %v", got, qs)
		}
	})
	t.Run("within an account, endpoints take turns", func(t *testing.T) {
		qs := plan(due[:8], rooms{fair: room[:8], burst: room[:8], account: map[int64]int{2: 100}}, 16, 0)
		for i := range 8 {
			if got := quotaOf(qs, int64(10+i)); got != 2 {
				t.Fatalf("endpoint %d got %d of 16 slots over 8 endpoints, want 2: %v", 10+i, got, qs)
			}
		}
	})
}

// TestPlanRespectsEveryLimit: no endpoint gets more than its room, no
// account more than its room, the round no more than free, and endpoints
// or accounts without room get nothing; what one cannot take goes to the
// others.
func TestPlanRespectsEveryLimit(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	due := []dueEndpoint{
		{endpoint: 1, account: 1, dueAt: t0},
		{endpoint: 2, account: 1, dueAt: t0},
		{endpoint: 3, account: 2, dueAt: t0},
		{endpoint: 4, account: 3, dueAt: t0},
	}
	room := []int{2, 0, 50, 50}
	qs := plan(due, rooms{fair: room, burst: room, account: map[int64]int{1: 10, 2: 5, 3: 0}}, 100, 0)
	want := map[int64]int{1: 2, 2: 0, 3: 5, 4: 0}
	for id, n := range want {
		if got := quotaOf(qs, id); got != n {
			t.Fatalf("endpoint %d: quota %d, want %d (%v)", id, got, n, qs)
		}
	}
	all := rooms{fair: []int{50, 50, 50, 50}, burst: []int{50, 50, 50, 50}, account: map[int64]int{1: 100, 2: 100, 3: 100}}
	if qs := plan(due, all, 7, 0); total(qs) != 7 {
		t.Fatalf("planned %d with 7 free: %v", total(qs), qs)
	}
	if qs := plan(due, all, 0, 0); qs != nil {
		t.Fatalf("planned %v with nothing free", qs)
	}
}

// TestDueEndpoints: heads due at now come out oldest first; the earliest
// head still to come is when to look again.
func TestDueEndpoints(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	heads := []store.QueueHead{
		{EndpointID: 1, AccountID: 1, DueAt: t0.Add(time.Minute)},
		{EndpointID: 2, AccountID: 1, DueAt: t0},
		{EndpointID: 3, AccountID: 2, DueAt: t0.Add(-time.Second)},
		{EndpointID: 4, AccountID: 2, DueAt: t0.Add(time.Second)},
	}
	due, next := dueEndpoints(heads, t0)
	if len(due) != 2 || due[0].endpoint != 3 || due[1].endpoint != 2 {
		t.Fatalf("due = %+v, want endpoints 3 then 2", due)
	}
	if !next.Equal(t0.Add(time.Second)) {
		t.Fatalf("next = %v, want t0+1s", next)
	}
}

// TestPlanBurstsOnlyWithRoomToSpare: an endpoint held to a small fair share
// (a slow one) gets more, up to its burst limit, only while the node has
// room to spare, and a busy node gives it its fair share alone.
func TestPlanBurstsOnlyWithRoomToSpare(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	due := []dueEndpoint{{endpoint: 1, account: 1, dueAt: t0}, {endpoint: 2, account: 2, dueAt: t0}}
	r := rooms{fair: []int{5, 2}, burst: []int{5, 40}, account: map[int64]int{1: 100, 2: 100}}
	if qs := plan(due, r, 100, 0); quotaOf(qs, 1) != 5 || quotaOf(qs, 2) != 2 {
		t.Fatalf("busy node: %v, want the fair shares 5 and 2", qs)
	}
	if qs := plan(due, r, 100, 1000); quotaOf(qs, 1) != 5 || quotaOf(qs, 2) != 40 {
		t.Fatalf("idle node: %v, want 5 and the burst limit 40", qs)
	}
	if qs := plan(due, r, 100, 20); total(qs) != 20 || quotaOf(qs, 2) != 15 {
		t.Fatalf("20 spare: %v, want the fair 7 and 13 more for endpoint 2 (15 in all)", qs)
	}
	r.account[2] = 10
	if qs := plan(due, r, 100, 1000); quotaOf(qs, 2) != 10 {
		t.Fatalf("account cap 10: %v, bursting must stay within it", qs)
	}
}
