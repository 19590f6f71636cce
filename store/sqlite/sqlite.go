// Package sqlite is nanohook's embedded storage: a store.Store on one SQLite
// file, so that a single `nanohook serve` needs nothing but a disk.
//
// The file is opened through two pools. SQLite allows one writer at a time,
// so every write goes through a pool of exactly one connection and waits its
// turn in Go, where waiting is cheap and fair, instead of in SQLite's busy
// handler, where it is a sleep-and-retry loop. Reads go through a small pool
// of query-only connections that, thanks to WAL, never wait for the writer.
//
// Every batch call (publishing events, claiming and completing deliveries)
// is one transaction with statements prepared once per Store, and the
// completion path writes many rows per statement: at thousands of
// deliveries per second, per-commit syncs and per-statement overhead cost
// more than the SQL itself.
package sqlite

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/url"
	"strings"
	"sync/atomic"
	"time"

	_ "modernc.org/sqlite" // registers the "sqlite" database/sql driver

	"github.com/nanohook/nanohook/store"
	"github.com/nanohook/nanohook/store/internal/sqlshared"
)

var _ store.Store = (*Store)(nil)

// readerConns is the size of the read pool. Reads are short indexed lookups;
// a few connections cover the API's concurrency on the 2-core machines this
// is sized for, and each connection holds its own page cache.
const readerConns = 4

// Store is the SQLite implementation of store.Store. It is safe for
// concurrent use; Close it to release the file.
type Store struct {
	writer *sql.DB // exactly one connection: SQLite has one writer
	reader *sql.DB // query_only connections for everything that only reads

	// stmts are the hot statements, prepared once on the writer connection
	// and bound into each transaction with Tx.StmtContext, which reuses the
	// connection's prepared statement instead of parsing the SQL again.
	stmts writerStmts

	// leaseSeq hands out lease tokens. It starts at a random point so that
	// tokens of a previous process, still in the file, are not handed out
	// again after a restart.
	leaseSeq atomic.Int64

	// now stamps rows whose time no caller passes in (applied migrations,
	// revoked keys). It never decides what is due; callers do that with Now
	// fields.
	now func() time.Time

	// secrets seals endpoint secrets on write and opens them on read; nil
	// stores them as plaintext. See SetKeyring (secrets.go).
	secrets store.Secrets
}

// Open opens the database file at path, creating it if needed, and applies
// the schema migrations, so that a Store returned without error is ready to
// use. path is a file name, not a URI; ":memory:" is refused because the two
// pools would each get their own empty database.
func Open(ctx context.Context, path string) (*Store, error) {
	if path == "" || path == ":memory:" || strings.HasPrefix(path, "file:") || strings.ContainsAny(path, "?#") {
		return nil, fmt.Errorf("sqlite: open %q: want a plain file path", path)
	}

	// Pragmas go in the DSN (one _pragma per setting) because database/sql
	// opens connections whenever it likes: only the DSN is applied to every
	// one of them. Why each is set:
	//
	//   busy_timeout(5000): another process (a `nanohook migrate`, the sqlite3
	//     shell, a backup) may hold the file lock briefly; wait up to 5 s
	//     rather than fail at once. Inside this process writes never contend,
	//     they queue on the single writer connection.
	//   journal_mode(WAL): readers do not block the writer nor the writer the
	//     readers, and a commit appends to the log instead of rewriting pages.
	//     The mode is stored in the file, so setting it on the writer (which
	//     connects first) is enough for every connection.
	//   foreign_keys(1): SQLite leaves them off per connection by default; the
	//     schema relies on them (attempts cascade with their deliveries).
	//   synchronous(FULL): fsync the WAL on every commit. A 2xx to a publisher
	//     promises the event survives a power loss, which NORMAL (fsync only at
	//     checkpoints) does not keep. The delivery engine's own transactions
	//     (claims, outcomes) relax this one at a time, see inTxWithoutFsync.
	//   _txlock=immediate (writer only): BEGIN takes the write lock at once, so
	//     a transaction that reads and then writes can never fail half way with
	//     SQLITE_BUSY when it upgrades its lock.
	//   query_only(1) (readers only): a write sent to the wrong pool fails
	//     instead of quietly competing with the writer for the lock.
	common := url.Values{"_pragma": {
		"busy_timeout(5000)",
		"foreign_keys(1)",
		"synchronous(FULL)",
	}}

	w := cloneValues(common)
	w.Add("_pragma", "journal_mode(WAL)")
	w.Set("_txlock", "immediate")
	writer, err := sql.Open("sqlite", path+"?"+w.Encode())
	if err != nil {
		return nil, fmt.Errorf("sqlite: open %s: %w", path, err)
	}
	// One connection, kept forever: it holds the prepared statements and the
	// page cache, and SQLite could not use a second writer anyway.
	writer.SetMaxOpenConns(1)
	writer.SetMaxIdleConns(1)
	writer.SetConnMaxLifetime(0)
	writer.SetConnMaxIdleTime(0)

	r := cloneValues(common)
	r.Add("_pragma", "query_only(1)")
	reader, err := sql.Open("sqlite", path+"?"+r.Encode())
	if err != nil {
		_ = writer.Close()
		return nil, fmt.Errorf("sqlite: open %s: %w", path, err)
	}
	reader.SetMaxOpenConns(readerConns)
	reader.SetMaxIdleConns(readerConns)
	reader.SetConnMaxLifetime(0)
	reader.SetConnMaxIdleTime(0)

	s := &Store{writer: writer, reader: reader, now: time.Now}
	s.leaseSeq.Store(rand.Int64N(1 << 62))

	// Connect the writer first: it is the connection that turns WAL on, and
	// a file that cannot be opened should fail here with a clear error.
	if err := connectWriter(ctx, writer); err != nil {
		_ = s.Close()
		if isCantOpen(err) {
			// SQLite says only "unable to open database file"; as the file
			// may well exist, say what else it needs.
			return nil, wrap("open "+path+": cannot open it read-write or create its -wal and -shm files beside it"+
				" (is the file or its directory read-only, or the directory missing?)", err)
		}
		return nil, wrap("open "+path, err)
	}
	// SQLite opens a file it may not write read-only without a word, and
	// reads (even migrations already applied) then succeed; a webhook
	// service that cannot record anything should not start.
	if err := s.checkWritable(ctx); err != nil {
		_ = s.Close()
		return nil, fmt.Errorf("sqlite: open %s: %w", path, err)
	}
	if err := s.Migrate(ctx); err != nil {
		_ = s.Close()
		return nil, err
	}
	if err := s.stmts.prepare(ctx, writer, reader); err != nil {
		_ = s.Close()
		return nil, wrap("prepare statements", err)
	}
	return s, nil
}

