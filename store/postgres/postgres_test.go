package postgres

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"go.uber.org/goleak"

	"github.com/nanohook/nanohook"
	"github.com/nanohook/nanohook/internal/skipnote"
	"github.com/nanohook/nanohook/store"
	"github.com/nanohook/nanohook/store/storetest"
)

// testURLEnv names the database the tests use. CI always sets it; without
// it the tests skip, so that `go test ./...` works on a machine without
// PostgreSQL.
const testURLEnv = "NANOHOOK_TEST_POSTGRES_URL"

func TestMain(m *testing.M) {
	// pgxpool's background goroutines must be gone once every Store is
	// closed, and ListenDue's once its context is done.
	goleak.VerifyTestMain(m, goleak.Cleanup(func(code int) {
		skipnote.Report("github.com/nanohook/nanohook/store/postgres")
		os.Exit(code)
	}))
}

// baseURL is the test database's URL, or skips the test.
func baseURL(t testing.TB) string {
	t.Helper()
	return skipnote.SkipWithoutPostgres(t, "the PostgreSQL driver's tests")
}

// withParams returns raw with the query parameters kv (key, value, …) set.
func withParams(t testing.TB, raw string, kv ...string) string {
	t.Helper()
	u, err := url.Parse(raw)
	if err != nil {
		t.Fatalf("%s is not a URL: %v", testURLEnv, err)
	}
	q := u.Query()
	for i := 0; i < len(kv); i += 2 {
		q.Set(kv[i], kv[i+1])
	}
	u.RawQuery = q.Encode()
	return u.String()
}

// admin runs sql on a connection of its own to the test database, outside
// any schema under test.
func admin(t testing.TB, sql string, args ...any) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, baseURL(t))
	if err != nil {
		t.Fatalf("connect to the test database: %v", err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, sql, args...); err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
}

func randomName(prefix string) string {
	b := make([]byte, 8)
	_, _ = rand.Read(b)
	return prefix + hex.EncodeToString(b)
}

// freshSchema creates an empty schema nh_<random>, drops it (with
// everything in it) when the test ends, and returns the URL that selects it
// through search_path, with the extra parameters kv. Tests on separate
// schemas run in parallel and leave nothing behind.
func freshSchema(t testing.TB, kv ...string) (schema, u string) {
	t.Helper()
	base := baseURL(t)
	schema = randomName("nh_")
	admin(t, `CREATE SCHEMA `+schema)
	t.Cleanup(func() { admin(t, `DROP SCHEMA `+schema+` CASCADE`) })
	return schema, withParams(t, base, append([]string{"search_path", schema}, kv...)...)
}

