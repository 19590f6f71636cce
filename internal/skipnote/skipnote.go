// Package skipnote makes skipped tests visible in a plain `go test ./...`.
//
// A test that needs what a machine may lack (a PostgreSQL database, a
// browser, Node.js modules) skips without it, and `go test ./...` then
// prints only "ok" for its package: the go command shows a passing
// package's output only with -v. A test skips through Skip, which records
// why; the package's TestMain calls Report after m.Run, which prints one
// line naming what was skipped and how to run it.
package skipnote

import (
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
)

// PostgresEnv names the database the PostgreSQL tests use; they skip
// without it.
const PostgresEnv = "NANOHOOK_TEST_POSTGRES_URL"

// PostgresHowTo says how to run the PostgreSQL tests.
const PostgresHowTo = "set " + PostgresEnv + ", e.g. postgres://postgres@127.0.0.1:5432/test?sslmode=disable"

// reason is one thing a test skipped for.
type reason struct{ what, howTo string }

var (
	mu      sync.Mutex
	reasons []reason // in the order first seen, each once
)

// Skip skips tb because what cannot run here, and records it for Report;
// howTo says how to run it.
func Skip(tb testing.TB, what, howTo string) {
	tb.Helper()
	mu.Lock()
	if r := (reason{what, howTo}); !slices.Contains(reasons, r) {
		reasons = append(reasons, r)
	}
	mu.Unlock()
	tb.Skipf("skipped %s (%s)", what, howTo)
}

// SkipWithoutPostgres returns the PostgreSQL test database's URL, or skips
// tb (what names the tests) when PostgresEnv is not set.
func SkipWithoutPostgres(tb testing.TB, what string) string {
	tb.Helper()
	u := os.Getenv(PostgresEnv)
	if u == "" {
		Skip(tb, what, PostgresHowTo)
	}
	return u
}

// Line is the line Report prints for pkg, or "" when no test skipped.
func Line(pkg string) string {
	mu.Lock()
	defer mu.Unlock()
	if len(reasons) == 0 {
		return ""
	}
	parts := make([]string, len(reasons))
	for i, r := range reasons {
		parts[i] = fmt.Sprintf("skipped %s (%s)", r.what, r.howTo)
	}
	return pkg + ": " + strings.Join(parts, "; ")
}

// Report prints Line(pkg), if any, for the person who ran the tests. It
// goes to stderr; under a plain `go test ./...`, which drops a passing
// package's output, to the go command's own stderr instead, so that the
// line shows beside the package's "ok".
func Report(pkg string) {
	line := Line(pkg)
	if line == "" {
		return
	}
	var w io.Writer = os.Stderr
	if !testing.Verbose() {
		if f := goCommandStderr(); f != nil {
			defer f.Close()
			w = f
		}
	}
	fmt.Fprintln(w, line)
}
