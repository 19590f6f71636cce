//go:build linux

// Helpers shared by the crash-consistency and soak tests (issue 6): one
// real "nanohook serve" child on a SQLite file, set up and inspected from
// outside the way an operator would (admin and public API, the database
// file, /metrics).

package main

import (
	"context"
	"database/sql"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"runtime/debug"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"
)

// relAdminToken is the NANOHOOK_ADMIN_TOKEN of the reliability tests' children.
const relAdminToken = "reliability-admin-token"

// sqliteChild is one serve child on a SQLite file of the test's own.
type sqliteChild struct {
	*nodeProc
	db string // the SQLite file
}

// startSQLiteChild starts "nanohook serve" on a fresh SQLite file with
// loopback plain-http endpoints allowed, JSON logs (waitReady reads the node
// id from them) and the given extra flags, and waits until it is ready. The
// child is killed when the test ends, and its logs are reported then if the
// test failed.
func startSQLiteChild(t *testing.T, name string, flags ...string) *sqliteChild {
	t.Helper()
	return startSQLiteChildEnv(t, name, nil, flags...)
}

// startSQLiteChildEnv is startSQLiteChild with extra environment for the
// child (NANOHOOK_* settings, as KEY=value).
func startSQLiteChildEnv(t *testing.T, name string, env []string, flags ...string) *sqliteChild {
	t.Helper()
	dir, err := os.MkdirTemp("", "nanohook-"+strings.ReplaceAll(t.Name(), "/", "_")+"-")
	if err != nil {
		t.Fatal(err)
	}
	addrs := freeAddrs(t, 2)
	c := &sqliteChild{
		nodeProc: &nodeProc{
			name: name, addr: addrs[0], adminAddr: addrs[1], logDir: dir,
			env: childEnv(append([]string{"NANOHOOK_ADMIN_TOKEN=" + relAdminToken}, env...)...),
		},
		db: filepath.Join(t.TempDir(), "nanohook.db"),
	}
	c.args = append([]string{"serve", "--db", c.db, "--addr", c.addr, "--admin-addr", c.adminAddr,
		"--allow-http", "--allow-private-targets", "--log-format", "json"}, flags...)
	// Cleanups run last-registered first: the child dies before its logs
	// are read.
	t.Cleanup(func() {
		if !t.Failed() {
			os.RemoveAll(dir)
			return
		}
		t.Logf("%s:\n%s", c.name, c.logTail(40))
		t.Logf("logs are kept in %s", dir)
	})
	t.Cleanup(func() {
		if err := c.kill(); err != nil {
			t.Error(err)
		}
	})
	if err := c.start(); err != nil {
		t.Fatal(err)
	}
	c.mustBeReady(t)
	return c
}

// mustBeReady waits for the current incarnation to answer. The bound is
// generous: under -race on a loaded 2-core machine a start (migrations
// included) takes seconds, not milliseconds.
func (c *sqliteChild) mustBeReady(t *testing.T) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := c.waitReady(ctx); err != nil {
		t.Fatal(err)
	}
}

// stopGracefully sends SIGTERM and requires exit status 0 (a race report
// would make it 66) within shutdownTimeout plus a few seconds to close
// storage, and no data race in any incarnation's log.
func (c *sqliteChild) stopGracefully(t *testing.T, shutdownTimeout time.Duration) {
	t.Helper()
	took, exit, err := c.terminate(shutdownTimeout + 5*time.Second)
	switch {
	case err != nil:
		t.Error(err)
	case exit != nil:
		t.Errorf("%s exited with %v after SIGTERM (took %v), want status 0", c.name, exit, took)
	}
	if races := c.logCount("WARNING: DATA RACE"); races > 0 {
		t.Errorf("%s reported %d data races (see its log)", c.name, races)
	}
}

// createAccount creates an account through the admin API and returns its
// id and API key.
func (c *sqliteChild) createAccount(t *testing.T, name string) (int64, string) {
	t.Helper()
	status, env := apiCall(t, "POST", "http://"+c.adminAddr+"/admin/v1/accounts", relAdminToken,
		fmt.Sprintf(`{"name":%q}`, name))
	if status != http.StatusCreated {
		t.Fatalf("create account %q: %d %v", name, status, env)
	}
	d := dataOf(t, env)
	return int64(d["id"].(float64)), d["api_key"].(string)
}

// createEndpoint registers an endpoint through the public API, as the
// account's owner does, and returns its id.
func (c *sqliteChild) createEndpoint(t *testing.T, apiKey, url, secret string, events ...string) int64 {
	t.Helper()
	quoted := make([]string, len(events))
	for i, e := range events {
		quoted[i] = fmt.Sprintf("%q", e)
	}
	status, env := apiCall(t, "POST", "http://"+c.addr+"/api/v1/webhooks", apiKey,
		fmt.Sprintf(`{"url":%q,"events":[%s],"secret_key":%q}`, url, strings.Join(quoted, ","), secret))
	if status != http.StatusCreated {
		t.Fatalf("create endpoint %s: %d %v", url, status, env)
	}
	return int64(dataOf(t, env)["id"].(float64))
}

