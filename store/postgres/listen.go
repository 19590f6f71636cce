package postgres

import (
	"context"
	"errors"
	"time"

	"github.com/jackc/pgx/v5"
)

// Reconnection backoff of ListenDue: doubled after every failed attempt,
// back to the minimum once listening again.
const (
	listenMinBackoff = 100 * time.Millisecond
	listenMaxBackoff = 5 * time.Second
)

// errClosed is what ListenDue returns when called on a closed Store.
var errClosed = errors.New("postgres: store closed")

// ListenDue lets this node's engine sleep until there is work instead of
// polling: it calls wake whenever another node (or this one) publishes
// deliveries, or releases leased ones, into the same schema.
//
// It holds one connection of its own, outside the pool (a LISTEN belongs to
// a session, and a pooled connection would be handed to other callers), and
// reconnects with a backoff from 100 ms to 5 s when that connection breaks.
// Notifications sent while it is disconnected are lost, so wake is also
// called each time it starts listening, the first time included: the engine
// then looks for due work once, and misses nothing. Notifications are not
// queued: wake may be called less often than work was published, never
// later.
//
// wake is called from ListenDue's goroutine and should not block (a
// non-blocking send on a channel of one is typical). ListenDue returns nil
// when ctx is done or the Store is closed.
func (s *Store) ListenDue(ctx context.Context, wake func()) error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return errClosed
	}
	s.listeners.Add(1)
	s.mu.Unlock()
	defer s.listeners.Done()

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	defer context.AfterFunc(s.closing, cancel)()

	backoff := listenMinBackoff
	for {
		s.listen(ctx, wake, func() { backoff = listenMinBackoff })
		if ctx.Err() != nil {
			return nil
		}
		// The connection failed or broke. Nobody is told: the engine keeps
		// working on its own timers, only less promptly, until this
		// reconnects.
		t := time.NewTimer(backoff)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil
		case <-t.C:
		}
		backoff = min(2*backoff, listenMaxBackoff)
	}
}

// listen connects, listens and calls wake for every notification meant for
// this Store's schema, until the connection fails or ctx is done. listening
// is called once LISTEN is in effect.
func (s *Store) listen(ctx context.Context, wake, listening func()) {
	conn, err := pgx.ConnectConfig(ctx, s.listenConfig)
	if err != nil {
		return
	}
	defer func() {
		// Terminate politely, but not for long, even when ctx is done.
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Second)
		defer cancel()
		_ = conn.Close(cctx)
	}()
	var schema string
	if err := conn.QueryRow(ctx, `SELECT current_schema()`).Scan(&schema); err != nil {
		return
	}
	if _, err := conn.Exec(ctx, `LISTEN `+dueChannel); err != nil {
		return
	}
	listening()
	wake()
	for {
		n, err := conn.WaitForNotification(ctx)
		if err != nil {
			return
		}
		if n.Payload == schema {
			wake()
		}
	}
}
