package api_test

import (
	"fmt"
	"net/http"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/nanohook/nanohook/api"
)

// TestDocumentedCalls checks the three calls of the original documentation
// with their exact shapes.
func TestDocumentedCalls(t *testing.T) {
	t.Parallel()
	b := setup(t)
	_, key := b.newAccount(t, "acme")

	// POST /api/v1/webhooks answers 201 with the endpoint and its secret.
	r := b.pub(t, "POST", "/api/v1/webhooks", key,
		`{"url":"https://example.com/hook","events":["job.completed","job.failed","job.completed"]}`)
	d := r.wantData(t, http.StatusCreated)
	wantKeys := []string{"created_at", "description", "disabled_reason", "events", "id", "secret_key", "status", "updated_at", "url"}
	if got := keysOf(d); !slices.Equal(got, wantKeys) {
		t.Fatalf("create keys %v, want %v", got, wantKeys)
	}
	id, ok := d["id"].(float64)
	if !ok || id < 1 || id != float64(int64(id)) {
		t.Fatalf("id %v is not a positive integer", d["id"])
	}
	if d["url"] != "https://example.com/hook" || d["status"] != "active" || d["description"] != "" || d["disabled_reason"] != nil {
		t.Fatalf("create data: %s", r.raw)
	}
	if ev := fmt.Sprint(d["events"]); ev != "[job.completed job.failed]" {
		t.Fatalf("events %s, want duplicates folded in order", ev)
	}
	for _, k := range []string{"created_at", "updated_at"} {
		if d[k] != "2024-12-23T10:00:00Z" {
			t.Fatalf("%s = %v, want RFC 3339 UTC of the clock", k, d[k])
		}
	}

	// GET /api/v1/webhooks: data is an array of {id, url, events, status, …}.
	r = b.pub(t, "GET", "/api/v1/webhooks", key, "")
	list, ok := r.wantSuccess(t, http.StatusOK).([]any)
	if !ok || len(list) != 1 {
		t.Fatalf("list data: %s", r.raw)
	}
	if got := keysOf(r.body); !slices.Equal(got, []string{"data", "next_cursor", "success"}) {
		t.Fatalf("list envelope keys %v", got)
	}
	if r.body["next_cursor"] != nil {
		t.Fatalf("next_cursor %v on the only page", r.body["next_cursor"])
	}
	item := list[0].(map[string]any)
	if item["id"] != id || item["url"] != "https://example.com/hook" || item["status"] != "active" {
		t.Fatalf("list item: %s", r.raw)
	}
	if _, ok := item["events"].([]any); !ok {
		t.Fatalf("events is %T", item["events"])
	}
	if _, ok := item["secret_key"]; ok {
		t.Fatalf("list shows a secret: %s", r.raw)
	}

	// DELETE answers exactly {"success":true,"data":{"id":N}}.
	r = b.pub(t, "DELETE", fmt.Sprintf("/api/v1/webhooks/%d", int64(id)), key, "")
	if want := fmt.Sprintf(`{"success":true,"data":{"id":%d}}`, int64(id)); r.status != http.StatusOK || string(r.raw) != want {
		t.Fatalf("delete: %d %s, want 200 %s", r.status, r.raw, want)
	}
	if ids := b.listIDs(t, key); len(ids) != 0 {
		t.Fatalf("still listed after delete: %v", ids)
	}
	b.pub(t, "GET", fmt.Sprintf("/api/v1/webhooks/%d", int64(id)), key, "").wantError(t, 404, "not_found", "")
	b.pub(t, "DELETE", fmt.Sprintf("/api/v1/webhooks/%d", int64(id)), key, "").wantError(t, 404, "not_found", "")
}

