package api_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/nanohook/nanohook/api"
	"github.com/nanohook/nanohook/store"
)

// TestAccounts covers the account and key calls of the admin API.
func TestAccounts(t *testing.T) {
	t.Parallel()
	b := setup(t)

	r := b.adm(t, "POST", "/admin/v1/accounts", `{"name":"Acme <Studios> & Co"}`)
	d := r.wantData(t, http.StatusCreated)
	if got := keysOf(d); !slices.Equal(got, []string{"api_key", "id", "name"}) {
		t.Fatalf("account keys %v", got)
	}
	if d["name"] != "Acme <Studios> & Co" || !strings.Contains(string(r.raw), "<Studios> & Co") {
		t.Fatalf("name answered as %s (HTML escaping must be off)", r.raw)
	}
	key := d["api_key"].(string)
	if !strings.HasPrefix(key, "nhk_") {
		t.Fatalf("api_key %q", key)
	}
	acct := int64(d["id"].(float64))
	b.pub(t, "GET", "/api/v1/webhooks", key, "").wantSuccess(t, 200)

	d = b.adm(t, "POST", fmt.Sprintf("/admin/v1/accounts/%d/keys", acct), "").wantData(t, http.StatusCreated)
	if got := keysOf(d); !slices.Equal(got, []string{"account_id", "api_key", "id"}) {
		t.Fatalf("key keys %v", got)
	}
	if d["account_id"] != float64(acct) || d["api_key"] == key {
		t.Fatalf("new key: %v", d)
	}
	key2, keyID := d["api_key"].(string), int64(d["id"].(float64))
	b.pub(t, "GET", "/api/v1/webhooks", key2, "").wantSuccess(t, 200)

	r = b.adm(t, "DELETE", fmt.Sprintf("/admin/v1/accounts/%d/keys/%d", acct, keyID), "")
	if want := fmt.Sprintf(`{"success":true,"data":{"id":%d}}`, keyID); r.status != 200 || string(r.raw) != want {
		t.Fatalf("delete key: %d %s", r.status, r.raw)
	}
	b.pub(t, "GET", "/api/v1/webhooks", key2, "").wantError(t, 401, "unauthorized", "")
	b.adm(t, "DELETE", fmt.Sprintf("/admin/v1/accounts/%d/keys/%d", acct, keyID), "").wantError(t, 404, "not_found", "")

	other, _ := b.newAccount(t, "other")
	b.adm(t, "DELETE", fmt.Sprintf("/admin/v1/accounts/%d/keys/1", other), "").wantError(t, 404, "not_found", "")
	b.adm(t, "POST", "/admin/v1/accounts/999/keys", "").wantError(t, 404, "not_found", "")
	b.adm(t, "POST", "/admin/v1/accounts/x/keys", "").wantError(t, 404, "not_found", "")

	for _, c := range []struct{ body, code, field string }{
		{`{}`, "validation_error", "name"},
		{`{"name":""}`, "validation_error", "name"},
		{`{"name":" padded "}`, "validation_error", "name"},
		{`{"name":"a\nb"}`, "validation_error", "name"},
		{`{"name":"` + strings.Repeat("n", 201) + `"}`, "validation_error", "name"},
		{`{"name":7}`, "validation_error", "name"},
		{`{"name":"x","plan":"pro"}`, "unknown_field", "plan"},
	} {
		status := 422
		if c.code == "unknown_field" {
			status = 400
		}
		b.adm(t, "POST", "/admin/v1/accounts", c.body).wantError(t, status, c.code, c.field)
	}
}

