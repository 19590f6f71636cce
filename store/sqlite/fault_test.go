package sqlite

// Database faults (issue 6, item 2) at the store level: another process
// holding SQLite's write lock past the busy timeout, and a database file
// that becomes read-only under a running Store. Every write must fail with
// store.ErrUnavailable (the API's 503) within a bound, never hang and never
// report success for what was not stored, and the Store must work again
// once the fault is gone.

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nanohook/nanohook"
	"github.com/nanohook/nanohook/store"
)

// busyTimeout is the busy_timeout(5000) pragma Open sets.
const busyTimeout = 5 * time.Second

// faultSlack is what a failing call may take beyond the wait it is allowed:
// scheduling on a loaded 2-core machine under -race, not a second wait.
const faultSlack = 3 * time.Second

// faultFixture is a Store on a file of its own, with one account and one
// endpoint, so that every publish creates one delivery.
type faultFixture struct {
	s        *Store
	path     string
	account  int64
	endpoint int64
	now      time.Time
}

func newFaultFixture(t *testing.T) *faultFixture {
	t.Helper()
	path := filepath.Join(t.TempDir(), "nanohook.db")
	s, err := Open(t.Context(), path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	now := time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC)
	a, _, err := s.CreateAccount(t.Context(), store.CreateAccountParams{Name: "acme", KeyHash: []byte("fault-key"), Now: now})
	if err != nil {
		t.Fatal(err)
	}
	e, err := s.CreateEndpoint(t.Context(), store.CreateEndpointParams{
		AccountID: a.ID, URL: "https://example.com/hook", Events: []nanohook.EventType{nanohook.EventJobCompleted},
		Secret: "whsec_fault_test_secret", Now: now,
	})
	if err != nil {
		t.Fatal(err)
	}
	return &faultFixture{s: s, path: path, account: a.ID, endpoint: e.ID, now: now}
}

// publish publishes the job.completed event of task and returns how long
// the call took.
func (f *faultFixture) publish(ctx context.Context, task string) ([]store.PublishResult, time.Duration, error) {
	start := time.Now()
	res, err := f.s.PublishEvents(ctx, []store.PublishEventParams{{
		ID: "evt_" + task, AccountID: f.account, Type: nanohook.EventJobCompleted, TaskID: task, TaskType: "image",
		IdempotencyKey: "job.completed:" + task, Payload: []byte(`{"task_id":"` + task + `"}`),
		OccurredAt: f.now, Now: f.now,
	}})
	return res, time.Since(start), err
}

// claim claims every due delivery of the endpoint and returns how long the
// call took. It asks for the endpoint whether or not anything is due, so
// that it writes (and meets a held lock) even when nothing is.
func (f *faultFixture) claim(ctx context.Context) ([]store.ClaimedDelivery, time.Duration, error) {
	start := time.Now()
	got, err := f.s.ClaimDeliveries(ctx, store.ClaimParams{
		Now: f.now.Add(time.Second), LeaseUntil: f.now.Add(time.Minute), Owner: "fault-test",
		Quotas: []store.EndpointQuota{{EndpointID: f.endpoint, Limit: 100}},
	})
	return got, time.Since(start), err
}

// storedEvents counts the events of task in the file, read through a
// connection of its own.
func storedEvents(t *testing.T, path, task string) int {
	t.Helper()
	db := openForeign(t, path)
	var n int
	if err := db.QueryRowContext(t.Context(), `SELECT count(*) FROM events WHERE task_id = ?`, task).Scan(&n); err != nil {
		t.Fatalf("count events of %s: %v", task, err)
	}
	return n
}

// openForeign opens the file as another process would: a database/sql pool
// of its own, without the Store's pragmas beyond a short busy timeout.
func openForeign(t *testing.T, path string) *sql.DB {
	t.Helper()
	db, err := sql.Open("sqlite", path+"?_pragma=busy_timeout(1000)")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = db.Close() })
	return db
}

