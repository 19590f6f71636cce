package api

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/nanohook/nanohook/store"
)

// Bounds of one publish transaction. A publish request is committed in
// transactions of whole events holding at most chunkRows rows (an event
// and its deliveries) and chunkPayloadBytes of payloads, except that an
// event always goes whole, with all its deliveries, into one: at most
// 1 + MaxEndpointsPerAccount rows (101 by default) and MaxPayloadBytes.
//
// 5,000 rows take about 150 ms to write on SQLite and 250 ms on PostgreSQL
// on the 2-core development machine (BenchmarkPublish's 28 and 48 µs a
// delivery), so that no publish holds the writer for long: a batch of
// 1,000 events to 100 endpoints, the most the default limits allow, is
// about 20 such transactions instead of one of 100,000 rows, and other
// accounts' publishes get their turns in between (publishGate). Batches
// of ordinary size still go in one transaction and one synced commit:
// 1,000 rows cut a batch of 100 events to 10 endpoints in two, and a
// batch of 500 in six, which cost the batch path about a tenth of its
// throughput in commits.
const (
	chunkRows         = 5000
	chunkPayloadBytes = 4 << 20
)

// publishWait bounds how long a publish transaction waits for its turn
// (publishGate) before the request answers 503: as long as SQLite's
// writer waits for its lock, so that either way a publisher is told the
// node is behind in about the same time.
const publishWait = 10 * time.Second

// publishChunk is the events of one publish transaction.
type publishChunk struct {
	idx []int // their positions in the request, in the order they go in
	// account is the account with the most rows in it, under which it
	// waits for its turn.
	account int64
}

// planChunks splits a request's events into publishChunks. Events are
// taken account by account (in request order within each), so that a
// chunk usually belongs to one account; fanout gives an account's live
// endpoints, the most deliveries one of its events creates.
func planChunks(events []store.PublishEventParams, fanout func(account int64) int) []publishChunk {
	order := make([]int, len(events))
	for i := range order {
		order[i] = i
	}
	// Stable: two events with one idempotency key (one account) keep
	// their order, so the first is the one kept, as in one transaction.
	slices.SortStableFunc(order, func(a, b int) int { return cmp.Compare(events[a].AccountID, events[b].AccountID) })

	var (
		chunks      []publishChunk
		cur         publishChunk
		rows, bytes int
		perAccount  = map[int64]int{}
	)
	flush := func() {
		if len(cur.idx) == 0 {
			return
		}
		most := -1
		for a, n := range perAccount {
			if n > most || (n == most && a < cur.account) {
				cur.account, most = a, n
			}
		}
		chunks = append(chunks, cur)
		cur, rows, bytes = publishChunk{}, 0, 0
		clear(perAccount)
	}
	for _, i := range order {
		e := &events[i]
		r, b := 1+fanout(e.AccountID), len(e.Payload)
		if len(cur.idx) > 0 && (rows+r > chunkRows || bytes+b > chunkPayloadBytes) {
			flush()
		}
		cur.idx = append(cur.idx, i)
		rows, bytes = rows+r, bytes+b
		perAccount[e.AccountID] += r
	}
	flush()
	return chunks
}

// publish commits events, chunk after chunk (planChunks), each in its turn
// (publishGate) and with the chunks of other requests that wait for one
// then (publishGroups), and wakes the delivery engine after each chunk that
// created deliveries, so that it starts on them while the rest are
// written. fanout gives each account's live endpoints. Results follow the
// order of events.
//
// A 2xx still means every event is committed: the answer is written only
// after the last chunk. A failure part way leaves the chunks before it
// committed, each event whole with all its deliveries; every event has an
// idempotency key, so a retry of the whole request finds those as
// duplicates (their first ids, nothing written twice) and writes the
// rest.
func (s *server) publish(ctx context.Context, events []store.PublishEventParams, fanout func(account int64) int) ([]store.PublishResult, error) {
	out := make([]store.PublishResult, len(events))
	part := make([]store.PublishEventParams, 0, len(events))
	for _, c := range planChunks(events, fanout) {
		part = part[:0]
		rows, bytes := 0, 0
		for _, i := range c.idx {
			part = append(part, events[i])
			rows, bytes = rows+1+fanout(events[i].AccountID), bytes+len(events[i].Payload)
		}
		res, err := s.publishChunk(ctx, c.account, part, rows, bytes)
		if err != nil {
			return nil, err
		}
		if len(res) != len(part) {
			return nil, fmt.Errorf("api: store returned %d results for %d events", len(res), len(part))
		}
		// Deliveries counts the ones recorded failed for a disabled
		// endpoint too, so the engine may be woken for nothing: a cheap
		// look at the queue.
		created := false
		for j, i := range c.idx {
			out[i] = res[j]
			created = created || (res[j].Deliveries > 0 && !res[j].Duplicate)
		}
		if created && s.waker != nil {
			s.waker.Wake()
		}
	}
	s.observePublish(ctx, out)
	return out, nil
}
