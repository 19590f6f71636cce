package api

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/nanohook/nanohook/internal/testsignal"
	"github.com/nanohook/nanohook/store"
)

// publishGroups is group commit for publishes: publish transactions that
// wait for a turn (publishGate) while another commits are written together
// by the next turn, in one transaction and one synced commit, instead of
// one commit each. A platform's job workers publish one event a request,
// many at once; on SQLite every commit is an fsync through the one writer,
// so commits, not rows, bound how many such requests a second a node takes.
//
// What each request sees is unchanged: its events are answered only after
// the commit that holds them, all of them or, if that commit fails, none
// (every member of a failed group gets its error, and nothing of theirs
// is stored); idempotency keys hold within a group exactly as within one
// request, since the group is one call of PublishEvents with the members'
// events in order. Validation happens before a request joins, so an
// invalid event fails only its own request.
//
// There is no linger: a group is whatever is waiting when a turn comes,
// so a publish on an idle node commits at once, alone, and under load the
// groups grow by themselves with the time a commit takes. A turn takes
// members oldest first, one account after another (round robin), within
// the bounds of one publish transaction (chunkRows, chunkPayloadBytes),
// so the gate's fairness between accounts holds inside a group too.
type publishGroups struct {
	mu      sync.Mutex
	pending []*publishMember // waiting for a turn, oldest first
	// queued is a test-only hook (off, a no-op, in production): a member
	// was added to pending.
	queued testsignal.Signal
}

// publishMember is one publish transaction's events waiting to be
// committed, alone or in a group.
type publishMember struct {
	account int64 // the account it waits its turn under
	events  []store.PublishEventParams
	rows    int // events and their deliveries, as planChunks counts them
	bytes   int // payload bytes
	// deadline is when the request's wait for a turn ends (publishWait
	// after it began): a group's commit must end by its members' earliest.
	deadline time.Time

	taken bool          // a turn took it into its group; guarded by publishGroups.mu
	done  chan struct{} // closed once res or err is set
	res   []store.PublishResult
	err   error
}

// publishChunk commits one publish transaction's events (a chunk of one
// request, see planChunks), in a group with whatever else waits when its
// turn comes, and returns their results in order.
func (s *server) publishChunk(ctx context.Context, account int64, events []store.PublishEventParams, rows, bytes int) ([]store.PublishResult, error) {
	m := &publishMember{account: account, events: events, rows: rows, bytes: bytes,
		deadline: time.Now().Add(publishWait), done: make(chan struct{})}
	s.groups.add(m)
	release, err := s.gate.acquireUnless(ctx, account, publishWait, m.done)
	if err != nil {
		if !errors.Is(err, errNoLongerNeeded) && s.groups.withdraw(m) {
			return nil, err // no turn, and no other turn took it: nothing written
		}
		// Another turn took it: its commit answers this request.
		<-m.done
		return m.res, m.err
	}
	group := s.groups.take(m)
	if group == nil {
		// Taken by another turn just before this one came.
		release()
		<-m.done
		return m.res, m.err
	}
	defer release() // deferred: a panic in the store must not keep the turn
	s.commitGroup(ctx, group)
	return m.res, m.err
}

// errGroupAbandoned answers the members of a group whose commit panicked:
// nothing of theirs is known to be stored, and a retry is safe (their
// idempotency keys tell a committed event apart).
var errGroupAbandoned = fmt.Errorf("api: publish: the group's commit was abandoned: %w", store.ErrUnavailable)

// minGroupCommit is the least time a group's commit is given, however
// close its members' deadlines are.
const minGroupCommit = time.Second

// add queues m for the next turn.
func (g *publishGroups) add(m *publishMember) {
	g.mu.Lock()
	g.pending = append(g.pending, m)
	g.mu.Unlock()
	g.queued.Notify()
}

// withdraw takes m out of the queue if no turn has taken it, and reports
// whether it did.
func (g *publishGroups) withdraw(m *publishMember) bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	if m.taken {
		return false
	}
	g.pending = slices.DeleteFunc(g.pending, func(x *publishMember) bool { return x == m })
	return true
}

