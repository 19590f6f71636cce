package nanohook

import (
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"
)

func ptr[T any](v T) *T { return &v }

func TestApplyEndpointPatch(t *testing.T) {
	now := time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC)
	disabled := Endpoint{ID: 7, URL: "https://a.example/", Events: []EventType{"task.completed"},
		Status: EndpointDisabled, DisabledReason: "endpoint answered 410 Gone", Description: "d"}
	active := Endpoint{ID: 7, URL: "https://a.example/", Events: []EventType{"task.completed"},
		Status: EndpointActive, Description: "d"}
	for _, c := range []struct {
		name string
		e    Endpoint
		p    EndpointPatch
		want EndpointChange
	}{
		{"empty patch touches only updated_at", active, EndpointPatch{},
			EndpointChange{Endpoint: with(active, func(e *Endpoint) {})}},
		{"new URL is marked for sealing", active, EndpointPatch{URL: ptr("https://b.example/")},
			EndpointChange{URLChanged: true, Endpoint: with(active, func(e *Endpoint) { e.URL = "https://b.example/" })}},
		{"events and description", active, EndpointPatch{Events: []EventType{"task.failed"}, Description: ptr("")},
			EndpointChange{Endpoint: with(active, func(e *Endpoint) { e.Events = []EventType{"task.failed"}; e.Description = "" })}},
		{"re-enabling clears the reason and restarts the failure clock", disabled, EndpointPatch{Status: ptr(EndpointActive)},
			EndpointChange{Reenabled: true, Endpoint: with(disabled, func(e *Endpoint) { e.Status = EndpointActive; e.DisabledReason = "" })}},
		{"re-enabling with a reason keeps it", disabled, EndpointPatch{Status: ptr(EndpointActive), DisabledReason: ptr("note")},
			EndpointChange{Reenabled: true, Endpoint: with(disabled, func(e *Endpoint) { e.Status = EndpointActive; e.DisabledReason = "note" })}},
		{"active again is no re-enabling", active, EndpointPatch{Status: ptr(EndpointActive)},
			EndpointChange{Endpoint: with(active, func(e *Endpoint) {})}},
		{"disabling fails pending deliveries, by its owner", active, EndpointPatch{Status: ptr(EndpointDisabled)},
			EndpointChange{FailPending: true, PendingError: "endpoint disabled: by its owner",
				Endpoint: with(active, func(e *Endpoint) { e.Status = EndpointDisabled })}},
		{"disabling with a reason", active, EndpointPatch{Status: ptr(EndpointDisabled), DisabledReason: ptr("maintenance")},
			EndpointChange{FailPending: true, PendingError: "endpoint disabled: maintenance",
				Endpoint: with(active, func(e *Endpoint) { e.Status = EndpointDisabled; e.DisabledReason = "maintenance" })}},
		{"disabling a disabled endpoint fails what is pending again", disabled, EndpointPatch{Status: ptr(EndpointDisabled)},
			EndpointChange{FailPending: true, PendingError: "endpoint disabled: endpoint answered 410 Gone",
				Endpoint: with(disabled, func(e *Endpoint) {})}},
		{"a reason alone changes no status", active, EndpointPatch{DisabledReason: ptr("x")},
			EndpointChange{Endpoint: with(active, func(e *Endpoint) { e.DisabledReason = "x" })}},
	} {
		t.Run(c.name, func(t *testing.T) {
			c.want.Endpoint.UpdatedAt = now
			got := ApplyEndpointPatch(c.e, c.p, now)
			if !reflect.DeepEqual(got, c.want) {
				t.Errorf("got %+v\nwant %+v", got, c.want)
			}
		})
	}
	t.Run("failing endpoints", func(t *testing.T) {
		since := time.Date(2025, 1, 1, 0, 0, 0, 0, time.FixedZone("x", 3600))
		got := ApplyEndpointPatch(active, DisableFailing("failing for 120h0m0s", since), now)
		reason := "failing for 120h0m0s since 2024-12-31T23:00:00Z"
		if got.Endpoint.Status != EndpointDisabled || got.Endpoint.DisabledReason != reason ||
			!got.FailPending || got.PendingError != "endpoint disabled: "+reason {
			t.Errorf("got %+v", got)
		}
	})
}

func with(e Endpoint, f func(*Endpoint)) Endpoint {
	e.Events = append([]EventType(nil), e.Events...)
	f(&e)
	return e
}

func TestEndUndeliverable(t *testing.T) {
	for _, c := range []struct {
		ep        EndpointState
		status    DeliveryStatus
		lastError string
		ok        bool
	}{
		{EndpointState{Status: EndpointActive}, "", "", false},
		{EndpointState{Status: EndpointActive, Deleted: true}, DeliveryCancelled, "endpoint deleted", true},
		{EndpointState{Status: EndpointDisabled, Deleted: true, DisabledReason: "x"}, DeliveryCancelled, "endpoint deleted", true},
		{EndpointState{Status: EndpointDisabled}, DeliveryFailed, "endpoint disabled: by its owner", true},
		{EndpointState{Status: EndpointDisabled, DisabledReason: "endpoint answered 410 Gone"}, DeliveryFailed,
			"endpoint disabled: endpoint answered 410 Gone", true},
	} {
		status, lastError, ok := EndUndeliverable(c.ep)
		if status != c.status || lastError != c.lastError || ok != c.ok {
			t.Errorf("EndUndeliverable(%+v) = %q, %q, %v; want %q, %q, %v", c.ep, status, lastError, ok, c.status, c.lastError, c.ok)
		}
	}
}

