//go:build !linux

package main

// raiseFileLimit reports errNoFileLimit: the connection caps then fall
// back to --max-connections or fallbackMaxConnections.
func raiseFileLimit() (fileLimits, error) { return fileLimits{}, errNoFileLimit }
