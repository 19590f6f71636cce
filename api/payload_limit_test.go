package api_test

import (
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nanohook/nanohook/api"
	"github.com/nanohook/nanohook/webhook"
)

// payloadEvent is a job.completed event for account whose data is
// {"s":"xxx…"}, padded so that the delivered body is exactly size bytes.
func payloadEvent(t *testing.T, account int64, task string, size int) string {
	t.Helper()
	p := webhook.Payload{
		Event: "job.completed", TaskID: task, TaskType: "image", Status: "completed",
		Data: json.RawMessage(`{"s":""}`), Timestamp: testNow.Format(time.RFC3339),
	}
	empty, err := webhook.EncodePayload(p)
	if err != nil {
		t.Fatal(err)
	}
	pad := size - len(empty)
	if pad < 0 {
		t.Fatalf("a body of %d bytes cannot be made: the smallest is %d", size, len(empty))
	}
	return fmt.Sprintf(`{"account_id":%d,"event":"job.completed","task_id":%q,"task_type":"image","data":{"s":"%s"}}`,
		account, task, strings.Repeat("x", pad))
}

// TestPayloadLimit: the delivered body of one event is held to
// MaxPayloadBytes (64 KiB by default) on the single and batch routes alike:
// 413 payload_too_large naming the size, the limit and (in a batch) the
// item, and nothing stored. Before the limit, a batch took an event of any
// size up to its 16 MiB body.
func TestPayloadLimit(t *testing.T) {
	t.Parallel()
	b := setup(t)
	acct, key := b.newAccount(t, "a")
	b.newWebhook(t, key, "https://example.com/hook")
	limit := api.DefaultMaxPayloadBytes

	b.adm(t, "POST", "/admin/v1/events", payloadEvent(t, acct, "fits", limit)).wantData(t, 202)
	msg := b.adm(t, "POST", "/admin/v1/events", payloadEvent(t, acct, "over", limit+1)).
		wantError(t, 413, "payload_too_large", "data")
	if !strings.Contains(msg, strconv.Itoa(limit+1)) || !strings.Contains(msg, strconv.Itoa(limit)+" allowed") {
		t.Fatalf("message %q names neither the size %d nor the limit %d", msg, limit+1, limit)
	}
	if got := len(claimAll(t, b.store)); got != 1 {
		t.Fatalf("%d deliveries, want 1 (the event that fits)", got)
	}

	// A batch carrying a 2 MiB event among good ones: refused whole, the
	// item named, in the batch's error shape.
	batch := `{"events":[` + payloadEvent(t, acct, "b0", 200) + "," + payloadEvent(t, acct, "b1", 2<<20) + "," +
		payloadEvent(t, acct, "b2", 200) + `]}`
	r := b.adm(t, "POST", "/admin/v1/events/batch", batch)
	r.wantError(t, 413, "payload_too_large", "events[1].data")
	items, _ := r.body["error"].(map[string]any)["items"].([]any)
	if len(items) != 1 {
		t.Fatalf("refused items: %s", r.raw)
	}
	if it := items[0].(map[string]any); it["index"] != float64(1) || it["code"] != "payload_too_large" ||
		!strings.Contains(it["message"].(string), strconv.Itoa(2<<20)) {
		t.Fatalf("refused item: %v", it)
	}

	// One event of 15 MB fits the batch's 16 MiB body, not the limit.
	b.adm(t, "POST", "/admin/v1/events/batch", `{"events":[`+payloadEvent(t, acct, "huge", 15_000_000)+`]}`).
		wantError(t, 413, "payload_too_large", "events[0].data")
	if got := len(claimAll(t, b.store)); got != 0 {
		t.Fatalf("refused batches stored %d deliveries", got)
	}
}

// TestPayloadLimitCountsCanonicalBytes: the limit is on the bytes delivered,
// not the bytes sent. Data of 209,000 × 1e21 is about 1.04 MB as sent, under
// the request limit, but 1.25 MB delivered (JavaScript prints 1e+21), more
// than any receiver using the webhook package's default limit would take:
// refused even at the highest setting, 1 MiB. The other way round, an event
// padded with whitespace beyond the limit is taken when its delivered body
// fits.
func TestPayloadLimitCountsCanonicalBytes(t *testing.T) {
	t.Parallel()
	b := setup(t, func(c *api.Config) { c.MaxPayloadBytes = webhook.MaxPayloadBytes })
	acct, key := b.newAccount(t, "a")
	b.newWebhook(t, key, "https://example.com/hook")

	nums := strings.TrimSuffix(strings.Repeat("1e21,", 209_000), ",")
	ev := fmt.Sprintf(`{"account_id":%d,"event":"job.completed","task_id":"t1","task_type":"image","data":{"n":[%s]}}`, acct, nums)
	if len(ev) >= api.DefaultMaxBodyBytes {
		t.Fatalf("the event is %d bytes as sent, meant to fit the request limit", len(ev))
	}
	msg := b.adm(t, "POST", "/admin/v1/events", ev).wantError(t, 413, "payload_too_large", "data")
	if !strings.Contains(msg, strconv.Itoa(webhook.MaxPayloadBytes)+" allowed") {
		t.Fatalf("message %q does not name the limit", msg)
	}
	b.adm(t, "POST", "/admin/v1/events/batch", `{"events":[`+ev+`]}`).wantError(t, 413, "payload_too_large", "events[0].data")
	nothingPending(t, b.store)

	spaced := fmt.Sprintf(`{"account_id":%d,"event":"job.completed","task_id":"t2","task_type":"image","data":{"n":%s1}}`,
		acct, strings.Repeat(" ", webhook.MaxPayloadBytes-1000))
	b.adm(t, "POST", "/admin/v1/events", spaced).wantData(t, 202)
}