func TestStartDelivery(t *testing.T) {
	for _, c := range []struct {
		ep        EndpointState
		status    DeliveryStatus
		lastError string
	}{
		{EndpointState{Status: EndpointActive}, DeliveryPending, ""},
		{EndpointState{Status: EndpointDisabled}, DeliveryFailed, "endpoint disabled: by its owner"},
		{EndpointState{Status: EndpointDisabled, DisabledReason: "failing for 1h"}, DeliveryFailed, "endpoint disabled: failing for 1h"},
	} {
		status, lastError := StartDelivery(c.ep)
		if status != c.status || lastError != c.lastError {
			t.Errorf("StartDelivery(%+v) = %q, %q; want %q, %q", c.ep, status, lastError, c.status, c.lastError)
		}
	}
}

func TestAttemptHealth(t *testing.T) {
	for status, want := range map[DeliveryStatus][2]bool{
		DeliverySucceeded: {true, true},
		DeliveryPending:   {false, true},
		DeliveryFailed:    {false, true},
		DeliveryCancelled: {false, false},
		"":                {false, false},
	} {
		if ok, told := AttemptHealth(status); ok != want[0] || told != want[1] {
			t.Errorf("AttemptHealth(%q) = %v, %v; want %v, %v", status, ok, told, want[0], want[1])
		}
	}
}

func TestPlanRetry(t *testing.T) {
	now := time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC)
	active := EndpointState{Status: EndpointActive}
	for _, c := range []struct {
		name        string
		status      DeliveryStatus
		leasedUntil time.Time
		ep          EndpointState
		want        RetryAction
		conflict    string
	}{
		{"failed: re-queued", DeliveryFailed, time.Time{}, active, RetryRequeue, ""},
		{"succeeded: re-queued", DeliverySucceeded, time.Time{}, active, RetryRequeue, ""},
		{"queued: due now", DeliveryPending, time.Time{}, active, RetryDueNow, ""},
		{"lease expired: due now", DeliveryPending, now, active, RetryDueNow, ""},
		{"in flight: unchanged", DeliveryPending, now.Add(time.Second), active, RetryNothing, ""},
		{"cancelled", DeliveryCancelled, time.Time{}, active, RetryNothing, EndpointDeletedMessage},
		{"endpoint deleted", DeliveryFailed, time.Time{}, EndpointState{Status: EndpointActive, Deleted: true}, RetryNothing, EndpointDeletedMessage},
		{"deleted beats disabled", DeliveryFailed, time.Time{}, EndpointState{Status: EndpointDisabled, Deleted: true}, RetryNothing, EndpointDeletedMessage},
		{"endpoint disabled", DeliverySucceeded, time.Time{}, EndpointState{Status: EndpointDisabled}, RetryNothing, EndpointDisabledMessage},
	} {
		t.Run(c.name, func(t *testing.T) {
			got, err := PlanRetry(c.status, c.leasedUntil, c.ep, now)
			if got != c.want {
				t.Errorf("action %v, want %v", got, c.want)
			}
			checkConflict(t, err, c.conflict)
		})
	}
}

func checkConflict(t *testing.T, err error, msg string) {
	t.Helper()
	if msg == "" {
		if err != nil {
			t.Errorf("error %v, want none", err)
		}
		return
	}
	var e *Error
	if !errors.As(err, &e) || e.Code != CodeConflict || e.Message != msg {
		t.Errorf("error %#v, want a conflict %q", err, msg)
	}
	if strings.Contains(msg, "PATCH") || strings.Contains(msg, "POST") {
		t.Errorf("message %q names an HTTP method", msg)
	}
}

func TestCheckRecover(t *testing.T) {
	checkConflict(t, CheckRecover(EndpointActive), "")
	checkConflict(t, CheckRecover(EndpointDisabled), EndpointDisabledMessage)
}

func TestCheckEndpointLimit(t *testing.T) {
	for _, c := range []struct {
		live, max int
		refused   bool
	}{{0, 0, false}, {5, 0, false}, {5, -1, false}, {0, 1, false}, {1, 1, true}, {2, 3, false}, {4, 3, true}} {
		err := CheckEndpointLimit(c.live, c.max)
		if (err != nil) != c.refused || err != nil && ErrorCode(err) != CodeConflict {
			t.Errorf("CheckEndpointLimit(%d, %d) = %v", c.live, c.max, err)
		}
	}
}

func TestPreviousSecretValid(t *testing.T) {
	now := time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC)
	if PreviousSecretValid(time.Time{}, now) || PreviousSecretValid(now, now) || !PreviousSecretValid(now.Add(time.Microsecond), now) {
		t.Error("a previous secret is valid strictly before its expiry, never when none was rotated")
	}
}

func TestValidateAccountName(t *testing.T) {
	for _, c := range []struct {
		name string
		msg  string // "": valid
	}{
		{"Acme <Co>", ""},
		{"a", ""},
		{"Café Zoë", ""},
		{strings.Repeat("x", MaxAccountNameLen), ""},
		{"", "name: is required"},
		{strings.Repeat("x", MaxAccountNameLen+1), "name: must be at most 200 bytes"},
		{"a\nb", "name: must not contain control characters"},
		{"a\u0085b", "name: must not contain control characters"},
		{" acme", "name: must not start or end with spaces"},
		{"acme\u00a0", "name: must not start or end with spaces"},
		{"   ", "name: must not start or end with spaces"},
	} {
		err := ValidateAccountName("name", c.name)
		switch {
		case c.msg == "" && err != nil:
			t.Errorf("%q: %v", c.name, err)
		case c.msg != "" && (err == nil || err.Error() != c.msg || ErrorCode(err) != CodeValidation):
			t.Errorf("%q: %v, want %q", c.name, err, c.msg)
		}
	}
}
