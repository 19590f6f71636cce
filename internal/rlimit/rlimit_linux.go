//go:build linux

package rlimit

import "syscall"

// Raise raises the soft limit on open files (RLIMIT_NOFILE) to the hard
// limit, as far as the kernel allows, so that connection caps can be sized
// from the most the process may have. Go's os package does the same when a
// program starts (since Go 1.19); doing it here again keeps the figures
// that are logged and sized from in one place, whatever the runtime did.
// The returned limits are valid even with an error.
func Raise() (Files, error) {
	var r syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &r); err != nil {
		return Files{}, err
	}
	fl := Files{Before: r.Cur, Soft: r.Cur, Hard: r.Max}
	if r.Cur >= r.Max {
		return fl, nil
	}
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &syscall.Rlimit{Cur: r.Max, Max: r.Max}); err != nil {
		return fl, err
	}
	fl.Soft = r.Max
	return fl, nil
}
