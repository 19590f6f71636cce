//go:build !linux

package bench

import (
	"errors"
	"syscall"
)

// errNoProc is why the bench reports no CPU or memory figures here: it reads
// them from Linux's /proc.
var errNoProc = errors.New("CPU and memory figures need Linux's /proc")

func childProcAttr() *syscall.SysProcAttr { return nil }

func procCPUSeconds(int) (float64, error) { return 0, errNoProc }

func procMemory(int) (rss, peak int64, err error) { return 0, 0, errNoProc }
