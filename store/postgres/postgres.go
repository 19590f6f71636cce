// Package postgres is nanohook's shared storage: a store.Store on one
// PostgreSQL database, so that any number of `nanohook serve` processes can
// publish, claim and deliver the same work.
//
// It keeps the semantics of store/sqlite exactly (store/storetest checks
// both) while replacing what SQLite gets from having a single writer:
//
//   - Claims lock the rows they lease with FOR NO KEY UPDATE SKIP LOCKED, so
//     nodes claiming at once never wait for each other nor share a row.
//   - Idempotency is decided by the UNIQUE (account_id, idempotency_key)
//     constraint through INSERT … ON CONFLICT DO NOTHING, never by a read
//     before the insert, so concurrent publishers of one key create one event.
//   - Lease tokens come from a sequence shared by all nodes.
//   - Fanning an event out takes a share lock on the endpoints it reads, and
//     deleting or disabling an endpoint cancels its pending deliveries in a
//     statement after the one that changed the endpoint; so a delivery can
//     never be created for an endpoint that a concurrent transaction has just
//     deleted or disabled.
//   - Publishing (and releasing leases) notifies the channel nanohook_due at
//     commit, and ListenDue turns that into a wake-up of the other nodes'
//     engines.
//
// Every batch call is one transaction and as few round trips as possible:
// statements of one call travel in one pgx.Batch, and rows of a batch travel
// as arrays unnested by the server. At thousands of deliveries per second the
// round trips, not the SQL, are what a network-attached database costs.
package postgres

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/nanohook/nanohook/store"
	"github.com/nanohook/nanohook/store/internal/sqlshared"
)

var _ store.Store = (*Store)(nil)

// acquireTimeout bounds the wait for a pooled connection. When the server is
// unreachable or every connection is stuck, callers get store.ErrUnavailable
// (a 503 the client may retry) after this long, instead of hanging until
// their own deadline, which for background loops may be never.
const acquireTimeout = 5 * time.Second

// callTimeout bounds how long one call may hold a connection before the
// connection's socket times out and the call fails with
// store.ErrUnavailable. A server that hangs (frozen, or behind a network
// that drops packets) tells the client nothing, and pgx waits for it as
// long as the caller's context lets it, which for an HTTP request or a
// background loop may be forever. Every call nanohook makes, including a
// batch of 1000 events, takes milliseconds; the schema migrations, which
// may wait for another node's, are exempt.
const callTimeout = 8 * time.Second

// serverTimeout is the statement_timeout and lock_timeout every session
// runs with, a little under callTimeout. The socket deadline gives up on the
// client's side only; without these, the server would go on running the
// statement, or waiting for its lock, holding what it took meanwhile. A bit
// shorter, so that the server usually cancels first and the connection comes
// back clean with a plain error instead of being cut. The migrations lift
// both for their own transactions.
const serverTimeout = "7s"

// asyncCommitPoolConns caps the asyncCommit pool: one engine claims and completes from a
// couple of goroutines, and a few connections cover several stores sharing
// a process in tests.
const asyncCommitPoolConns = 4

// Store is the PostgreSQL implementation of store.Store. It is safe for
// concurrent use, and several Stores (in one process or many) may share one
// database; Close it to release its connections.
type Store struct {
	pool *pgxpool.Pool

	// asyncCommit is a second, small pool whose sessions commit with
	// synchronous_commit off, for the delivery engine's bookkeeping (claims,
	// outcomes, releases). A commit there returns before its WAL record is
	// flushed: if the server crashes within that moment, the claim or the
	// outcome is forgotten and the delivery is simply sent again, which
	// at-least-once allows. Nothing acknowledged to a publisher or an API
	// caller goes through it; their commits wait for the flush as usual.
	// WAL is flushed in order, so a later durable commit covers the earlier
	// asynchronous ones too.
	asyncCommit *pgxpool.Pool

	// listenConfig is the configuration ListenDue connects with: the pool's
	// own, so the listener reaches the same database and schema.
	listenConfig *pgx.ConnConfig

	// now stamps rows whose time no caller passes in (applied migrations,
	// revoked keys). It never decides what is due; callers do that with Now
	// fields.
	now func() time.Time

	// secrets seals endpoint secrets on write and opens them on read; nil
	// stores them as plaintext. See SetKeyring (secrets.go).
	secrets store.Secrets

	// Close stops running ListenDue loops and the notifier before closing the pool, so that
	// after Close no connection of this Store is left open.
	mu        sync.Mutex
	closed    bool
	stop      context.CancelFunc // cancels closing
	closing   context.Context
	listeners sync.WaitGroup // ListenDue loops and the notifier

	// notify asks the notifier (notify.go) for a NOTIFY on dueChannel.
	notify    chan struct{}
	notifyGap time.Duration // at least this long between two notifications
}

