package api_test

import (
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"

	"github.com/nanohook/nanohook"
)

// TestEventsAPI: GET /api/v1/events lists the account's published events
// newest first with the exact bytes sent and where each went, filtered by
// event, task, and time; GET /api/v1/events/{id} shows one.
func TestEventsAPI(t *testing.T) {
	t.Parallel()
	b := setup(t)
	acct, key := b.newAccount(t, "acme")
	both := b.newWebhook(t, key, "https://hooks.example.com/both")
	failedOnly := b.newWebhook(t, key, "https://hooks.example.com/failed", "job.failed")
	_, otherKey := b.newAccount(t, "other")

	publish := func(event, task, data string) string {
		t.Helper()
		r := b.adm(t, "POST", "/admin/v1/events", fmt.Sprintf(
			`{"account_id":%d,"event":%q,"task_id":%q,"task_type":"image","data":%s,"occurred_at":"2024-12-23T10:00:00Z"}`,
			acct, event, task, data))
		return r.wantData(t, http.StatusAccepted)["event_id"].(string)
	}
	// Data whose canonical bytes differ from what was sent: the payload is
	// what the endpoints get, not what the platform wrote.
	e0 := publish("job.completed", "task_a", `{"url" : "https://cdn.example.com/a.png", "2":1, "1":2, "s":"<\u2028>"}`)
	e1 := publish("job.failed", "task_b", `{"error":"out of memory"}`)
	e2 := publish("job.failed", "task_a", `{}`)

	r := b.pub(t, "GET", "/api/v1/events", key, "")
	data := r.wantSuccess(t, http.StatusOK).([]any)
	if r.body["next_cursor"] != nil || len(data) != 3 {
		t.Fatalf("list: %s", r.raw)
	}
	var got []string
	for _, d := range data {
		got = append(got, d.(map[string]any)["id"].(string))
	}
	if !slices.Equal(got, []string{e2, e1, e0}) {
		t.Fatalf("events %v, want newest first %v", got, []string{e2, e1, e0})
	}
	first := data[2].(map[string]any)
	if keys := keysOf(first); !slices.Equal(keys, []string{"created_at", "deliveries", "event", "id", "payload", "task_id", "task_type"}) {
		t.Fatalf("event keys %v", keys)
	}
	wantPayload := `{"event":"job.completed","task_id":"task_a","task_type":"image","status":"completed","data":{"1":2,"2":1,"url":"https://cdn.example.com/a.png","s":"<` + "\u2028" + `>"},"timestamp":"2024-12-23T10:00:00Z"}`
	if first["payload"] != wantPayload || first["event"] != "job.completed" || first["task_id"] != "task_a" ||
		first["task_type"] != "image" || first["created_at"] != "2024-12-23T10:00:00Z" {
		t.Fatalf("first event: %v\nwant payload %s", first, wantPayload)
	}
	ds := first["deliveries"].([]any)
	if len(ds) != 1 || ds[0].(map[string]any)["endpoint_id"] != float64(both) || ds[0].(map[string]any)["status"] != "pending" {
		t.Fatalf("deliveries of a job.completed: %v", ds)
	}
	// The delivery named is the one the history shows, with the same bytes.
	did := int64(ds[0].(map[string]any)["delivery_id"].(float64))
	d := b.pub(t, "GET", fmt.Sprintf("/api/v1/deliveries/%d", did), key, "").wantData(t, http.StatusOK)
	if d["event_id"] != e0 || d["payload"] != wantPayload {
		t.Fatalf("delivery %d: %v", did, d)
	}
	failed := data[1].(map[string]any)["deliveries"].([]any)
	var endpoints []float64
	for _, x := range failed {
		endpoints = append(endpoints, x.(map[string]any)["endpoint_id"].(float64))
	}
	if !slices.Equal(endpoints, []float64{float64(both), float64(failedOnly)}) {
		t.Fatalf("deliveries of a job.failed went to %v", endpoints)
	}

	one := b.pub(t, "GET", "/api/v1/events/"+e0, key, "").wantData(t, http.StatusOK)
	if one["id"] != e0 || one["payload"] != wantPayload || len(one["deliveries"].([]any)) != 1 {
		t.Fatalf("one event: %v", one)
	}

	for _, tc := range []struct {
		query string
		want  []string
	}{
		{"event=job.failed", []string{e2, e1}},
		{"task_id=task_a", []string{e2, e0}},
		{"task_id=task_a&event=job.completed", []string{e0}},
		{"task_id=task_none", nil},
		{"since=2024-12-23T10:00:00Z", []string{e2, e1, e0}}, // published at the API's clock, testNow: since is inclusive
		{"until=2024-12-23T10:00:00Z", nil},                  // and until exclusive
		{"since=2024-12-23T10:00:01Z", nil},
	} {
		r := b.pub(t, "GET", "/api/v1/events?"+tc.query, key, "")
		var ids []string
		for _, d := range r.wantSuccess(t, http.StatusOK).([]any) {
			ids = append(ids, d.(map[string]any)["id"].(string))
		}
		if !slices.Equal(ids, tc.want) {
			t.Errorf("?%s: %v, want %v", tc.query, ids, tc.want)
		}
	}

	// Pages of one, by cursor, then the end.
	var paged []string
	for next := ""; ; {
		q := "?limit=1"
		if next != "" {
			q += "&cursor=" + url.QueryEscape(next)
		}
		r := b.pub(t, "GET", "/api/v1/events"+q, key, "")
		for _, d := range r.wantSuccess(t, http.StatusOK).([]any) {
			paged = append(paged, d.(map[string]any)["id"].(string))
		}
		c, _ := r.body["next_cursor"].(string)
		if c == "" {
			break
		}
		next = c
	}
	if !slices.Equal(paged, []string{e2, e1, e0}) {
		t.Fatalf("paged %v", paged)
	}

	// Another account sees none of them; a missing id is 404.
	if data := b.pub(t, "GET", "/api/v1/events", otherKey, "").wantSuccess(t, http.StatusOK).([]any); len(data) != 0 {
		t.Fatalf("the other account lists %v", data)
	}
	b.pub(t, "GET", "/api/v1/events/"+e0, otherKey, "").wantError(t, http.StatusNotFound, "not_found", "")
	b.pub(t, "GET", "/api/v1/events/evt_missing", key, "").wantError(t, http.StatusNotFound, "not_found", "")
	b.pub(t, "GET", "/api/v1/events/"+e0+strings.Repeat("x", 64), key, "").wantError(t, http.StatusNotFound, "not_found", "")

	for _, tc := range []struct{ query, field string }{
		{"?event=ping", "event"},
		{"?event=job.done", "event"},
		{"?task_id=", "task_id"},
		{"?task_id=" + strings.Repeat("t", nanohook.MaxTaskIDLen+1), "task_id"},
		{"?since=yesterday", "since"},
		{"?until=2024-12-23", "until"},
		{"?limit=101", "limit"},
		{"?cursor=zzz", "cursor"},
		{"?event=job.failed&event=job.completed", "event"},
	} {
		b.pub(t, "GET", "/api/v1/events"+tc.query, key, "").wantError(t, http.StatusBadRequest, "invalid_request", tc.field)
	}
}