// openURL opens a Store on u and closes it when the test ends (before its
// schema is dropped: cleanups run last-registered first).
func openURL(t testing.TB, u string) *Store {
	t.Helper()
	s, err := Open(t.Context(), u)
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

// openTest opens a fresh, migrated Store on a schema of its own.
func openTest(t testing.TB) *Store {
	t.Helper()
	_, u := freshSchema(t)
	return openURL(t, u)
}

func TestConformance(t *testing.T) {
	t.Parallel()
	baseURL(t)
	storetest.Run(t, func(t *testing.T) store.Store { return openTest(t) })
}

func TestEncryptionConformance(t *testing.T) {
	t.Parallel()
	baseURL(t)
	storetest.RunEncryption(t, func(t *testing.T) store.Store { return openTest(t) }, storetest.Raw{
		Endpoint: func(t *testing.T, s store.Store, id int64) (r store.StoredSecrets) {
			t.Helper()
			err := s.(*Store).pool.QueryRow(t.Context(),
				`SELECT url, secret, previous_secret FROM endpoints WHERE id = $1`, id).Scan(&r.URL, &r.Secret, &r.Previous)
			if err != nil {
				t.Fatalf("read endpoint %d's stored columns: %v", id, err)
			}
			return r
		},
		SetEndpoint: func(t *testing.T, s store.Store, r store.StoredSecrets) {
			t.Helper()
			_, err := s.(*Store).pool.Exec(t.Context(),
				`UPDATE endpoints SET url = $1, secret = $2, previous_secret = $3 WHERE id = $4`, r.URL, r.Secret, r.Previous, r.ID)
			if err != nil {
				t.Fatalf("overwrite endpoint %d's stored columns: %v", r.ID, err)
			}
		},
		// Every live row of every table of the store's schema, each read
		// whole as text (bytea columns show as hex: no URL or secret is
		// stored in one).
		Holds: func(t *testing.T, s store.Store, text string) bool {
			t.Helper()
			pool := s.(*Store).pool
			rows, err := pool.Query(t.Context(), `SELECT quote_ident(tablename) FROM pg_tables WHERE schemaname = current_schema()`)
			if err != nil {
				t.Fatal(err)
			}
			tables, err := pgx.CollectRows(rows, pgx.RowTo[string])
			if err != nil || len(tables) == 0 {
				t.Fatalf("tables of the schema: %v, %v", tables, err)
			}
			for _, table := range tables {
				var found bool
				if err := pool.QueryRow(t.Context(), `SELECT EXISTS (SELECT 1 FROM `+table+` x WHERE strpos(x::text, $1) > 0)`,
					text).Scan(&found); err != nil {
					t.Fatalf("search %s: %v", table, err)
				}
				if found {
					return true
				}
			}
			return false
		},
	})
}

// TestSearchPathSelectsTheSchema checks that search_path in the URL reaches
// the server (pgx sends unknown parameters as run-time settings): the tables
// are created in the test's schema and nowhere else.
func TestSearchPathSelectsTheSchema(t *testing.T) {
	t.Parallel()
	schema, u := freshSchema(t)
	s := openURL(t, u)
	var in, public int
	err := s.pool.QueryRow(t.Context(), `SELECT
			count(*) FILTER (WHERE table_schema = $1),
			count(*) FILTER (WHERE table_schema = 'public')
		FROM information_schema.tables WHERE table_name = 'deliveries'`, schema).Scan(&in, &public)
	if err != nil {
		t.Fatal(err)
	}
	if in != 1 || public != 0 {
		t.Fatalf("deliveries tables: %d in %s, %d in public; want 1 and 0", in, schema, public)
	}
}

// TestConcurrentOpenMigratesOnce starts several nodes at once on a fresh
// schema: all must open, and every migration must be recorded exactly once.
func TestConcurrentOpenMigratesOnce(t *testing.T) {
	t.Parallel()
	_, u := freshSchema(t)
	const nodes = 5
	var wg sync.WaitGroup
	stores := make([]*Store, nodes)
	errs := make([]error, nodes)
	start := make(chan struct{})
	for i := range nodes {
		wg.Go(func() {
			<-start
			stores[i], errs[i] = Open(t.Context(), u)
		})
	}
	close(start)
	wg.Wait()
	for i := range nodes {
		if errs[i] != nil {
			t.Errorf("Open %d: %v", i, errs[i])
			continue
		}
		t.Cleanup(func() { _ = stores[i].Close() })
	}
	if t.Failed() {
		t.FailNow()
	}
	ms, err := migrations()
	if err != nil {
		t.Fatal(err)
	}
	var rows, versions int
	if err := stores[0].pool.QueryRow(t.Context(),
		`SELECT count(*), count(DISTINCT version) FROM schema_migrations`).Scan(&rows, &versions); err != nil {
		t.Fatal(err)
	}
	if rows != len(ms) || versions != len(ms) {
		t.Fatalf("schema_migrations has %d rows for %d versions, want %d of each", rows, versions, len(ms))
	}
}

// TestConcurrentPublishOfOneKey races publishers of the same job event on
// separate connections: the unique constraint, not a check-then-insert,
// must make exactly one of them create the event and its deliveries, and
// every caller must be told that event's id.
func TestConcurrentPublishOfOneKey(t *testing.T) {
	t.Parallel()
	const publishers = 20
	_, u := freshSchema(t, "pool_max_conns", fmt.Sprint(publishers+2))
	s := openURL(t, u)
	ctx := t.Context()
	now := time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)
	a, _, err := s.CreateAccount(ctx, store.CreateAccountParams{Name: "acme", KeyHash: []byte("race-key"), Now: now})
	if err != nil {
		t.Fatal(err)
	}
	for i := range 2 {
		if _, err := s.CreateEndpoint(ctx, store.CreateEndpointParams{AccountID: a.ID, URL: fmt.Sprintf("https://x.example.com/%d", i),
			Events: []nanohook.EventType{nanohook.EventJobCompleted}, Secret: "whsec_abcdefgh", Now: now}); err != nil {
			t.Fatal(err)
		}
	}
	// Open every connection first, so that the publishes, not the dials,
	// are what start together.
	warm := make([]func(), 0, publishers)
	for range publishers {
		c, err := s.pool.Acquire(ctx)
		if err != nil {
			t.Fatal(err)
		}
		warm = append(warm, c.Release)
	}
	for _, release := range warm {
		release()
	}

	var wg sync.WaitGroup
	results := make([]store.PublishResult, publishers)
	errs := make([]error, publishers)
	start := make(chan struct{})
	for i := range publishers {
		wg.Go(func() {
			<-start
			res, err := s.PublishEvents(ctx, []store.PublishEventParams{{
				ID: fmt.Sprintf("evt_race_%d", i), AccountID: a.ID, Type: nanohook.EventJobCompleted,
				TaskID: "task_race", TaskType: "image",
				IdempotencyKey: nanohook.DefaultIdempotencyKey(nanohook.EventJobCompleted, "task_race"),
				Payload:        []byte(`{"event":"job.completed"}`), OccurredAt: now, Now: now,
			}})
			if err == nil {
				results[i] = res[0]
			}
			errs[i] = err
		})
	}
	close(start)
	wg.Wait()

	created := 0
	for i := range publishers {
		if errs[i] != nil {
			t.Fatalf("publisher %d: %v", i, errs[i])
		}
		if !results[i].Duplicate {
			created++
		}
		if results[i].EventID != results[0].EventID {
			t.Fatalf("publisher %d got event %s, publisher 0 got %s", i, results[i].EventID, results[0].EventID)
		}
		if results[i].Deliveries != 2 {
			t.Fatalf("publisher %d: %d deliveries, want 2", i, results[i].Deliveries)
		}
	}
	if created != 1 {
		t.Fatalf("%d publishers created the event, want exactly 1", created)
	}
	var events, deliveries int
	if err := s.pool.QueryRow(ctx, `SELECT (SELECT count(*) FROM events), (SELECT count(*) FROM deliveries)`).
		Scan(&events, &deliveries); err != nil {
		t.Fatal(err)
	}
	if events != 1 || deliveries != 2 {
		t.Fatalf("%d events and %d deliveries stored, want 1 and 2", events, deliveries)
	}
}

