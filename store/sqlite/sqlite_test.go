package sqlite

import (
	"bytes"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/nanohook/nanohook"
	"github.com/nanohook/nanohook/store"
	"github.com/nanohook/nanohook/store/internal/sqlshared"
	"github.com/nanohook/nanohook/store/storetest"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// openTest opens a fresh store in its own temporary directory.
func openTest(t testing.TB) *Store {
	t.Helper()
	s, err := Open(t.Context(), filepath.Join(t.TempDir(), "nanohook.db"))
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return s
}

func TestConformance(t *testing.T) {
	t.Parallel()
	storetest.Run(t, func(t *testing.T) store.Store { return openTest(t) })
}

func TestEncryptionConformance(t *testing.T) {
	t.Parallel()
	storetest.RunEncryption(t, func(t *testing.T) store.Store { return openTest(t) }, storetest.Raw{
		Endpoint: func(t *testing.T, s store.Store, id int64) (r store.StoredSecrets) {
			t.Helper()
			err := s.(*Store).reader.QueryRowContext(t.Context(),
				`SELECT url, secret, previous_secret FROM endpoints WHERE id = ?`, id).Scan(&r.URL, &r.Secret, &r.Previous)
			if err != nil {
				t.Fatalf("read endpoint %d's stored columns: %v", id, err)
			}
			return r
		},
		SetEndpoint: func(t *testing.T, s store.Store, r store.StoredSecrets) {
			t.Helper()
			_, err := s.(*Store).writer.ExecContext(t.Context(),
				`UPDATE endpoints SET url = ?, secret = ?, previous_secret = ? WHERE id = ?`, r.URL, r.Secret, r.Previous, r.ID)
			if err != nil {
				t.Fatalf("overwrite endpoint %d's stored columns: %v", r.ID, err)
			}
		},
		// Every byte SQLite keeps: the database file and its WAL, where
		// commits go first.
		Holds: func(t *testing.T, s store.Store, text string) bool {
			t.Helper()
			var path string
			if err := s.(*Store).reader.QueryRowContext(t.Context(),
				`SELECT file FROM pragma_database_list WHERE name = 'main'`).Scan(&path); err != nil {
				t.Fatal(err)
			}
			found := false
			for _, p := range []string{path, path + "-wal"} {
				data, err := os.ReadFile(p)
				if err != nil && !errors.Is(err, os.ErrNotExist) {
					t.Fatal(err)
				}
				found = found || bytes.Contains(data, []byte(text))
			}
			return found
		},
	})
}

// TestPragmas reads the settings back from several connections of each pool
// at once, since they must hold on every connection database/sql opens, not
// just the first.
func TestPragmas(t *testing.T) {
	t.Parallel()
	s := openTest(t)
	ctx := t.Context()
	for name, pool := range map[string]struct {
		db        *sql.DB
		n         int
		queryOnly int
	}{
		"writer": {s.writer, 1, 0},
		"reader": {s.reader, readerConns, 1},
	} {
		var conns []*sql.Conn
		for range pool.n {
			c, err := pool.db.Conn(ctx)
			if err != nil {
				t.Fatalf("%s: Conn: %v", name, err)
			}
			conns = append(conns, c)
		}
		for i, c := range conns {
			var journal string
			var fk, sync, busy, queryOnly int
			for _, q := range []struct {
				sql  string
				dest any
			}{
				{"PRAGMA journal_mode", &journal},
				{"PRAGMA foreign_keys", &fk},
				{"PRAGMA synchronous", &sync},
				{"PRAGMA busy_timeout", &busy},
				{"PRAGMA query_only", &queryOnly},
			} {
				if err := c.QueryRowContext(ctx, q.sql).Scan(q.dest); err != nil {
					t.Fatalf("%s conn %d: %s: %v", name, i, q.sql, err)
				}
			}
			if journal != "wal" || fk != 1 || sync != 2 || busy != 5000 || queryOnly != pool.queryOnly {
				t.Errorf("%s conn %d: journal_mode=%s foreign_keys=%d synchronous=%d busy_timeout=%d query_only=%d; want wal 1 2 5000 %d",
					name, i, journal, fk, sync, busy, queryOnly, pool.queryOnly)
			}
		}
		for _, c := range conns {
			_ = c.Close()
		}
	}
}

func TestReopenKeepsDataAndMigratesOnce(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	path := filepath.Join(t.TempDir(), "nanohook.db")
	s, err := Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	a, _, err := s.CreateAccount(ctx, store.CreateAccountParams{Name: "acme", KeyHash: []byte("0123456789abcdef0123456789abcdef"), Now: time.Now()})
	if err != nil {
		t.Fatal(err)
	}
	var applied int64
	if err := s.reader.QueryRowContext(ctx, `SELECT applied_at FROM schema_migrations WHERE version = 1`).Scan(&applied); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	s, err = Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	got, err := s.GetAccount(ctx, a.ID)
	if err != nil || got.Name != "acme" {
		t.Fatalf("after reopen: %+v, %v", got, err)
	}
	ms, err := migrations()
	if err != nil {
		t.Fatal(err)
	}
	var n int
	var again int64
	if err := s.reader.QueryRowContext(ctx, `SELECT count(*), max(applied_at) FROM schema_migrations`).Scan(&n, &again); err != nil {
		t.Fatal(err)
	}
	if n != len(ms) {
		t.Fatalf("schema_migrations has %d rows, want %d", n, len(ms))
	}
	if len(ms) == 1 && again != applied {
		t.Fatalf("migration 1 re-applied: applied_at %d then %d", applied, again)
	}
}

// TestConcurrentOpenMigratesOnce opens the same new file from several
// goroutines, as two processes starting together would.
func TestConcurrentOpenMigratesOnce(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "nanohook.db")
	var wg sync.WaitGroup
	errs := make([]error, 4)
	stores := make([]*Store, 4)
	for i := range stores {
		wg.Go(func() { stores[i], errs[i] = Open(t.Context(), path) })
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("Open %d: %v", i, err)
		}
		defer stores[i].Close()
	}
	var n int
	if err := stores[0].reader.QueryRowContext(t.Context(), `SELECT count(*) FROM schema_migrations`).Scan(&n); err != nil {
		t.Fatal(err)
	}
	ms, _ := migrations()
	if n != len(ms) {
		t.Fatalf("schema_migrations has %d rows, want %d", n, len(ms))
	}
}

