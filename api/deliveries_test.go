package api_test

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"reflect"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nanohook/nanohook"
	"github.com/nanohook/nanohook/api"
	"github.com/nanohook/nanohook/store"
)

// histSeq makes event ids and idempotency keys unique.
var histSeq atomic.Int64

// publishAt publishes one event through the store, created at the given
// time (the API's clock is fixed, and history tests need several times).
func (b *bundle) publishAt(t *testing.T, accountID int64, typ nanohook.EventType, at time.Time) string {
	t.Helper()
	n := histSeq.Add(1)
	id := fmt.Sprintf("evt_hist_%d", n)
	_, err := b.store.PublishEvents(context.Background(), []store.PublishEventParams{{
		ID: id, AccountID: accountID, Type: typ, TaskID: fmt.Sprintf("task_%d", n), TaskType: "image",
		IdempotencyKey: id, Payload: []byte(`{}`), OccurredAt: at, Now: at,
	}})
	if err != nil {
		t.Fatal(err)
	}
	return id
}

// attempt claims the one delivery due at at and completes it as given.
func (b *bundle) attempt(t *testing.T, at time.Time, status nanohook.DeliveryStatus, a nanohook.Attempt, next time.Time) store.ClaimedDelivery {
	t.Helper()
	ctx := context.Background()
	cs, err := store.ClaimDue(ctx, b.store, store.ClaimDueParams{Now: at, LeaseUntil: at.Add(time.Minute), Limit: 1, Owner: "test"})
	if err != nil || len(cs) != 1 {
		t.Fatalf("claim at %v: %d, %v", at, len(cs), err)
	}
	c := cs[0]
	a.DeliveryID, a.Number, a.StartedAt = c.DeliveryID, c.Attempt, at
	if a.Duration == 0 {
		a.Duration = 1500 * time.Millisecond
	}
	if err := b.store.CompleteDeliveries(ctx, []store.CompleteParams{{
		Lease: c.Lease, Attempt: a, Status: status, NextAttemptAt: next, EndpointID: c.EndpointID, Now: at,
	}}); err != nil {
		t.Fatal(err)
	}
	return c
}

// history is an account with one webhook and three deliveries to it, an
// hour apart:
//
//	0  job.completed  failed     (HTTP 500)
//	1  job.failed     succeeded
//	2  job.completed  pending    (retry due at testNow + 1h)
type history struct {
	*bundle
	accountID  int64
	key        string
	webhook    int64
	deliveries []int64 // by index above
}

func setupHistory(t *testing.T) *history {
	t.Helper()
	b := setup(t)
	h := &history{bundle: b}
	h.accountID, h.key = b.newAccount(t, "acme")
	h.webhook = b.newWebhook(t, h.key, "https://hooks.example.com/a")
	types := []nanohook.EventType{nanohook.EventJobCompleted, nanohook.EventJobFailed, nanohook.EventJobCompleted}
	for i, typ := range types {
		at := testNow.Add(time.Duration(i-3) * time.Hour)
		b.publishAt(t, h.accountID, typ, at)
	}
	for i, st := range []nanohook.DeliveryStatus{nanohook.DeliveryFailed, nanohook.DeliverySucceeded, nanohook.DeliveryPending} {
		code := 500
		if st == nanohook.DeliverySucceeded {
			code = 200
		}
		c := b.attempt(t, testNow.Add(time.Duration(i-3)*time.Hour+time.Minute), st,
			nanohook.Attempt{ResponseStatus: code, ResponseBody: "answer"}, testNow.Add(time.Hour))
		h.deliveries = append(h.deliveries, c.DeliveryID)
	}
	return h
}

// listed returns the delivery ids of a listing and its next_cursor.
func (h *history) listed(t *testing.T, query string) ([]int64, any) {
	t.Helper()
	r := h.pub(t, "GET", fmt.Sprintf("/api/v1/webhooks/%d/deliveries%s", h.webhook, query), h.key, "")
	data, ok := r.wantSuccess(t, http.StatusOK).([]any)
	if !ok {
		t.Fatalf("data is not an array: %s", r.raw)
	}
	ids := []int64{}
	for _, d := range data {
		ids = append(ids, int64(d.(map[string]any)["id"].(float64)))
	}
	return ids, r.body["next_cursor"]
}

