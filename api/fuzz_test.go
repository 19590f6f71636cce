package api_test

// Native fuzz targets, one per operation that decodes a JSON body or parses
// query parameters. Each drives the real handler over HTTP on one shared
// server and SQLite file per target and checks, for every input:
//
//   - never a 5xx (nor a panic, which would be a 500): the answer is the
//     documented envelope, with the status its error code stands for, and
//     it validates against openapi.json (call does that);
//   - a 4xx stores nothing: row counts, and the rows the route could
//     change in place, are the same after as before;
//   - a 2xx is given only for valid input, and what is stored is what was
//     sent, read back from the store.
//
// Plain `go test` runs the seeds; .ci/run fuzzes each target for a few
// seconds, e.g. go test -run '^$' -fuzz '^FuzzCreateWebhook$' -fuzztime 8s ./api.

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"
	"unicode"

	"github.com/nanohook/nanohook"
	"github.com/nanohook/nanohook/store"
	"github.com/nanohook/nanohook/webhook"
)

// statusOfCode is the documented status of each error code.
var statusOfCode = map[string]int{
	"validation_error":       422,
	"invalid_json":           400,
	"unknown_field":          400,
	"invalid_request":        400,
	"not_found":              404,
	"conflict":               409,
	"payload_too_large":      413,
	"unsupported_media_type": 415,
}

// checkAnswer fails on a 5xx and on any answer that is not the envelope its
// status promises, and reports whether the request succeeded.
func checkAnswer(t *testing.T, r response, in string) bool {
	t.Helper()
	if r.status >= 500 {
		t.Fatalf("input %q: %d %s", in, r.status, r.raw)
	}
	ok, isBool := r.body["success"].(bool)
	if !isBool {
		t.Fatalf("input %q: success is %v: %s", in, r.body["success"], r.raw)
	}
	if ok != (r.status >= 200 && r.status < 300) {
		t.Fatalf("input %q: success %v with status %d: %s", in, ok, r.status, r.raw)
	}
	if ok {
		return true
	}
	e, _ := r.body["error"].(map[string]any)
	code, _ := e["code"].(string)
	msg, _ := e["message"].(string)
	want, known := statusOfCode[code]
	if _, items := e["items"]; items && r.status == 422 {
		want = 422 // a refused batch is a 422 whatever its first item's code
	}
	if !known || want != r.status || msg == "" || len(r.body) != 2 {
		t.Fatalf("input %q: error envelope %d %s", in, r.status, r.raw)
	}
	return false
}

// loneSurrogate reports whether a JSON text holds an escaped UTF-16
// surrogate that is not half of a pair: such a string has no UTF-8 form,
// so a field holding one cannot have been stored as sent. It is the test's
// own reading, independent of the handler's.
func loneSurrogate(raw []byte) bool {
	s := string(raw)
	for i := 0; i+6 <= len(s); i++ {
		if s[i] == '\\' && s[i+1] == '\\' {
			i++
			continue
		}
		if s[i] != '\\' || s[i+1] != 'u' {
			continue
		}
		r, err := strconv.ParseUint(s[i+2:i+6], 16, 32)
		if err != nil {
			continue
		}
		switch {
		case r >= 0xdc00 && r <= 0xdfff:
			return true
		case r >= 0xd800 && r <= 0xdbff:
			if i+12 > len(s) || s[i+6:i+8] != `\u` {
				return true
			}
			lo, err := strconv.ParseUint(s[i+8:i+12], 16, 32)
			if err != nil || lo < 0xdc00 || lo > 0xdfff {
				return true
			}
			i += 11
		default:
			i += 5
		}
	}
	return false
}

// fuzzCounter counts a target's inputs and logs the total at its end.
func fuzzCounter(f *testing.F, name string) *atomic.Int64 {
	n := new(atomic.Int64)
	f.Cleanup(func() { f.Logf("%s: %d inputs", name, n.Load()) })
	return n
}

// sameCounts fails unless only the named tables changed, by the given
// deltas.
func sameCounts(t *testing.T, in string, before, after map[string]int64, delta map[string]int64) {
	t.Helper()
	for _, table := range tables {
		if after[table] != before[table]+delta[table] {
			t.Fatalf("input %q: %s went from %d to %d, want +%d (all: %v → %v)", in, table, before[table], after[table], delta[table], before, after)
		}
	}
}