// TestSecretShownOnlyOnCreate: a generated secret has the documented form,
// a given one is kept, and neither appears in any later answer.
func TestSecretShownOnlyOnCreate(t *testing.T) {
	t.Parallel()
	b := setup(t)
	_, key := b.newAccount(t, "acme")

	r := b.pub(t, "POST", "/api/v1/webhooks", key, `{"url":"https://example.com/a","events":["job.completed"]}`)
	gen := r.wantData(t, http.StatusCreated)["secret_key"].(string)
	if !regexp.MustCompile(`^whsec_[A-Za-z0-9+/]{43}=$`).MatchString(gen) || len(gen) != 50 {
		t.Fatalf("generated secret %q: want whsec_ and 32 bytes of base64", gen)
	}
	r = b.pub(t, "POST", "/api/v1/webhooks", key, `{"url":"https://example.com/b","events":["job.failed"],"secret_key":"my-own-secret-1"}`)
	if got := r.wantData(t, http.StatusCreated)["secret_key"]; got != "my-own-secret-1" {
		t.Fatalf("given secret answered as %v", got)
	}
	r2 := b.pub(t, "POST", "/api/v1/webhooks", key, `{"url":"https://example.com/c","events":["job.failed"]}`)
	if other := r2.wantData(t, http.StatusCreated)["secret_key"]; other == gen {
		t.Fatal("two generated secrets are equal")
	}

	for _, path := range []string{"/api/v1/webhooks", "/api/v1/webhooks/1", "/api/v1/webhooks/2"} {
		r := b.pub(t, "GET", path, key, "")
		r.wantSuccess(t, http.StatusOK)
		for _, leak := range []string{"secret", gen, "my-own-secret-1"} {
			if strings.Contains(string(r.raw), leak) {
				t.Fatalf("GET %s shows %q: %s", path, leak, r.raw)
			}
		}
	}
	r = b.pub(t, "PATCH", "/api/v1/webhooks/1", key, `{"description":"x"}`)
	r.wantData(t, http.StatusOK)
	if strings.Contains(string(r.raw), "secret") {
		t.Fatalf("PATCH shows the secret: %s", r.raw)
	}
}

// TestTenancy: another account's endpoint is 404 on every call and stays
// untouched.
func TestTenancy(t *testing.T) {
	t.Parallel()
	b := setup(t)
	_, keyA := b.newAccount(t, "a")
	_, keyB := b.newAccount(t, "b")
	id := b.newWebhook(t, keyA, "https://a.example.com/hook")
	path := fmt.Sprintf("/api/v1/webhooks/%d", id)

	b.pub(t, "GET", path, keyB, "").wantError(t, 404, "not_found", "")
	b.pub(t, "PATCH", path, keyB, `{"url":"https://evil.example.com/"}`).wantError(t, 404, "not_found", "")
	b.pub(t, "DELETE", path, keyB, "").wantError(t, 404, "not_found", "")
	if ids := b.listIDs(t, keyB); len(ids) != 0 {
		t.Fatalf("B lists %v", ids)
	}
	d := b.pub(t, "GET", path, keyA, "").wantData(t, http.StatusOK)
	if d["url"] != "https://a.example.com/hook" {
		t.Fatalf("A's endpoint changed: %v", d)
	}
	// A malformed id and another account's id answer alike.
	for _, p := range []string{"abc", "0", "-1", "007", "+1", "1.0", "99999999999999999999"} {
		b.pub(t, "GET", "/api/v1/webhooks/"+p, keyA, "").wantError(t, 404, "not_found", "")
	}
}

// TestPagination walks a list with limit and cursor and refuses forged
// cursors and bad limits.
func TestPagination(t *testing.T) {
	t.Parallel()
	b := setup(t)
	_, key := b.newAccount(t, "a")
	_, otherKey := b.newAccount(t, "b")
	var want []int64
	for i := range 5 {
		want = append(want, b.newWebhook(t, key, fmt.Sprintf("https://example.com/%d", i)))
		b.newWebhook(t, otherKey, fmt.Sprintf("https://other.example.com/%d", i))
	}

	var got []int64
	path := "/api/v1/webhooks?limit=2"
	var pages []int
	for path != "" {
		r := b.pub(t, "GET", path, key, "")
		data := r.wantSuccess(t, http.StatusOK).([]any)
		pages = append(pages, len(data))
		for _, e := range data {
			got = append(got, int64(e.(map[string]any)["id"].(float64)))
		}
		switch c := r.body["next_cursor"].(type) {
		case nil:
			path = ""
		case string:
			path = "/api/v1/webhooks?limit=2&cursor=" + c
		default:
			t.Fatalf("next_cursor is %T", c)
		}
	}
	if !slices.Equal(got, want) || !slices.Equal(pages, []int{2, 2, 1}) {
		t.Fatalf("paged ids %v in pages %v, want %v in 2,2,1", got, pages, want)
	}

	// Exactly a full page: no next page is announced falsely.
	r := b.pub(t, "GET", "/api/v1/webhooks?limit=5", key, "")
	if len(r.wantSuccess(t, 200).([]any)) != 5 || r.body["next_cursor"] != nil {
		t.Fatalf("limit=5 of 5: %s", r.raw)
	}

	for _, c := range []string{"", "abc!", "NQ==", "LTE", "MA", "eA", "MDE", "%FF", "OTk5OTk5OTk5OTk5OTk5OTk5OTk5"} {
		b.pub(t, "GET", "/api/v1/webhooks?cursor="+c, key, "").wantError(t, 400, "invalid_request", "cursor")
	}
	for _, l := range []string{"0", "101", "x", "-1", ""} {
		b.pub(t, "GET", "/api/v1/webhooks?limit="+l, key, "").wantError(t, 400, "invalid_request", "limit")
	}
}

// TestUpdate covers PATCH: each field, the required-one rule, nulls and
// the disable/re-enable cycle.
func TestUpdate(t *testing.T) {
	t.Parallel()
	b := setup(t)
	_, key := b.newAccount(t, "a")
	id := b.newWebhook(t, key, "https://example.com/hook")
	path := fmt.Sprintf("/api/v1/webhooks/%d", id)

	d := b.pub(t, "PATCH", path, key, `{"url":"https://new.example.com/x","events":["job.failed"],"description":"prod"}`).wantData(t, 200)
	if d["url"] != "https://new.example.com/x" || fmt.Sprint(d["events"]) != "[job.failed]" || d["description"] != "prod" {
		t.Fatalf("patched: %v", d)
	}
	d = b.pub(t, "PATCH", path, key, `{"status":"disabled"}`).wantData(t, 200)
	if d["status"] != "disabled" || d["disabled_reason"] == nil {
		t.Fatalf("disabled: %v", d)
	}
	d = b.pub(t, "PATCH", path, key, `{"status":"active"}`).wantData(t, 200)
	if d["status"] != "active" || d["disabled_reason"] != nil || d["url"] != "https://new.example.com/x" {
		t.Fatalf("re-enabled: %v", d)
	}

	for _, c := range []struct{ body, code, field string }{
		{`{}`, "validation_error", ""},
		{`{"url":null}`, "validation_error", "url"},
		{`{"events":null}`, "validation_error", "events"},
		{`{"events":[]}`, "validation_error", "events"},
		{`{"status":"paused"}`, "validation_error", "status"},
		{`{"url":"http://example.com/"}`, "validation_error", "url"},
		{`{"url":"https://internal.example/hook"}`, "validation_error", "url"},
		{`{"description":"` + strings.Repeat("x", 513) + `"}`, "validation_error", "description"},
		{`{"secret_key":"abcdefghij"}`, "unknown_field", "secret_key"},
	} {
		status := 422
		if c.code == "unknown_field" {
			status = 400
		}
		b.pub(t, "PATCH", path, key, c.body).wantError(t, status, c.code, c.field)
	}
	d = b.pub(t, "GET", path, key, "").wantData(t, 200)
	if d["url"] != "https://new.example.com/x" || d["status"] != "active" || d["description"] != "prod" {
		t.Fatalf("refused PATCHes changed the endpoint: %v", d)
	}
}