// want is the history's deliveries with these indexes, newest first.
func (h *history) want(idx ...int) []int64 {
	out := []int64{}
	for _, i := range slices.Backward(idx) {
		out = append(out, h.deliveries[i])
	}
	return out
}

func TestDeliveryList(t *testing.T) {
	t.Parallel()
	h := setupHistory(t)

	r := h.pub(t, "GET", fmt.Sprintf("/api/v1/webhooks/%d/deliveries", h.webhook), h.key, "")
	data := r.wantSuccess(t, http.StatusOK).([]any)
	if _, ok := r.body["next_cursor"]; !ok || r.body["next_cursor"] != nil {
		t.Fatalf("next_cursor should be present and null: %s", r.raw)
	}
	if len(data) != 3 {
		t.Fatalf("%d deliveries: %s", len(data), r.raw)
	}
	failed := data[2].(map[string]any)
	wantKeys := []string{"attempt_count", "created_at", "event", "event_id", "id", "last_error", "next_attempt_at", "status", "updated_at", "webhook_id"}
	if got := keysOf(failed); !slices.Equal(got, wantKeys) {
		t.Fatalf("delivery keys %v, want %v", got, wantKeys)
	}
	for k, v := range map[string]any{
		"id": float64(h.deliveries[0]), "webhook_id": float64(h.webhook), "event": "job.completed", "status": "failed",
		"attempt_count": float64(1), "next_attempt_at": nil, "last_error": "HTTP 500",
		"created_at": "2024-12-23T07:00:00Z", "updated_at": "2024-12-23T07:01:00Z",
	} {
		if failed[k] != v {
			t.Errorf("%s = %v, want %v", k, failed[k], v)
		}
	}
	pending := data[0].(map[string]any)
	if pending["next_attempt_at"] != "2024-12-23T11:00:00Z" || pending["status"] != "pending" {
		t.Errorf("pending delivery: %v", pending)
	}
	if succeeded := data[1].(map[string]any); succeeded["last_error"] != nil || succeeded["next_attempt_at"] != nil {
		t.Errorf("succeeded delivery: %v", succeeded)
	}

	for _, tc := range []struct {
		query string
		want  []int
	}{
		{"", []int{0, 1, 2}},
		{"?status=failed", []int{0}},
		{"?status=pending", []int{2}},
		{"?status=cancelled", nil},
		{"?event=job.failed", []int{1}},
		{"?event=job.completed", []int{0, 2}},
		{"?since=2024-12-23T08:00:00Z", []int{1, 2}},
		{"?until=2024-12-23T08:00:00Z", []int{0}},
		{"?since=2024-12-23T07:30:00Z&until=2024-12-23T09:00:00Z", []int{1}},
		{"?status=pending&event=job.completed&since=2024-12-23T07:00:00Z", []int{2}},
		{"?since=" + url.QueryEscape("2024-12-23T09:00:00+01:00"), []int{1, 2}},
	} {
		got, _ := h.listed(t, tc.query)
		if want := h.want(tc.want...); !slices.Equal(got, want) {
			t.Errorf("%q: ids %v, want %v", tc.query, got, want)
		}
	}
}

func TestDeliveryPagination(t *testing.T) {
	t.Parallel()
	h := setupHistory(t)
	for i := range 4 {
		h.publishAt(t, h.accountID, nanohook.EventJobCompleted, testNow.Add(time.Duration(i)*time.Second))
	}
	all, next := h.listed(t, "")
	if len(all) != 7 || next != nil {
		t.Fatalf("all: %v, next %v", all, next)
	}
	var paged []int64
	query := "?limit=3&status=pending"
	for range 5 {
		ids, next := h.listed(t, query)
		paged = append(paged, ids...)
		if next == nil {
			break
		}
		query = "?limit=3&status=pending&cursor=" + next.(string)
	}
	// Every delivery but the failed and the succeeded one is pending.
	want := slices.DeleteFunc(slices.Clone(all), func(id int64) bool { return id == h.deliveries[0] || id == h.deliveries[1] })
	if !slices.Equal(paged, want) {
		t.Fatalf("paged %v, want %v", paged, want)
	}
	// A short page names the next one.
	ids, next := h.listed(t, "?limit=1")
	if len(ids) != 1 || next == nil {
		t.Fatalf("limit=1: %v, next %v", ids, next)
	}
}