// holdWriteLock takes SQLite's write lock on path from a connection outside
// the Store (BEGIN EXCLUSIVE plus a write, as a `sqlite3` shell or a backup
// tool in the middle of a transaction would) and returns the function that
// releases it by rolling back.
func holdWriteLock(t *testing.T, path string) (release func()) {
	t.Helper()
	db := openForeign(t, path)
	conn, err := db.Conn(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := conn.ExecContext(t.Context(), `BEGIN EXCLUSIVE`); err != nil {
		t.Fatalf("BEGIN EXCLUSIVE: %v", err)
	}
	if _, err := conn.ExecContext(t.Context(), `UPDATE accounts SET name = name`); err != nil {
		t.Fatalf("write under the lock: %v", err)
	}
	var once sync.Once
	release = func() {
		once.Do(func() {
			if _, err := conn.ExecContext(context.Background(), `ROLLBACK`); err != nil {
				t.Errorf("ROLLBACK: %v", err)
			}
			_ = conn.Close()
		})
	}
	t.Cleanup(release)
	return release
}

// checkUnavailable requires err to be store.ErrUnavailable naming the lock
// (or the read-only file), returned within bound.
func checkUnavailable(t *testing.T, what string, err error, took, bound time.Duration, wantText ...string) {
	t.Helper()
	switch {
	case err == nil:
		t.Errorf("%s succeeded while the database could not be written", what)
		return
	case !errors.Is(err, store.ErrUnavailable):
		t.Errorf("%s: %v, want store.ErrUnavailable", what, err)
	case took > bound:
		t.Errorf("%s took %v to fail, want at most %v", what, took.Round(time.Millisecond), bound)
	}
	for _, w := range wantText {
		if strings.Contains(err.Error(), w) {
			return
		}
	}
	if len(wantText) > 0 {
		t.Errorf("%s: error %q says none of %q", what, err, wantText)
	}
}

// TestBusyLockFailsWithinTheBusyTimeout holds the write lock from another
// connection for longer than the busy timeout while a publish, several
// concurrent publishes and a claim run. Each must fail with
// store.ErrUnavailable saying the database is locked: a writer alone after
// the busy timeout, writers queued behind it within lockWait, plus slack.
// Nothing may be stored; once the lock is released the same publishes
// succeed and their deliveries can be claimed.
//
// Before lockWait, writers queued on the one writer connection each waited
// their own busy timeout in turn: the fifth of five concurrent writers
// failed after 25 s.
func TestBusyLockFailsWithinTheBusyTimeout(t *testing.T) {
	t.Parallel()
	f := newFaultFixture(t)
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	// One delivery due before the lock, so that the claim under it has a
	// lease to write (a claim that finds nothing due writes nothing).
	if _, _, err := f.publish(ctx, "before_lock"); err != nil {
		t.Fatal(err)
	}
	release := holdWriteLock(t, f.path)
	locked := time.Now()

	// One publish alone: it waits the busy timeout, then fails.
	_, took, err := f.publish(ctx, "busy_alone")
	checkUnavailable(t, "publish under a held lock", err, took, busyTimeout+faultSlack, "locked")
	if took < busyTimeout-500*time.Millisecond {
		t.Errorf("publish failed after %v, before the busy timeout (%v): it did not wait for the lock", took, busyTimeout)
	}
	t.Logf("single publish under the lock: %v after %v", err, took.Round(time.Millisecond))

	// Several writers at once: they queue for the one writer connection,
	// and each must still be answered within the bound rather than after
	// the busy timeouts of all the writers before it.
	const writers = 4
	type outcome struct {
		what string
		took time.Duration
		err  error
	}
	outcomes := make([]outcome, writers+1)
	var wg sync.WaitGroup
	for i := range writers {
		wg.Go(func() {
			task := fmt.Sprintf("busy_%d", i)
			_, took, err := f.publish(ctx, task)
			outcomes[i] = outcome{"publish " + task, took, err}
		})
	}
	wg.Go(func() {
		_, took, err := f.claim(ctx)
		outcomes[writers] = outcome{"claim", took, err}
	})
	wg.Wait()
	var longest time.Duration
	for _, o := range outcomes {
		checkUnavailable(t, o.what+" (concurrent, under a held lock)", o.err, o.took, lockWait+faultSlack, "write lock", "locked")
		longest = max(longest, o.took)
	}
	t.Logf("%d concurrent writes under the lock: all failed, the slowest after %v", len(outcomes), longest.Round(time.Millisecond))

	for _, task := range []string{"busy_alone", "busy_0", "busy_3"} {
		if n := storedEvents(t, f.path, task); n != 0 {
			t.Errorf("%d events of %s stored although its publish failed", n, task)
		}
	}

	release()
	heldFor := time.Since(locked)
	for _, task := range []string{"busy_alone", "busy_0", "busy_1", "busy_2", "busy_3"} {
		res, took, err := f.publish(ctx, task)
		if err != nil {
			t.Fatalf("publish %s after the lock was released: %v", task, err)
		}
		if res[0].Duplicate || res[0].Deliveries != 1 {
			t.Errorf("publish %s after the lock: %+v, want a new event with 1 delivery", task, res[0])
		}
		if took > faultSlack {
			t.Errorf("publish %s after the lock took %v", task, took)
		}
	}
	got, _, err := f.claim(ctx)
	if err != nil {
		t.Fatalf("claim after the lock was released: %v", err)
	}
	if len(got) != 6 {
		t.Errorf("claimed %d deliveries after the lock, want 6 (one published before it, five after)", len(got))
	}
	t.Logf("lock held %v; afterwards 5 publishes succeeded and %d deliveries (with the one before) were claimed", heldFor.Round(time.Millisecond), len(got))
}

// chattr runs chattr with args on path.
func chattr(t *testing.T, flag string, paths ...string) error {
	t.Helper()
	bin, err := exec.LookPath("chattr")
	if err != nil {
		return err
	}
	out, err := exec.Command(bin, append([]string{flag}, paths...)...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("chattr %s: %v: %s", flag, err, out)
	}
	return nil
}

// TestFileTurnsReadOnlyUnderARunningStore makes the database file and its
// WAL immutable (chattr +i: as root, which these tests may run as,
// permission bits do not stop writes, and immutability stops root too)
// while the Store has them open. Publishes and claims must fail with
// store.ErrUnavailable within the busy timeout plus slack, nothing may be
// reported stored, and once the files are writable again the Store must
// write again without being reopened.
func TestFileTurnsReadOnlyUnderARunningStore(t *testing.T) {
	t.Parallel()
	f := newFaultFixture(t)
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	if _, _, err := f.publish(ctx, "ro_before"); err != nil {
		t.Fatal(err)
	}

	// The -shm file is left alone: SQLite maps it into memory, and a
	// write to a mapped page of an immutable file is a SIGBUS that kills
	// the process, a fault no storage code can answer (a filesystem
	// remounted read-only on errors does the same). What is tested is the
	// database and its WAL refusing writes.
	files := []string{f.path}
	if _, err := os.Stat(f.path + "-wal"); err == nil {
		files = append(files, f.path+"-wal")
	}
	if os.Geteuid() == 0 {
		if err := chattr(t, "+i", files...); err != nil {
			t.Skipf("running as root and cannot make the database immutable: %v", err)
		}
	} else {
		for _, p := range files {
			if err := os.Chmod(p, 0o400); err != nil {
				t.Fatal(err)
			}
		}
	}
	restored := false
	restore := func() {
		if restored {
			return
		}
		restored = true
		if os.Geteuid() == 0 {
			if err := chattr(t, "-i", files...); err != nil {
				t.Error(err)
			}
			return
		}
		for _, p := range files {
			_ = os.Chmod(p, 0o600)
		}
	}
	t.Cleanup(restore)

	var failures int
	for i := range 3 {
		task := fmt.Sprintf("ro_%d", i)
		res, took, err := f.publish(ctx, task)
		if err == nil {
			// An open file descriptor may keep writing on some systems; a
			// success is only acceptable if the event really is stored.
			t.Logf("publish %s succeeded on the read-only file after %v: %+v", task, took, res)
			if n := storedEvents(t, f.path, task); n != 1 {
				t.Errorf("publish %s reported success but %d events are stored", task, n)
			}
			continue
		}
		failures++
		checkUnavailable(t, "publish "+task+" on a read-only file", err, took, busyTimeout+faultSlack)
		t.Logf("publish %s on the read-only file: %v after %v", task, err, took.Round(time.Millisecond))
	}
	claimed, took, err := f.claim(ctx)
	if err != nil {
		checkUnavailable(t, "claim on a read-only file", err, took, busyTimeout+faultSlack)
	}
	t.Logf("claim on the read-only file: %d claimed, %v after %v", len(claimed), err, took.Round(time.Millisecond))
	if failures == 0 {
		t.Errorf("every publish succeeded on a read-only database file")
	}

	restore()
	// Recovery: a few tries are allowed while SQLite reopens its journal.
	var lastErr error
	recoveredAt := -1
	for i := range 5 {
		_, _, lastErr = f.publish(ctx, fmt.Sprintf("ro_after_%d", i))
		if lastErr == nil {
			recoveredAt = i
			break
		}
		t.Logf("publish %d after the files were writable again: %v", i, lastErr)
	}
	if recoveredAt < 0 {
		t.Fatalf("the Store does not write again once the file is writable: %v", lastErr)
	}
	if recoveredAt > 0 {
		t.Errorf("%d publishes failed after the file was writable again before one succeeded", recoveredAt)
	}
	if err := f.s.Ping(ctx); err != nil {
		t.Errorf("Ping after recovery: %v", err)
	}
	got, _, err := f.claim(ctx)
	if err != nil {
		t.Fatalf("claim after recovery: %v", err)
	}
	t.Logf("after recovery: claimed %d deliveries", len(got))
}