// TestAdminAuth: a wrong or missing token is 401, and an empty configured
// token refuses everything.
func TestAdminAuth(t *testing.T) {
	t.Parallel()
	b := setup(t)
	for _, tok := range []string{"", "wrong", testAdminToken + "x", strings.ToUpper(testAdminToken)} {
		r := call(t, b.admin, "POST", "/admin/v1/accounts", tok, "application/json", `{"name":"x"}`)
		r.wantError(t, 401, "unauthorized", "")
		if r.header.Get("WWW-Authenticate") != "Bearer" {
			t.Fatalf("no WWW-Authenticate")
		}
	}
	// An account's API key is not an admin token.
	_, key := b.newAccount(t, "a")
	call(t, b.admin, "POST", "/admin/v1/events", key, "application/json", `{}`).wantError(t, 401, "unauthorized", "")

	open := setup(t, func(c *api.Config) { c.AdminToken = "" })
	for _, tok := range []string{"", " ", "anything"} {
		req, _ := http.NewRequestWithContext(t.Context(), "POST", open.admin.URL+"/admin/v1/accounts", strings.NewReader(`{"name":"x"}`))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Authorization", "Bearer "+tok)
		send(t, open.admin, req).wantError(t, 401, "unauthorized", "")
	}
	call(t, open.admin, "POST", "/admin/v1/accounts", "", "application/json", `{"name":"x"}`).wantError(t, 401, "unauthorized", "")
	// Health stays open.
	call(t, open.admin, "GET", "/healthz", "", "", "").wantSuccess(t, 200)
}

// TestAdminDisabledWithoutToken: with no admin token configured, every
// admin call answers 401 saying that the admin API is disabled until
// NANOHOOK_ADMIN_TOKEN is set, whatever credentials it carries, and a wrong
// token on a configured server is not told that: the operator who forgot
// the token learns what to set, not that a token was mistyped.
func TestAdminDisabledWithoutToken(t *testing.T) {
	t.Parallel()
	open := setup(t, func(c *api.Config) { c.AdminToken = "" })
	for _, tok := range []string{"", "anything", testAdminToken} {
		for _, rt := range []struct{ method, path, body string }{
			{"POST", "/admin/v1/accounts", `{"name":"x"}`},
			{"POST", "/admin/v1/events", `{}`},
			{"DELETE", "/admin/v1/accounts/1/keys/1", ""},
		} {
			r := call(t, open.admin, rt.method, rt.path, tok, "application/json", rt.body)
			msg := r.wantError(t, 401, "unauthorized", "")
			if !strings.Contains(msg, "disabled") || !strings.Contains(msg, "NANOHOOK_ADMIN_TOKEN") {
				t.Errorf("%s %s with token %q and none configured: message %q does not say the admin API is disabled until NANOHOOK_ADMIN_TOKEN is set",
					rt.method, rt.path, tok, msg)
			}
			if r.header.Get("WWW-Authenticate") != "Bearer" {
				t.Errorf("%s %s: no WWW-Authenticate", rt.method, rt.path)
			}
		}
	}

	b := setup(t)
	for _, tok := range []string{"", "wrong"} {
		msg := call(t, b.admin, "POST", "/admin/v1/accounts", tok, "application/json", `{"name":"x"}`).wantError(t, 401, "unauthorized", "")
		if strings.Contains(msg, "disabled") || strings.Contains(msg, "NANOHOOK_ADMIN_TOKEN") {
			t.Errorf("token %q on a server with a token: message %q says the admin API is disabled", tok, msg)
		}
	}
}

