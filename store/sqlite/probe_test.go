package sqlite

// The write probe (issue 13, item 10) against real faults: a database that
// cannot grow (PRAGMA max_page_count stands in for a full disk) and a file
// that turns read-only under the running Store. In both, Ping still
// succeeds, which is why /readyz stayed 200 before it probed a write.

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/nanohook/nanohook/store"
)

// pragmaInt reads an integer pragma on the writer connection, where
// max_page_count (a per-connection setting) is set.
func pragmaInt(t *testing.T, s *Store, name string) int64 {
	t.Helper()
	var n int64
	if err := s.writer.QueryRowContext(t.Context(), "PRAGMA "+name).Scan(&n); err != nil {
		t.Fatalf("PRAGMA %s: %v", name, err)
	}
	return n
}

// TestProbeWriteKeepsTheFileSize: a thousand probes leave the database
// as many pages as the first two left it with (each wrote a pad into an
// empty slot; from then on a probe takes the pages the previous one freed).
func TestProbeWriteKeepsTheFileSize(t *testing.T) {
	t.Parallel()
	s := openTest(t)
	for range 2 {
		if err := s.ProbeWrite(t.Context()); err != nil {
			t.Fatal(err)
		}
	}
	pages := pragmaInt(t, s, "page_count")
	for i := range 1000 {
		if err := s.ProbeWrite(t.Context()); err != nil {
			t.Fatalf("probe %d: %v", i, err)
		}
	}
	if got := pragmaInt(t, s, "page_count"); got != pages {
		t.Errorf("1000 probes grew the database from %d to %d pages", pages, got)
	}
	var pads int
	if err := s.reader.QueryRowContext(t.Context(), `SELECT count(*) FROM write_probe WHERE pad IS NOT NULL`).Scan(&pads); err != nil {
		t.Fatal(err)
	}
	if pads != 1 {
		t.Errorf("%d pads stored after the probes, want 1", pads)
	}
	t.Logf("1000 probes: %d pages before and after", pages)
}

// TestProbeWriteFailsOnAFullDatabase caps the writer connection's
// max_page_count at the file's size and publishes until SQLite refuses a
// publish as full: the probe must then fail with store.ErrUnavailable,
// while Ping still succeeds. With room again, the probe succeeds.
func TestProbeWriteFailsOnAFullDatabase(t *testing.T) {
	t.Parallel()
	f := newFaultFixture(t)
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	if err := f.s.ProbeWrite(ctx); err != nil {
		t.Fatal(err)
	}
	maxPages := pragmaInt(t, f.s, "max_page_count")
	pages := pragmaInt(t, f.s, "page_count")
	if _, err := f.s.writer.ExecContext(ctx, fmt.Sprintf("PRAGMA max_page_count = %d", pages)); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_, _ = f.s.writer.ExecContext(context.Background(), fmt.Sprintf("PRAGMA max_page_count = %d", maxPages))
	})

	var full error
	published := 0
	for i := 0; i < 10000 && full == nil; i++ {
		if _, _, err := f.publish(ctx, fmt.Sprintf("fill_%05d_%s", i, strings.Repeat("x", 500))); err != nil {
			full = err
			break
		}
		published++
	}
	if full == nil || !errors.Is(full, store.ErrUnavailable) || !strings.Contains(full.Error(), "full") {
		t.Fatalf("publishing into a database capped at %d pages: %d published, then %v; want a full database", pages, published, full)
	}
	t.Logf("the database was full at %d pages after %d publishes: %v", pages, published, full)

	start := time.Now()
	err := f.s.ProbeWrite(ctx)
	checkUnavailable(t, "write probe on a full database", err, time.Since(start), faultSlack, "full")
	if err := f.s.Ping(ctx); err != nil {
		t.Errorf("Ping on a full database: %v (the probe is what must notice)", err)
	}
	t.Logf("write probe on the full database: %v", err)

	if _, err := f.s.writer.ExecContext(ctx, fmt.Sprintf("PRAGMA max_page_count = %d", maxPages)); err != nil {
		t.Fatal(err)
	}
	if err := f.s.ProbeWrite(ctx); err != nil {
		t.Errorf("write probe with room again: %v", err)
	}
}

// TestProbeWriteFailsOnAReadOnlyFile makes the database file and its WAL
// unwritable under the running Store, as TestFileTurnsReadOnlyUnderARunningStore
// does: the probe must fail with store.ErrUnavailable within the busy
// timeout plus slack while Ping still succeeds, and succeed again once the
// files are writable.
func TestProbeWriteFailsOnAReadOnlyFile(t *testing.T) {
	t.Parallel()
	f := newFaultFixture(t)
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	if err := f.s.ProbeWrite(ctx); err != nil {
		t.Fatal(err)
	}
	// Not the -shm file: see TestFileTurnsReadOnlyUnderARunningStore.
	files := []string{f.path}
	if _, err := os.Stat(f.path + "-wal"); err == nil {
		files = append(files, f.path+"-wal")
	}
	for _, p := range files {
		makeReadOnly(t, p)
	}
	start := time.Now()
	err := f.s.ProbeWrite(ctx)
	checkUnavailable(t, "write probe on a read-only file", err, time.Since(start), busyTimeout+faultSlack)
	t.Logf("write probe on the read-only file: %v after %v", err, time.Since(start).Round(time.Millisecond))
	if err := f.s.Ping(ctx); err != nil {
		t.Errorf("Ping on a read-only file: %v (the probe is what must notice)", err)
	}

	for _, p := range files {
		makeWritable(t, p)
	}
	if err := f.s.ProbeWrite(ctx); err != nil {
		t.Errorf("write probe once the files are writable again: %v", err)
	}
}

// makeWritable undoes makeReadOnly.
func makeWritable(t *testing.T, path string) {
	t.Helper()
	if os.Geteuid() != 0 {
		if err := os.Chmod(path, 0o600); err != nil {
			t.Fatal(err)
		}
		return
	}
	if err := chattr(t, "-i", path); err != nil {
		t.Fatal(err)
	}
}
