package sqlite

import "testing"

// sqliteMaxVariables is SQLite's default SQLITE_MAX_VARIABLE_NUMBER since
// 3.32.0: no statement may bind more values.
const sqliteMaxVariables = 32766

// TestChunkVariables checks that the widest multi-row statement, at its
// largest chunk, binds fewer values than SQLite allows.
func TestChunkVariables(t *testing.T) {
	for name, cols := range map[string]int{"insert attempts": insertAttemptsCols, "complete deliveries": 7} {
		if n := chunkRows * cols; n > sqliteMaxVariables {
			t.Errorf("%s: %d rows of %d values bind %d, more than %d", name, chunkRows, cols, n, sqliteMaxVariables)
		}
	}
}
