package postgres

import (
	"context"
	"time"
)

// A publish tells the other nodes about its new deliveries after it has
// committed, not inside its transaction: PostgreSQL takes one global lock
// while a notifying transaction commits, which would make every concurrent
// publish commit one after another and so never share a WAL flush.
//
// Notifications are coalesced: however many publishes commit, a node sends
// at most one NOTIFY every notifyGap, on a session of the asynchronous-commit pool
// (nothing a caller is told depends on it). A notification that is lost
// (the node stops, the send fails) costs the other nodes at most their poll
// interval (1 s by default), never a delivery: this node wakes its own
// engine directly, and every engine polls.
const (
	notifyGap     = 5 * time.Millisecond // Store.notifyGap's default
	notifyTimeout = time.Second
)

// notifyDue asks for a notification on dueChannel soon. It never blocks.
func (s *Store) notifyDue() {
	select {
	case s.notify <- struct{}{}:
	default: // one is already asked for; it will cover this commit too
	}
}

// notifier sends the notifications notifyDue asks for until the Store
// closes. A request that arrives while a notification is being sent, or
// within Store.notifyGap after it, is served by one more notification, sent when
// the gap has passed: every commit is followed by a notification sent after
// it.
func (s *Store) notifier() {
	defer s.listeners.Done()
	gap := time.NewTimer(0)
	defer gap.Stop()
	for {
		select {
		case <-s.closing.Done():
			return
		case <-s.notify:
		}
		ctx, cancel := context.WithTimeout(s.closing, notifyTimeout)
		_, _ = s.asyncCommit.Exec(ctx, notifyDueSQL) // lost: the other nodes' polls cover it
		cancel()
		gap.Reset(s.notifyGap)
		select {
		case <-s.closing.Done():
			return
		case <-gap.C:
		}
	}
}
