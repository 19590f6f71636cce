package delivery_test

import (
	"testing"

	"go.uber.org/goleak"
)

// TestMain fails the package if a test leaves goroutines behind: the engine
// starts many, and Stop must end every one of them.
func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }
