//go:build !linux

package skipnote

import "os"

// goCommandStderr is Linux-only: elsewhere Report writes to stderr, which a
// plain `go test ./...` shows only for a failing package or with -v.
func goCommandStderr() *os.File { return nil }
