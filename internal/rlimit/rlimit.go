// Package rlimit reads and raises the process's limit on open files
// (RLIMIT_NOFILE), for serve's connection caps and for the bench, whose
// receiver holds a connection per attempt in flight.
package rlimit

import "errors"

// Files is the process's limit on open files (RLIMIT_NOFILE).
type Files struct {
	Before uint64 // the soft limit found at start
	Soft   uint64 // the soft limit in force: 0 when unknown
	Hard   uint64
}

// ErrUnknown is why the open-file limit is not known on this system.
var ErrUnknown = errors.New("the open-file limit is read on Linux only")
