package store

import (
	"slices"
	"testing"
)

func TestMergeQuotas(t *testing.T) {
	got := MergeQuotas([]EndpointQuota{{7, 2}, {3, 0}, {5, 1}, {7, 3}, {9, -1}, {5, 4}, {3, 2}})
	want := []EndpointQuota{{7, 5}, {5, 5}, {3, 2}}
	if !slices.Equal(got, want) {
		t.Errorf("MergeQuotas = %v, want %v (first place, limits added, none of 0 or less)", got, want)
	}
	if got := MergeQuotas(nil); len(got) != 0 {
		t.Errorf("MergeQuotas(nil) = %v", got)
	}
}

func TestGroupByQuota(t *testing.T) {
	c := func(endpoint, id int64) ClaimedDelivery {
		return ClaimedDelivery{Lease: Lease{DeliveryID: id}, EndpointID: endpoint}
	}
	ids := func(cs []ClaimedDelivery) []int64 {
		var out []int64
		for _, c := range cs {
			out = append(out, c.DeliveryID)
		}
		return out
	}
	quotas := []EndpointQuota{{7, 2}, {5, 1}, {3, 0}, {7, 2}}
	// As a driver returns them for MergeQuotas(quotas): endpoint 7's four
	// (it had only three), then 5's one; endpoints in any order.
	claims := []ClaimedDelivery{c(5, 50), c(7, 70), c(7, 71), c(7, 72)}
	if got, want := ids(GroupByQuota(quotas, claims)), []int64{70, 71, 50, 72}; !slices.Equal(got, want) {
		t.Errorf("GroupByQuota = %v, want %v", got, want)
	}
	// Without repeats, claims in merged order come back as they are.
	quotas = []EndpointQuota{{7, 3}, {5, 2}}
	claims = []ClaimedDelivery{c(7, 70), c(7, 71), c(5, 50)}
	if got, want := ids(GroupByQuota(quotas, claims)), []int64{70, 71, 50}; !slices.Equal(got, want) {
		t.Errorf("GroupByQuota = %v, want %v", got, want)
	}
}
