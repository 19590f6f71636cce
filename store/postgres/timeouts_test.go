package postgres

// The limits around one call (issue 6): the socket deadline's connection
// wrapper, the server-side statement_timeout and lock_timeout that make the
// server give up when the client does, and the migrations, which must not be
// cut by either.

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/nanohook/nanohook"
	"github.com/nanohook/nanohook/store"
)

// TestReleaseTwiceIsHarmless releases connections twice, with and without a
// socket deadline: the second Release must do nothing (pgxpool's own
// Release is idempotent; the wrapper used to dereference the returned
// connection), and the pools must still serve.
func TestReleaseTwiceIsHarmless(t *testing.T) {
	t.Parallel()
	s := openTest(t)
	ctx := t.Context()
	for _, tc := range []struct {
		name string
		get  func() (*conn, error)
	}{
		{"pool", func() (*conn, error) { return s.acquire(ctx, "test") }},
		{"async-commit pool", func() (*conn, error) { return s.acquireAsyncCommit(ctx, "test") }},
		{"no call timeout", func() (*conn, error) {
			return s.acquire(context.WithValue(ctx, noCallTimeout{}, true), "test")
		}},
	} {
		c, err := tc.get()
		if err != nil {
			t.Fatalf("%s: acquire: %v", tc.name, err)
		}
		c.Release()
		c.Release()
	}
	if err := s.Ping(ctx); err != nil {
		t.Fatalf("Ping after double releases: %v", err)
	}
}

// TestSessionsHaveServerTimeouts checks that every session of both pools
// runs with statement_timeout and lock_timeout at serverTimeout, and that
// settings given in the URL win.
func TestSessionsHaveServerTimeouts(t *testing.T) {
	t.Parallel()
	show := func(c *conn, name string) string {
		t.Helper()
		var v string
		if err := c.QueryRow(t.Context(), `SELECT current_setting($1)`, name).Scan(&v); err != nil {
			t.Fatalf("current_setting(%s): %v", name, err)
		}
		return v
	}
	s := openTest(t)
	for _, pool := range []string{"pool", "async-commit pool"} {
		acquire := s.acquire
		if pool == "async-commit pool" {
			acquire = s.acquireAsyncCommit
		}
		c, err := acquire(t.Context(), "test")
		if err != nil {
			t.Fatal(err)
		}
		for _, name := range []string{"statement_timeout", "lock_timeout"} {
			if got := show(c, name); got != serverTimeout {
				t.Errorf("%s: %s = %q, want %q", pool, name, got, serverTimeout)
			}
		}
		c.Release()
	}

	_, u := freshSchema(t, "statement_timeout", "0", "lock_timeout", "250ms")
	s2 := openURL(t, u)
	c, err := s2.acquire(t.Context(), "test")
	if err != nil {
		t.Fatal(err)
	}
	defer c.Release()
	if got := show(c, "statement_timeout"); got != "0" {
		t.Errorf("statement_timeout from the URL: %q, want \"0\"", got)
	}
	if got := show(c, "lock_timeout"); got != "250ms" {
		t.Errorf("lock_timeout from the URL: %q, want \"250ms\"", got)
	}
}

