//go:build linux

package main

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"
)

// mountSmallFS mounts a tmpfs of size bytes on a new directory and
// unmounts it when the test ends, or skips the test where this process may
// not mount (not root, or no CAP_SYS_ADMIN in a container). Call it before
// starting a process that uses the directory: cleanups run last-registered
// first, so the process is gone before the unmount.
func mountSmallFS(t *testing.T, size int) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "small")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Mount("tmpfs", dir, "tmpfs", 0, fmt.Sprintf("size=%d", size)); err != nil {
		t.Skipf("cannot mount a small tmpfs to fill up: %v", err)
	}
	t.Cleanup(func() {
		if err := syscall.Unmount(dir, syscall.MNT_DETACH); err != nil {
			t.Errorf("unmount %s: %v", dir, err)
		}
	})
	return dir
}

// fillFS writes a file in dir until the filesystem has no room left, and
// returns its path and size.
func fillFS(t *testing.T, dir string) (string, int64) {
	t.Helper()
	path := filepath.Join(dir, "filler")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	chunk := make([]byte, 4096)
	var n int64
	for {
		w, err := f.Write(chunk)
		n += int64(w)
		if errors.Is(err, syscall.ENOSPC) {
			return path, n
		}
		if err != nil {
			t.Fatalf("filling %s: %v", dir, err)
		}
	}
}

// TestServeDiskFull runs a node on a SQLite file in a small filesystem of
// its own and fills the filesystem (issue 13, item 10). /readyz must then
// answer 503, as publishes do, although the database still answers
// reads; once there is room again, /readyz answers 200 and publishes are
// acknowledged again, without a restart.
func TestServeDiskFull(t *testing.T) {
	t.Parallel()
	dir := mountSmallFS(t, 16<<20)
	c, acct := sqliteNode(t, filepath.Join(dir, "nanohook.db"))
	n := c.nodes[0]
	l := newFaultLoad(t, n, acct.id, 1)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()

	if p := l.publish(ctx, "full_before"); p.status != http.StatusAccepted {
		t.Fatalf("publish before: %d %s %v", p.status, p.message, p.err)
	}
	if s := readyStatus(n.adminAddr); s != http.StatusOK {
		t.Fatalf("/readyz before the disk is full: %d", s)
	}

	filler, size := fillFS(t, dir)
	fullAt := time.Now()
	var full []publishTry
	for i := range 5 {
		full = append(full, l.publish(ctx, fmt.Sprintf("full_%d", i)))
	}
	// A probe outcome from before the disk filled may be reused for a
	// second; the answer after that is the one that counts.
	time.Sleep(1100 * time.Millisecond)
	fullReady := readyStatus(n.adminAddr)
	t.Logf("disk full (filler of %d KiB): publishes %s; /readyz %d %v after it filled",
		size>>10, summarizeTries(full), fullReady, time.Since(fullAt).Round(time.Millisecond))
	if fullReady != http.StatusServiceUnavailable {
		t.Errorf("/readyz answered %d on a full disk, want 503", fullReady)
	}
	if rc := countTries(full); rc.acked == len(full) {
		t.Errorf("every publish was acknowledged on a full disk: the test did not fill it")
	}

	if err := os.Remove(filler); err != nil {
		t.Fatal(err)
	}
	roomAt := time.Now()
	ready := waitReadyz(t, ctx, n.adminAddr)
	var after publishTry
	for i := range 20 {
		if after = l.publish(ctx, fmt.Sprintf("full_after_%d", i)); after.status == http.StatusAccepted {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if after.status != http.StatusAccepted {
		t.Fatalf("publish with room again: %d %s %v", after.status, after.message, after.err)
	}
	t.Logf("room again: /readyz 200 %v later, a publish acknowledged %v later",
		ready.Sub(roomAt).Round(time.Millisecond), after.end.Sub(roomAt).Round(time.Millisecond))
}