// TestOverlappingBatchesDoNotDeadlock publishes batches that share keys in
// opposite orders from two connections at once. Inserted in input order they
// would each hold a key the other waits for; PublishEvents writes keys in
// one global order, so the batches queue instead, and each key makes one
// event.
func TestOverlappingBatchesDoNotDeadlock(t *testing.T) {
	t.Parallel()
	s := openTest(t)
	ctx := t.Context()
	now := time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)
	a, _, err := s.CreateAccount(ctx, store.CreateAccountParams{Name: "acme", KeyHash: []byte("overlap-key"), Now: now})
	if err != nil {
		t.Fatal(err)
	}
	const rounds, keys = 10, 50
	batch := func(round, publisher int, reverse bool) []store.PublishEventParams {
		out := make([]store.PublishEventParams, keys)
		for i := range out {
			k := i
			if reverse {
				k = keys - 1 - i
			}
			out[i] = store.PublishEventParams{ID: fmt.Sprintf("evt_%d_%d_%d", round, publisher, k), AccountID: a.ID,
				Type: nanohook.EventJobCompleted, TaskID: fmt.Sprint(k), IdempotencyKey: fmt.Sprintf("key_%d_%d", round, k),
				Payload: []byte("{}"), OccurredAt: now, Now: now}
		}
		return out
	}
	for round := range rounds {
		var wg sync.WaitGroup
		errs := make([]error, 2)
		start := make(chan struct{})
		for p := range 2 {
			wg.Go(func() {
				<-start
				_, errs[p] = s.PublishEvents(ctx, batch(round, p, p == 1))
			})
		}
		close(start)
		wg.Wait()
		for p, err := range errs {
			if err != nil {
				t.Fatalf("round %d, publisher %d: %v", round, p, err)
			}
		}
	}
	var events int
	if err := s.pool.QueryRow(ctx, `SELECT count(*) FROM events`).Scan(&events); err != nil {
		t.Fatal(err)
	}
	if events != rounds*keys {
		t.Fatalf("%d events stored, want %d", events, rounds*keys)
	}
}

// TestPublishRacingEndpointChanges publishes while endpoints are deleted
// and disabled on other connections: whichever commits first, no pending
// delivery may be left for an endpoint that is gone, since nothing would
// ever finish it but the claim's guard.
func TestPublishRacingEndpointChanges(t *testing.T) {
	t.Parallel()
	s := openTest(t)
	ctx := t.Context()
	now := time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)
	a, _, err := s.CreateAccount(ctx, store.CreateAccountParams{Name: "acme", KeyHash: []byte("race-endpoints"), Now: now})
	if err != nil {
		t.Fatal(err)
	}
	const endpoints = 20
	ids := make([]int64, endpoints)
	for i := range ids {
		e, err := s.CreateEndpoint(ctx, store.CreateEndpointParams{AccountID: a.ID, URL: fmt.Sprintf("https://x.example.com/%d", i),
			Events: []nanohook.EventType{nanohook.EventJobCompleted}, Secret: "whsec_abcdefgh", Now: now})
		if err != nil {
			t.Fatal(err)
		}
		ids[i] = e.ID
	}
	var wg sync.WaitGroup
	errs := make(chan error, 3)
	stop := make(chan struct{})
	for p := range 2 {
		wg.Go(func() {
			for n := 0; ; n++ {
				select {
				case <-stop:
					return
				default:
				}
				if _, err := s.PublishEvents(ctx, []store.PublishEventParams{{ID: fmt.Sprintf("evt_%d_%d", p, n), AccountID: a.ID,
					Type: nanohook.EventJobCompleted, TaskID: "t", Payload: []byte("{}"), OccurredAt: now, Now: now}}); err != nil {
					errs <- err
					return
				}
			}
		})
	}
	wg.Go(func() {
		defer close(stop)
		disabled := nanohook.EndpointDisabled
		for i, id := range ids {
			var err error
			if i%2 == 0 {
				err = s.DeleteEndpoint(ctx, a.ID, id, now)
			} else {
				_, err = s.UpdateEndpoint(ctx, store.UpdateEndpointParams{AccountID: a.ID, ID: id, Status: &disabled, Now: now})
			}
			if err != nil {
				errs <- err
				return
			}
		}
	})
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	var orphans int
	if err := s.pool.QueryRow(ctx, `SELECT count(*) FROM deliveries d JOIN endpoints e ON e.id = d.endpoint_id
		WHERE d.status = 'pending' AND (e.deleted_at IS NOT NULL OR e.status <> 'active')`).Scan(&orphans); err != nil {
		t.Fatal(err)
	}
	if orphans != 0 {
		t.Fatalf("%d pending deliveries to deleted or disabled endpoints", orphans)
	}
}