// claimAll leases every delivery due within a day, to count what a publish
// created.
func claimAll(t *testing.T, st store.Store) []store.ClaimedDelivery {
	t.Helper()
	c, err := store.ClaimDue(context.Background(), st, store.ClaimDueParams{
		Now: testNow.Add(24 * time.Hour), LeaseUntil: testNow.Add(25 * time.Hour), Limit: 1000, Owner: "test",
	})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// nothingPending asserts that no delivery exists yet.
func nothingPending(t *testing.T, st store.Store) {
	t.Helper()
	if heads, err := st.QueueHeads(context.Background()); err != nil || len(heads) > 0 {
		t.Fatalf("deliveries pending (queue heads %+v, err=%v)", heads, err)
	}
}

// TestPublish: an event is committed with exactly the canonical payload,
// fans out to the subscribed active endpoints and wakes the engine; the same
// job event again is a duplicate with the same id and no new deliveries.
// The disabled subscriber's delivery, recorded failed, counts in
// `deliveries` (3) but is not claimed (2).
func TestPublish(t *testing.T) {
	t.Parallel()
	b := setup(t)
	acct, key := b.newAccount(t, "a")
	b.newWebhook(t, key, "https://one.example.com/", "job.completed")
	b.newWebhook(t, key, "https://two.example.com/", "job.completed", "job.failed")
	b.newWebhook(t, key, "https://three.example.com/", "job.failed")
	off := b.newWebhook(t, key, "https://off.example.com/", "job.completed")
	b.pub(t, "PATCH", fmt.Sprintf("/api/v1/webhooks/%d", off), key, `{"status":"disabled"}`).wantData(t, 200)
	otherAcct, otherKey := b.newAccount(t, "other")
	b.newWebhook(t, otherKey, "https://other.example.com/", "job.completed")

	body := fmt.Sprintf(`{"account_id":%d,"event":"job.completed","task_id":"task_123","task_type":"image",`+
		`"data":{"url":"https://cdn.example.com/image.png","credits_charged":6},"occurred_at":"2024-12-23T10:00:00Z"}`, acct)
	r := b.adm(t, "POST", "/admin/v1/events", body)
	d := r.wantData(t, http.StatusAccepted)
	if got := keysOf(d); !slices.Equal(got, []string{"deliveries", "duplicate", "event_id"}) {
		t.Fatalf("publish keys %v", got)
	}
	eventID, _ := d["event_id"].(string)
	if !strings.HasPrefix(eventID, "evt_") || d["deliveries"] != float64(3) || d["duplicate"] != false {
		t.Fatalf("publish: %s", r.raw)
	}
	select {
	case <-b.waker.ch:
	case <-time.After(5 * time.Second):
		t.Fatal("waker not called")
	}

	ev, err := b.store.GetEvent(context.Background(), acct, eventID)
	if err != nil {
		t.Fatal(err)
	}
	const want = `{"event":"job.completed","task_id":"task_123","task_type":"image","status":"completed",` +
		`"data":{"url":"https://cdn.example.com/image.png","credits_charged":6},"timestamp":"2024-12-23T10:00:00Z"}`
	if string(ev.Payload) != want {
		t.Fatalf("payload\n%s\nwant\n%s", ev.Payload, want)
	}
	if ev.IdempotencyKey == "" || !ev.OccurredAt.Equal(testNow) || ev.TaskID != "task_123" || ev.TaskType != "image" {
		t.Fatalf("event %+v", ev)
	}
	if _, err := b.store.GetEvent(context.Background(), otherAcct, eventID); err == nil {
		t.Fatal("event visible to another account")
	}

	// Same job event again, even with other data: one event.
	r = b.adm(t, "POST", "/admin/v1/events", strings.Replace(body, `"credits_charged":6`, `"credits_charged":7`, 1))
	d = r.wantData(t, http.StatusAccepted)
	if d["event_id"] != eventID || d["duplicate"] != true || d["deliveries"] != float64(3) {
		t.Fatalf("duplicate publish: %s", r.raw)
	}
	if n := b.waker.n.Load(); n != 1 {
		t.Fatalf("waker called %d times, want 1 (a duplicate creates nothing)", n)
	}
	claimed := claimAll(t, b.store)
	if len(claimed) != 2 {
		t.Fatalf("%d deliveries, want one set of 2", len(claimed))
	}
	for _, c := range claimed {
		if c.EventID != eventID || string(c.Payload) != want {
			t.Fatalf("delivery %+v", c)
		}
	}

	// job.failed gets status failed; data defaults to {}; the time defaults
	// to now; a given occurred_at is stored in UTC seconds.
	r = b.adm(t, "POST", "/admin/v1/events", fmt.Sprintf(`{"account_id":%d,"event":"job.failed","task_id":"t2","task_type":"video"}`, acct))
	id2 := r.wantData(t, 202)["event_id"].(string)
	ev, err = b.store.GetEvent(context.Background(), acct, id2)
	if err != nil {
		t.Fatal(err)
	}
	if want := `{"event":"job.failed","task_id":"t2","task_type":"video","status":"failed","data":{},"timestamp":"2024-12-23T10:00:00Z"}`; string(ev.Payload) != want {
		t.Fatalf("payload %s, want %s", ev.Payload, want)
	}
	r = b.adm(t, "POST", "/admin/v1/events", fmt.Sprintf(`{"account_id":%d,"event":"job.completed","task_id":"t3","task_type":"video",`+
		`"occurred_at":"2024-12-23T12:30:15.987+02:00","idempotency_key":"custom-1","data":{"b":1e2,"a":"<&>","u":"\u00e9\ud83d\ude00","n":-0.0}}`, acct))
	ev, err = b.store.GetEvent(context.Background(), acct, r.wantData(t, 202)["event_id"].(string))
	if err != nil {
		t.Fatal(err)
	}
	if want := `{"event":"job.completed","task_id":"t3","task_type":"video","status":"completed","data":{"b":100,"a":"<&>","u":"é😀","n":0},"timestamp":"2024-12-23T10:30:15Z"}`; string(ev.Payload) != want {
		t.Fatalf("payload %s, want %s", ev.Payload, want)
	}
	if ev.IdempotencyKey != "custom-1" || !ev.OccurredAt.Equal(time.Date(2024, 12, 23, 10, 30, 15, 0, time.UTC)) {
		t.Fatalf("event %+v", ev)
	}
}

// TestPublishNoEndpoints: an event with no subscriber is stored and does
// not wake the engine.
func TestPublishNoEndpoints(t *testing.T) {
	t.Parallel()
	b := setup(t)
	acct, _ := b.newAccount(t, "a")
	d := b.adm(t, "POST", "/admin/v1/events", fmt.Sprintf(`{"account_id":%d,"event":"job.completed","task_id":"t","task_type":"image"}`, acct)).wantData(t, 202)
	if d["deliveries"] != float64(0) || d["duplicate"] != false {
		t.Fatalf("%v", d)
	}
	if n := b.waker.n.Load(); n != 0 {
		t.Fatalf("waker called %d times for nothing to deliver", n)
	}
}

// TestBadEvents sends every kind of bad event and checks that nothing was
// stored.
func TestBadEvents(t *testing.T) {
	t.Parallel()
	b := setup(t)
	acct, key := b.newAccount(t, "a")
	b.newWebhook(t, key, "https://example.com/hook")
	ev := func(fields string) string {
		return fmt.Sprintf(`{"account_id":%d,"event":"job.completed","task_id":"task_1","task_type":"image"%s}`, acct, fields)
	}
	cases := []struct {
		name        string
		body        string
		status      int
		code, field string
		msg         string
	}{
		{"unknown account", `{"account_id":999,"event":"job.completed","task_id":"task_1","task_type":"image"}`, 422, "validation_error", "account_id", "account_id: no such account"},
		{"missing account", `{"event":"job.completed","task_id":"task_1","task_type":"image"}`, 422, "validation_error", "account_id", ""},
		{"zero account", `{"account_id":0,"event":"job.completed","task_id":"task_1","task_type":"image"}`, 422, "validation_error", "account_id", ""},
		{"account as string", `{"account_id":"1","event":"job.completed","task_id":"task_1","task_type":"image"}`, 422, "validation_error", "account_id", "account_id: must be an integer"},
		{"fractional account", `{"account_id":1.5,"event":"job.completed","task_id":"task_1","task_type":"image"}`, 422, "validation_error", "account_id", ""},
		{"unknown event", strings.Replace(ev(""), "job.completed", "job.done", 1), 422, "validation_error", "event", ""},
		{"ping event", strings.Replace(ev(""), "job.completed", "ping", 1), 422, "validation_error", "event", ""},
		{"missing event", strings.Replace(ev(""), `"event":"job.completed",`, "", 1), 422, "validation_error", "event", ""},
		{"empty task_id", strings.Replace(ev(""), `"task_1"`, `""`, 1), 422, "validation_error", "task_id", ""},
		{"long task_id", strings.Replace(ev(""), `"task_1"`, `"`+strings.Repeat("t", 257)+`"`, 1), 422, "validation_error", "task_id", ""},
		{"control in task_id", strings.Replace(ev(""), `"task_1"`, `"task\n1"`, 1), 422, "validation_error", "task_id", ""},
		{"missing task_type", strings.Replace(ev(""), `,"task_type":"image"`, "", 1), 422, "validation_error", "task_type", ""},
		{"long task_type", strings.Replace(ev(""), `"image"`, `"`+strings.Repeat("i", 65)+`"`, 1), 422, "validation_error", "task_type", ""},
		{"data array", ev(`,"data":[1]`), 422, "validation_error", "data", "data: must be an object"},
		{"data string", ev(`,"data":"x"`), 422, "validation_error", "data", "data: must be an object"},
		{"data null", ev(`,"data":null`), 422, "validation_error", "data", ""},
		{"big integer", ev(`,"data":{"credits":12345678901234567890}`), 422, "validation_error", "data.credits", ""},
		{"nested big integer", ev(`,"data":{"items":[{"id":1},{"id":9007199254740993}]}`), 422, "validation_error", "data.items[1].id", ""},
		{"number overflow", ev(`,"data":{"x":1e400}`), 422, "validation_error", "data.x", ""},
		{"key needing brackets", ev(`,"data":{"a.b":1e400}`), 422, "validation_error", `data["a.b"]`, ""},
		{"bad occurred_at", ev(`,"occurred_at":"yesterday"`), 422, "validation_error", "occurred_at", ""},
		{"occurred_at number", ev(`,"occurred_at":1734948000`), 422, "validation_error", "occurred_at", ""},
		{"empty idempotency_key", ev(`,"idempotency_key":""`), 422, "validation_error", "idempotency_key", ""},
		{"long idempotency_key", ev(`,"idempotency_key":"` + strings.Repeat("k", 257) + `"`), 422, "validation_error", "idempotency_key", ""},
		{"unknown field", ev(`,"status":"completed"`), 400, "unknown_field", "status", ""},
		{"malformed", `{"account_id":`, 400, "invalid_json", "", ""},
		{"not an object", `[1]`, 400, "invalid_request", "", ""},
		{"invalid UTF-8", ev(`,"data":{"s":"` + "\xff" + `"}`), 400, "invalid_json", "", ""},
	}
	for _, c := range cases {
		r := b.adm(t, "POST", "/admin/v1/events", c.body)
		if r.status != c.status {
			t.Errorf("%s: status %d, want %d: %s", c.name, r.status, c.status, r.raw)
			continue
		}
		msg := r.wantError(t, c.status, c.code, c.field)
		if c.msg != "" && msg != c.msg {
			t.Errorf("%s: message %q, want %q", c.name, msg, c.msg)
		}
	}
	call(t, b.admin, "POST", "/admin/v1/events", testAdminToken, "text/plain", ev("")).wantError(t, 415, "unsupported_media_type", "")
	call(t, b.admin, "POST", "/admin/v1/events", testAdminToken, "", ev("")).wantError(t, 415, "unsupported_media_type", "")

	nothingPending(t, b.store)
	if n := b.waker.n.Load(); n != 0 {
		t.Fatalf("waker called %d times", n)
	}
	// The event was never stored: publishing it properly is not a duplicate.
	d := b.adm(t, "POST", "/admin/v1/events", ev("")).wantData(t, 202)
	if d["duplicate"] != false || d["deliveries"] != float64(1) {
		t.Fatalf("first real publish: %v", d)
	}
}

// TestBatch: a batch with any invalid item is refused whole (422 naming the
// first field, every refused item listed, nothing stored); a valid batch is
// committed and answers per item, in order.
func TestBatch(t *testing.T) {
	t.Parallel()
	b := setup(t)
	acct, key := b.newAccount(t, "a")
	b.newWebhook(t, key, "https://example.com/hook")

	item := func(task string, extra string) string {
		return fmt.Sprintf(`{"account_id":%d,"event":"job.completed","task_id":%q,"task_type":"image"%s}`, acct, task, extra)
	}
	body := `{"events":[` + strings.Join([]string{
		item("t0", `,"data":{"ok":true}`),                // 0 valid
		item("", ""),                                     // 1 task_id missing
		item("t2", `,"data":{"n":12345678901234567890}`), // 2 big integer
		`5`,                           // 3 not an object
		item("t4", `,"colour":"red"`), // 4 unknown field
		item("t0", ""),                // 5 duplicate of 0 in the same batch
		`{"account_id":999,"event":"job.completed","task_id":"t6","task_type":"image"}`, // 6 no such account
		item("t7", `,"event":"job.failed"`),                                             // 7 duplicate key in one item
		item("t8", ""),                                                                  // 8 valid
	}, ",") + `]}`
	r := b.adm(t, "POST", "/admin/v1/events/batch", body)
	r.wantError(t, 422, "validation_error", "events[1].task_id")
	var env struct {
		Error struct {
			Message string
			Items   []struct {
				Index                int
				Code, Field, Message string
			}
		}
	}
	if err := json.Unmarshal([]byte(r.raw), &env); err != nil {
		t.Fatal(err)
	}
	wantErr := [][3]any{
		{1, "validation_error", "events[1].task_id"},
		{2, "validation_error", "events[2].data.n"},
		{3, "validation_error", "events[3]"},
		{4, "unknown_field", "events[4].colour"},
		{6, "validation_error", "events[6].account_id"},
	}
	if len(env.Error.Items) != len(wantErr) || !strings.Contains(env.Error.Message, "nothing was stored") {
		t.Fatalf("refusal: %s", r.raw)
	}
	for i, w := range wantErr {
		got := env.Error.Items[i]
		if got.Index != w[0] || got.Code != w[1] || got.Field != w[2] || !strings.HasPrefix(got.Message, w[2].(string)+": ") {
			t.Errorf("refused item %d: %+v, want %v", i, got, w)
		}
	}
	if got := len(claimAll(t, b.store)); got != 0 {
		t.Fatalf("a refused batch stored %d deliveries", got)
	}
	if n := b.waker.n.Load(); n != 0 {
		t.Fatalf("a refused batch woke the engine %d times", n)
	}

	// The valid items alone: committed, one result per item in order.
	body = `{"events":[` + strings.Join([]string{
		item("t0", `,"data":{"ok":true}`), item("t0", ""), item("t7", `,"event":"job.failed"`), item("t8", ""),
	}, ",") + `]}`
	r = b.adm(t, "POST", "/admin/v1/events/batch", body)
	results, ok := r.wantData(t, http.StatusAccepted)["results"].([]any)
	if !ok || len(results) != 4 {
		t.Fatalf("results: %s", r.raw)
	}
	var first string
	for i, res := range results {
		m := res.(map[string]any)
		if got := keysOf(m); !slices.Equal(got, []string{"deliveries", "duplicate", "event_id"}) {
			t.Errorf("result %d: %v", i, m)
			continue
		}
		switch i {
		case 0:
			first = m["event_id"].(string)
			if m["duplicate"] != false || m["deliveries"] != float64(1) {
				t.Errorf("result 0: %v", m)
			}
		case 1:
			if m["event_id"] != first || m["duplicate"] != true {
				t.Errorf("result 1 (same job event as 0): %v", m)
			}
		default:
			if m["duplicate"] != false {
				t.Errorf("result %d: %v", i, m)
			}
		}
	}
	if got := len(claimAll(t, b.store)); got != 3 {
		t.Fatalf("%d deliveries, want 3 (t0, t7, t8)", got)
	}
	if n := b.waker.n.Load(); n != 1 {
		t.Fatalf("waker called %d times, want once per batch", n)
	}

	// An all-invalid batch stores nothing either.
	b.adm(t, "POST", "/admin/v1/events/batch", `{"events":[{"account_id":999}]}`).wantError(t, 422, "validation_error", "events[0].event")
}

// TestBatchLimits: 0 and 1001 items are refused whole, 1000 are accepted.
func TestBatchLimits(t *testing.T) {
	t.Parallel()
	b := setup(t)
	acct, key := b.newAccount(t, "a")
	b.newWebhook(t, key, "https://example.com/hook")
	items := func(n int) string {
		evs := make([]string, n)
		for i := range evs {
			evs[i] = fmt.Sprintf(`{"account_id":%d,"event":"job.completed","task_id":"t%d","task_type":"image","data":{"i":%d}}`, acct, i, i)
		}
		return `{"events":[` + strings.Join(evs, ",") + `]}`
	}
	b.adm(t, "POST", "/admin/v1/events/batch", items(1001)).wantError(t, 422, "validation_error", "events")
	b.adm(t, "POST", "/admin/v1/events/batch", `{"events":[]}`).wantError(t, 422, "validation_error", "events")
	b.adm(t, "POST", "/admin/v1/events/batch", `{}`).wantError(t, 422, "validation_error", "events")
	b.adm(t, "POST", "/admin/v1/events/batch", `{"events":{}}`).wantError(t, 422, "validation_error", "events")
	b.adm(t, "POST", "/admin/v1/events/batch", `[]`).wantError(t, 400, "invalid_request", "")
	nothingPending(t, b.store)

	r := b.adm(t, "POST", "/admin/v1/events/batch", items(1000))
	res := r.wantData(t, 202)["results"].([]any)
	if len(res) != 1000 {
		t.Fatalf("%d results", len(res))
	}
	seen := map[string]bool{}
	for i, x := range res {
		m := x.(map[string]any)
		id, _ := m["event_id"].(string)
		if id == "" || seen[id] || m["deliveries"] != float64(1) {
			t.Fatalf("result %d: %v", i, m)
		}
		seen[id] = true
	}
	if got := len(claimAll(t, b.store)); got != 1000 {
		t.Fatalf("%d deliveries, want 1000", got)
	}
}

// TestBodyLimits: one event's request is held to MaxBodyBytes (1 MiB by
// default) while a batch may carry up to 16 MiB; within it, each event is
// still held to the delivered-body limit (TestPayloadLimit).
func TestBodyLimits(t *testing.T) {
	t.Parallel()
	b := setup(t)
	acct, _ := b.newAccount(t, "a")
	big := fmt.Sprintf(`{"account_id":%d,"event":"job.completed","task_id":"big","task_type":"image","data":{"s":"%s"}}`,
		acct, strings.Repeat("x", 3<<19))
	b.adm(t, "POST", "/admin/v1/events", big).wantError(t, 413, "payload_too_large", "")
	b.adm(t, "POST", "/admin/v1/events/batch", `{"events":[`+big+`]}`).wantError(t, 413, "payload_too_large", "events[0].data")
	huge := `{"events":[` + big + strings.Repeat(","+big, 11) + `]}`
	b.adm(t, "POST", "/admin/v1/events/batch", huge).wantError(t, 413, "payload_too_large", "")
	nothingPending(t, b.store)
}