func TestOpenErrors(t *testing.T) {
	t.Parallel()
	// Each open must fail promptly, not wait on a lock or busy handler.
	ctx := func(t *testing.T) context.Context {
		ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
		t.Cleanup(cancel)
		return ctx
	}

	t.Run("MissingDirectory", func(t *testing.T) {
		t.Parallel()
		_, err := Open(ctx(t), filepath.Join(t.TempDir(), "no", "such", "dir", "nanohook.db"))
		if !errors.Is(err, store.ErrUnavailable) {
			t.Fatalf("got %v, want store.ErrUnavailable", err)
		}
	})

	t.Run("NotADatabase", func(t *testing.T) {
		t.Parallel()
		path := filepath.Join(t.TempDir(), "garbage.db")
		if err := os.WriteFile(path, []byte(strings.Repeat("not a database ", 512)), 0o600); err != nil {
			t.Fatal(err)
		}
		_, err := Open(ctx(t), path)
		if err == nil || !strings.Contains(err.Error(), "not a database") {
			t.Fatalf("got %v, want a clear not-a-database error", err)
		}
	})

	t.Run("ReadOnlyFile", func(t *testing.T) {
		t.Parallel()
		dir := t.TempDir()
		path := filepath.Join(dir, "nanohook.db")
		s, err := Open(ctx(t), path)
		if err != nil {
			t.Fatal(err)
		}
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
		makeReadOnly(t, path)
		_, err = Open(ctx(t), path)
		if !errors.Is(err, store.ErrUnavailable) {
			t.Fatalf("got %v, want store.ErrUnavailable", err)
		}
	})

	t.Run("BadPath", func(t *testing.T) {
		t.Parallel()
		for _, p := range []string{"", ":memory:", "file:x.db", "x.db?mode=ro"} {
			if _, err := Open(ctx(t), p); err == nil {
				t.Errorf("Open(%q) succeeded", p)
			}
		}
	})
}