// TestClaimGuardsInactiveEndpoints covers the guard for a state the API
// cannot produce: a due delivery whose endpoint is deleted or disabled (here
// behind the Store's back) is finished, not handed to a worker.
func TestClaimGuardsInactiveEndpoints(t *testing.T) {
	t.Parallel()
	s := openTest(t)
	ctx := t.Context()
	now := time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)
	a, _, err := s.CreateAccount(ctx, store.CreateAccountParams{Name: "acme", KeyHash: []byte("guard-key"), Now: now})
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
	if _, err := s.pool.Exec(ctx, `UPDATE endpoints SET deleted_at = now() WHERE id = $1`, eps[0]); err != nil {
		t.Fatal(err)
	}
	if _, err := s.pool.Exec(ctx, `UPDATE endpoints SET status = 'disabled', disabled_reason = 'gone' WHERE id = $1`, eps[1]); err != nil {
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
	rows, err := s.pool.Query(ctx, `SELECT status || '/' || last_error || '/' || (lease_token IS NULL)::text
		FROM deliveries ORDER BY endpoint_id`)
	if err != nil {
		t.Fatal(err)
	}
	got, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"cancelled/endpoint deleted/true", "failed/endpoint disabled: gone/true", "pending//false"}
	if !slices.Equal(got, want) {
		t.Fatalf("deliveries = %q, want %q", got, want)
	}
}

// listener runs ListenDue of s in the background and reports its wake-ups.
type listener struct {
	wakes <-chan struct{}
	stop  func() error // cancels ListenDue and returns what it returned
}

func listen(t *testing.T, s *Store) *listener {
	t.Helper()
	wakes := make(chan struct{}, 1)
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() {
		done <- s.ListenDue(ctx, func() {
			select {
			case wakes <- struct{}{}:
			default: // a wake-up is pending already
			}
		})
	}()
	l := &listener{wakes: wakes, stop: sync.OnceValue(func() error { cancel(); return <-done })}
	t.Cleanup(func() { _ = l.stop() })
	return l
}

// await waits for the next wake-up, for at most 5 s.
func (l *listener) await(t *testing.T, what string) {
	t.Helper()
	select {
	case <-l.wakes:
	case <-time.After(5 * time.Second):
		t.Fatalf("no wake-up within 5s %s", what)
	}
}

// TestListenDueWakesOtherNodes runs two nodes on one schema: a publish on
// node A wakes node B's listener, and so does a release; a node on another
// schema of the same database is not woken.
func TestListenDueWakesOtherNodes(t *testing.T) {
	t.Parallel()
	_, u := freshSchema(t)
	nodeA, nodeB := openURL(t, u), openURL(t, u)
	other := openTest(t)
	ctx := t.Context()

	lb := listen(t, nodeB)
	lb.await(t, "when node B started listening")
	lo := listen(t, other)
	lo.await(t, "when the other schema's node started listening")

	now := time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)
	a, _, err := nodeA.CreateAccount(ctx, store.CreateAccountParams{Name: "acme", KeyHash: []byte("listen-key"), Now: now})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := nodeA.CreateEndpoint(ctx, store.CreateEndpointParams{AccountID: a.ID, URL: "https://x.example.com",
		Events: []nanohook.EventType{nanohook.EventJobCompleted}, Secret: "whsec_abcdefgh", Now: now}); err != nil {
		t.Fatal(err)
	}
	if _, err := nodeA.PublishEvents(ctx, []store.PublishEventParams{{ID: "evt_listen", AccountID: a.ID,
		Type: nanohook.EventJobCompleted, TaskID: "t", IdempotencyKey: "k", Payload: []byte("{}"), OccurredAt: now, Now: now}}); err != nil {
		t.Fatal(err)
	}
	lb.await(t, "after node A published")

	claimed, err := store.ClaimDue(ctx, nodeA, store.ClaimDueParams{Now: now, LeaseUntil: now.Add(time.Minute), Limit: 1, Owner: "a"})
	if err != nil || len(claimed) != 1 {
		t.Fatalf("claim: %v, %d claimed", err, len(claimed))
	}
	if err := nodeA.ReleaseDeliveries(ctx, []store.Lease{claimed[0].Lease}); err != nil {
		t.Fatal(err)
	}
	lb.await(t, "after node A released a lease")

	if err := lb.stop(); err != nil {
		t.Fatalf("ListenDue returned %v after its context ended, want nil", err)
	}
	select {
	case <-lo.wakes:
		t.Fatal("a node on another schema was woken")
	default:
	}
}

// listenedAccount opens a Store on a fresh schema with an account whose
// one endpoint subscribes to typ, and a connection listening on dueChannel
// (closed when the test ends).
func listenedAccount(t *testing.T, typ nanohook.EventType) (schema string, s *Store, conn *pgx.Conn, a nanohook.Account, now time.Time) {
	t.Helper()
	schema, u := freshSchema(t)
	s = openURL(t, u)
	ctx := t.Context()
	conn, err := pgx.Connect(ctx, u)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close(context.Background()) })
	if _, err := conn.Exec(ctx, `LISTEN `+dueChannel); err != nil {
		t.Fatal(err)
	}
	now = time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)
	a, _, err = s.CreateAccount(ctx, store.CreateAccountParams{Name: "acme", KeyHash: []byte("notify-key"), Now: now})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.CreateEndpoint(ctx, store.CreateEndpointParams{AccountID: a.ID, URL: "https://x.example.com",
		Events: []nanohook.EventType{typ}, Secret: "whsec_abcdefgh", Now: now}); err != nil {
		t.Fatal(err)
	}
	return schema, s, conn, a, now
}