// endpointState renders one endpoint and its deliveries, what an update,
// rotation or recovery could change in place.
func (h *hostile) endpointState(t *testing.T, id int64) string {
	t.Helper()
	return h.dump(t, "SELECT * FROM endpoints WHERE id = ?", id) + h.dump(t, "SELECT * FROM deliveries WHERE endpoint_id = ? ORDER BY id", id)
}

// bodySeeds are inputs every body target starts from besides its own.
var bodySeeds = []string{
	``, ` `, `null`, `[]`, `"x"`, `1`, `{}`, `{"a":1}`, `{`, `}`, `{"":""}`,
	`{"url":null}`, "{\x00}", "{\"name\":\"\xff\"}", `{"name":"\ud800"}`,
	strings.Repeat(`[`, 10_001), strings.Repeat(`{"a":`, 200) + `1` + strings.Repeat(`}`, 200),
	`{"description":"'; DROP TABLE endpoints;--"}`, `{"name":"\" OR 1=1 --"}`,
}

// storedURL is the URL an accepted request must have stored: the one sent
// when it is ASCII, else its ASCII form (IDN host as punycode, other bytes
// percent-encoded), which is ASCII and stable itself (FuzzValidateURL fuzzes
// those properties of NormalizeURL).
func storedURL(t *testing.T, body, sent string) string {
	t.Helper()
	u, err := nanohook.NormalizeURL("url", sent, false)
	if err != nil {
		t.Fatalf("input %q accepted, but its url is invalid: %v", body, err)
	}
	if u != sent && !strings.ContainsFunc(sent, func(r rune) bool { return r > unicode.MaxASCII }) {
		t.Fatalf("input %q: ASCII url %q would be stored as %q", body, sent, u)
	}
	return u
}

// FuzzCreateWebhook: POST /api/v1/webhooks.
func FuzzCreateWebhook(f *testing.F) {
	h := newHostile(f)
	n := fuzzCounter(f, "FuzzCreateWebhook")
	for _, s := range append(slices.Clone(bodySeeds),
		`{"url":"https://example.com/a","events":["job.completed"]}`,
		`{"url":"https://example.com/a","events":["job.completed","job.failed","job.completed"],"secret_key":"whsec_12345678","description":"d"}`,
		`{"url":"https://example.com/a","events":["job.failed"],"secret_key":"\ud83d\ude00\ud83d\ude00\ud83d\ude00\ud83d\ude00\ud83d\ude00\ud83d\ude00\ud83d\ude00\ud83d\ude00"}`,
		`{"url":"https://example.com/a","events":["job.failed"],"secret_key":"abcdefg\ud800"}`,
		`{"url":"https://example.com/a\r\nX: 1","events":["job.completed"]}`,
		`{"url":"https://bücher.example:8443/ü?q=ü","events":["job.completed"]}`,
		`{"url":"https://example.com:99999/a","events":["job.completed"]}`,
		`{"url":"http://example.com/a","events":["job.completed"]}`,
		`{"url":"https://internal.example/a","events":["job.completed"]}`,
		`{"url":"https://example.com/a","events":[]}`,
		`{"url":"https://example.com/a","events":["ping"]}`,
		`{"url":"https://example.com/a","events":["job.completed"],"URL":"x"}`,
		`{"url":"https://example.com/a","events":["job.completed"],"description":"a\u0000b"}`,
		`{"url":"https://example.com/a","events":["job.completed"]} {}`,
	) {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, body string) {
		n.Add(1)
		before := h.counts(t)
		r := h.pub(t, "POST", "/api/v1/webhooks", h.key, body)
		if !checkAnswer(t, r, body) {
			sameCounts(t, body, before, h.counts(t), nil)
			return
		}
		if r.status != http.StatusCreated {
			t.Fatalf("input %q: %d", body, r.status)
		}
		sameCounts(t, body, before, h.counts(t), map[string]int64{"endpoints": 1})
		var sent struct {
			URL         string   `json:"url"`
			Events      []string `json:"events"`
			SecretKey   *string  `json:"secret_key"`
			Description string   `json:"description"`
		}
		if err := json.Unmarshal([]byte(body), &sent); err != nil || loneSurrogate([]byte(body)) {
			t.Fatalf("input %q accepted, but it is not a faithful JSON object (%v)", body, err)
		}
		d := r.body["data"].(map[string]any)
		e, err := h.store.GetEndpoint(context.Background(), h.acct, int64(d["id"].(float64)))
		if err != nil {
			t.Fatal(err)
		}
		wantEvents, err := nanohook.NormalizeEvents("events", sent.Events)
		if err != nil || !slices.Equal(e.Events, wantEvents) {
			t.Fatalf("input %q: events stored as %v, want %v (%v)", body, e.Events, wantEvents, err)
		}
		secret := d["secret_key"].(string)
		if sent.SecretKey != nil && secret != *sent.SecretKey || sent.SecretKey == nil && !strings.HasPrefix(secret, "whsec_") {
			t.Fatalf("input %q: answered secret %q", body, secret)
		}
		if e.URL != storedURL(t, body, sent.URL) || e.Description != sent.Description || e.Secret != secret || e.Status != nanohook.EndpointActive {
			t.Fatalf("input %q stored as %+v", body, e)
		}
		if nanohook.ValidateURL("url", e.URL, false) != nil || nanohook.ValidateSecret("secret_key", e.Secret) != nil ||
			nanohook.ValidateDescription("description", e.Description) != nil {
			t.Fatalf("input %q: invalid endpoint stored: %+v", body, e)
		}
	})
}

