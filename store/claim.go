package store

import (
	"context"
	"slices"
	"time"
)

// Claimer is the part of a Store that leases due work.
type Claimer interface {
	QueueHeads(ctx context.Context) ([]QueueHead, error)
	ClaimDeliveries(ctx context.Context, p ClaimParams) ([]ClaimedDelivery, error)
}

// ClaimDueParams asks ClaimDue for up to Limit due deliveries.
type ClaimDueParams struct {
	Now        time.Time
	LeaseUntil time.Time
	Owner      string
	Limit      int
}

// ClaimDue leases up to p.Limit due deliveries of any endpoints, taking
// endpoints in the order their heads fell due (oldest first) and each
// endpoint's deliveries oldest first. It is for tools and tests that want
// "whatever is due"; the delivery engine plans fair per-endpoint quotas
// itself.
func ClaimDue(ctx context.Context, s Claimer, p ClaimDueParams) ([]ClaimedDelivery, error) {
	heads, err := s.QueueHeads(ctx)
	if err != nil {
		return nil, err
	}
	heads = DueHeads(heads, p.Now)
	slices.SortStableFunc(heads, func(a, b QueueHead) int { return a.DueAt.Compare(b.DueAt) })
	out := []ClaimedDelivery{}
	for _, h := range heads {
		if len(out) >= p.Limit {
			break
		}
		got, err := s.ClaimDeliveries(ctx, ClaimParams{Now: p.Now, LeaseUntil: p.LeaseUntil, Owner: p.Owner,
			Quotas: []EndpointQuota{{EndpointID: h.EndpointID, Limit: p.Limit - len(out)}}})
		if err != nil {
			return out, err
		}
		out = append(out, got...)
	}
	return out, nil
}

// DueHeads returns the heads of heads that are due at now (DueAt not after
// it), in the same order, in a new slice.
func DueHeads(heads []QueueHead, now time.Time) []QueueHead {
	out := make([]QueueHead, 0, len(heads))
	for _, h := range heads {
		if !h.DueAt.After(now) {
			out = append(out, h)
		}
	}
	return out
}

// NextDueAt is the earliest head of heads, when the next work falls due (it
// may be past); ok is false when heads is empty.
func NextDueAt(heads []QueueHead) (t time.Time, ok bool) {
	for i, h := range heads {
		if i == 0 || h.DueAt.Before(t) {
			t = h.DueAt
		}
	}
	return t, len(heads) > 0
}