// TestEventsPageByteBudget: events carry their payloads, so a page ends
// early, with a cursor, once it passes about 1 MiB, and the rest follow.
func TestEventsPageByteBudget(t *testing.T) {
	t.Parallel()
	b := setup(t)
	acct, key := b.newAccount(t, "big")
	b.newWebhook(t, key, "https://hooks.example.com/big")
	big := strings.Repeat("x", 60<<10)
	const events = 24 // 1.4 MiB of payloads
	for i := range events {
		b.adm(t, "POST", "/admin/v1/events", fmt.Sprintf(
			`{"account_id":%d,"event":"job.completed","task_id":"t%d","task_type":"image","data":{"blob":%q}}`, acct, i, big)).
			wantData(t, http.StatusAccepted)
	}
	seen := 0
	pages := 0
	for next := ""; ; pages++ {
		q := "?limit=100"
		if next != "" {
			q += "&cursor=" + url.QueryEscape(next)
		}
		r := b.pub(t, "GET", "/api/v1/events"+q, key, "")
		data := r.wantSuccess(t, http.StatusOK).([]any)
		if len(r.raw) > 1<<20+128<<10 {
			t.Fatalf("page of %d bytes", len(r.raw))
		}
		seen += len(data)
		c, _ := r.body["next_cursor"].(string)
		if c == "" {
			break
		}
		next = c
	}
	if seen != events || pages < 1 {
		t.Fatalf("%d events in %d pages after the first, want %d in more than one page", seen, pages, events)
	}
}