// FuzzUpdateWebhook: PATCH /api/v1/webhooks/{id}.
func FuzzUpdateWebhook(f *testing.F) {
	h := newHostile(f)
	n := fuzzCounter(f, "FuzzUpdateWebhook")
	for _, s := range append(slices.Clone(bodySeeds),
		`{"url":"https://example.com/b"}`, `{"events":["job.failed"]}`, `{"status":"disabled"}`, `{"status":"active"}`,
		`{"description":"new"}`, `{"description":""}`, `{"status":"Disabled"}`, `{"events":null}`, `{"events":[]}`,
		`{"url":"https://example.com/b","events":["job.failed","job.completed"],"status":"active","description":"all"}`,
		`{"description":"x\ud800"}`, `{"url":"https://internal.example/"}`, `{"secret_key":"abcdefghijk"}`,
		`{"url":"https://bücher.example/ü"}`, `{"url":"https://example.com:0/"}`,
	) {
		f.Add(s)
	}
	path := fmt.Sprintf("/api/v1/webhooks/%d", h.ep)
	f.Fuzz(func(t *testing.T, body string) {
		n.Add(1)
		before, beforeEP := h.counts(t), h.endpointState(t, h.ep)
		old, err := h.store.GetEndpoint(context.Background(), h.acct, h.ep)
		if err != nil {
			t.Fatal(err)
		}
		r := h.pub(t, "PATCH", path, h.key, body)
		sameCounts(t, body, before, h.counts(t), nil)
		if !checkAnswer(t, r, body) {
			if after := h.endpointState(t, h.ep); after != beforeEP {
				t.Fatalf("input %q refused (%s) but the endpoint changed:\n%s\n%s", body, r.raw, beforeEP, after)
			}
			return
		}
		var sent struct {
			URL         *string  `json:"url"`
			Events      []string `json:"events"`
			Status      *string  `json:"status"`
			Description *string  `json:"description"`
		}
		if err := json.Unmarshal([]byte(body), &sent); err != nil || loneSurrogate([]byte(body)) {
			t.Fatalf("input %q accepted, but it is not a faithful JSON object (%v)", body, err)
		}
		e, err := h.store.GetEndpoint(context.Background(), h.acct, h.ep)
		if err != nil {
			t.Fatal(err)
		}
		want := old
		if sent.URL != nil {
			want.URL = storedURL(t, body, *sent.URL)
		}
		if sent.Events != nil {
			want.Events, _ = nanohook.NormalizeEvents("events", sent.Events)
		}
		if sent.Description != nil {
			want.Description = *sent.Description
		}
		if sent.Status != nil {
			want.Status = nanohook.EndpointStatus(*sent.Status)
			want.DisabledReason = ""
			if want.Status == nanohook.EndpointDisabled {
				want.DisabledReason = "disabled by the account"
			}
		}
		if e.URL != want.URL || !slices.Equal(e.Events, want.Events) || e.Description != want.Description ||
			e.Status != want.Status || e.DisabledReason != want.DisabledReason || e.Secret != old.Secret {
			t.Fatalf("input %q: stored %+v, want %+v", body, e, want)
		}
		if nanohook.ValidateURL("url", e.URL, false) != nil || len(e.Events) == 0 || nanohook.ValidateDescription("description", e.Description) != nil {
			t.Fatalf("input %q: invalid endpoint stored: %+v", body, e)
		}
	})
}