func TestDeliveryBadParameters(t *testing.T) {
	t.Parallel()
	h := setupHistory(t)
	for _, tc := range []struct{ query, field string }{
		{"?status=done", "status"},
		{"?status=", "status"},
		{"?event=job.done", "event"},
		{"?since=yesterday", "since"},
		{"?until=2024-12-23", "until"},
		{"?limit=0", "limit"},
		{"?limit=101", "limit"},
		{"?cursor=zzz", "cursor"},
		{"?task_id=", "task_id"},
		{"?task_id=" + strings.Repeat("t", nanohook.MaxTaskIDLen+1), "task_id"},
		{"?task_id=a%00b", "task_id"},
		{"?task_id=a&task_id=b", "task_id"},
	} {
		r := h.pub(t, "GET", fmt.Sprintf("/api/v1/webhooks/%d/deliveries%s", h.webhook, tc.query), h.key, "")
		r.wantError(t, http.StatusBadRequest, "invalid_request", tc.field)
	}
}

// TestDeliveryTimeWithUnencodedPlus: "+00:00" pasted into a query arrives
// as a space; the refusal says so and how to send it (issue 15, item 9: it
// said only "must be an RFC 3339 time"), and the encoded form works.
func TestDeliveryTimeWithUnencodedPlus(t *testing.T) {
	t.Parallel()
	h := setupHistory(t)
	path := fmt.Sprintf("/api/v1/webhooks/%d/deliveries", h.webhook)
	for _, name := range []string{"since", "until"} {
		msg := h.pub(t, "GET", path+"?"+name+"=2024-12-23T10:00:00+01:00", h.key, "").wantError(t, http.StatusBadRequest, "invalid_request", name)
		for _, want := range []string{"%2B", name + "=2024-12-23T10:00:00%2B01:00", "Z"} {
			if !strings.Contains(msg, want) {
				t.Errorf("%s with an unencoded +: message %q, want it to contain %q", name, msg, want)
			}
		}
		h.pub(t, "GET", path+"?"+name+"=2024-12-23T10:00:00%2B01:00", h.key, "").wantSuccess(t, http.StatusOK)
	}
	// A space that a '+' does not explain gets the plain message.
	msg := h.pub(t, "GET", path+"?since=2024-12-23+10:00:00Z", h.key, "").wantError(t, http.StatusBadRequest, "invalid_request", "since")
	if msg != "since: must be an RFC 3339 time such as 2024-12-23T10:00:00Z" {
		t.Errorf("since with a space for T: message %q", msg)
	}
}

func TestDeliveryTenancy(t *testing.T) {
	t.Parallel()
	h := setupHistory(t)
	_, other := h.newAccount(t, "other")
	d := h.deliveries[0]
	for _, c := range []struct{ method, path, body string }{
		{"GET", fmt.Sprintf("/api/v1/webhooks/%d/deliveries", h.webhook), ""},
		{"POST", fmt.Sprintf("/api/v1/webhooks/%d/recover", h.webhook), `{"since":"2024-12-23T00:00:00Z"}`},
		{"GET", fmt.Sprintf("/api/v1/deliveries/%d", d), ""},
		{"POST", fmt.Sprintf("/api/v1/deliveries/%d/retry", d), ""},
	} {
		h.pub(t, c.method, c.path, other, c.body).wantError(t, http.StatusNotFound, "not_found", "")
	}
	for _, p := range []string{"/api/v1/deliveries/0", "/api/v1/deliveries/abc", "/api/v1/deliveries/99999"} {
		h.pub(t, "GET", p, h.key, "").wantError(t, http.StatusNotFound, "not_found", "")
	}
	// The owner's history survives the other account's calls untouched.
	r := h.pub(t, "GET", fmt.Sprintf("/api/v1/deliveries/%d", d), h.key, "")
	if st := r.wantData(t, http.StatusOK)["status"]; st != "failed" {
		t.Fatalf("status %v", st)
	}
	// A deleted webhook's history is gone from the listing.
	h.pub(t, "DELETE", fmt.Sprintf("/api/v1/webhooks/%d", h.webhook), h.key, "").wantData(t, http.StatusOK)
	h.pub(t, "GET", fmt.Sprintf("/api/v1/webhooks/%d/deliveries", h.webhook), h.key, "").
		wantError(t, http.StatusNotFound, "not_found", "")
}