// openReadOnly opens the child's SQLite file read-only from the test
// process. It works whether the child runs (WAL lets readers in beside the
// writer) or was just killed: a read-only connection reads the write-ahead
// log the dead process left and never checkpoints it, so the next
// incarnation still starts from exactly the state the kill left.
func openReadOnly(t *testing.T, path string) *sql.DB {
	t.Helper()
	db, err := sql.Open("sqlite", "file:"+path+"?mode=ro&_pragma=busy_timeout(5000)&_pragma=query_only(1)")
	if err != nil {
		t.Fatalf("open %s read-only: %v", path, err)
	}
	db.SetMaxOpenConns(1)
	return db
}

// checkSQLiteFile runs PRAGMA integrity_check and PRAGMA foreign_key_check
// (the schema uses foreign keys) on a SQLite file and fails the test on
// anything but a clean answer. what names the moment, for the message.
func checkSQLiteFile(t *testing.T, db *sql.DB, what string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	rows, err := db.QueryContext(ctx, "PRAGMA integrity_check")
	if err != nil {
		t.Fatalf("%s: PRAGMA integrity_check: %v", what, err)
	}
	var problems []string
	for rows.Next() {
		var s string
		if err := rows.Scan(&s); err != nil {
			t.Fatal(err)
		}
		problems = append(problems, s)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		t.Fatalf("%s: PRAGMA integrity_check: %v", what, err)
	}
	if !slices.Equal(problems, []string{"ok"}) {
		t.Errorf("%s: PRAGMA integrity_check: %s", what, strings.Join(problems, "; "))
	}
	rows, err = db.QueryContext(ctx, "PRAGMA foreign_key_check")
	if err != nil {
		t.Fatalf("%s: PRAGMA foreign_key_check: %v", what, err)
	}
	violations := 0
	for rows.Next() {
		violations++
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		t.Fatalf("%s: PRAGMA foreign_key_check: %v", what, err)
	}
	if violations > 0 {
		t.Errorf("%s: PRAGMA foreign_key_check: %d rows refer to missing parents", what, violations)
	}
}

// raceBuild reports whether this binary (and so every child, which is the
// same binary) was built with -race, which makes it several times slower:
// load tests scale their rates by it so that they measure the service, not
// an overloaded machine.
func raceBuild() bool {
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return false
	}
	for _, s := range bi.Settings {
		if s.Key == "-race" {
			return s.Value == "true"
		}
	}
	return false
}

// dumpGoroutines makes the child print every goroutine's stack (SIGQUIT:
// the Go runtime dumps them to stderr, which is its log, and exits) and
// returns the most frequent kinds, for a test that found too many: the
// state, the function on top of the stack and the one that started it.
// The child is gone afterwards.
func (c *sqliteChild) dumpGoroutines(t *testing.T) string {
	t.Helper()
	if c.exited() {
		return "(the child has exited)"
	}
	if err := c.cmd.Process.Signal(syscall.SIGQUIT); err != nil {
		return fmt.Sprintf("SIGQUIT: %v", err)
	}
	select {
	case <-c.done:
	case <-time.After(10 * time.Second):
		return "(no goroutine dump: the child did not exit 10 s after SIGQUIT)"
	}
	data, err := os.ReadFile(c.logs[len(c.logs)-1])
	if err != nil {
		return err.Error()
	}
	counts := map[string]int{}
	for _, block := range strings.Split(string(data), "\n\ngoroutine ") {
		lines := strings.Split(block, "\n")
		_, state, ok := strings.Cut(lines[0], " [")
		if !ok || len(lines) < 2 {
			continue
		}
		state, _, _ = strings.Cut(state, ",")
		top := "" // the first frame outside the runtime
		for _, l := range lines[1:] {
			if !strings.HasPrefix(l, "runtime.") && !strings.HasPrefix(l, "\t") && !strings.HasPrefix(l, "created by ") {
				top = l[:max(0, strings.LastIndex(l, "("))] // without the arguments
				break
			}
		}
		creator := ""
		for _, l := range lines {
			if rest, ok := strings.CutPrefix(l, "created by "); ok {
				creator, _, _ = strings.Cut(rest, " in goroutine")
			}
		}
		counts[fmt.Sprintf("[%s] %s, created by %s", strings.TrimSuffix(state, "]:"), top, creator)]++
	}
	kinds := make([]string, 0, len(counts))
	for k := range counts {
		kinds = append(kinds, k)
	}
	slices.SortFunc(kinds, func(a, b string) int { return counts[b] - counts[a] })
	var b strings.Builder
	for _, k := range kinds[:min(15, len(kinds))] {
		fmt.Fprintf(&b, "\n  %4d %s", counts[k], k)
	}
	return b.String()
}
