//go:build !linux

package rlimit

// Raise reports ErrUnknown: serve's connection caps then fall back to
// --max-connections or their fallback.
func Raise() (Files, error) { return Files{}, ErrUnknown }