func TestDeliveryDetail(t *testing.T) {
	t.Parallel()
	b := setup(t)
	acct, key := b.newAccount(t, "acme")
	b.newWebhook(t, key, "https://hooks.example.com/a")
	ev := b.publishAt(t, acct, nanohook.EventJobCompleted, testNow.Add(-time.Hour))
	c := b.attempt(t, testNow.Add(-time.Hour), nanohook.DeliveryPending, nanohook.Attempt{
		ResponseStatus: 302, Location: "https://elsewhere.example.com/", Duration: 120 * time.Millisecond,
		RequestHeaders: []nanohook.Header{
			{Name: "Content-Type", Value: "application/json"},
			{Name: "X-Nano-Signature", Value: "v1=abc"},
			{Name: "X-Nano-Delivery-Attempt", Value: "1"},
		},
		RemoteAddr: "203.0.113.7:443",
	}, testNow.Add(-59*time.Minute))
	b.attempt(t, testNow.Add(-59*time.Minute), nanohook.DeliveryFailed, nanohook.Attempt{
		Error: "dial tcp: connection refused", Duration: 2500 * time.Millisecond,
	}, time.Time{})

	r := b.pub(t, "GET", fmt.Sprintf("/api/v1/deliveries/%d", c.DeliveryID), key, "")
	d := r.wantData(t, http.StatusOK)
	if d["event_id"] != ev || d["status"] != "failed" || d["attempt_count"] != float64(2) || d["last_error"] != "dial tcp: connection refused" {
		t.Fatalf("delivery: %s", r.raw)
	}
	if d["payload"] != "{}" { // what publishAt stored
		t.Errorf("payload = %#v, want the event's bytes, {}", d["payload"])
	}
	attempts := d["attempts"].([]any)
	if len(attempts) != 2 {
		t.Fatalf("attempts: %s", r.raw)
	}
	first, second := attempts[0].(map[string]any), attempts[1].(map[string]any)
	wantKeys := []string{"duration_ms", "error", "location", "number", "remote_address", "request_headers", "response_body", "response_status", "started_at"}
	if got := keysOf(first); !slices.Equal(got, wantKeys) {
		t.Fatalf("attempt keys %v, want %v", got, wantKeys)
	}
	for k, v := range map[string]any{
		"number": float64(1), "started_at": "2024-12-23T09:00:00Z", "duration_ms": float64(120),
		"response_status": float64(302), "response_body": "", "location": "https://elsewhere.example.com/", "error": nil,
	} {
		if first[k] != v {
			t.Errorf("first attempt %s = %v, want %v", k, first[k], v)
		}
	}
	for k, v := range map[string]any{
		"number": float64(2), "duration_ms": float64(2500), "response_status": nil, "location": nil,
		"error": "dial tcp: connection refused", "remote_address": nil,
	} {
		if second[k] != v {
			t.Errorf("second attempt %s = %v, want %v", k, second[k], v)
		}
	}
	if first["remote_address"] != "203.0.113.7:443" {
		t.Errorf("first attempt remote_address = %v", first["remote_address"])
	}
	wantHeaders := []any{
		map[string]any{"name": "Content-Type", "value": "application/json"},
		map[string]any{"name": "X-Nano-Signature", "value": "v1=abc"},
		map[string]any{"name": "X-Nano-Delivery-Attempt", "value": "1"},
	}
	if got := first["request_headers"]; !reflect.DeepEqual(got, wantHeaders) {
		t.Errorf("first attempt request_headers = %v, want %v", got, wantHeaders)
	}
	// No headers recorded is an empty list, never null.
	if got, ok := second["request_headers"].([]any); !ok || len(got) != 0 {
		t.Errorf("second attempt request_headers = %#v, want []", second["request_headers"])
	}
}