// makeReadOnly makes the file unwritable for this process. Root ignores
// permission bits, so as root the file is made immutable instead (and
// mutable again at cleanup so that TempDir can remove it).
func makeReadOnly(t *testing.T, path string) {
	t.Helper()
	if os.Geteuid() != 0 {
		if err := os.Chmod(path, 0o400); err != nil {
			t.Fatal(err)
		}
		return
	}
	chattr, err := exec.LookPath("chattr")
	if err != nil {
		t.Skip("running as root without chattr: cannot make a file read-only")
	}
	if out, err := exec.Command(chattr, "+i", path).CombinedOutput(); err != nil {
		t.Skipf("chattr +i: %v: %s", err, out)
	}
	t.Cleanup(func() { _ = exec.Command(chattr, "-i", path).Run() })
}

// TestReadOnlyWriteIsUnavailable checks the error mapping on a real
// SQLITE_READONLY: a write sent through a query_only connection. It is the
// error a read-only file or filesystem gives, reachable even as root.
func TestReadOnlyWriteIsUnavailable(t *testing.T) {
	t.Parallel()
	s := openTest(t)
	_, err := s.reader.ExecContext(t.Context(), `INSERT INTO accounts (name, created_at) VALUES ('x', 0)`)
	if err == nil {
		t.Fatal("write through the query_only pool succeeded")
	}
	if err := wrap("test", err); !errors.Is(err, store.ErrUnavailable) {
		t.Fatalf("wrap(%v) does not wrap store.ErrUnavailable", err)
	}
}

// TestClaimGuardsInactiveEndpoints covers the guard for a state the API
// cannot produce (deleting and disabling finish pending deliveries at once):
// a due delivery whose endpoint is deleted or disabled is finished, not
// handed to a worker.
func TestClaimGuardsInactiveEndpoints(t *testing.T) {
	t.Parallel()
	s := openTest(t)
	ctx := t.Context()
	now := time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)
	a, _, err := s.CreateAccount(ctx, store.CreateAccountParams{Name: "acme", KeyHash: []byte("k"), Now: now})
	if err != nil {
		t.Fatal(err)
	}
	var eps []int64
	for range 3 {
		e, err := s.CreateEndpoint(ctx, store.CreateEndpointParams{AccountID: a.ID, URL: "https://x.example.com",
			Events: []nanohook.EventType{nanohook.EventJobCompleted}, Secret: "whsec_abcdefgh", Now: now})
		if err != nil {
			t.Fatal(err)
		}
		eps = append(eps, e.ID)
	}
	if _, err := s.PublishEvents(ctx, []store.PublishEventParams{{ID: "evt_1", AccountID: a.ID,
		Type: nanohook.EventJobCompleted, TaskID: "t", IdempotencyKey: "k", Payload: []byte("{}"), Now: now}}); err != nil {
		t.Fatal(err)
	}
	// Behind the Store's back: one endpoint deleted, one disabled.
	if _, err := s.writer.ExecContext(ctx, `UPDATE endpoints SET deleted_at = 1 WHERE id = ?`, eps[0]); err != nil {
		t.Fatal(err)
	}
	if _, err := s.writer.ExecContext(ctx, `UPDATE endpoints SET status = 'disabled', disabled_reason = 'gone' WHERE id = ?`, eps[1]); err != nil {
		t.Fatal(err)
	}

	var quotas []store.EndpointQuota
	for _, e := range eps {
		quotas = append(quotas, store.EndpointQuota{EndpointID: e, Limit: 10})
	}
	claimed, err := s.ClaimDeliveries(ctx, store.ClaimParams{Now: now, LeaseUntil: now.Add(time.Minute), Quotas: quotas})
	if err != nil {
		t.Fatal(err)
	}
	if len(claimed) != 1 || claimed[0].EndpointID != eps[2] {
		t.Fatalf("claimed %+v, want only the delivery to the active endpoint %d", claimed, eps[2])
	}
	rows, err := s.reader.QueryContext(ctx, `SELECT endpoint_id, status, last_error, lease_token IS NULL FROM deliveries ORDER BY endpoint_id`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var got []string
	for rows.Next() {
		var ep int64
		var status, lastErr string
		var unleased bool
		if err := rows.Scan(&ep, &status, &lastErr, &unleased); err != nil {
			t.Fatal(err)
		}
		got = append(got, fmt.Sprintf("%s/%s/%v", status, lastErr, unleased))
	}
	want := []string{"cancelled/endpoint deleted/true", "failed/endpoint disabled: gone/true", "pending//false"}
	if !slices.Equal(got, want) {
		t.Fatalf("deliveries = %q, want %q", got, want)
	}
}