// Open connects to the database at url (a postgres:// URL or a key=value
// connection string) and applies the schema migrations, so that a Store
// returned without error is ready to use.
//
// Parameters pgx does not know itself are sent to the server as run-time
// settings; search_path in particular selects the schema nanohook's tables
// live in (tests give each test its own schema this way). pgxpool's own
// parameters (pool_max_conns, pool_max_conn_lifetime, …) size the pool.
func Open(ctx context.Context, url string) (*Store, error) {
	cfg, err := pgxpool.ParseConfig(url)
	if err != nil {
		// pgx's parse errors redact passwords; the URL is not repeated here.
		return nil, fmt.Errorf("postgres: open: %w", err)
	}
	if _, ok := cfg.ConnConfig.RuntimeParams["application_name"]; !ok {
		// Name the connections in pg_stat_activity for operators, unless the
		// URL does.
		cfg.ConnConfig.RuntimeParams["application_name"] = "nanohook"
	}
	for _, name := range []string{"statement_timeout", "lock_timeout"} {
		if _, ok := cfg.ConnConfig.RuntimeParams[name]; !ok {
			cfg.ConnConfig.RuntimeParams[name] = serverTimeout
		}
	}
	listenConfig := cfg.ConnConfig.Copy()
	cfg.AfterConnect = func(_ context.Context, c *pgx.Conn) error {
		// pgx returns timestamptz values in the process's local zone; the
		// rest of nanohook (and the SQLite driver) hands out UTC.
		c.TypeMap().RegisterType(&pgtype.Type{
			Name:  "timestamptz",
			OID:   pgtype.TimestamptzOID,
			Codec: &pgtype.TimestamptzCodec{ScanLocation: time.UTC},
		})
		return nil
	}
	asyncCfg := cfg.Copy()
	asyncCfg.ConnConfig.RuntimeParams["synchronous_commit"] = "off"
	asyncCfg.MaxConns = min(cfg.MaxConns, asyncCommitPoolConns)
	asyncCfg.MinConns = 0
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, wrap("open", err)
	}
	asyncCommit, err := pgxpool.NewWithConfig(ctx, asyncCfg)
	if err != nil {
		pool.Close()
		return nil, wrap("open", err)
	}
	closing, stop := context.WithCancel(context.Background())
	s := &Store{pool: pool, asyncCommit: asyncCommit, listenConfig: listenConfig, now: time.Now, closing: closing, stop: stop,
		notify: make(chan struct{}, 1), notifyGap: notifyGap}
	s.listeners.Add(1)
	go s.notifier()
	// pgxpool connects lazily: the migrations are the first use, so an
	// unreachable server or a wrong password fails here, with the cause.
	if err := s.Migrate(context.WithValue(ctx, noCallTimeout{}, true)); err != nil {
		_ = s.Close()
		return nil, err
	}
	return s, nil
}

// Ping reports whether the database is reachable, for /readyz.
func (s *Store) Ping(ctx context.Context) error {
	c, err := s.acquire(ctx, "ping")
	if err != nil {
		return err
	}
	defer c.Release()
	if err := c.Ping(ctx); err != nil {
		return wrap("ping", err)
	}
	return nil
}

// Close stops the Store's ListenDue loops and closes every connection,
// waiting for calls in flight to return theirs. The Store is not used
// afterwards.
func (s *Store) Close() error {
	s.mu.Lock()
	s.closed = true
	s.mu.Unlock()
	s.stop()
	s.listeners.Wait()
	s.pool.Close()
	s.asyncCommit.Close()
	return nil
}

// acquire takes a connection from the pool, waiting at most acquireTimeout.
// The caller's own cancellation passes through as the context error; any
// other failure to get a connection means the database cannot be reached
// and is store.ErrUnavailable.
func (s *Store) acquire(ctx context.Context, op string) (*conn, error) {
	return s.acquireFrom(ctx, s.pool, op)
}

// acquireAsyncCommit is acquire from the asyncCommit pool, whose commits
// do not wait for the WAL flush: for the delivery engine's bookkeeping
// only, never for what a caller is told is committed.
func (s *Store) acquireAsyncCommit(ctx context.Context, op string) (*conn, error) {
	return s.acquireFrom(ctx, s.asyncCommit, op)
}

