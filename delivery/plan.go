package delivery

import (
	"cmp"
	"container/heap"
	"maps"
	"slices"
	"time"

	"github.com/nanohook/nanohook/store"
)

// dueEndpoint is an endpoint with deliveries due now: one of the store's
// queue heads.
type dueEndpoint struct {
	endpoint int64
	account  int64
	dueAt    time.Time // when its oldest due delivery fell due
}

// dueEndpoints picks the heads due at now, oldest first, and the earliest
// head still to come (zero if none).
func dueEndpoints(heads []store.QueueHead, now time.Time) (due []dueEndpoint, next time.Time) {
	for _, h := range heads {
		if h.DueAt.After(now) {
			if next.IsZero() || h.DueAt.Before(next) {
				next = h.DueAt
			}
			continue
		}
		due = append(due, dueEndpoint{endpoint: h.EndpointID, account: h.AccountID, dueAt: h.DueAt})
	}
	slices.SortFunc(due, func(a, b dueEndpoint) int {
		return cmp.Or(a.dueAt.Compare(b.dueAt), cmp.Compare(a.endpoint, b.endpoint))
	})
	return due, next
}

// plan shares up to free slots among the due endpoints, fairly: across
// accounts first, then across each account's endpoints, within each
// account's room (r.account) and each endpoint's fair share (r.fair[i] for
// due[i]). When slots are left and the node has room to spare (spare: how
// many more attempts it may start before it is busy), a second pass shares
// up to spare more the same way within the endpoints' burst limits
// (r.burst), so an endpoint held to its latency share on a busy node may
// keep up with its traffic on an idle one.
//
// Slots go one at a time to the account with the most account room left,
// that is the fewest attempts in flight on this node (max-min fairness: a
// customer whose slow endpoints hold many slots comes after one that holds
// few, however old its backlog); ties go to the account whose work fell
// due first. Within an account, its endpoints take turns, oldest first.
// An account's backlog depth counts for nothing: a customer with one due
// delivery gets a slot as soon as one is free, beside one with 100,000.
//
// It returns the quotas in due order, one per endpoint that got slots.
func plan(due []dueEndpoint, r rooms, free, spare int) []store.EndpointQuota {
	quota := share(due, r.fair, r.account, free)
	used := 0
	for _, n := range quota {
		used += n
	}
	if extra := min(free, spare) - used; extra > 0 {
		burst := make([]int, len(due))
		account := maps.Clone(r.account)
		for i, d := range due {
			burst[i] = max(0, r.burst[i]-quota[i])
			account[d.account] -= quota[i]
		}
		for i, n := range share(due, burst, account, extra) {
			quota[i] += n
		}
	}
	var out []store.EndpointQuota
	for i, n := range quota {
		if n > 0 {
			out = append(out, store.EndpointQuota{EndpointID: due[i].endpoint, Limit: n})
		}
	}
	return out
}

// share is one pass of plan: up to free slots, one at a time, within room
// (per due endpoint) and accountRoom; it returns the slots per due
// endpoint.
func share(due []dueEndpoint, room []int, accountRoom map[int64]int, free int) []int {
	quota := make([]int, len(due))
	if free <= 0 {
		return quota
	}
	byAccount := map[int64]*accountShare{}
	var h shareHeap
	for i, d := range due {
		if room[i] <= 0 || accountRoom[d.account] <= 0 {
			continue
		}
		a := byAccount[d.account]
		if a == nil {
			a = &accountShare{account: d.account, room: accountRoom[d.account], oldest: d.dueAt}
			byAccount[d.account] = a
			h = append(h, a)
		}
		a.endpoints = append(a.endpoints, i) // oldest first: due is in due order
	}
	heap.Init(&h)
	room = slices.Clone(room)
	for free > 0 && h.Len() > 0 {
		a := h[0]
		i := a.endpoints[a.turn]
		quota[i]++
		room[i]--
		a.room--
		free--
		if room[i] == 0 {
			a.endpoints = slices.Delete(a.endpoints, a.turn, a.turn+1)
		} else {
			a.turn++
		}
		if a.turn >= len(a.endpoints) {
			a.turn = 0
		}
		if a.room == 0 || len(a.endpoints) == 0 {
			heap.Pop(&h)
		} else {
			heap.Fix(&h, 0)
		}
	}
	return quota
}

// accountShare is one account's place in a plan.
type accountShare struct {
	account   int64
	room      int       // account slots still free
	oldest    time.Time // when its oldest due work fell due
	endpoints []int     // indexes into due of its endpoints with room
	turn      int       // the endpoint whose turn is next
}

// shareHeap orders accounts by most room, then oldest work, then id.
type shareHeap []*accountShare

func (h shareHeap) Len() int { return len(h) }
func (h shareHeap) Less(i, j int) bool {
	a, b := h[i], h[j]
	if a.room != b.room {
		return a.room > b.room
	}
	if !a.oldest.Equal(b.oldest) {
		return a.oldest.Before(b.oldest)
	}
	return a.account < b.account
}
func (h shareHeap) Swap(i, j int) { h[i], h[j] = h[j], h[i] }
func (h *shareHeap) Push(x any)   { *h = append(*h, x.(*accountShare)) }
func (h *shareHeap) Pop() any {
	old := *h
	x := old[len(old)-1]
	*h = old[:len(old)-1]
	return x
}
