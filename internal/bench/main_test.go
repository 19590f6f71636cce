package bench

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"

	"go.uber.org/goleak"

	"github.com/nanohook/nanohook/internal/skipnote"
)

// binDir holds the nanohook the tests build, for the bench's serve children.
var binDir string

func TestMain(m *testing.M) {
	var err error
	if binDir, err = os.MkdirTemp("", "nanohook-bench-test-"); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(binDir)
	skipnote.Report("github.com/nanohook/nanohook/internal/bench")
	// Every serve child has been waited for and every receiver closed by
	// now: a goroutine still running is a leak in the bench.
	if code == 0 {
		if err := goleak.Find(); err != nil {
			fmt.Fprintf(os.Stderr, "goleak: goroutines left running after the tests: %v\n", err)
			code = 1
		}
	}
	os.Exit(code)
}

var (
	buildOnce sync.Once
	binPath   string
	buildErr  error
)

// nanohookBinary builds cmd/nanohook once for the whole test binary, with
// the race detector when the tests have it (the quick sizes are chosen to
// fit its limits), and returns its path.
func nanohookBinary(t *testing.T) string {
	t.Helper()
	buildOnce.Do(func() {
		path := filepath.Join(binDir, "nanohook")
		args := []string{"build", "-o", path}
		if raceEnabled {
			args = append(args, "-race")
		}
		// go test puts its own toolchain first on PATH.
		cmd := exec.Command("go", append(args, "github.com/nanohook/nanohook/cmd/nanohook")...)
		if out, err := cmd.CombinedOutput(); err != nil {
			buildErr = fmt.Errorf("go build ./cmd/nanohook: %v\n%s", err, out)
			return
		}
		binPath = path
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return binPath
}