// noCallTimeout, as a context key, exempts the calls of that context from
// callTimeout.
type noCallTimeout struct{}

func (s *Store) acquireFrom(ctx context.Context, pool *pgxpool.Pool, op string) (*conn, error) {
	actx, cancel := context.WithTimeout(ctx, acquireTimeout)
	defer cancel()
	c, err := pool.Acquire(actx)
	if err == nil {
		cn := &conn{Conn: c}
		if ctx.Value(noCallTimeout{}) == nil {
			cn.deadline = time.Now().Add(callTimeout)
			_ = c.Conn().PgConn().Conn().SetDeadline(cn.deadline)
		}
		return cn, nil
	}
	if ctx.Err() != nil {
		return nil, fmt.Errorf("postgres: %s: %w", op, ctx.Err())
	}
	if errors.Is(err, context.DeadlineExceeded) {
		return nil, fmt.Errorf("postgres: %s: %w: no connection within %v: %w", op, store.ErrUnavailable, acquireTimeout, err)
	}
	if isUnavailable(err) {
		return nil, fmt.Errorf("postgres: %s: %w: %w", op, store.ErrUnavailable, err)
	}
	return nil, fmt.Errorf("postgres: %s: %w", op, err)
}

// conn is a pooled connection with the socket deadline acquireFrom gave it.
type conn struct {
	*pgxpool.Conn
	deadline time.Time // zero: none
	released bool
}

// Release lifts the socket deadline and gives the connection back, or
// closes it if the deadline passed: a read cut by the deadline may have left
// the protocol in the middle of a message, and pgx keeps a connection open
// after a timeout. (The pool's AfterRelease hook could do this too, but
// pgxpool runs that hook in a goroutine of its own on every release, and the
// connection is not back in the pool until it has run.) A second Release
// does nothing, as pgxpool's own does: the connection is no longer ours to
// look at.
func (c *conn) Release() {
	if c.released {
		return
	}
	c.released = true
	if !c.deadline.IsZero() {
		netConn := c.Conn.Conn().PgConn().Conn()
		if !time.Now().Before(c.deadline) || netConn.SetDeadline(time.Time{}) != nil {
			ctx, cancel := context.WithTimeout(context.Background(), time.Second)
			_ = c.Conn.Conn().Close(ctx) // the pool destroys a closed connection
			cancel()
		}
	}
	c.Conn.Release()
}

// inTx runs fn in a transaction on one connection and commits it if fn
// returns nil. fn's error is returned as it is; BEGIN and COMMIT failures are
// wrapped with op.
func (s *Store) inTx(ctx context.Context, op string, fn func(tx pgx.Tx) error) error {
	return s.inTxWith(ctx, op, pgx.TxOptions{}, fn)
}

// inTxWith is inTx with the transaction's options (isolation, read-only).
func (s *Store) inTxWith(ctx context.Context, op string, opts pgx.TxOptions, fn func(tx pgx.Tx) error) error {
	c, err := s.acquire(ctx, op)
	if err != nil {
		return err
	}
	defer c.Release()
	tx, err := c.BeginTx(ctx, opts)
	if err != nil {
		return wrap(op, err)
	}
	if err := fn(tx); err != nil {
		// A connection left inside a transaction is destroyed by the pool on
		// release, so a failed rollback leaks nothing.
		_ = tx.Rollback(ctx)
		return err
	}
	if err := tx.Commit(ctx); err != nil {
		return wrap(op+": commit", err)
	}
	return nil
}

// truncMicros is t as stored: truncated to the microsecond, in UTC. Binding times
// through it makes the stored instant independent of the protocol (pgx's
// binary format truncates, the text format would round), and matches what
// the SQLite driver keeps.
func truncMicros(t time.Time) time.Time { return time.UnixMicro(t.UnixMicro()).UTC() }

// queryTx runs a statement of sqlshared in tx, for its shared flows.
func queryTx(ctx context.Context, tx pgx.Tx, q string, args ...any) (sqlshared.Rows, error) {
	return tx.Query(ctx, q, args...)
}

// nullTime binds the zero time as NULL: "no time given", which the SQL
// turns into "keep the stored one".
func nullTime(t time.Time) pgtype.Timestamptz {
	if t.IsZero() {
		return pgtype.Timestamptz{}
	}
	return pgtype.Timestamptz{Time: truncMicros(t), Valid: true}
}