func TestDeliveryRetry(t *testing.T) {
	t.Parallel()
	h := setupHistory(t)
	failed := h.deliveries[0]
	woken := h.waker.n.Load()
	r := h.pub(t, "POST", fmt.Sprintf("/api/v1/deliveries/%d/retry", failed), h.key, "")
	d := r.wantData(t, http.StatusAccepted)
	if d["status"] != "pending" || d["next_attempt_at"] != "2024-12-23T10:00:00Z" || d["attempt_count"] != float64(1) {
		t.Fatalf("retried delivery: %s", r.raw)
	}
	if h.waker.n.Load() <= woken {
		t.Fatal("retry did not wake the engine")
	}
	// Due now, and the attempt numbers continue.
	cs, err := store.ClaimDue(context.Background(), h.store, store.ClaimDueParams{Now: testNow, LeaseUntil: testNow.Add(time.Minute), Limit: 10})
	if err != nil || len(cs) != 1 || cs[0].DeliveryID != failed || cs[0].Attempt != 2 {
		t.Fatalf("claimed %+v, %v; want delivery %d, attempt 2", cs, err, failed)
	}

	// A retry while the attempt is in flight changes nothing and is no error.
	r = h.pub(t, "POST", fmt.Sprintf("/api/v1/deliveries/%d/retry", failed), h.key, "")
	if d := r.wantData(t, http.StatusAccepted); d["status"] != "pending" {
		t.Fatalf("in-flight retry: %s", r.raw)
	}

	// Disabled webhook: 409 until it is re-enabled.
	succeeded := h.deliveries[1]
	path := fmt.Sprintf("/api/v1/webhooks/%d", h.webhook)
	h.pub(t, "PATCH", path, h.key, `{"status":"disabled"}`).wantData(t, http.StatusOK)
	msg := h.pub(t, "POST", fmt.Sprintf("/api/v1/deliveries/%d/retry", succeeded), h.key, "").
		wantError(t, http.StatusConflict, "conflict", "")
	if msg != "the endpoint is disabled; re-enable it with PATCH first" {
		t.Fatalf("message %q", msg)
	}
	h.pub(t, "PATCH", path, h.key, `{"status":"active"}`).wantData(t, http.StatusOK)
	h.pub(t, "POST", fmt.Sprintf("/api/v1/deliveries/%d/retry", succeeded), h.key, "").wantData(t, http.StatusAccepted)

	// Deleted webhook: 409 for good, the delivery stays readable.
	h.pub(t, "DELETE", path, h.key, "").wantData(t, http.StatusOK)
	msg = h.pub(t, "POST", fmt.Sprintf("/api/v1/deliveries/%d/retry", succeeded), h.key, "").
		wantError(t, http.StatusConflict, "conflict", "")
	if msg != nanohook.EndpointDeletedMessage {
		t.Fatalf("message %q", msg)
	}
	r = h.pub(t, "GET", fmt.Sprintf("/api/v1/deliveries/%d", succeeded), h.key, "")
	if d := r.wantData(t, http.StatusOK); d["status"] != "cancelled" {
		t.Fatalf("after delete: %s", r.raw)
	}
}