// queryPlan is SQLite's EXPLAIN QUERY PLAN of q (with args), its steps
// joined by "; ".
func queryPlan(t testing.TB, s *Store, q string, args ...any) string {
	t.Helper()
	// Not t.Context(): benchmarks log plans from their cleanups.
	rows, err := s.reader.QueryContext(context.Background(), `EXPLAIN QUERY PLAN `+q, args...)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var plan []string
	for rows.Next() {
		var id, parent, unused int
		var detail string
		if err := rows.Scan(&id, &parent, &unused, &detail); err != nil {
			t.Fatal(err)
		}
		plan = append(plan, detail)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return strings.Join(plan, "; ")
}

// TestQueuesUseTheQueueIndex pins the queue's reads to deliveries_queue:
// the claim to one range of one endpoint's due deliveries, in order, and
// QueueHeads and Stats to the index alone; the leased deliveries' to
// deliveries_leased, which is as small as the deliveries in flight. A table scan, a sort, or a scan
// of all pending rows where a range or a seek will do would make each call
// cost the whole history or the whole backlog.
func TestQueuesUseTheQueueIndex(t *testing.T) {
	t.Parallel()
	s := openTest(t)
	for _, tc := range []struct {
		what, sql string
		want      []string // every one must be in the plan
		scan      bool     // may read all of deliveries_queue (Stats counts it)
	}{
		{"claim", claimPickSQL, []string{
			"SEARCH deliveries USING COVERING INDEX deliveries_queue (endpoint_id=? AND next_attempt_at<?)"}, false},
		// Each step of the walk is one seek and one row.
		{"queue heads", queueHeadsSQL, []string{
			"SEARCH deliveries USING COVERING INDEX deliveries_queue (endpoint_id>?)",
			"SEARCH d USING INTEGER PRIMARY KEY (rowid=?)"}, false},
		{"stats", statsSQL, []string{
			"SCAN deliveries USING COVERING INDEX deliveries_queue",
			"SEARCH endpoints USING COVERING INDEX endpoints_live_status (status=? AND deleted_at=?)"}, true},
		// The queued ones by a range, the leased ones by a scan of
		// deliveries_leased, which holds only the deliveries in flight.
		{"fail an endpoint's pending deliveries", `UPDATE deliveries SET status = 'failed'
			WHERE ` + pendingOfEndpoint("?1"), []string{
			"SEARCH deliveries USING COVERING INDEX deliveries_queue (endpoint_id=?)",
			"SCAN deliveries USING COVERING INDEX deliveries_leased"}, false},
		{"rescue expired leases", `SELECT 1 FROM deliveries INDEXED BY deliveries_leased
			WHERE status = 'pending' AND lease_token IS NOT NULL AND leased_until <= ? LIMIT 1`, []string{
			"SEARCH deliveries USING COVERING INDEX deliveries_leased (leased_until<?)"}, false},
	} {
		got := queryPlan(t, s, tc.sql, 1, 2, 3)
		t.Logf("plan of the %s: %s", tc.what, got)
		for _, w := range tc.want {
			if !strings.Contains(got, w) {
				t.Errorf("plan of the %s:\n%s\nwant %q", tc.what, got, w)
			}
		}
		rest := strings.ReplaceAll(got, "SCAN deliveries USING COVERING INDEX deliveries_leased", "")
		for _, bad := range []string{"TEMP B-TREE", "SCAN deliveries"} {
			if strings.Contains(rest, bad) && !(tc.scan && bad == "SCAN deliveries") {
				t.Errorf("plan of the %s:\n%s\nhas %q", tc.what, got, bad)
			}
		}
	}
}

func BenchmarkPublish(b *testing.B) { storetest.BenchPublish(b, openTest(b)) }

func BenchmarkClaimComplete(b *testing.B) { storetest.BenchClaimComplete(b, openTest(b)) }

func BenchmarkClaimQuotas(b *testing.B) { storetest.BenchClaimQuotas(b, openTest(b)) }

// BenchmarkClaimFair also logs, after each sub-benchmark, the plans of the
// claim and of QueueHeads on its data: the figures and the plans together
// show that the other account's backlog is never read.
func BenchmarkClaimFair(b *testing.B) {
	storetest.BenchClaimFair(b, func(b *testing.B) store.Store {
		s := openTest(b)
		b.Cleanup(func() { // before the Store closes
			var backlog int
			if err := s.reader.QueryRow(`SELECT count(*) FROM deliveries WHERE status = 'pending'`).Scan(&backlog); err != nil {
				b.Fatal(err)
			}
			b.Logf("with %d pending deliveries: claim: %s; queue heads: %s", backlog,
				queryPlan(b, s, claimPickSQL, 1, 2, 3), queryPlan(b, s, queueHeadsSQL))
		})
		return s
	})
}

func BenchmarkQueueHeads(b *testing.B) { storetest.BenchQueueHeads(b, openTest(b)) }

// TestPruneUsesTheFinishedIndex pins PruneHistory's scan to the partial
// index of finished deliveries, in order: a table scan or a sort would make
// every pruning step cost the whole history.
func TestPruneUsesTheFinishedIndex(t *testing.T) {
	t.Parallel()
	s := openTest(t)
	rows, err := s.reader.QueryContext(t.Context(), `EXPLAIN QUERY PLAN SELECT id FROM deliveries
		WHERE status IN ('succeeded', 'failed', 'cancelled') AND updated_at < ?1
		ORDER BY updated_at, id LIMIT ?2`, 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var plan []string
	for rows.Next() {
		var id, parent, unused int
		var detail string
		if err := rows.Scan(&id, &parent, &unused, &detail); err != nil {
			t.Fatal(err)
		}
		plan = append(plan, detail)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	got := strings.Join(plan, "; ")
	if !strings.Contains(got, "USING INDEX deliveries_finished (updated_at<?)") || strings.Contains(got, "TEMP B-TREE") {
		t.Errorf("plan:\n%s\nwant a range scan of deliveries_finished without sorting", got)
	}
}

// TestTxWithoutFsyncRestoresFullSync checks that the engine's bookkeeping
// transactions, which commit without an fsync, leave the writer connection
// fsyncing again afterwards, also when the transaction fails: the next
// publish must be durable before its 2xx.
func TestTxWithoutFsyncRestoresFullSync(t *testing.T) {
	s := openTest(t)
	ctx := t.Context()
	synchronous := func() int {
		t.Helper()
		var v int
		if err := s.writer.QueryRowContext(ctx, "PRAGMA synchronous").Scan(&v); err != nil {
			t.Fatal(err)
		}
		return v
	}
	const full, normal = 2, 1
	if got := synchronous(); got != full {
		t.Fatalf("synchronous at open = %d, want FULL (%d)", got, full)
	}
	var inside int
	err := s.inTxWithoutFsync(ctx, "test", func(tx *sql.Tx) error {
		return tx.QueryRowContext(ctx, "PRAGMA synchronous").Scan(&inside)
	})
	if err != nil {
		t.Fatal(err)
	}
	if inside != normal {
		t.Errorf("synchronous inside a transaction without fsync = %d, want NORMAL (%d)", inside, normal)
	}
	if got := synchronous(); got != full {
		t.Errorf("synchronous after a transaction without fsync = %d, want FULL (%d)", got, full)
	}
	failed := errors.New("fn failed")
	if err := s.inTxWithoutFsync(ctx, "test", func(*sql.Tx) error { return failed }); !errors.Is(err, failed) {
		t.Fatalf("transaction without fsync: error = %v, want %v", err, failed)
	}
	if got := synchronous(); got != full {
		t.Errorf("synchronous after a failed transaction without fsync = %d, want FULL (%d)", got, full)
	}
}

// TestQueueMigrationKeepsLeases applies the schema up to 0008, leaves
// deliveries leased as the previous version leased them (next_attempt_at
// untouched), and opens the file: migration 0009 must move the pending
// deliveries still in flight to their lease's expiry, so that claims,
// which no longer read leased_until, do not take them, and leave
// everything else as it was.
func TestQueueMigrationKeepsLeases(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "nanohook.db")
	db, err := sql.Open("sqlite", path+"?_pragma=foreign_keys(1)")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	ctx := t.Context()
	ms, err := migrations()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := db.ExecContext(ctx, `CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY, applied_at INTEGER NOT NULL) STRICT`); err != nil {
		t.Fatal(err)
	}
	for _, m := range ms {
		if m.Version > 8 {
			break
		}
		if _, err := db.ExecContext(ctx, m.SQL); err != nil {
			t.Fatalf("%s: %v", m.Name, err)
		}
		if _, err := db.ExecContext(ctx, `INSERT INTO schema_migrations VALUES (?, 0)`, m.Version); err != nil {
			t.Fatal(err)
		}
	}
	const due = 1_000 // µs, of the deliveries due before the lease
	if _, err := db.ExecContext(ctx, `
		INSERT INTO accounts (id, name, created_at) VALUES (1, 'acme', 0);
		INSERT INTO endpoints (id, account_id, url, events, status, secret, created_at, updated_at)
			VALUES (1, 1, 'https://x.example.com', 'job.completed', 'active', 'whsec_x', 0, 0);
		INSERT INTO events (pk, id, account_id, type, task_id, task_type, payload, occurred_at, created_at)
			VALUES (1, 'evt_1', 1, 'job.completed', 't', 'i', x'7b7d', 0, 0);
		INSERT INTO deliveries (id, account_id, endpoint_id, event_pk, event_type, status, next_attempt_at,
				leased_until, lease_token, lease_owner, created_at, updated_at) VALUES
			(1, 1, 1, 1, 'job.completed', 'pending', 1000, 5000, 7, 'node', 0, 0),  -- in flight
			(2, 1, 1, 1, 'job.completed', 'pending', 1000, NULL, NULL, NULL, 0, 0), -- waiting
			(3, 1, 1, 1, 'job.completed', 'pending', 9000, 5000, 8, 'node', 0, 0),  -- lease expired, retry later
			(4, 1, 1, 1, 'job.completed', 'succeeded', 1000, 5000, 9, 'node', 0, 0);`); err != nil {
		t.Fatal(err)
	}
	_ = db.Close()

	s, err := Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	rows, err := s.reader.QueryContext(ctx, `SELECT id, next_attempt_at, coalesce(leased_until, 0) FROM deliveries ORDER BY id`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var got []string
	for rows.Next() {
		var id, next, until int64
		if err := rows.Scan(&id, &next, &until); err != nil {
			t.Fatal(err)
		}
		got = append(got, fmt.Sprintf("%d:%d/%d", id, next, until))
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	want := []string{"1:5000/5000", "2:1000/0", "3:9000/5000", "4:1000/5000"}
	if !slices.Equal(got, want) {
		t.Fatalf("deliveries (id:next_attempt_at/leased_until) = %q, want %q", got, want)
	}
	heads, err := s.QueueHeads(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(heads) != 1 || !heads[0].DueAt.Equal(fromMicros(due)) {
		t.Fatalf("heads %+v, want endpoint 1 due at %v", heads, fromMicros(due))
	}
}

// TestEventsPageUsesItsIndex pins a page of the events API to a walk of
// events_account backwards from the cursor, with every filter: neither a
// scan of all events nor a sort.
func TestEventsPageUsesItsIndex(t *testing.T) {
	t.Parallel()
	s := openTest(t)
	q, args := sqlshared.ListEventsSQL(store.ListEventsParams{
		AccountID: 1, BeforePK: 100, Type: nanohook.EventJobCompleted, TaskID: "task_1",
		Since: time.Unix(1, 0), Until: time.Unix(2, 0), Limit: 10,
	}, func(t time.Time) any { return micros(t) })
	got := queryPlan(t, s, sqlshared.Numbered(q), args...)
	t.Logf("plan of an events page: %s", got)
	if !strings.Contains(got, "SEARCH ev USING INDEX events_account (account_id=? AND pk<?)") ||
		strings.Contains(got, "SCAN") || strings.Contains(got, "TEMP B-TREE") {
		t.Errorf("plan of an events page: %s\nwant a backward range of events_account", got)
	}
}