// take forms the group of the turn m holds: m first, then the oldest
// waiting member of each account in turn, round robin, while the group
// stays within one publish transaction's bounds. It returns nil if another
// turn already took m.
func (g *publishGroups) take(m *publishMember) []*publishMember {
	g.mu.Lock()
	defer g.mu.Unlock()
	if m.taken {
		return nil
	}
	m.taken = true
	group := []*publishMember{m}
	rows, bytes := m.rows, m.bytes
	// Accounts in the order of their oldest waiting member; each
	// account's members oldest first.
	var order []int64
	byAccount := map[int64][]*publishMember{}
	for _, x := range g.pending {
		if x == m || x.taken {
			continue
		}
		if _, ok := byAccount[x.account]; !ok {
			order = append(order, x.account)
		}
		byAccount[x.account] = append(byAccount[x.account], x)
	}
	for progress := true; progress; {
		progress = false
		for _, a := range order {
			q := byAccount[a]
			if len(q) == 0 {
				continue
			}
			x := q[0]
			if rows+x.rows > chunkRows || bytes+x.bytes > chunkPayloadBytes {
				byAccount[a] = nil // its next member waits for a later turn
				continue
			}
			x.taken = true
			group = append(group, x)
			rows, bytes = rows+x.rows, bytes+x.bytes
			byAccount[a] = q[1:]
			progress = true
		}
	}
	g.pending = slices.DeleteFunc(g.pending, func(x *publishMember) bool { return x.taken })
	return group
}

// commitGroup writes the group's events in one PublishEvents call and
// answers every member. A group of several commits whatever any one
// request's context says (the others are waiting on it), but within its
// members' earliest deadline, or minGroupCommit if that is sooner: a
// request that waited for its turn until nearly publishWait and then
// joined a group must not wait for a stalled database's timeouts on top
// (without groups it would have given up at publishWait); the group then
// fails with store.ErrUnavailable. If an account of the group is gone
// (store.ErrNotFound), the members are written one by one instead, so
// that only that account's request fails.
func (s *server) commitGroup(ctx context.Context, group []*publishMember) {
	defer func() {
		// After a panic in the store (net/http recovers it for the request
		// holding the turn), no member may be left waiting forever.
		for _, m := range group {
			select {
			case <-m.done:
			default:
				m.err = errGroupAbandoned
				close(m.done)
			}
		}
	}()
	if len(group) > 1 {
		ctx = context.WithoutCancel(ctx)
	}
	deadline := group[0].deadline
	for _, m := range group[1:] {
		if m.deadline.Before(deadline) {
			deadline = m.deadline
		}
	}
	if floor := time.Now().Add(minGroupCommit); deadline.Before(floor) {
		deadline = floor
	}
	ctx, cancel := context.WithDeadline(ctx, deadline)
	defer cancel()
	events := group[0].events // a group of one, as on an idle node: no copy
	if len(group) > 1 {
		n := 0
		for _, m := range group {
			n += len(m.events)
		}
		events = make([]store.PublishEventParams, 0, n)
		for _, m := range group {
			events = append(events, m.events...)
		}
	}
	res, err := s.store.PublishEvents(ctx, events)
	if err != nil && errors.Is(ctx.Err(), context.DeadlineExceeded) && !errors.Is(err, store.ErrUnavailable) {
		err = fmt.Errorf("api: publish: not committed within the publish's time: %w: %w", err, store.ErrUnavailable)
	}
	if err == nil && len(res) != len(events) {
		err = fmt.Errorf("api: store returned %d results for %d events", len(res), len(events))
	}
	if errors.Is(err, store.ErrNotFound) && len(group) > 1 {
		for _, m := range group {
			s.commitGroup(ctx, []*publishMember{m})
		}
		return
	}
	off := 0
	for _, m := range group {
		if err != nil {
			m.err = err
		} else {
			m.res = res[off : off+len(m.events) : off+len(m.events)]
		}
		off += len(m.events)
		close(m.done)
	}
}
