//go:build race

package delivery_test

// raceEnabled: the race detector allows at most 8,128 live goroutines, so
// tests that hold thousands of connections scale down under it.
const raceEnabled = true