// TestBadWebhookInput sends every kind of bad create request and checks the
// envelope, status, code and field, and that nothing was stored.
func TestBadWebhookInput(t *testing.T) {
	t.Parallel()
	b := setup(t, func(c *api.Config) { c.MaxBodyBytes = 4096 })
	_, key := b.newAccount(t, "a")
	const ok = `"url":"https://example.com/hook","events":["job.completed"]`
	longURL := "https://example.com/" + strings.Repeat("a", 2048-len("https://example.com/")+1)

	cases := []struct {
		name        string
		contentType string
		body        string
		status      int
		code, field string
	}{
		{"malformed JSON", "application/json", `{"url":`, 400, "invalid_json", ""},
		{"not JSON", "application/json", `url=https://example.com`, 400, "invalid_json", ""},
		{"trailing data", "application/json", `{` + ok + `} {}`, 400, "invalid_json", ""},
		{"empty body", "application/json", ` `, 400, "invalid_json", ""},
		{"array body", "application/json", `[]`, 400, "invalid_request", ""},
		{"unknown field", "application/json", `{` + ok + `,"foo":1}`, 400, "unknown_field", "foo"},
		{"field in other case", "application/json", `{"URL":"https://example.com/hook","events":["job.completed"]}`, 400, "unknown_field", "URL"},
		{"events as string", "application/json", `{"url":"https://example.com/hook","events":"job.completed"}`, 422, "validation_error", "events"},
		{"url as number", "application/json", `{"url":42,"events":["job.completed"]}`, 422, "validation_error", "url"},
		{"events of numbers", "application/json", `{"url":"https://example.com/hook","events":[1]}`, 422, "validation_error", "events"},
		{"body too large", "application/json", `{` + ok + `,"description":"` + strings.Repeat("x", 5000) + `"}`, 413, "payload_too_large", ""},
		{"wrong content type", "text/plain", `{` + ok + `}`, 415, "unsupported_media_type", ""},
		{"form content type", "application/x-www-form-urlencoded", `{` + ok + `}`, 415, "unsupported_media_type", ""},
		{"missing content type", "", `{` + ok + `}`, 415, "unsupported_media_type", ""},
		{"latin-1 charset", "application/json; charset=iso-8859-1", `{` + ok + `}`, 415, "unsupported_media_type", ""},
		{"invalid UTF-8", "application/json", "{" + ok + ",\"description\":\"caf\xe9\"}", 400, "invalid_json", ""},
		{"missing url", "application/json", `{"events":["job.completed"]}`, 422, "validation_error", "url"},
		{"invalid URL", "application/json", `{"url":"not a url","events":["job.completed"]}`, 422, "validation_error", "url"},
		{"relative URL", "application/json", `{"url":"/hook","events":["job.completed"]}`, 422, "validation_error", "url"},
		{"ftp URL", "application/json", `{"url":"ftp://example.com/","events":["job.completed"]}`, 422, "validation_error", "url"},
		{"http URL", "application/json", `{"url":"http://example.com/hook","events":["job.completed"]}`, 422, "validation_error", "url"},
		{"URL with user info", "application/json", `{"url":"https://user:pw@example.com/hook","events":["job.completed"]}`, 422, "validation_error", "url"},
		{"URL too long", "application/json", `{"url":"` + longURL + `","events":["job.completed"]}`, 422, "validation_error", "url"},
		{"private host", "application/json", `{"url":"https://internal.example/hook","events":["job.completed"]}`, 422, "validation_error", "url"},
		{"unknown event", "application/json", `{"url":"https://example.com/hook","events":["job.done"]}`, 422, "validation_error", "events"},
		{"ping event", "application/json", `{"url":"https://example.com/hook","events":["ping"]}`, 422, "validation_error", "events"},
		{"empty events", "application/json", `{"url":"https://example.com/hook","events":[]}`, 422, "validation_error", "events"},
		{"missing events", "application/json", `{"url":"https://example.com/hook"}`, 422, "validation_error", "events"},
		{"short secret", "application/json", `{` + ok + `,"secret_key":"short"}`, 422, "validation_error", "secret_key"},
		{"long secret", "application/json", `{` + ok + `,"secret_key":"` + strings.Repeat("s", 257) + `"}`, 422, "validation_error", "secret_key"},
		{"secret with a control character", "application/json", `{` + ok + `,"secret_key":"has a\ttab!"}`, 422, "validation_error", "secret_key"},
		{"secret with CRLF", "application/json", `{` + ok + `,"secret_key":"abcdefgh\r\nX-Evil: 1"}`, 422, "validation_error", "secret_key"},
		{"secret of 8 bytes but 2 characters", "application/json", `{` + ok + `,"secret_key":"😀😀"}`, 422, "validation_error", "secret_key"},
		{"null secret", "application/json", `{` + ok + `,"secret_key":null}`, 422, "validation_error", "secret_key"},
		{"description too long", "application/json", `{` + ok + `,"description":"` + strings.Repeat("d", 513) + `"}`, 422, "validation_error", "description"},
	}
	for _, c := range cases {
		r := call(t, b.public, "POST", "/api/v1/webhooks", key, c.contentType, c.body)
		msg := ""
		func() {
			defer func() {
				if t.Failed() {
					t.Logf("case %q", c.name)
				}
			}()
			msg = r.wantError(t, c.status, c.code, c.field)
		}()
		if c.name == "events as string" && msg != "events: must be an array of strings" {
			t.Errorf("events as string: message %q", msg)
		}
		if c.name == "malformed JSON" && !strings.Contains(msg, "end of JSON") {
			t.Errorf("malformed JSON: message %q", msg)
		}
		if c.name == "not JSON" && !strings.Contains(msg, "offset") {
			t.Errorf("not JSON: message %q should give the offset", msg)
		}
	}
	if ids := b.listIDs(t, key); len(ids) != 0 {
		t.Fatalf("bad input stored endpoints %v", ids)
	}

	// The same requests done right are accepted: the refusals above were
	// about what each case changed.
	call(t, b.public, "POST", "/api/v1/webhooks", key, "application/json; charset=UTF-8", `{`+ok+`}`).wantData(t, 201)
	b.pub(t, "POST", "/api/v1/webhooks", key, `{"url":"https://example.com/`+strings.Repeat("a", 2048-len("https://example.com/"))+`","events":["job.completed"]}`).wantData(t, 201)
}