// FuzzRotateSecret: POST /api/v1/webhooks/{id}/rotate-secret.
func FuzzRotateSecret(f *testing.F) {
	h := newHostile(f)
	n := fuzzCounter(f, "FuzzRotateSecret")
	for _, s := range append(slices.Clone(bodySeeds),
		`{"secret_key":"whsec_rotated_1"}`, `{"overlap_seconds":0}`, `{"overlap_seconds":604800}`, `{"overlap_seconds":604801}`,
		`{"overlap_seconds":-1}`, `{"overlap_seconds":1e3}`, `{"overlap_seconds":9223372036854775808}`,
		`{"secret_key":"short"}`, `{"secret_key":"whsec_\r\nX-Injected: 1"}`, `{"secret_key":"whsec_abcd\udfff"}`,
		`{"secret_key":"`+strings.Repeat("é", 256)+`","overlap_seconds":60}`,
	) {
		f.Add(s)
	}
	path := fmt.Sprintf("/api/v1/webhooks/%d/rotate-secret", h.ep)
	f.Fuzz(func(t *testing.T, body string) {
		n.Add(1)
		before, beforeEP := h.counts(t), h.endpointState(t, h.ep)
		r := h.pub(t, "POST", path, h.key, body)
		sameCounts(t, body, before, h.counts(t), nil)
		if !checkAnswer(t, r, body) {
			if after := h.endpointState(t, h.ep); after != beforeEP {
				t.Fatalf("input %q refused (%s) but the endpoint changed", body, r.raw)
			}
			return
		}
		var sent struct {
			SecretKey      *string `json:"secret_key"`
			OverlapSeconds *int64  `json:"overlap_seconds"`
		}
		if body != "" {
			if err := json.Unmarshal([]byte(body), &sent); err != nil || loneSurrogate([]byte(body)) {
				t.Fatalf("input %q accepted, but it is not a faithful JSON object (%v)", body, err)
			}
		}
		d := r.body["data"].(map[string]any)
		e, err := h.store.GetEndpoint(context.Background(), h.acct, h.ep)
		if err != nil {
			t.Fatal(err)
		}
		secret := d["secret_key"].(string)
		if sent.SecretKey != nil && secret != *sent.SecretKey || sent.SecretKey == nil && !strings.HasPrefix(secret, "whsec_") ||
			e.Secret != secret || nanohook.ValidateSecret("secret_key", e.Secret) != nil {
			t.Fatalf("input %q: secret answered %q, stored %q", body, secret, e.Secret)
		}
		overlap := nanohook.DefaultSecretOverlap
		if sent.OverlapSeconds != nil {
			overlap = time.Duration(*sent.OverlapSeconds) * time.Second
		}
		want := testNow.Add(overlap)
		if overlap == 0 {
			want = time.Time{}
		}
		if !e.PreviousSecretExpiresAt.Equal(want) || overlap < 0 || overlap > nanohook.MaxSecretOverlap {
			t.Fatalf("input %q: previous secret valid until %v, want %v", body, e.PreviousSecretExpiresAt, want)
		}
	})
}

