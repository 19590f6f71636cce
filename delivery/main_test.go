package delivery_test

import (
	"os"
	"testing"

	"go.uber.org/goleak"

	"github.com/nanohook/nanohook/internal/skipnote"
)

// TestMain fails the package if a test leaves goroutines behind: the engine
// starts many, and Stop must end every one of them.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m, goleak.Cleanup(func(code int) {
		skipnote.Report("github.com/nanohook/nanohook/delivery")
		os.Exit(code)
	}))
}