// TestBodyTooLargeStreamed: a body without Content-Length is cut off at the
// limit too.
func TestBodyTooLargeStreamed(t *testing.T) {
	t.Parallel()
	b := setup(t)
	_, key := b.newAccount(t, "a")
	body := `{"url":"https://example.com/hook","events":["job.completed"],"description":"` + strings.Repeat("x", 1<<20) + `"}`
	req, err := http.NewRequestWithContext(t.Context(), "POST", b.public.URL+"/api/v1/webhooks", struct{ ioReader }{strings.NewReader(body)})
	if err != nil {
		t.Fatal(err)
	}
	req.ContentLength = -1 // chunked
	req.Header.Set("Authorization", "Bearer "+key)
	req.Header.Set("Content-Type", "application/json")
	send(t, b.public, req).wantError(t, 413, "payload_too_large", "")
	if ids := b.listIDs(t, key); len(ids) != 0 {
		t.Fatalf("stored %v", ids)
	}
}

// TestAllowHTTP: plain http is accepted only when the server allows it.
func TestAllowHTTP(t *testing.T) {
	t.Parallel()
	b := setup(t, func(c *api.Config) { c.AllowHTTP = true; c.CheckURL = nil })
	_, key := b.newAccount(t, "a")
	d := b.pub(t, "POST", "/api/v1/webhooks", key, `{"url":"http://localhost:8080/hook","events":["job.completed"]}`).wantData(t, 201)
	if d["url"] != "http://localhost:8080/hook" {
		t.Fatalf("url %v", d["url"])
	}
	b.pub(t, "POST", "/api/v1/webhooks", key, `{"url":"ftp://example.com/","events":["job.completed"]}`).wantError(t, 422, "validation_error", "url")
}

