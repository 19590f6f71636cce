//go:build !race

package delivery_test

// raceEnabled: see race_on_test.go.
const raceEnabled = false