// FuzzRecover: POST /api/v1/webhooks/{id}/recover. The endpoint's five
// deliveries are failed before every input, so that a recovery has work.
func FuzzRecover(f *testing.F) {
	h := newHostile(f)
	n := fuzzCounter(f, "FuzzRecover")
	for _, s := range append(slices.Clone(bodySeeds),
		`{"since":"2024-12-01T00:00:00Z"}`, `{"since":"2024-12-23T10:00:00Z"}`, `{"since":"2024-12-23T10:00:01Z"}`,
		`{"since":"2024-12-01T00:00:00Z","until":"2024-12-23T10:00:00Z"}`, `{"since":"2024-12-01T00:00:00Z","until":"2024-12-23T10:00:01Z"}`,
		`{"since":"2024-12-01T00:00:00+05:00","until":"2024-12-01T00:00:00Z"}`, `{"since":"2024-12-01"}`, `{"since":"0000-01-01T00:00:00Z"}`,
		`{"since":"9999-12-31T23:59:59Z"}`, `{"until":"2024-12-01T00:00:00Z"}`, `{"since":"2024-12-01T00:00:00.999999999Z"}`,
	) {
		f.Add(s)
	}
	path := fmt.Sprintf("/api/v1/webhooks/%d/recover", h.ep)
	ctx := context.Background()
	failAll := func(t testing.TB) {
		for _, st := range []nanohook.EndpointStatus{nanohook.EndpointDisabled, nanohook.EndpointActive} {
			reason := ""
			if _, err := h.store.UpdateEndpoint(ctx, store.UpdateEndpointParams{AccountID: h.acct, ID: h.ep, Status: &st, DisabledReason: &reason, Now: testNow}); err != nil {
				t.Fatal(err)
			}
		}
	}
	failed := func(t *testing.T) int {
		var n int
		if err := h.db.QueryRow("SELECT count(*) FROM deliveries WHERE endpoint_id = ? AND status = 'failed'", h.ep).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	failAll(f)
	f.Fuzz(func(t *testing.T, body string) {
		n.Add(1)
		before, beforeEP, failedBefore := h.counts(t), h.endpointState(t, h.ep), failed(t)
		r := h.pub(t, "POST", path, h.key, body)
		sameCounts(t, body, before, h.counts(t), nil)
		if !checkAnswer(t, r, body) {
			if after := h.endpointState(t, h.ep); after != beforeEP {
				t.Fatalf("input %q refused (%s) but deliveries changed", body, r.raw)
			}
			return
		}
		var sent struct{ Since, Until *string }
		if err := json.Unmarshal([]byte(body), &sent); err != nil || sent.Since == nil {
			t.Fatalf("input %q accepted without since (%v)", body, err)
		}
		since, err1 := time.Parse(time.RFC3339, *sent.Since)
		var until time.Time
		var err2 error
		if sent.Until != nil {
			until, err2 = time.Parse(time.RFC3339, *sent.Until)
		}
		if err1 != nil || err2 != nil || since.After(testNow) || sent.Until != nil && !until.After(since) {
			t.Fatalf("input %q accepted with an invalid range", body)
		}
		want := 0
		if !since.After(testNow) && (sent.Until == nil || until.After(testNow)) {
			want = failedBefore
		}
		queued := int(r.body["data"].(map[string]any)["queued"].(float64))
		if queued != want || failed(t) != failedBefore-want {
			t.Fatalf("input %q: queued %d, failed %d → %d; want %d queued", body, queued, failedBefore, failed(t), want)
		}
		failAll(t)
	})
}

// FuzzCreateAccount: POST /admin/v1/accounts.
func FuzzCreateAccount(f *testing.F) {
	h := newHostile(f)
	n := fuzzCounter(f, "FuzzCreateAccount")
	for _, s := range append(slices.Clone(bodySeeds),
		`{"name":"Acme"}`, `{"name":"Acme <Studios> & Co"}`, `{"name":" padded"}`, `{"name":""}`, `{"name":"a\nb"}`,
		`{"name":"Robert'); DROP TABLE accounts;--"}`, `{"name":"\u00e9\u0301"}`, `{"name":"\u0085"}`, `{"name":"x","plan":"pro"}`,
		`{"name":"`+strings.Repeat("n", 200)+`"}`, `{"name":"`+strings.Repeat("n", 201)+`"}`,
	) {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, body string) {
		n.Add(1)
		before := h.counts(t)
		r := h.adm(t, "POST", "/admin/v1/accounts", body)
		if !checkAnswer(t, r, body) {
			sameCounts(t, body, before, h.counts(t), nil)
			return
		}
		sameCounts(t, body, before, h.counts(t), map[string]int64{"accounts": 1, "api_keys": 1})
		var sent struct{ Name string }
		if err := json.Unmarshal([]byte(body), &sent); err != nil || loneSurrogate([]byte(body)) {
			t.Fatalf("input %q accepted, but it is not a faithful JSON object (%v)", body, err)
		}
		d := r.body["data"].(map[string]any)
		a, err := h.store.GetAccount(context.Background(), int64(d["id"].(float64)))
		if err != nil || a.Name != sent.Name || d["name"] != sent.Name || !strings.HasPrefix(d["api_key"].(string), "nhk_") {
			t.Fatalf("input %q: stored %+v (%v), answered %v", body, a, err, d)
		}
		if a.Name == "" || len(a.Name) > nanohook.MaxAccountNameLen || strings.ContainsFunc(a.Name, unicode.IsControl) || strings.TrimSpace(a.Name) != a.Name {
			t.Fatalf("input %q: invalid name stored %q", body, a.Name)
		}
	})
}