func TestRecover(t *testing.T) {
	t.Parallel()
	b := setup(t)
	acct, key := b.newAccount(t, "acme")
	wh := b.newWebhook(t, key, "https://hooks.example.com/a")
	// Four failed deliveries created 4h, 3h, 2h and 1h ago, and one pending.
	var failed []int64
	for i := range 4 {
		at := testNow.Add(time.Duration(i-4) * time.Hour)
		b.publishAt(t, acct, nanohook.EventJobCompleted, at)
		failed = append(failed, b.attempt(t, at, nanohook.DeliveryFailed, nanohook.Attempt{ResponseStatus: 500}, time.Time{}).DeliveryID)
	}
	b.publishAt(t, acct, nanohook.EventJobCompleted, testNow.Add(-90*time.Minute))
	path := fmt.Sprintf("/api/v1/webhooks/%d/recover", wh)
	queued := func(body string) float64 {
		t.Helper()
		return b.pub(t, "POST", path, key, body).wantData(t, http.StatusAccepted)["queued"].(float64)
	}

	woken := b.waker.n.Load()
	if n := queued(`{"since":"2024-12-23T07:00:00Z","until":"2024-12-23T08:00:00Z"}`); n != 1 {
		t.Fatalf("queued %v in [7h, 8h), want 1", n)
	}
	if b.waker.n.Load() <= woken {
		t.Fatal("recover did not wake the engine")
	}
	status := func(id int64) any {
		return b.pub(t, "GET", fmt.Sprintf("/api/v1/deliveries/%d", id), key, "").wantData(t, http.StatusOK)["status"]
	}
	if status(failed[1]) != "pending" || status(failed[0]) != "failed" || status(failed[2]) != "failed" {
		t.Fatal("recovered the wrong deliveries")
	}
	if n := queued(`{"since":"2024-12-23T07:00:00Z"}`); n != 2 {
		t.Fatalf("queued %v since 7h, want 2", n)
	}
	if n := queued(`{"since":"2024-12-23T07:00:00Z"}`); n != 0 {
		t.Fatalf("queued %v the second time, want 0", n)
	}

	for _, tc := range []struct {
		body, field string
		status      int
		code        string
	}{
		{`{}`, "since", 422, "validation_error"},
		{`{"until":"2024-12-23T07:00:00Z"}`, "since", 422, "validation_error"},
		{`{"since":"yesterday"}`, "since", 422, "validation_error"},
		{`{"since":"2024-12-23T10:00:01Z"}`, "since", 422, "validation_error"},
		{`{"since":"2024-12-23T07:00:00Z","until":"2024-12-23T07:00:00Z"}`, "until", 422, "validation_error"},
		{`{"since":"2024-12-23T07:00:00Z","until":"2024-12-23T06:00:00Z"}`, "until", 422, "validation_error"},
		{`{"since":"2024-12-23T07:00:00Z","until":"soon"}`, "until", 422, "validation_error"},
		{`{"since":"2024-12-23T07:00:00Z","limit":5}`, "limit", 400, "unknown_field"},
	} {
		b.pub(t, "POST", path, key, tc.body).wantError(t, tc.status, tc.code, tc.field)
	}

	// Disabled: 409; re-enabled: the failures can be recovered.
	b.pub(t, "PATCH", fmt.Sprintf("/api/v1/webhooks/%d", wh), key, `{"status":"disabled"}`).wantData(t, http.StatusOK)
	if msg := b.pub(t, "POST", path, key, `{"since":"2024-12-23T00:00:00Z"}`).wantError(t, http.StatusConflict, "conflict", ""); msg != "the endpoint is disabled; re-enable it with PATCH first" {
		t.Fatalf("message %q", msg)
	}
	b.pub(t, "PATCH", fmt.Sprintf("/api/v1/webhooks/%d", wh), key, `{"status":"active"}`).wantData(t, http.StatusOK)
	// Everything pending was failed by the disable: all five come back.
	if n := queued(`{"since":"2024-12-23T00:00:00Z"}`); n != 5 {
		t.Fatalf("queued %v after re-enabling, want 5", n)
	}
}

// TestRecoverLargeRangeInBackground: a range of more than one step answers
// with the full count at once and re-queues the rest in the background.
func TestRecoverLargeRangeInBackground(t *testing.T) {
	t.Parallel()
	bg := api.NewBackground()
	bg.InitTestSignals()
	bg.Start(t.Context())
	t.Cleanup(func() { _ = bg.Stop(context.Background()) })
	b := setup(t, func(c *api.Config) { c.RecoverStep, c.Background = 2, bg })
	acct, key := b.newAccount(t, "acme")
	wh := b.newWebhook(t, key, "https://hooks.example.com/a")
	var failed []int64
	for i := range 5 {
		at := testNow.Add(time.Duration(i-6) * time.Hour)
		b.publishAt(t, acct, nanohook.EventJobCompleted, at)
		failed = append(failed, b.attempt(t, at, nanohook.DeliveryFailed, nanohook.Attempt{ResponseStatus: 500}, time.Time{}).DeliveryID)
	}
	d := b.pub(t, "POST", fmt.Sprintf("/api/v1/webhooks/%d/recover", wh), key, `{"since":"2024-12-23T00:00:00Z"}`).wantData(t, http.StatusAccepted)
	if d["queued"] != float64(5) {
		t.Fatalf("queued %v, want all 5", d["queued"])
	}
	var id int64
	var st any
	if !bg.Ended().Await(10*time.Second, func() bool {
		for _, id = range failed {
			if st = b.pub(t, "GET", fmt.Sprintf("/api/v1/deliveries/%d", id), key, "").wantData(t, http.StatusOK)["status"]; st != "pending" {
				return false
			}
		}
		return true
	}) {
		t.Fatalf("delivery %d still %v: the background steps did not finish", id, st)
	}
}

