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
	RescueExpiredLeases(ctx context.Context, now time.Time) (int64, error)
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
// endpoint's deliveries oldest first; leases expired at p.Now are rescued
// first. It is for tools and tests that want "whatever is due"; the
// delivery engine plans fair per-endpoint quotas itself.
func ClaimDue(ctx context.Context, s Claimer, p ClaimDueParams) ([]ClaimedDelivery, error) {
	if _, err := s.RescueExpiredLeases(ctx, p.Now); err != nil {
		return nil, err
	}
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

// MergeQuotas is how a driver reads p.Quotas: one quota per endpoint, in
// the order each endpoint first appears, with the limits of an endpoint
// listed twice added up, and quotas of no more than zero left out. A
// driver claims the merged quotas (each endpoint's rows once, in one
// place: a statement that claimed one endpoint twice would find its own
// leases twice) and GroupByQuota puts the claims back in the caller's
// order.
func MergeQuotas(quotas []EndpointQuota) []EndpointQuota {
	out := make([]EndpointQuota, 0, len(quotas))
	at := make(map[int64]int, len(quotas))
	for _, q := range quotas {
		if q.Limit <= 0 {
			continue
		}
		if i, ok := at[q.EndpointID]; ok {
			out[i].Limit += q.Limit
			continue
		}
		at[q.EndpointID] = len(out)
		out = append(out, q)
	}
	return out
}

// GroupByQuota orders the claims of one ClaimDeliveries call as the
// contract promises: grouped by quota in quota order, each group oldest
// first, an endpoint listed twice giving its oldest claims to its first
// quota. claims must hold each endpoint's claims oldest first (their
// order across endpoints does not matter), as many as MergeQuotas allowed.
// When no endpoint is listed twice, claims already grouped in the order
// of MergeQuotas come back as they are.
func GroupByQuota(quotas []EndpointQuota, claims []ClaimedDelivery) []ClaimedDelivery {
	byEndpoint := make(map[int64][]ClaimedDelivery, len(quotas))
	for _, c := range claims {
		byEndpoint[c.EndpointID] = append(byEndpoint[c.EndpointID], c)
	}
	out := make([]ClaimedDelivery, 0, len(claims))
	for _, q := range quotas {
		if q.Limit <= 0 {
			continue
		}
		rest := byEndpoint[q.EndpointID]
		n := min(q.Limit, len(rest))
		out = append(out, rest[:n]...)
		byEndpoint[q.EndpointID] = rest[n:]
	}
	return out
}