// publishedItem is what a publish body says, as the test reads it.
type publishedItem struct {
	AccountID      *int64          `json:"account_id"`
	Event          string          `json:"event"`
	TaskID         string          `json:"task_id"`
	TaskType       string          `json:"task_type"`
	Data           json.RawMessage `json:"data"`
	OccurredAt     *string         `json:"occurred_at"`
	IdempotencyKey *string         `json:"idempotency_key"`
}

// checkPublished reads one accepted event back and compares it with what
// was sent: its fields, its idempotency key and the payload endpoints get.
func (h *hostile) checkPublished(t *testing.T, in string, raw json.RawMessage, res map[string]any) {
	t.Helper()
	var sent publishedItem
	if err := json.Unmarshal(raw, &sent); err != nil || sent.AccountID == nil {
		t.Fatalf("input %q accepted, but %s is not a faithful event (%v)", in, raw, err)
	}
	var members map[string]json.RawMessage
	_ = json.Unmarshal(raw, &members)
	for name, m := range members {
		if name != "data" && loneSurrogate(m) {
			t.Fatalf("input %q accepted with an unpaired surrogate in %s", in, name)
		}
	}
	e, err := h.store.GetEvent(context.Background(), *sent.AccountID, res["event_id"].(string))
	if err != nil {
		t.Fatalf("input %q: event %v: %v", in, res["event_id"], err)
	}
	if res["duplicate"] == true {
		return // the event stored first is the one that stays
	}
	key := string(nanohook.DefaultIdempotencyKey(nanohook.EventType(sent.Event), sent.TaskID))
	if sent.IdempotencyKey != nil {
		key = *sent.IdempotencyKey
	}
	if string(e.Type) != sent.Event || e.TaskID != sent.TaskID || e.TaskType != sent.TaskType || e.IdempotencyKey != key {
		t.Fatalf("input %q: stored %+v", in, e)
	}
	data := json.RawMessage(`{}`)
	if sent.Data != nil {
		// Event data is I-JSON: webhook's tests fuzz CanonicalizeIJSON
		// against their own reading of RFC 7493.
		if data, err = webhook.CanonicalizeIJSON(sent.Data); err != nil {
			t.Fatalf("input %q: accepted data that is not I-JSON: %v", in, err)
		}
	}
	occurred := testNow
	if sent.OccurredAt != nil {
		if occurred, err = time.Parse(time.RFC3339, *sent.OccurredAt); err != nil {
			t.Fatalf("input %q: accepted occurred_at %q", in, *sent.OccurredAt)
		}
	}
	want, err := webhook.EncodePayload(webhook.Payload{
		Event: sent.Event, TaskID: sent.TaskID, TaskType: sent.TaskType, Status: nanohook.EventType(sent.Event).JobStatus(),
		Data: data, Timestamp: occurred.UTC().Truncate(time.Second).Format(time.RFC3339),
	})
	if err != nil || string(e.Payload) != string(want) {
		t.Fatalf("input %q: payload %s, want %s (%v)", in, e.Payload, want, err)
	}
	if again, err := webhook.Canonicalize(e.Payload); err != nil || string(again) != string(e.Payload) {
		t.Fatalf("input %q: stored payload is not canonical: %s", in, e.Payload)
	}
}

// subscribers is how many endpoints get an event of the account: the
// hostile bundle's first account has two, the second one.
func (h *hostile) subscribers(acct int64) float64 {
	if acct == h.acct {
		return 2
	}
	return 1
}

