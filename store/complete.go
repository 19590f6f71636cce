package store

import (
	"strconv"

	"github.com/nanohook/nanohook"
)

// The rules below are how every driver turns CompleteParams into rows;
// they live here so the drivers cannot drift apart.

// FirstPerLease returns results with only the first result of each lease: a
// lease completes once, and should a batch carry the same lease twice, the
// first result wins, as it would one statement at a time. When no lease
// repeats (the usual case) results itself is returned, uncopied.
func FirstPerLease(results []CompleteParams) []CompleteParams {
	seen := make(map[Lease]struct{}, len(results))
	var out []CompleteParams // nil until a repeat is found
	for i, r := range results {
		if _, dup := seen[r.Lease]; dup {
			if out == nil {
				out = append(make([]CompleteParams, 0, len(results)), results[:i]...)
			}
			continue
		}
		seen[r.Lease] = struct{}{}
		if out != nil {
			out = append(out, r)
		}
	}
	if out == nil {
		return results
	}
	return out
}

// LastError is what a delivery shows as the reason of its latest failure
// after this outcome: the attempt's error, or else its HTTP status; a
// success clears it. It is cut as the attempt's error is
// (nanohook.MaxStoredError), whoever built the attempt.
func (p *CompleteParams) LastError() string {
	switch {
	case p.Status == nanohook.DeliverySucceeded:
		return ""
	case p.Attempt.Error != "":
		return nanohook.CutText(p.Attempt.Error, nanohook.MaxStoredError)
	case p.Attempt.ResponseStatus != 0:
		return "HTTP " + strconv.Itoa(p.Attempt.ResponseStatus)
	}
	return ""
}