// TestPublicAuth: missing, malformed, unknown and revoked keys are 401 with
// WWW-Authenticate, and the key is never echoed.
func TestPublicAuth(t *testing.T) {
	t.Parallel()
	b := setup(t)
	acct, key := b.newAccount(t, "a")

	check := func(r response, sent string) {
		t.Helper()
		r.wantError(t, 401, "unauthorized", "")
		if r.header.Get("WWW-Authenticate") != "Bearer" {
			t.Fatalf("WWW-Authenticate %q", r.header.Get("WWW-Authenticate"))
		}
		if sent != "" && strings.Contains(string(r.raw), sent) {
			t.Fatalf("answer echoes the key: %s", r.raw)
		}
	}
	check(b.pub(t, "GET", "/api/v1/webhooks", "", ""), "")
	check(b.pub(t, "GET", "/api/v1/webhooks", "nhk_wrongwrongwrong", ""), "nhk_wrongwrongwrong")
	check(b.pub(t, "GET", "/api/v1/webhooks", key+"x", ""), key+"x")
	check(b.pub(t, "GET", "/api/v1/webhooks", testAdminToken, ""), testAdminToken)
	for _, h := range []string{"Basic " + key, "Bearer", "Bearer  " + key, key, "bearer" + key} {
		req, _ := http.NewRequestWithContext(t.Context(), "GET", b.public.URL+"/api/v1/webhooks", nil)
		req.Header.Set("Authorization", h)
		check(send(t, b.public, req), key)
	}
	// The scheme is case-insensitive.
	req, _ := http.NewRequestWithContext(t.Context(), "GET", b.public.URL+"/api/v1/webhooks", nil)
	req.Header.Set("Authorization", "bearer "+key)
	send(t, b.public, req).wantSuccess(t, 200)

	// Auth comes before the body is looked at: nothing is created.
	check(call(t, b.public, "POST", "/api/v1/webhooks", "", "application/json", `{"url":"https://example.com/","events":["job.completed"]}`), "")
	if ids := b.listIDs(t, key); len(ids) != 0 {
		t.Fatalf("unauthenticated create stored %v", ids)
	}

	// A revoked key stops working; the account's other key keeps working.
	d := b.adm(t, "POST", fmt.Sprintf("/admin/v1/accounts/%d/keys", acct), "").wantData(t, 201)
	key2 := d["api_key"].(string)
	b.adm(t, "DELETE", fmt.Sprintf("/admin/v1/accounts/%d/keys/%d", acct, int64(d["id"].(float64))), "").wantData(t, 200)
	check(b.pub(t, "GET", "/api/v1/webhooks", key2, ""), key2)
	b.pub(t, "GET", "/api/v1/webhooks", key, "").wantSuccess(t, 200)
}

// ioReader hides the type of a reader so that net/http cannot learn its
// length.
type ioReader interface{ Read([]byte) (int, error) }

// TestTestCallWithoutEngineStillHidesOtherAccounts: a server with no
// delivery engine answers its own endpoints' test calls with 503, but
// another account's endpoint stays a 404, as on every other route.
func TestTestCallWithoutEngineStillHidesOtherAccounts(t *testing.T) {
	b := setup(t) // no Tester
	_, keyA := b.newAccount(t, "A")
	_, keyB := b.newAccount(t, "B")
	id := b.newWebhook(t, keyA, "https://a.example.com/hook")
	path := fmt.Sprintf("/api/v1/webhooks/%d/test", id)
	b.pub(t, "POST", path, keyB, "").wantError(t, 404, "not_found", "")
	b.pub(t, "POST", path, keyA, "").wantError(t, 503, "storage_unavailable", "")
}
