package main

import "errors"

// fileLimits is the process's limit on open files (RLIMIT_NOFILE).
type fileLimits struct {
	before uint64 // the soft limit found at start
	soft   uint64 // the soft limit in force: 0 when unknown
	hard   uint64
}

// errNoFileLimit is why the open-file limit is not known on this system.
var errNoFileLimit = errors.New("the open-file limit is read on Linux only")