// publishSeeds are good and bad events for both publish targets.
var publishSeeds = []string{
	`{"account_id":1,"event":"job.completed","task_id":"task_123","task_type":"image","data":{"url":"https://cdn.example.com/image.png","credits_charged":6}}`,
	`{"account_id":2,"event":"job.failed","task_id":"t","task_type":"video","data":{},"occurred_at":"2024-12-23T09:00:00+01:00","idempotency_key":"k"}`,
	`{"account_id":1,"event":"job.completed","task_id":"t2","task_type":"image","data":{"n":9007199254740993}}`,
	`{"account_id":1,"event":"job.completed","task_id":"t3","task_type":"image","data":{"s":"\ud800","z":"\u0000","b":1,"a":[1e21,-0,0.1]}}`,
	`{"account_id":1,"event":"job.completed","task_id":"t4\ud800","task_type":"image"}`,
	`{"account_id":3,"event":"job.completed","task_id":"t","task_type":"image"}`,
	`{"account_id":0,"event":"job.completed","task_id":"t","task_type":"image"}`,
	`{"account_id":1,"event":"ping","task_id":"t","task_type":"image"}`,
	`{"account_id":1,"event":"job.completed","task_id":"t","task_type":"image","data":[]}`,
	`{"account_id":1,"event":"job.completed","task_id":"t","task_type":"image","data":null}`,
	`{"account_id":1,"event":"job.completed","task_id":"t","task_type":"image","data":{"a":1,"a":2}}`,
	`{"account_id":1.5,"event":"job.completed","task_id":"t","task_type":"image"}`,
	`{"account_id":1,"event":"job.completed","task_id":"'; DROP TABLE events;--","task_type":"\" OR 1=1 --","idempotency_key":"x' OR '1'='1"}`,
	`{"account_id":1,"event":"job.completed","task_id":"t","task_type":"image","occurred_at":"2024-12-23 10:00:00"}`,
	`{"account_id":1,"event":"job.completed","task_id":"t5","task_type":"image","data":{"id":9007199254740991,"big":9007199254740994,"e":1e20,"f":1e21}}`,
	`{"account_id":1,"event":"job.completed","task_id":"t6","task_type":"image","data":{"k":{"\ud83d\ude00":1,"\udc00":2}}}`,
}

// FuzzPublishEvent: POST /admin/v1/events.
func FuzzPublishEvent(f *testing.F) {
	h := newHostile(f)
	n := fuzzCounter(f, "FuzzPublishEvent")
	for _, s := range append(slices.Clone(bodySeeds), publishSeeds...) {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, body string) {
		n.Add(1)
		before := h.counts(t)
		r := h.adm(t, "POST", "/admin/v1/events", body)
		if !checkAnswer(t, r, body) {
			sameCounts(t, body, before, h.counts(t), nil)
			return
		}
		d := r.body["data"].(map[string]any)
		h.checkPublished(t, body, json.RawMessage(body), d)
		var sent publishedItem
		_ = json.Unmarshal([]byte(body), &sent)
		delta := map[string]int64{}
		if d["duplicate"] == false {
			if d["deliveries"] != h.subscribers(*sent.AccountID) {
				t.Fatalf("input %q: %v deliveries", body, d["deliveries"])
			}
			delta = map[string]int64{"events": 1, "deliveries": int64(d["deliveries"].(float64))}
		}
		sameCounts(t, body, before, h.counts(t), delta)
	})
}

// FuzzPublishBatch: POST /admin/v1/events/batch.
func FuzzPublishBatch(f *testing.F) {
	h := newHostile(f)
	n := fuzzCounter(f, "FuzzPublishBatch")
	for _, s := range bodySeeds {
		f.Add(s)
	}
	for i, s := range publishSeeds {
		f.Add(`{"events":[` + s + `]}`)
		f.Add(`{"events":[` + publishSeeds[0] + `,` + s + `,` + publishSeeds[(i+1)%len(publishSeeds)] + `]}`)
	}
	f.Add(`{"events":[]}`)
	f.Add(`{"events":{}}`)
	f.Add(`{"events":[1,"x",null]}`)
	f.Fuzz(func(t *testing.T, body string) {
		n.Add(1)
		before := h.counts(t)
		r := h.adm(t, "POST", "/admin/v1/events/batch", body)
		if !checkAnswer(t, r, body) {
			sameCounts(t, body, before, h.counts(t), nil)
			return
		}
		var sent struct{ Events []json.RawMessage }
		if err := json.Unmarshal([]byte(body), &sent); err != nil {
			t.Fatalf("input %q accepted: %v", body, err)
		}
		results := r.body["data"].(map[string]any)["results"].([]any)
		if len(results) != len(sent.Events) || len(results) == 0 {
			t.Fatalf("input %q: %d results for %d events", body, len(results), len(sent.Events))
		}
		delta := map[string]int64{}
		for i, res := range results {
			res := res.(map[string]any)
			h.checkPublished(t, body, sent.Events[i], res)
			if res["duplicate"] == false {
				delta["events"]++
				delta["deliveries"] += int64(res["deliveries"].(float64))
			}
		}
		sameCounts(t, body, before, h.counts(t), delta)
	})
}