// TestLockWaitEndsOnTheServer holds an endpoint's row lock in another
// session while the store updates that endpoint. The wait must end on the
// server, by lock_timeout (SQLSTATE 55P03), reported as
// store.ErrUnavailable, not by the client cutting its socket: the server
// has let go of the statement, and the connection goes back to the pool
// fit for the next call. The URL lowers lock_timeout so that the test need
// not wait serverTimeout; TestSessionsHaveServerTimeouts checks the default.
func TestLockWaitEndsOnTheServer(t *testing.T) {
	t.Parallel()
	_, u := freshSchema(t, "lock_timeout", "200ms")
	s := openURL(t, u)
	ctx := t.Context()
	now := time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC)
	a, _, err := s.CreateAccount(ctx, store.CreateAccountParams{Name: "acme", KeyHash: []byte("lock-key"), Now: now})
	if err != nil {
		t.Fatal(err)
	}
	e, err := s.CreateEndpoint(ctx, store.CreateEndpointParams{AccountID: a.ID, URL: "https://hooks.example.com/lock",
		Events: []nanohook.EventType{nanohook.EventJobCompleted}, Secret: "whsec_lock_test", Now: now})
	if err != nil {
		t.Fatal(err)
	}

	holder, err := pgx.Connect(ctx, u)
	if err != nil {
		t.Fatal(err)
	}
	defer holder.Close(context.Background())
	tx, err := holder.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tx.Exec(ctx, `SELECT 1 FROM endpoints WHERE id = $1 FOR UPDATE`, e.ID); err != nil {
		t.Fatal(err)
	}

	before := s.pool.Stat().NewConnsCount()
	desc := "blocked"
	_, err = s.UpdateEndpoint(ctx, store.UpdateEndpointParams{AccountID: a.ID, ID: e.ID, Description: &desc, Now: now})
	var pgErr *pgconn.PgError
	if !errors.Is(err, store.ErrUnavailable) || !errors.As(err, &pgErr) || pgErr.Code != "55P03" {
		t.Fatalf("UpdateEndpoint while another session holds the row: %v, want store.ErrUnavailable from lock_timeout (55P03)", err)
	}
	if err := tx.Rollback(ctx); err != nil {
		t.Fatal(err)
	}
	desc = "free"
	got, err := s.UpdateEndpoint(ctx, store.UpdateEndpointParams{AccountID: a.ID, ID: e.ID, Description: &desc, Now: now})
	if err != nil {
		t.Fatalf("UpdateEndpoint once the lock is gone: %v", err)
	}
	if got.Description != "free" {
		t.Fatalf("description after the update: %q", got.Description)
	}
	if n := s.pool.Stat().NewConnsCount() - before; n != 0 {
		t.Errorf("%d connections were opened after the lock timeout: the one that waited was not fit to reuse", n)
	}
}

// TestMigrationOutlastsTheTimeouts opens a Store whose sessions have tiny
// statement_timeout and lock_timeout while another session holds the
// migration lock, as a node migrating at that moment would. The migrations
// must wait for the lock and run regardless (they lift both limits for
// their own transactions), where a migration cut by them would make a node
// that starts beside another fail to start.
func TestMigrationOutlastsTheTimeouts(t *testing.T) {
	t.Parallel()
	app := randomName("nanohook_migrate_")
	_, u := freshSchema(t, "statement_timeout", "1ms", "lock_timeout", "1ms", "application_name", app)
	ctx := t.Context()

	holder, err := pgx.Connect(ctx, baseURL(t))
	if err != nil {
		t.Fatal(err)
	}
	defer holder.Close(context.Background())
	if _, err := holder.Exec(ctx, `SELECT pg_advisory_lock($1)`, migrationLock); err != nil {
		t.Fatal(err)
	}
	unlock := func() {
		if _, err := holder.Exec(context.Background(), `SELECT pg_advisory_unlock($1)`, migrationLock); err != nil {
			t.Errorf("unlock: %v", err)
		}
	}

	type opened struct {
		s   *Store
		err error
	}
	done := make(chan opened, 1)
	go func() {
		s, err := Open(ctx, u)
		done <- opened{s, err}
	}()

	// Let go of the lock only once the Store is seen waiting for it: a wait
	// cut by lock_timeout would have ended Open with an error first.
	for waiting := false; !waiting; {
		select {
		case o := <-done:
			unlock()
			if o.s != nil {
				_ = o.s.Close()
			}
			t.Fatalf("Open returned (%v) while the migration lock was held, want it to wait", o.err)
		default:
		}
		if err := holder.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM pg_stat_activity
			WHERE application_name = $1 AND wait_event_type = 'Lock')`, app).Scan(&waiting); err != nil {
			unlock()
			t.Fatal(err)
		}
		if !waiting {
			time.Sleep(5 * time.Millisecond)
		}
	}
	// Many times the 1ms limits, so that they would have fired meanwhile.
	time.Sleep(100 * time.Millisecond)
	unlock()
	o := <-done
	if o.err != nil {
		t.Fatalf("Open after waiting for the migration lock: %v", o.err)
	}
	defer o.s.Close()
	ms, err := migrations()
	if err != nil {
		t.Fatal(err)
	}
	var n int
	c, err := o.s.acquire(context.WithValue(ctx, noCallTimeout{}, true), "test")
	if err != nil {
		t.Fatal(err)
	}
	defer c.Release()
	if _, err := c.Exec(ctx, `SET statement_timeout = 0`); err != nil {
		t.Fatal(err)
	}
	if err := c.QueryRow(ctx, `SELECT count(*) FROM schema_migrations`).Scan(&n); err != nil {
		t.Fatal(err)
	}
	if n != len(ms) {
		t.Fatalf("schema_migrations has %d rows after the wait, want %d", n, len(ms))
	}
}