// loopContext is the context for the small per-item statements of a batch
// transaction. modernc.org/sqlite starts a goroutine per statement to watch
// a cancellable context, which costs about a fifth of a publish; instead
// the batch loops check ctx between items, and the transaction itself stays
// bound to ctx (database/sql rolls it back when ctx ends).
func loopContext(ctx context.Context) context.Context { return context.WithoutCancel(ctx) }

// connectWriter opens the writer's connection. Switching a new file to WAL
// needs an exclusive lock, and SQLite answers SQLITE_BUSY at once, without
// consulting busy_timeout, when another process is switching the same file
// at the same moment (two `nanohook` processes starting on a fresh file).
// So BUSY is retried here for as long as busy_timeout would have waited.
func connectWriter(ctx context.Context, writer *sql.DB) error {
	deadline := time.Now().Add(5 * time.Second)
	backoff := 5 * time.Millisecond
	for {
		err := writer.PingContext(ctx)
		if err == nil || !isBusy(err) || time.Now().After(deadline) {
			return err
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, 100*time.Millisecond)
	}
}

// checkWritable fails with store.ErrUnavailable when the writer connection
// could only open the file read-only.
func (s *Store) checkWritable(ctx context.Context) error {
	conn, err := s.writer.Conn(ctx)
	if err != nil {
		return wrap("check writable", err)
	}
	defer conn.Close()
	return conn.Raw(func(dc any) error {
		c, ok := dc.(interface{ IsReadOnly(string) (bool, error) })
		if !ok {
			return nil // not the modernc driver: nothing to ask
		}
		ro, err := c.IsReadOnly("main")
		if err != nil {
			return err
		}
		if ro {
			return fmt.Errorf("the database file is read-only: %w", store.ErrUnavailable)
		}
		return nil
	})
}

func cloneValues(v url.Values) url.Values {
	out := make(url.Values, len(v))
	for k, vs := range v {
		out[k] = append([]string(nil), vs...)
	}
	return out
}

// Ping reports whether both pools can reach the file, for /readyz.
func (s *Store) Ping(ctx context.Context) error {
	if err := s.writer.PingContext(ctx); err != nil {
		return wrap("ping writer", err)
	}
	if err := s.reader.PingContext(ctx); err != nil {
		return wrap("ping reader", err)
	}
	return nil
}

// Close closes both pools (and the prepared statements with them). Calls in
// flight may fail; callers stop using the Store first.
func (s *Store) Close() error {
	return errors.Join(s.stmts.close(), s.writer.Close(), s.reader.Close())
}

// lockWait bounds how long a write transaction may wait, from the moment
// it asks for the writer connection, until it holds SQLite's write lock.
// Without it, while another process holds the lock, writers queued on the
// one writer connection would each wait their own busy timeout (5 s) in
// turn, and the n-th caller (a publisher expecting a prompt 503) would wait
// n times as long: 25 s for the fifth. Twice the busy timeout lets a writer
// queued behind one that is waiting out the lock still try the lock itself,
// and leaves room for a writer queue that is merely long under load.
const lockWait = 10 * time.Second