// TestPublishNotifiesOnlyForDeliveries listens on the channel directly: a
// publish that creates no delivery (nobody subscribed) must not wake the
// other nodes, one that creates deliveries must, once. A marker sent in
// between orders the two, since notifications arrive in commit order.
func TestPublishNotifiesOnlyForDeliveries(t *testing.T) {
	t.Parallel()
	schema, s, conn, a, now := listenedAccount(t, nanohook.EventJobFailed)
	ctx := t.Context()
	publish := func(id string, typ nanohook.EventType) int {
		res, err := s.PublishEvents(ctx, []store.PublishEventParams{{ID: id, AccountID: a.ID, Type: typ, TaskID: id,
			Payload: []byte("{}"), OccurredAt: now, Now: now}})
		if err != nil {
			t.Fatal(err)
		}
		return res[0].Deliveries
	}
	if n := publish("evt_unsubscribed", nanohook.EventJobCompleted); n != 0 {
		t.Fatalf("%d deliveries for an unsubscribed event", n)
	}
	if _, err := s.pool.Exec(ctx, `SELECT pg_notify('`+dueChannel+`', 'marker')`); err != nil {
		t.Fatal(err)
	}
	if n := publish("evt_subscribed", nanohook.EventJobFailed); n != 1 {
		t.Fatalf("%d deliveries for a subscribed event, want 1", n)
	}
	wctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	for _, want := range []string{"marker", schema} {
		n, err := conn.WaitForNotification(wctx)
		if err != nil {
			t.Fatalf("waiting for the notification %q: %v", want, err)
		}
		// The channel is shared by the parallel tests' schemas: theirs
		// (payload: their schema name) are not this test's business.
		for n.Payload != "marker" && n.Payload != schema {
			if n, err = conn.WaitForNotification(wctx); err != nil {
				t.Fatalf("waiting for the notification %q: %v", want, err)
			}
		}
		if n.Payload != want {
			t.Fatalf("notification %q, want %q", n.Payload, want)
		}
	}
}

