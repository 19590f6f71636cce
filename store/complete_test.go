package store

import (
	"testing"

	"github.com/nanohook/nanohook"
)

func TestFirstPerLease(t *testing.T) {
	r := func(id, token int64, status nanohook.DeliveryStatus) CompleteParams {
		return CompleteParams{Lease: Lease{DeliveryID: id, Token: token}, Status: status}
	}
	unique := []CompleteParams{r(1, 7, "succeeded"), r(2, 7, "failed"), r(1, 8, "pending")}
	if got := FirstPerLease(unique); &got[0] != &unique[0] || len(got) != 3 {
		t.Errorf("no repeated lease: got %v, want the input itself", got)
	}
	repeated := []CompleteParams{r(1, 7, "succeeded"), r(2, 7, "failed"), r(1, 7, "pending"), r(3, 7, "failed"), r(2, 7, "succeeded")}
	got := FirstPerLease(repeated)
	want := []CompleteParams{repeated[0], repeated[1], repeated[3]}
	if len(got) != len(want) {
		t.Fatalf("got %v, want %v", got, want)
	}
	for i := range want {
		if got[i].Lease != want[i].Lease || got[i].Status != want[i].Status {
			t.Errorf("result %d = %+v, want %+v (the first per lease, in order)", i, got[i], want[i])
		}
	}
	if repeated[2].Status != "pending" {
		t.Error("the input was modified")
	}
}

func TestLastError(t *testing.T) {
	for _, c := range []struct {
		p    CompleteParams
		want string
	}{
		{CompleteParams{Status: nanohook.DeliverySucceeded, Attempt: nanohook.Attempt{Error: "ignored", ResponseStatus: 200}}, ""},
		{CompleteParams{Status: nanohook.DeliveryPending, Attempt: nanohook.Attempt{Error: "timeout: no response within 15s"}}, "timeout: no response within 15s"},
		{CompleteParams{Status: nanohook.DeliveryFailed, Attempt: nanohook.Attempt{ResponseStatus: 502}}, "HTTP 502"},
		{CompleteParams{Status: nanohook.DeliveryFailed}, ""},
	} {
		if got := c.p.LastError(); got != c.want {
			t.Errorf("LastError of %+v = %q, want %q", c.p, got, c.want)
		}
	}
}