// heldRecoverStore is the real store whose first background recover step
// (the second re-queueing call) waits until its context is cancelled, so
// that a recover is still in progress when the test stops it.
type heldRecoverStore struct {
	api.Store
	steps   atomic.Int64  // re-queueing calls, the request's own first
	held    chan struct{} // one value when a background step starts waiting
	running atomic.Int64  // calls inside RecoverDeliveries now
}

func (s *heldRecoverStore) RecoverDeliveries(ctx context.Context, p store.RecoverParams) (int, error) {
	s.running.Add(1)
	defer s.running.Add(-1)
	if !p.CountOnly && s.steps.Add(1) == 2 {
		s.held <- struct{}{}
		<-ctx.Done()
		return 0, ctx.Err()
	}
	return s.Store.RecoverDeliveries(ctx, p)
}

// TestRecoverStoppedBeforeStoreCloses: the rest of a recover runs on the
// Background in Config, whose Stop ends it and waits for it, so that cmd
// can close the store after Stop with no recover step left running; a
// recover submitted after Stop re-queues only its first step.
func TestRecoverStoppedBeforeStoreCloses(t *testing.T) {
	t.Parallel()
	bg := api.NewBackground()
	bg.Start(t.Context())
	held := &heldRecoverStore{held: make(chan struct{}, 1)}
	b := setup(t, func(c *api.Config) {
		held.Store = c.Store
		c.Store, c.RecoverStep, c.Background = held, 2, bg
	})
	acct, key := b.newAccount(t, "acme")
	wh := b.newWebhook(t, key, "https://hooks.example.com/a")
	for i := range 5 {
		at := testNow.Add(time.Duration(i-6) * time.Hour)
		b.publishAt(t, acct, nanohook.EventJobCompleted, at)
		b.attempt(t, at, nanohook.DeliveryFailed, nanohook.Attempt{ResponseStatus: 500}, time.Time{})
	}
	path := fmt.Sprintf("/api/v1/webhooks/%d/recover", wh)
	if d := b.pub(t, "POST", path, key, `{"since":"2024-12-23T00:00:00Z"}`).wantData(t, http.StatusAccepted); d["queued"] != float64(5) {
		t.Fatalf("queued %v, want all 5", d["queued"])
	}
	select {
	case <-held.held:
	case <-time.After(10 * time.Second):
		t.Fatal("the recover's background step never started")
	}
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	if err := bg.Stop(ctx); err != nil {
		t.Fatalf("Stop: %v", err)
	}
	if n := held.running.Load(); n != 0 {
		t.Fatalf("%d recover steps still running after Stop: closing the store now would pull it from under them", n)
	}
	if !strings.Contains(b.logs.String(), "background recover stopped") {
		t.Fatalf("the stopped recover was not logged:\n%s", b.logs)
	}

	// After Stop the request still re-queues its first step and answers;
	// nothing runs in the background.
	steps := held.steps.Load()
	b.pub(t, "POST", path, key, `{"since":"2024-12-23T00:00:00Z"}`).wantData(t, http.StatusAccepted)
	time.Sleep(50 * time.Millisecond)
	if n := held.steps.Load() - steps; n != 1 {
		t.Fatalf("a recover after Stop made %d re-queueing calls, want only the request's own", n)
	}
	if !strings.Contains(b.logs.String(), "the rest of a recover is not re-queued") {
		t.Fatalf("the refused rest was not logged:\n%s", b.logs)
	}
}