// TestPublishNotificationsAreCoalesced publishes from many goroutines at
// once: the other nodes must be told (at least one notification) but not
// once per publish: the notifier sends at most one every notifyGap (here
// widened, so that the bound does not depend on the machine's speed).
func TestPublishNotificationsAreCoalesced(t *testing.T) {
	t.Parallel()
	schema, s, conn, a, now := listenedAccount(t, nanohook.EventJobCompleted)
	s.notifyGap = 100 * time.Millisecond // read by the notifier only after its first send
	ctx := t.Context()

	const publishers, each = 16, 10
	start := time.Now()
	var wg sync.WaitGroup
	errs := make(chan error, publishers)
	for g := range publishers {
		wg.Go(func() {
			for i := range each {
				id := fmt.Sprintf("evt_co_%d_%d", g, i)
				if _, err := s.PublishEvents(ctx, []store.PublishEventParams{{ID: id, AccountID: a.ID,
					Type: nanohook.EventJobCompleted, TaskID: id, Payload: []byte("{}"), OccurredAt: now, Now: now}}); err != nil {
					errs <- err
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}

	// Count this schema's notifications until none has come for a while.
	got := 0
	for {
		wctx, cancel := context.WithTimeout(ctx, 500*time.Millisecond)
		n, err := conn.WaitForNotification(wctx)
		cancel()
		if err != nil {
			break
		}
		if n.Payload == schema {
			got++
		}
	}
	elapsed := time.Since(start)
	if got == 0 {
		t.Fatal("no notification after 160 publishes that created deliveries")
	}
	if limit := int(elapsed/s.notifyGap) + 1; got > limit {
		t.Fatalf("%d notifications for %d publishes in %v, want at most %d (one per %v)",
			got, publishers*each, elapsed, limit, s.notifyGap)
	}
	t.Logf("%d notifications for %d publishes in %v", got, publishers*each, elapsed)
}

// TestListenDueReconnects cuts the listener's connection from the server
// side: it must connect again by itself (and wake once for what it may
// have missed), then keep delivering wake-ups.
func TestListenDueReconnects(t *testing.T) {
	t.Parallel()
	app := randomName("nh_listen_")
	_, u := freshSchema(t, "application_name", app)
	s := openURL(t, u)
	l := listen(t, s)
	l.await(t, "when listening started")

	admin(t, `SELECT pg_terminate_backend(pid, 5000) FROM pg_stat_activity
		WHERE application_name = $1 AND query LIKE 'LISTEN%'`, app)
	l.await(t, "after the listener's connection was terminated")

	if _, err := s.pool.Exec(t.Context(), `SELECT pg_notify('`+dueChannel+`', current_schema())`); err != nil {
		t.Fatal(err)
	}
	l.await(t, "for a notification after reconnecting")
}

// TestListenDueStopsOnClose checks that Close ends ListenDue loops, so that
// a closed Store holds no connection.
func TestListenDueStopsOnClose(t *testing.T) {
	t.Parallel()
	_, u := freshSchema(t)
	s, err := Open(t.Context(), u)
	if err != nil {
		t.Fatal(err)
	}
	l := listen(t, s)
	l.await(t, "when listening started")
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := l.stop(); err != nil {
		t.Fatalf("ListenDue returned %v after Close, want nil", err)
	}
	if err := s.ListenDue(t.Context(), func() {}); err == nil {
		t.Fatal("ListenDue on a closed Store returned nil")
	}
}

// TestOpenUnreachable opens a URL whose port nothing listens on: Open must
// fail at once, with store.ErrUnavailable and the cause in the message.
func TestOpenUnreachable(t *testing.T) {
	t.Parallel()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	_ = ln.Close()

	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	start := time.Now()
	_, err = Open(ctx, "postgres://nanohook@"+addr+"/nanohook?sslmode=disable")
	if err == nil {
		t.Fatal("Open of a closed port succeeded")
	}
	if !errors.Is(err, store.ErrUnavailable) {
		t.Errorf("got %v, want store.ErrUnavailable", err)
	}
	if !strings.Contains(err.Error(), "refused") {
		t.Errorf("error %q does not say the connection was refused", err)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("Open took %v to fail", d)
	}
}

// TestTerminatedConnections kills every connection of a Store's pool from
// the server side (as a failover or an operator would): each following call
// must either succeed on a fresh connection or fail with
// store.ErrUnavailable, promptly, and the Store must recover.
func TestTerminatedConnections(t *testing.T) {
	t.Parallel()
	app := randomName("nh_term_")
	_, u := freshSchema(t, "application_name", app)
	s := openURL(t, u)
	now := time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)
	a, _, err := s.CreateAccount(t.Context(), store.CreateAccountParams{Name: "acme", KeyHash: []byte("term-key"), Now: now})
	if err != nil {
		t.Fatal(err)
	}
	// Several connections in the pool, all idle and just used.
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() { _, _ = s.GetAccount(t.Context(), a.ID) })
	}
	wg.Wait()

	admin(t, `SELECT pg_terminate_backend(pid, 5000) FROM pg_stat_activity WHERE application_name = $1`, app)

	var unavailable, ok int
	for i := 0; ok < 3; i++ {
		if i == 20 {
			t.Fatalf("the Store did not recover: %d calls unavailable, %d succeeded", unavailable, ok)
		}
		ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
		_, err := s.GetAccount(ctx, a.ID)
		ctxErr := ctx.Err()
		cancel()
		switch {
		case ctxErr != nil:
			t.Fatalf("call %d hung until its deadline: %v", i, err)
		case err == nil:
			ok++
		case errors.Is(err, store.ErrUnavailable):
			if unavailable == 0 {
				t.Logf("first failure: %v", err)
			}
			unavailable++
		default:
			t.Fatalf("call %d: %v, want success or store.ErrUnavailable", i, err)
		}
	}
	t.Logf("after terminating the pool's connections: %d calls unavailable, then %d succeeded", unavailable, ok)
}

// TestQueuesUseTheQueueIndex pins the queue's reads to deliveries_queue:
// the claim to one range of each endpoint's due deliveries, in order,
// QueueHeads to one probe per endpoint, and Stats to the index alone; the
// rescue of expired leases and the leased deliveries of an endpoint to
// deliveries_leased, as small as the deliveries in flight. A
// sort, a scan of every delivery, or a scan of all pending rows where a
// range will do would make each call cost the whole history or the whole
// backlog. Sequential and bitmap scans are disabled because on the empty
// test tables any plan is cheap; what is checked is that the index can
// serve each query as written, predicate and order included, so that the
// planner picks it once the table's statistics show a backlog.
func TestQueuesUseTheQueueIndex(t *testing.T) {
	t.Parallel()
	s := openTest(t)
	ctx := t.Context()
	now := time.Now()
	for _, tc := range []struct {
		what, sql string
		args      []any
		want      []string // every one must be in the plan
		bad       []string // none may be
	}{
		{"claim", claimSQL, []any{[]int64{7, 8}, []int32{64, 64}, now, now, "x"}, []string{
			"Index Scan using deliveries_queue on deliveries",
			"Index Cond: ((endpoint_id = q.endpoint_id) AND (next_attempt_at <= ",
			"LockRows"}, []string{"Seq Scan on deliveries", "Sort Key: deliveries.next_attempt_at"}},
		{"queue heads", queueHeadsSQL, nil, []string{
			"Index Scan using deliveries_queue on deliveries",
			"Index Cond: (endpoint_id > h_1.endpoint_id)"},
			[]string{"Seq Scan on deliveries", "Sort Key: deliveries", "Aggregate"}},
		{"stats", statsSQL, []any{now}, []string{"Index Only Scan using deliveries_queue on deliveries",
			"Index Only Scan using deliveries_leased on deliveries"},
			[]string{"Seq Scan on deliveries", "Sort"}},
		{"rescue", rescueLeasesSQL, []any{now}, []string{"Index Scan using deliveries_leased on deliveries",
			"Index Cond: (leased_until <= "}, []string{"Seq Scan on deliveries"}},
		// The queued ones by a range of the queue, the leased ones from
		// deliveries_leased, not the endpoint's whole history.
		{"fail an endpoint's pending deliveries", failPendingOfEndpointSQL, []any{"x", now, int64(7)}, []string{
			"Index Only Scan using deliveries_queue on deliveries",
			"using deliveries_leased on deliveries"},
			[]string{"Seq Scan on deliveries", "deliveries_endpoint"}},
	} {
		tx, err := s.pool.Begin(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := tx.Exec(ctx, `SET LOCAL enable_seqscan = off; SET LOCAL enable_bitmapscan = off`); err != nil {
			t.Fatal(err)
		}
		rows, err := tx.Query(ctx, `EXPLAIN `+tc.sql, tc.args...)
		if err != nil {
			t.Fatal(err)
		}
		lines, err := pgx.CollectRows(rows, pgx.RowTo[string])
		_ = tx.Rollback(ctx)
		if err != nil {
			t.Fatal(err)
		}
		plan := strings.Join(lines, "\n")
		t.Logf("plan of the %s:\n%s", tc.what, plan)
		for _, w := range tc.want {
			if !strings.Contains(plan, w) {
				t.Errorf("plan of the %s lacks %q", tc.what, w)
			}
		}
		for _, b := range tc.bad {
			if strings.Contains(plan, b) {
				t.Errorf("plan of the %s has %q", tc.what, b)
			}
		}
	}
}

// TestAwkwardAttemptText records what remote servers may send: a response
// body cut inside a UTF-8 sequence or holding NUL bytes is kept byte for
// byte; an error or Location with such bytes is stored with U+FFFD instead
// of failing the batch.
func TestAwkwardAttemptText(t *testing.T) {
	t.Parallel()
	s := openTest(t)
	ctx := t.Context()
	now := time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)
	a, _, err := s.CreateAccount(ctx, store.CreateAccountParams{Name: "acme", KeyHash: []byte("bytes-key"), Now: now})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.CreateEndpoint(ctx, store.CreateEndpointParams{AccountID: a.ID, URL: "https://x.example.com",
		Events: []nanohook.EventType{nanohook.EventJobCompleted}, Secret: "whsec_abcdefgh", Now: now}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.PublishEvents(ctx, []store.PublishEventParams{{ID: "evt_bytes", AccountID: a.ID,
		Type: nanohook.EventJobCompleted, TaskID: "t", IdempotencyKey: "k", Payload: []byte("{}"), OccurredAt: now, Now: now}}); err != nil {
		t.Fatal(err)
	}
	claimed, err := store.ClaimDue(ctx, s, store.ClaimDueParams{Now: now, LeaseUntil: now.Add(time.Minute), Limit: 1})
	if err != nil || len(claimed) != 1 {
		t.Fatalf("claim: %v, %d claimed", err, len(claimed))
	}
	body := "binary\x00\xff\xfe and a cut rune \xe2\x82"
	err = s.CompleteDeliveries(ctx, []store.CompleteParams{{
		Lease: claimed[0].Lease,
		Attempt: nanohook.Attempt{DeliveryID: claimed[0].DeliveryID, Number: 1, StartedAt: now, ResponseStatus: 302,
			ResponseBody: body, Location: "https://x.example.com/\xff", Error: "bad\x00error"},
		Status: nanohook.DeliveryPending, NextAttemptAt: now.Add(time.Minute), Now: now,
	}})
	if err != nil {
		t.Fatalf("CompleteDeliveries: %v", err)
	}
	d, attempts, err := s.GetDelivery(ctx, a.ID, claimed[0].DeliveryID)
	if err != nil {
		t.Fatal(err)
	}
	if len(attempts) != 1 {
		t.Fatalf("%d attempts", len(attempts))
	}
	if attempts[0].ResponseBody != body {
		t.Errorf("response body %q, want %q", attempts[0].ResponseBody, body)
	}
	if attempts[0].Location != "https://x.example.com/\uFFFD" || attempts[0].Error != "bad\uFFFDerror" || d.LastError != "bad\uFFFDerror" {
		t.Errorf("location %q, error %q, last error %q", attempts[0].Location, attempts[0].Error, d.LastError)
	}
}

func BenchmarkPublish(b *testing.B) { storetest.BenchPublish(b, openTest(b)) }

func BenchmarkClaimComplete(b *testing.B) { storetest.BenchClaimComplete(b, openTest(b)) }

func BenchmarkClaimQuotas(b *testing.B) { storetest.BenchClaimQuotas(b, openTest(b)) }

// BenchmarkClaimFair also logs, after each sub-benchmark, the plans with
// which the claim of the quiet account's endpoint and QueueHeads ran on
// its data (EXPLAIN ANALYZE, rolled back): the figures and the plans
// together show that the other account's backlog is never read.
//
// Autovacuum is off for the benchmark's deliveries table. Every claim and
// completion leaves a dead entry at the head of the quiet endpoint's queue
// until vacuum removes it, so claims and heads step over more of them as
// the loop runs; with autovacuum on, whether and when it ran in the middle
// of a sub-benchmark's loop decided the figures more than the backlog.
func BenchmarkClaimFair(b *testing.B) {
	storetest.BenchClaimFair(b, func(b *testing.B) store.Store {
		s := openTest(b)
		if _, err := s.pool.Exec(b.Context(), `ALTER TABLE deliveries SET (autovacuum_enabled = false)`); err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { logFairPlans(b, s) }) // before the Store closes
		return s
	})
}

func logFairPlans(b *testing.B, s *Store) {
	ctx := context.Background()
	var quiet int64
	var backlog int
	if err := s.pool.QueryRow(ctx, `SELECT e.id, (SELECT count(*) FROM deliveries WHERE status = 'pending')
		FROM endpoints e JOIN accounts a ON a.id = e.account_id WHERE a.name = 'quiet'`).Scan(&quiet, &backlog); err != nil {
		b.Fatal(err)
	}
	now := time.Date(2025, 3, 1, 12, 0, 0, 123456000, time.UTC) // storetest's t0
	for _, q := range []struct {
		what, sql string
		args      []any
	}{
		{"claim", claimSQL, []any{[]int64{quiet}, []int32{64}, now, now.Add(time.Minute), "plan"}},
		{"queue heads", queueHeadsSQL, nil},
	} {
		tx, err := s.pool.Begin(ctx)
		if err != nil {
			b.Fatal(err)
		}
		rows, err := tx.Query(ctx, `EXPLAIN (ANALYZE, BUFFERS, COSTS OFF) `+q.sql, q.args...)
		if err != nil {
			b.Fatal(err)
		}
		lines, err := pgx.CollectRows(rows, pgx.RowTo[string])
		_ = tx.Rollback(ctx)
		if err != nil {
			b.Fatal(err)
		}
		b.Logf("%s with %d pending deliveries:\n%s", q.what, backlog, strings.Join(lines, "\n"))
	}
}

func BenchmarkQueueHeads(b *testing.B) { storetest.BenchQueueHeads(b, openTest(b)) }

// TestOnlyBookkeepingSkipsTheFlush checks which sessions wait for the WAL
// flush at commit: the main pool's (publishes, API writes: a 2xx means
// durable) must; the async-commit pool's (claims, outcomes, releases) need not.
func TestOnlyBookkeepingSkipsTheFlush(t *testing.T) {
	s := openTest(t)
	ctx := t.Context()
	setting := func(acquire func(context.Context, string) (*conn, error)) string {
		t.Helper()
		c, err := acquire(ctx, "test")
		if err != nil {
			t.Fatal(err)
		}
		defer c.Release()
		var v string
		if err := c.QueryRow(ctx, "SHOW synchronous_commit").Scan(&v); err != nil {
			t.Fatal(err)
		}
		return v
	}
	if got := setting(s.acquire); got != "on" {
		t.Errorf("main pool synchronous_commit = %q, want on", got)
	}
	if got := setting(s.acquireAsyncCommit); got != "off" {
		t.Errorf("async-commit pool synchronous_commit = %q, want off", got)
	}
}

// TestQueueMigrationKeepsLeases applies the schema up to 0007, leaves
// deliveries leased as the previous version leased them (next_attempt_at
// untouched), and opens the schema: migration 0008 must move the pending
// deliveries still in flight to their lease's expiry, so that claims,
// which no longer read leased_until, do not take them, and leave
// everything else as it was.
func TestQueueMigrationKeepsLeases(t *testing.T) {
	t.Parallel()
	_, u := freshSchema(t)
	ctx := t.Context()
	conn, err := pgx.Connect(ctx, u)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	ms, err := migrations()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := conn.Exec(ctx, `CREATE TABLE schema_migrations (version bigint PRIMARY KEY, applied_at timestamptz NOT NULL)`); err != nil {
		t.Fatal(err)
	}
	for _, m := range ms {
		if m.Version > 7 {
			break
		}
		if _, err := conn.Exec(ctx, m.SQL); err != nil {
			t.Fatalf("%s: %v", m.Name, err)
		}
		if _, err := conn.Exec(ctx, `INSERT INTO schema_migrations VALUES ($1, now())`, m.Version); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := conn.Exec(ctx, `
		INSERT INTO accounts (id, name, created_at) OVERRIDING SYSTEM VALUE VALUES (1, 'acme', 'epoch');
		INSERT INTO endpoints (id, account_id, url, events, status, secret, created_at, updated_at) OVERRIDING SYSTEM VALUE
			VALUES (1, 1, 'https://x.example.com', '{job.completed}', 'active', 'whsec_x', 'epoch', 'epoch');
		INSERT INTO events (pk, id, account_id, type, task_id, task_type, payload, occurred_at, created_at) OVERRIDING SYSTEM VALUE
			VALUES (1, 'evt_1', 1, 'job.completed', 't', 'i', '{}', 'epoch', 'epoch');
		INSERT INTO deliveries (id, account_id, endpoint_id, event_pk, event_type, status, next_attempt_at,
				leased_until, lease_token, lease_owner, created_at, updated_at) OVERRIDING SYSTEM VALUE VALUES
			(1, 1, 1, 1, 'job.completed', 'pending', 'epoch'::timestamptz + '1s', 'epoch'::timestamptz + '5s', 7, 'node', 'epoch', 'epoch'),
			(2, 1, 1, 1, 'job.completed', 'pending', 'epoch'::timestamptz + '1s', NULL, NULL, NULL, 'epoch', 'epoch'),
			(3, 1, 1, 1, 'job.completed', 'pending', 'epoch'::timestamptz + '9s', 'epoch'::timestamptz + '5s', 8, 'node', 'epoch', 'epoch'),
			(4, 1, 1, 1, 'job.completed', 'succeeded', 'epoch'::timestamptz + '1s', 'epoch'::timestamptz + '5s', 9, 'node', 'epoch', 'epoch')`); err != nil {
		t.Fatal(err)
	}

	s := openURL(t, u)
	rows, err := s.pool.Query(ctx, `SELECT format('%s:%s/%s', id, extract(epoch FROM next_attempt_at)::int,
			coalesce(extract(epoch FROM leased_until)::int, 0))
		FROM deliveries ORDER BY id`)
	if err != nil {
		t.Fatal(err)
	}
	got, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		t.Fatal(err)
	}
	// id:next_attempt_at/leased_until, in seconds since the epoch.
	want := []string{"1:5/5", "2:1/0", "3:9/5", "4:1/5"}
	if !slices.Equal(got, want) {
		t.Fatalf("deliveries = %q, want %q", got, want)
	}
	heads, err := s.QueueHeads(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(heads) != 1 || !heads[0].DueAt.Equal(time.Unix(1, 0)) {
		t.Fatalf("heads %+v, want endpoint 1 due at 1 s past the epoch", heads)
	}
}
