package skipnote

import (
	"os"
	"strconv"
	"strings"
)

// goCommandStderr opens the stderr of the go command that runs this test
// binary, or returns nil: when the parent is not the go command, or when
// its stderr is already this process's own (go test run in a package's
// directory streams the binary's output).
func goCommandStderr() *os.File {
	ppid := strconv.Itoa(os.Getppid())
	comm, err := os.ReadFile("/proc/" + ppid + "/comm")
	if err != nil || strings.TrimSpace(string(comm)) != "go" {
		return nil
	}
	f, err := os.OpenFile("/proc/"+ppid+"/fd/2", os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		return nil
	}
	theirs, err1 := f.Stat()
	ours, err2 := os.Stderr.Stat()
	if err1 != nil || err2 != nil || os.SameFile(theirs, ours) {
		f.Close()
		return nil
	}
	return f
}