// fuzzQuery turns a fuzzed string into a query: itself when it parses as
// one, else a cursor holding it.
func fuzzQuery(raw string) (url.Values, string) {
	q, err := url.ParseQuery(raw)
	if err != nil {
		q = url.Values{"cursor": {raw}}
	}
	return q, q.Encode()
}

// querySeeds are good and bad list parameters. The cursors are those of
// the hostile bundle's first account (id 1) and its first endpoint (id 1).
func querySeeds() []string {
	cur := func(s string) string { return base64.RawURLEncoding.EncodeToString([]byte(s)) }
	return []string{
		"", "limit=1", "limit=100", "limit=101", "limit=0", "limit=-1", "limit=1e3", "limit=1000000000000000000000000000000", "limit=abc",
		"limit=", "limit=1&limit=2", "cursor=", "cursor=" + cur("w1.1"), "cursor=" + cur("w2.1"), "cursor=" + cur("d1-1.3"),
		"cursor=" + cur("d1-2.3"), "cursor=" + cur("w1.01"), "cursor=" + cur("w1.-1"), "cursor=" + cur("w1.9223372036854775808"),
		"cursor=MQ", "cursor=%FF", "status=failed", "status=pending&event=job.completed", "event=ping", "status=x",
		"since=2024-12-01T00:00:00Z&until=2024-12-24T00:00:00Z", "since=yesterday", "until=2024-12-23T10:00:00%2B01:00",
		"status='; DROP TABLE deliveries;--", "limit=2&cursor=" + cur("d1-1.4") + "&status=pending", "%", "a=%zz",
	}
}

// checkListAnswer checks a list answer: 200 with at most limit items, or
// 400 naming a parameter of the query.
func checkListAnswer(t *testing.T, r response, q url.Values, in string) []map[string]any {
	t.Helper()
	if !checkAnswer(t, r, in) {
		e := r.body["error"].(map[string]any)
		if r.status != 400 || !q.Has(fmt.Sprint(e["field"])) {
			t.Fatalf("input %q: refused with %s", in, r.raw)
		}
		return nil
	}
	items := r.body["data"].([]any)
	limit, err := strconv.Atoi(q.Get("limit"))
	if q.Has("limit") && (err != nil || limit < 1 || limit > 100) {
		t.Fatalf("input %q: limit %q accepted", in, q.Get("limit"))
	}
	if q.Has("limit") && len(items) > limit {
		t.Fatalf("input %q: %d items for limit %d", in, len(items), limit)
	}
	if q.Has("cursor") && q.Get("cursor") == "" {
		t.Fatalf("input %q: empty cursor accepted", in)
	}
	out := make([]map[string]any, len(items))
	for i, it := range items {
		out[i] = it.(map[string]any)
	}
	return out
}

// FuzzListWebhooks: GET /api/v1/webhooks with fuzzed limit and cursor.
func FuzzListWebhooks(f *testing.F) {
	h := newHostile(f)
	n := fuzzCounter(f, "FuzzListWebhooks")
	for _, s := range querySeeds() {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		n.Add(1)
		q, enc := fuzzQuery(raw)
		r := h.pub(t, "GET", "/api/v1/webhooks?"+enc, h.key, "")
		for _, it := range checkListAnswer(t, r, q, raw) {
			if id := int64(it["id"].(float64)); id != h.ep && id != h.ep2 {
				t.Fatalf("input %q: listed endpoint %d of another account: %s", raw, id, r.raw)
			}
		}
	})
}

// FuzzListDeliveries: GET /api/v1/webhooks/{id}/deliveries with fuzzed
// limit, cursor and filters.
func FuzzListDeliveries(f *testing.F) {
	h := newHostile(f)
	n := fuzzCounter(f, "FuzzListDeliveries")
	for _, s := range querySeeds() {
		f.Add(s)
	}
	path := fmt.Sprintf("/api/v1/webhooks/%d/deliveries?", h.ep)
	f.Fuzz(func(t *testing.T, raw string) {
		n.Add(1)
		q, enc := fuzzQuery(raw)
		r := h.pub(t, "GET", path+enc, h.key, "")
		for _, it := range checkListAnswer(t, r, q, raw) {
			if int64(it["webhook_id"].(float64)) != h.ep ||
				q.Has("status") && it["status"] != q.Get("status") || q.Has("event") && it["event"] != q.Get("event") {
				t.Fatalf("input %q: listed %v", raw, it)
			}
		}
	})
}