// errNoWriteLock is why a write transaction gave up at lockWait.
var errNoWriteLock = fmt.Errorf("no write lock within %v: another connection holds the database's write lock, or the writer is overloaded", lockWait)

// inTx runs fn in a write transaction (BEGIN IMMEDIATE) and commits it if fn
// returns nil. The error is returned as fn returned it, or wrapped with op
// when BEGIN or COMMIT fail.
func (s *Store) inTx(ctx context.Context, op string, fn func(tx *sql.Tx) error) error {
	return s.runTx(ctx, op, time.Now().Add(lockWait), s.writer.BeginTx, fn)
}

// runTx begins a transaction with begin, runs fn in it and commits. Getting
// the connection and the write lock must be done by lockBy, or the call
// fails with store.ErrUnavailable.
//
// The transaction's context is cancelled at lockBy only if BEGIN has not
// returned by then: database/sql binds a transaction to the context it
// began with, so a plain deadline would also cut transactions that got the
// lock in time. The driver ends a wait for the connection or in the busy
// handler when that context ends.
func (s *Store) runTx(ctx context.Context, op string, lockBy time.Time, begin func(context.Context, *sql.TxOptions) (*sql.Tx, error), fn func(tx *sql.Tx) error) error {
	txCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	timer := time.AfterFunc(time.Until(lockBy), cancel)
	tx, err := begin(txCtx, nil)
	if !timer.Stop() && ctx.Err() == nil {
		// lockBy passed first; a transaction begun at that very moment is
		// being rolled back by database/sql, since its context is done.
		if err == nil {
			_ = tx.Rollback()
		}
		return fmt.Errorf("sqlite: %s: %w: %w", op, store.ErrUnavailable, errNoWriteLock)
	}
	if err != nil {
		return wrap(op, err)
	}
	if err := fn(tx); err != nil {
		_ = tx.Rollback()
		return err
	}
	if err := tx.Commit(); err != nil {
		return wrap(op+": commit", err)
	}
	return nil
}

// inTxWithoutFsync is inTx for the delivery engine's bookkeeping (claims,
// outcomes, releases): the commit is not fsynced (synchronous=NORMAL for this one
// transaction). A process crash still loses nothing, since the WAL is in
// the OS's hands at commit; only a power loss or kernel crash can forget
// the last of these commits, and then the deliveries concerned are simply
// sent again (at least once). The WAL is append-only, so the next durable
// commit (any publish or API write) makes every earlier unsynced one durable
// too. Claims and outcomes are most of the writer's transactions under
// load, and their fsyncs would otherwise cap the writer.
//
// The connection is pinned for the whole sequence, so no other write can
// run while the setting is relaxed; if it cannot be restored the
// connection is discarded and the next one opens with FULL from its DSN.
func (s *Store) inTxWithoutFsync(ctx context.Context, op string, fn func(tx *sql.Tx) error) error {
	lockBy := time.Now().Add(lockWait)
	cctx, cancel := context.WithDeadline(ctx, lockBy)
	conn, err := s.writer.Conn(cctx) // the connection, once had, outlives cctx
	cancel()
	if err != nil {
		if ctx.Err() == nil && errors.Is(err, context.DeadlineExceeded) {
			return fmt.Errorf("sqlite: %s: %w: %w", op, store.ErrUnavailable, errNoWriteLock)
		}
		return wrap(op, err)
	}
	if _, err := conn.ExecContext(ctx, "PRAGMA synchronous = NORMAL"); err != nil {
		_ = conn.Close()
		return wrap(op, err)
	}
	txErr := s.runTx(ctx, op, lockBy, conn.BeginTx, fn)
	// Restored even when ctx is done: the next writer must get FULL.
	if _, err := conn.ExecContext(context.WithoutCancel(ctx), "PRAGMA synchronous = FULL"); err != nil {
		_ = conn.Raw(func(any) error { return driver.ErrBadConn }) // discard this connection
		_ = conn.Close()
		return errors.Join(txErr, wrap(op+": restore synchronous", err))
	}
	if err := conn.Close(); err != nil && txErr == nil {
		return wrap(op, err)
	}
	return txErr
}

// queryTx runs a statement of sqlshared, its $N parameters bound as ?N, in
// tx, for its shared flows.
func queryTx(ctx context.Context, tx *sql.Tx, q string, args ...any) (sqlshared.Rows, error) {
	rows, err := tx.QueryContext(ctx, sqlshared.Numbered(q), args...)
	if err != nil {
		return nil, err // not a typed nil in the interface
	}
	return rows, nil
}

// Times are stored as Unix microseconds (UTC): Postgres's precision, and
// integers compare and index without any parsing.

func micros(t time.Time) int64 { return t.UnixMicro() }

func fromMicros(us int64) time.Time { return time.UnixMicro(us).UTC() }

// nullMicros binds the zero time as NULL: "no time given", which the SQL
// turns into "keep the stored one".
func nullMicros(t time.Time) any {
	if t.IsZero() {
		return nil
	}
	return t.UnixMicro()
}
