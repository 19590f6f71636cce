//go:build linux

package main

import (
	"fmt"
	"syscall"
)

// raiseFileLimit raises this process's soft limit of open files to its
// hard limit, as the inflight scenario's receiver holds one connection per
// attempt in flight; it fails, saying what to change, when even the hard
// limit is below need. serve children inherit the raised limit.
func raiseFileLimit(need int) error {
	var l syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &l); err != nil {
		return fmt.Errorf("reading the limit of open files: %w", err)
	}
	if l.Max < uint64(need) {
		return fmt.Errorf("the hard limit of open files is %d, and this scenario needs about %d (a connection per attempt held, and spare): "+
			"raise it (ulimit -Hn as root, LimitNOFILE= in a systemd unit, --ulimit nofile= for a container)", l.Max, need)
	}
	if l.Cur < l.Max {
		l.Cur = l.Max
		if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &l); err != nil {
			return fmt.Errorf("raising the soft limit of open files to %d: %w", l.Max, err)
		}
	}
	return nil
}
