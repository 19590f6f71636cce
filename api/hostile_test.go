package api_test

// Hostile callers (issue 6, item 4): bodies far beyond the limit, JSON nested
// 10,000 deep, NUL bytes and invalid UTF-8, SQL-looking strings in every
// field, control characters in URLs and secrets, absurd limits and forged
// cursors. Every one must get a clear 4xx naming what is wrong, and nothing
// may be stored; what is valid, however odd, must be stored byte for byte.
// The fuzz targets of fuzz_test.go run the same routes with generated input.

import (
	"bufio"
	"bytes"
	"context"
	"database/sql"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"net/http/httptest"
	"net/textproto"
	"net/url"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nanohook/nanohook"
	"github.com/nanohook/nanohook/api"
	"github.com/nanohook/nanohook/delivery"
	"github.com/nanohook/nanohook/egress"
	"github.com/nanohook/nanohook/store"
	"github.com/nanohook/nanohook/store/sqlite"
	"github.com/nanohook/nanohook/webhook"
)

// hostile is a bundle whose database file is also open read-only beside
// the store, so that tests count rows with SQL instead of trusting the API
// they attack, and whose handlers count the request body bytes they read.
type hostile struct {
	*bundle
	db       *sql.DB
	bodyRead atomic.Int64 // bytes all handlers read from request bodies

	acct, other      int64  // two accounts
	key, otherKey    string // their API keys
	ep, otherEp, ep2 int64  // endpoints: two of acct, one of other
}

// tables are every table of the schema that a request could write.
var tables = []string{"accounts", "api_keys", "endpoints", "events", "deliveries", "attempts"}

// newHostile starts both APIs on a fresh SQLite file with two accounts,
// their endpoints and a few deliveries, all made through the store so that
// it works for fuzz targets (testing.F) as well as tests. opts adjust the
// Config as setup's do.
func newHostile(tb testing.TB, opts ...func(*api.Config)) *hostile {
	tb.Helper()
	ctx := context.Background()
	path := filepath.Join(tb.TempDir(), "nanohook.db")
	st, err := sqlite.Open(ctx, path)
	if err != nil {
		tb.Fatalf("open store: %v", err)
	}
	tb.Cleanup(func() { _ = st.Close() })
	db, err := sql.Open("sqlite", path+"?_pragma=query_only(1)&_pragma=busy_timeout(5000)")
	if err != nil {
		tb.Fatalf("open a read-only view: %v", err)
	}
	tb.Cleanup(func() { _ = db.Close() })

	h := &hostile{bundle: &bundle{store: st, waker: &waker{ch: make(chan struct{}, 100)}, logs: &syncBuffer{}}, db: db}
	cfg := api.Config{
		Store:      st,
		Logger:     slog.New(slog.NewTextHandler(h.logs, &slog.HandlerOptions{Level: slog.LevelInfo})),
		AdminToken: testAdminToken,
		CheckURL:   fakeCheckURL,
		Waker:      h.waker,
		Now:        func() time.Time { return testNow },
	}
	for _, o := range opts {
		o(&cfg)
	}
	h.public = httptest.NewServer(h.countBodies(api.NewPublic(cfg)))
	tb.Cleanup(h.public.Close)
	h.admin = httptest.NewServer(h.countBodies(api.NewAdmin(cfg)))
	tb.Cleanup(h.admin.Close)

	newAccount := func(name string) (int64, string) {
		key, hash := nanohook.NewAPIKey()
		a, _, err := st.CreateAccount(ctx, store.CreateAccountParams{Name: name, KeyHash: hash, Now: testNow})
		if err != nil {
			tb.Fatalf("create account: %v", err)
		}
		return a.ID, key
	}
	newEndpoint := func(acct int64, u string) int64 {
		e, err := st.CreateEndpoint(ctx, store.CreateEndpointParams{
			AccountID: acct, URL: u, Events: []nanohook.EventType{nanohook.EventJobCompleted, nanohook.EventJobFailed},
			Secret: "whsec_seed_secret", Description: "seed", Now: testNow,
		})
		if err != nil {
			tb.Fatalf("create endpoint: %v", err)
		}
		return e.ID
	}
	h.acct, h.key = newAccount("hostile")
	h.other, h.otherKey = newAccount("bystander")
	h.ep = newEndpoint(h.acct, "https://example.com/hook")
	h.ep2 = newEndpoint(h.acct, "https://example.com/second")
	h.otherEp = newEndpoint(h.other, "https://bystander.example.com/private-hook")
	// Five deliveries to each endpoint, so that delivery lists have pages
	// (and cursors) to forge.
	for i := range 5 {
		for _, acct := range []int64{h.acct, h.other} {
			payload, _ := webhook.EncodePayload(webhook.Payload{
				Event: "job.completed", TaskID: fmt.Sprintf("seed_%d", i), TaskType: "image", Status: "completed",
				Data: json.RawMessage(`{}`), Timestamp: testNow.Format(time.RFC3339),
			})
			_, err := st.PublishEvents(ctx, []store.PublishEventParams{{
				ID: nanohook.NewEventID(), AccountID: acct, Type: nanohook.EventJobCompleted,
				TaskID: fmt.Sprintf("seed_%d", i), TaskType: "image", IdempotencyKey: fmt.Sprintf("seed_%d", i),
				Payload: payload, OccurredAt: testNow, Now: testNow,
			}})
			if err != nil {
				tb.Fatalf("publish seed: %v", err)
			}
		}
	}
	return h
}

// countBodies counts what the handler reads from request bodies, to prove
// that an oversized body is refused without being read.
func (h *hostile) countBodies(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Body != nil {
			r.Body = &countingBody{ReadCloser: r.Body, n: &h.bodyRead}
		}
		next.ServeHTTP(w, r)
	})
}

type countingBody struct {
	io.ReadCloser
	n *atomic.Int64
}

func (c *countingBody) Read(p []byte) (int, error) {
	n, err := c.ReadCloser.Read(p)
	c.n.Add(int64(n))
	return n, err
}

// counts reads the row count of every table.
func (h *hostile) counts(tb testing.TB) map[string]int64 {
	tb.Helper()
	out := make(map[string]int64, len(tables))
	for _, table := range tables {
		var n int64
		if err := h.db.QueryRow("SELECT count(*) FROM " + table).Scan(&n); err != nil {
			tb.Fatalf("count %s: %v", table, err)
		}
		out[table] = n
	}
	return out
}

// snapshot renders every row of the tables a refused request could change
// in place (endpoints and deliveries), to compare before and after.
func (h *hostile) snapshot(tb testing.TB) string {
	tb.Helper()
	return h.dump(tb, "SELECT * FROM endpoints ORDER BY id") + h.dump(tb, "SELECT * FROM deliveries ORDER BY id")
}

// dump renders the rows of a query, one line each.
func (h *hostile) dump(tb testing.TB, query string, args ...any) string {
	tb.Helper()
	rows, err := h.db.Query(query, args...)
	if err != nil {
		tb.Fatalf("%s: %v", query, err)
	}
	defer rows.Close()
	cols, _ := rows.Columns()
	vals := make([]any, len(cols))
	ptrs := make([]any, len(cols))
	for i := range vals {
		ptrs[i] = &vals[i]
	}
	var b strings.Builder
	for rows.Next() {
		if err := rows.Scan(ptrs...); err != nil {
			tb.Fatalf("%s: %v", query, err)
		}
		fmt.Fprintf(&b, "%q\n", vals)
	}
	if err := rows.Err(); err != nil {
		tb.Fatalf("%s: %v", query, err)
	}
	return b.String()
}

// state is everything that "nothing was stored" compares.
func (h *hostile) state(tb testing.TB) string {
	tb.Helper()
	return fmt.Sprint(h.counts(tb)) + "\n" + h.snapshot(tb)
}

// bodyRoute is one route that takes a JSON body, with a field of its body
// in which hostile values are placed.
type bodyRoute struct {
	name, method, path string
	admin              bool
	limit              int64 // the documented body limit
	// body builds a valid body with v (raw JSON) as the value of the
	// route's main string field; deep builds one with v as a nested
	// value where the route allows any JSON (event data) or as the
	// field's value otherwise.
	body func(v string) string
	deep func(v string) string
}

func (h *hostile) bodyRoutes() []bodyRoute {
	acct := strconv.FormatInt(h.acct, 10)
	event := func(data string) string {
		return `{"account_id":` + acct + `,"event":"job.completed","task_id":"task_x","task_type":"image","data":` + data + `}`
	}
	return []bodyRoute{
		{name: "create webhook", method: "POST", path: "/api/v1/webhooks", limit: api.DefaultMaxBodyBytes,
			body: func(v string) string {
				return `{"url":"https://example.com/new","events":["job.completed"],"description":` + v + `}`
			}},
		{name: "update webhook", method: "PATCH", path: fmt.Sprintf("/api/v1/webhooks/%d", h.ep), limit: api.DefaultMaxBodyBytes,
			body: func(v string) string { return `{"description":` + v + `}` }},
		{name: "rotate secret", method: "POST", path: fmt.Sprintf("/api/v1/webhooks/%d/rotate-secret", h.ep), limit: api.DefaultMaxBodyBytes,
			body: func(v string) string { return `{"secret_key":` + v + `}` }},
		{name: "recover", method: "POST", path: fmt.Sprintf("/api/v1/webhooks/%d/recover", h.ep), limit: api.DefaultMaxBodyBytes,
			body: func(v string) string { return `{"since":` + v + `}` }},
		{name: "create account", method: "POST", path: "/admin/v1/accounts", admin: true, limit: api.DefaultMaxBodyBytes,
			body: func(v string) string { return `{"name":` + v + `}` }},
		{name: "publish", method: "POST", path: "/admin/v1/events", admin: true, limit: api.DefaultMaxBodyBytes,
			body: func(v string) string { return event(`{"k":` + v + `}`) },
			deep: func(v string) string { return event(`{"k":` + v + `}`) }},
		{name: "publish batch", method: "POST", path: "/admin/v1/events/batch", admin: true, limit: api.MaxBatchBodyBytes,
			body: func(v string) string { return `{"events":[` + event(`{"k":`+v+`}`) + `]}` },
			deep: func(v string) string { return `{"events":[` + event(`{"k":`+v+`}`) + `]}` }},
	}
}

// do sends body (raw bytes, sent as given) to the route with its
// credentials.
func (h *hostile) do(t *testing.T, rt bodyRoute, body string) response {
	t.Helper()
	srv, token := h.public, h.key
	if rt.admin {
		srv, token = h.admin, testAdminToken
	}
	return call(t, srv, rt.method, rt.path, token, "application/json", body)
}

// wantRefused checks a 4xx error envelope of the given status and code and
// that the stored state is exactly before.
func (h *hostile) wantRefused(t *testing.T, r response, before string, status int, code, field string) {
	t.Helper()
	r.wantError(t, status, code, field)
	if after := h.state(t); after != before {
		t.Fatalf("a refused request changed storage:\nbefore %s\nafter  %s", before, after)
	}
}

// TestHostileHugeBodies: a 10 MiB body, announced by Content-Length or
// streamed chunked, is refused with 413 on every route that takes a body,
// the handler reads at most the limit (plus the one byte that proves the
// excess), and nothing is stored. The batch route allows 16 MiB, so it gets
// 17 MiB to refuse and, separately, 10 MiB of junk that must be a 400.
func TestHostileHugeBodies(t *testing.T) {
	// Not parallel: it runs before the parallel tests, alone, so that the
	// allocation figure it logs is its own.
	h := newHostile(t)
	before := h.state(t)
	const tenMiB = 10 << 20
	tried := 0
	for _, rt := range h.bodyRoutes() {
		size := int64(tenMiB)
		if size <= rt.limit {
			size = rt.limit + 1<<20
		}
		for _, chunked := range []bool{false, true} {
			t.Run(fmt.Sprintf("%s/chunked=%v", rt.name, chunked), func(t *testing.T) {
				h.bodyRead.Store(0)
				var m0, m1 runtime.MemStats
				runtime.ReadMemStats(&m0)
				r := h.sendHuge(t, rt, size, chunked)
				runtime.ReadMemStats(&m1)
				h.wantRefused(t, r, before, http.StatusRequestEntityTooLarge, "payload_too_large", "")
				read := h.bodyRead.Load()
				if read > rt.limit+1 {
					t.Fatalf("the handler read %d bytes of a %d-byte body, limit %d", read, size, rt.limit)
				}
				if !chunked && read != 0 {
					t.Fatalf("with Content-Length %d the handler still read %d bytes", size, read)
				}
				t.Logf("%s: %d-byte body (chunked=%v) → 413, handler read %d bytes, process allocated %d KiB meanwhile",
					rt.name, size, chunked, read, (m1.TotalAlloc-m0.TotalAlloc)>>10)
				tried++
			})
		}
	}
	t.Run("publish batch/10 MiB junk", func(t *testing.T) {
		rt := h.bodyRoutes()[6]
		junk := `{"events":[` + strings.Repeat(`{"x":1},`, tenMiB/8) + `]}`
		h.wantRefused(t, h.do(t, rt, junk), before, http.StatusBadRequest, "invalid_json", "")
		tried++
	})
	t.Logf("%d oversized bodies tried, all refused, nothing stored", tried)
}

// sendHuge sends size bytes of a JSON string to the route, with a
// Content-Length or chunked.
func (h *hostile) sendHuge(t *testing.T, rt bodyRoute, size int64, chunked bool) response {
	t.Helper()
	srv, token := h.public, h.key
	if rt.admin {
		srv, token = h.admin, testAdminToken
	}
	body := io.MultiReader(strings.NewReader(`{"name":"`), io.LimitReader(repeatReader('a'), size-11), strings.NewReader(`"}`))
	rd := body
	if chunked {
		rd = struct{ io.Reader }{body} // hides the length: the client streams it chunked
	}
	req, err := http.NewRequestWithContext(t.Context(), rt.method, srv.URL+rt.path, rd)
	if err != nil {
		t.Fatal(err)
	}
	if !chunked {
		req.ContentLength = size
	}
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Content-Type", "application/json")
	// The server answers before the body is sent; a failed upload after
	// the answer is expected, so the answer is read with the client's own
	// Do and tolerated write errors.
	res, err := srv.Client().Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", rt.method, rt.path, err)
	}
	defer res.Body.Close()
	raw, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatal(err)
	}
	out := response{status: res.StatusCode, header: res.Header, raw: raw}
	if err := json.Unmarshal(raw, &out.body); err != nil {
		t.Fatalf("answer is not JSON: %s", raw)
	}
	return out
}

// repeatReader is an endless stream of one byte.
type repeatReader byte

func (r repeatReader) Read(p []byte) (int, error) {
	for i := range p {
		p[i] = byte(r)
	}
	return len(p), nil
}

// TestHostileDeepNesting: arrays and objects nested 10,000 deep (and far
// deeper, up to what fits in the body limit), in event data, as the value
// of a string field and as the whole body, are a 400 or 422 on every body
// route, never a crash, and nothing is stored. The server answers normally
// afterwards.
func TestHostileDeepNesting(t *testing.T) {
	t.Parallel()
	h := newHostile(t)
	before := h.state(t)
	tried := 0
	nest := func(open, close string, n int) string {
		return strings.Repeat(open, n) + "1" + strings.Repeat(close, n)
	}
	for _, rt := range h.bodyRoutes() {
		for _, n := range []int{600, 10_000, 10_001, 100_000, 400_000} {
			for _, shape := range []struct{ name, open, close string }{{"array", "[", "]"}, {"object", `{"a":`, "}"}} {
				v := nest(shape.open, shape.close, n)
				bodies := map[string]string{"field": rt.body(v), "whole body": nest(shape.open, shape.close, n)}
				if rt.deep != nil {
					bodies["data"] = rt.deep(v)
				}
				for where, body := range bodies {
					if int64(len(body)) > rt.limit {
						continue
					}
					r := h.do(t, rt, body)
					if r.status != 400 && r.status != 422 {
						t.Fatalf("%s, %s nested %d deep in %s: %d %s", rt.name, shape.name, n, where, r.status, clipped(r.raw))
					}
					h.wantRefused(t, r, before, r.status, r.body["error"].(map[string]any)["code"].(string), fieldOf(r))
					tried++
				}
			}
		}
	}
	// Still serving.
	h.pub(t, "GET", "/api/v1/webhooks", h.key, "").wantSuccess(t, 200)
	t.Logf("%d deeply nested bodies tried, all refused with 400/422, nothing stored", tried)
}

func fieldOf(r response) string {
	e, _ := r.body["error"].(map[string]any)
	f, _ := e["field"].(string)
	return f
}

func clipped(b []byte) string {
	if len(b) > 300 {
		return string(b[:300]) + "…"
	}
	return string(b)
}

// TestHostileBytes: NUL (escaped and raw), invalid UTF-8 and unpaired
// surrogate escapes in every string field. Raw NUL and invalid UTF-8 make
// the body malformed (400); an escaped NUL or control character is a 422
// naming the field; an unpaired surrogate, which encoding/json would
// silently turn into U+FFFD, is a 422 naming the field instead of being
// stored altered. In event data escaped NULs and surrogate pairs are kept
// exactly in the payload, and an unpaired surrogate, which I-JSON (RFC
// 7493) does not allow, is a 422 naming its member.
func TestHostileBytes(t *testing.T) {
	t.Parallel()
	h := newHostile(t)
	before := h.state(t)
	tried := 0

	type fieldCase struct {
		route bodyRoute
		field string
		body  func(v string) string // v is a raw JSON string literal
	}
	acct := strconv.FormatInt(h.acct, 10)
	routes := h.bodyRoutes()
	byName := func(n string) bodyRoute {
		for _, r := range routes {
			if r.name == n {
				return r
			}
		}
		t.Fatalf("no route %s", n)
		return bodyRoute{}
	}
	ev := func(field string) func(string) string {
		return func(v string) string {
			m := map[string]string{"event": `"job.completed"`, "task_id": `"task_b"`, "task_type": `"image"`, "idempotency_key": `"idem_b"`, "occurred_at": `"2024-12-23T09:00:00Z"`}
			m[field] = v
			return `{"account_id":` + acct + `,"event":` + m["event"] + `,"task_id":` + m["task_id"] + `,"task_type":` + m["task_type"] +
				`,"idempotency_key":` + m["idempotency_key"] + `,"occurred_at":` + m["occurred_at"] + `}`
		}
	}
	batch := func(field string) func(string) string {
		return func(v string) string { return `{"events":[` + ev(field)(v) + `]}` }
	}
	cases := []fieldCase{
		{byName("create webhook"), "url", func(v string) string { return `{"url":` + v + `,"events":["job.completed"]}` }},
		{byName("create webhook"), "secret_key", func(v string) string {
			return `{"url":"https://example.com/n","events":["job.completed"],"secret_key":` + v + `}`
		}},
		{byName("create webhook"), "description", func(v string) string {
			return `{"url":"https://example.com/n","events":["job.completed"],"description":` + v + `}`
		}},
		{byName("create webhook"), "events", func(v string) string { return `{"url":"https://example.com/n","events":[` + v + `]}` }},
		{byName("update webhook"), "url", func(v string) string { return `{"url":` + v + `}` }},
		{byName("update webhook"), "description", func(v string) string { return `{"description":` + v + `}` }},
		{byName("update webhook"), "status", func(v string) string { return `{"status":` + v + `}` }},
		{byName("rotate secret"), "secret_key", func(v string) string { return `{"secret_key":` + v + `}` }},
		{byName("recover"), "since", func(v string) string { return `{"since":` + v + `}` }},
		{byName("recover"), "until", func(v string) string { return `{"since":"2024-12-01T00:00:00Z","until":` + v + `}` }},
		{byName("create account"), "name", func(v string) string { return `{"name":` + v + `}` }},
	}
	for _, f := range []string{"event", "task_id", "task_type", "idempotency_key", "occurred_at"} {
		cases = append(cases, fieldCase{byName("publish"), f, ev(f)}, fieldCase{byName("publish batch"), "events[0]." + f, batch(f)})
	}
	// Values that are each refused in every string field. The ones that are
	// syntax errors are refused before any field is looked at.
	type hostileValue struct {
		name   string
		v      string // inserted as the field's raw JSON
		syntax bool   // malformed JSON: 400 invalid_json, no field
	}
	values := []hostileValue{
		{"escaped NUL", `"abcdefgh\u0000ijk"`, false},
		{"escaped CRLF", `"abcdefgh\r\nX-Injected: 1"`, false},
		{"escaped ESC", `"abcdefgh\u001bijk"`, false},
		{"escaped DEL", `"abcdefgh\u007fijk"`, false},
		{"unpaired high surrogate", `"abcdefgh\ud800ijk"`, false},
		{"unpaired low surrogate", `"abcdefgh\udc00ijk"`, false},
		{"reversed surrogates", `"abcdefgh\udc00\ud800"`, false},
		{"raw NUL", "\"abcdefgh\x00ijk\"", true},
		{"raw CR LF", "\"abcdefgh\r\nijk\"", true},
		{"invalid UTF-8 0xff", "\"abcdefgh\xffijk\"", true},
		{"overlong NUL C0 80", "\"abcdefgh\xc0\x80ijk\"", true},
		{"UTF-8 surrogate ED A0 80", "\"abcdefgh\xed\xa0\x80ijk\"", true},
		{"truncated UTF-8", "\"abcdefgh\xe2\x82\"", true},
	}
	for _, c := range cases {
		for _, v := range values {
			// Control characters are legal in no field; surrogate escapes
			// and everything else must be refused too.
			r := h.do(t, c.route, c.body(v.v))
			switch {
			case v.syntax:
				h.wantRefused(t, r, before, 400, "invalid_json", "")
			default:
				if r.status != 422 && r.status != 400 {
					t.Fatalf("%s %s with %s: %d %s", c.route.name, c.field, v.name, r.status, r.raw)
				}
				if r.status == 422 {
					h.wantRefused(t, r, before, 422, "validation_error", c.field)
				} else {
					h.wantRefused(t, r, before, 400, r.body["error"].(map[string]any)["code"].(string), fieldOf(r))
				}
			}
			tried++
		}
	}
	// Raw NUL outside any string.
	for _, rt := range routes {
		h.wantRefused(t, h.do(t, rt, "{\x00}"), before, 400, "invalid_json", "")
		h.wantRefused(t, h.do(t, rt, "\x00"), before, 400, "invalid_json", "")
		tried += 2
	}

	// In event data every I-JSON string is legal and must reach endpoints
	// exactly as JavaScript's JSON.stringify(JSON.parse(body)) writes it;
	// an unpaired surrogate is not I-JSON and is refused by its path.
	pub := byName("publish")
	for i, lone := range []struct{ data, field string }{
		{`{"lone":"\ud800","pair":"\ud83d\ude00"}`, "data.lone"},
		{`{"pair":"\ud83d\ude00","low":["x\udc00y"]}`, "data.low[0]"},
		{`{"k":{"\udc00\ud800":1}}`, "data.k"},
	} {
		body := `{"account_id":` + acct + `,"event":"job.failed","task_id":"lone_` + strconv.Itoa(i) + `","task_type":"image","data":` + lone.data + `}`
		h.wantRefused(t, h.do(t, pub, body), before, 422, "validation_error", lone.field)
		tried++
	}
	for i, c := range []struct{ data, want string }{
		{`{"nul":"a\u0000b","c1":"\u0085","crlf":"\r\n"}`, `{"nul":"a\u0000b","c1":"` + "\u0085" + `","crlf":"\r\n"}`},
		{`{"pair":"\ud83d\ude00","bmp":"\uffff\ue000"}`, `{"pair":"😀","bmp":"` + "\uffff\ue000" + `"}`},
		{`{"\u0000key":1}`, `{"\u0000key":1}`},
	} {
		body := `{"account_id":` + acct + `,"event":"job.failed","task_id":"bytes_` + strconv.Itoa(i) + `","task_type":"image","data":` + c.data + `}`
		d := h.do(t, pub, body).wantData(t, 202)
		e, err := h.store.GetEvent(context.Background(), h.acct, d["event_id"].(string))
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Contains(e.Payload, []byte(`"data":`+c.want+`,`)) {
			t.Fatalf("data %s was stored as %s, want data %s", c.data, e.Payload, c.want)
		}
		tried++
	}
	t.Logf("%d inputs with NULs, control characters, invalid UTF-8 or surrogates tried", tried)
}

// TestHostileBatchItemUnknownField: a batch whose first refused item has
// an unknown field is the documented 422 (code unknown_field, every refused
// item listed), not a 400, and nothing is stored. Found by FuzzPublishBatch
// (testdata/fuzz/FuzzPublishBatch/d28e85cb3d21a904).
func TestHostileBatchItemUnknownField(t *testing.T) {
	t.Parallel()
	h := newHostile(t)
	before := h.state(t)
	ok := `{"account_id":1,"event":"job.completed","task_id":"t","task_type":"image"}`
	for _, body := range []string{
		`{"events":[{"accid":1,"event":"job.completed","task_id":"t2","task_type":"image"}]}`,
		`{"events":[` + ok + `,{"account_id":1,"event":"job.completed","task_id":"t3","task_type":"image","Event":"x"}]}`,
	} {
		r := h.adm(t, "POST", "/admin/v1/events/batch", body)
		if r.status != 422 {
			t.Fatalf("%s: %d %s", body, r.status, r.raw)
		}
		field := fieldOf(r)
		h.wantRefused(t, r, before, 422, "unknown_field", field)
		if items, _ := r.body["error"].(map[string]any)["items"].([]any); len(items) != 1 || !strings.HasPrefix(field, "events[") {
			t.Fatalf("refused items of %s: %s", body, r.raw)
		}
	}
}

// sqlStrings look like SQL (and like format strings and placeholders) to
// anything that would build a statement from them.
var sqlStrings = []string{
	`'; DROP TABLE endpoints;--`,
	`" OR 1=1 --`,
	`Robert'); DROP TABLE accounts;--`,
	`1' UNION SELECT secret FROM endpoints--`,
	`') OR ('1'='1`,
	`%' OR '%'='`,
	`\'; DELETE FROM deliveries; --`,
	`$1 ? :name @p %s %d {{.}}`,
	`*/ DROP TABLE events; /*`,
}

// TestHostileSQLStrings: SQL-looking strings in every string field are
// stored verbatim when otherwise valid, read back byte-exact through the
// API and the database, and leave every table in place with the expected
// number of rows. In query parameters they are a 400 naming the parameter.
func TestHostileSQLStrings(t *testing.T) {
	t.Parallel()
	h := newHostile(t)
	ctx := context.Background()
	tried := 0
	for i, s := range sqlStrings {
		// An account name.
		d := h.adm(t, "POST", "/admin/v1/accounts", `{"name":`+quote(s)+`}`).wantData(t, 201)
		acctID := int64(d["id"].(float64))
		if a, err := h.store.GetAccount(ctx, acctID); err != nil || a.Name != s || d["name"] != s {
			t.Fatalf("account name %q stored as %q (%v), answered %q", s, a.Name, err, d["name"])
		}
		key := d["api_key"].(string)

		// An endpoint: the URL carries the string in its path and query
		// (percent-encoded where a URL cannot hold it as is: a space), the
		// secret and the description as they are.
		u := "https://example.com/" + strings.NewReplacer("%", "%25", " ", "%20").Replace(s) + "?q=" + url.QueryEscape(s)
		body := `{"url":` + quote(u) + `,"events":["job.completed"],"secret_key":` + quote("sec_"+s) + `,"description":` + quote(s) + `}`
		d = h.pub(t, "POST", "/api/v1/webhooks", key, body).wantData(t, 201)
		id := int64(d["id"].(float64))
		e, err := h.store.GetEndpoint(ctx, acctID, id)
		if err != nil || e.URL != u || e.Secret != "sec_"+s || e.Description != s {
			t.Fatalf("endpoint stored as %+v (%v), sent %s", e, err, body)
		}
		got := h.pub(t, "GET", fmt.Sprintf("/api/v1/webhooks/%d", id), key, "").wantData(t, 200)
		if got["url"] != u || got["description"] != s {
			t.Fatalf("read back %v, sent %s", got, body)
		}
		// The same through PATCH and rotate-secret.
		d = h.pub(t, "PATCH", fmt.Sprintf("/api/v1/webhooks/%d", id), key, `{"description":`+quote(s+"!")+`}`).wantData(t, 200)
		if d["description"] != s+"!" {
			t.Fatalf("patched description %q", d["description"])
		}
		h.pub(t, "POST", fmt.Sprintf("/api/v1/webhooks/%d/rotate-secret", id), key, `{"secret_key":`+quote("rot_"+s)+`}`).wantData(t, 200)
		if e, _ := h.store.GetEndpoint(ctx, acctID, id); e.Secret != "rot_"+s {
			t.Fatalf("rotated secret stored as %q", e.Secret)
		}

		// An event: task id, task type (64 bytes at most), idempotency key
		// and data keys and values.
		taskType := s
		if len(taskType) > nanohook.MaxTaskTypeLen {
			taskType = taskType[:nanohook.MaxTaskTypeLen]
		}
		ev := `{"account_id":` + strconv.FormatInt(acctID, 10) + `,"event":"job.completed","task_id":` + quote(s) +
			`,"task_type":` + quote(taskType) + `,"idempotency_key":` + quote("idem "+s) + `,"data":{` + quote(s) + `:` + quote(s) + `}}`
		d = h.adm(t, "POST", "/admin/v1/events", ev).wantData(t, 202)
		if d["deliveries"] != float64(1) || d["duplicate"] != false {
			t.Fatalf("publish %s: %v", ev, d)
		}
		stored, err := h.store.GetEvent(ctx, acctID, d["event_id"].(string))
		if err != nil || stored.TaskID != s || stored.TaskType != taskType || stored.IdempotencyKey != "idem "+s {
			t.Fatalf("event stored as %+v (%v)", stored, err)
		}
		wantPayload, _ := webhook.EncodePayload(webhook.Payload{
			Event: "job.completed", TaskID: s, TaskType: taskType, Status: "completed",
			Data: json.RawMessage(`{` + quote(s) + `:` + quote(s) + `}`), Timestamp: testNow.Format(time.RFC3339),
		})
		if !bytes.Equal(stored.Payload, wantPayload) {
			t.Fatalf("payload stored as %s, want %s", stored.Payload, wantPayload)
		}
		// A batch with the same strings, as a duplicate and a new event.
		batch := `{"events":[` + ev + `,` + strings.Replace(ev, quote("idem "+s), quote(fmt.Sprintf("idem2 %d %s", i, s)), 1) + `]}`
		res := h.adm(t, "POST", "/admin/v1/events/batch", batch).wantData(t, 202)["results"].([]any)
		if res[0].(map[string]any)["duplicate"] != true || res[1].(map[string]any)["duplicate"] != false {
			t.Fatalf("batch results %v", res)
		}

		// In query parameters: refused by name, nothing listed.
		for _, q := range []string{"status", "event", "since", "until", "limit", "cursor"} {
			r := h.pub(t, "GET", fmt.Sprintf("/api/v1/webhooks/%d/deliveries?%s=%s", id, q, url.QueryEscape(s)), key, "")
			r.wantError(t, 400, "invalid_request", q)
			tried++
		}
		tried += 7
	}
	// Every table is still there and holds exactly what was made: the seed
	// rows plus one account, key, endpoint and two events (each with one
	// delivery) per string.
	n := int64(len(sqlStrings))
	c := h.counts(t)
	want := map[string]int64{"accounts": 2 + n, "api_keys": 2 + n, "endpoints": 3 + n, "events": 10 + 2*n, "deliveries": 15 + 2*n, "attempts": 0}
	if fmt.Sprint(c) != fmt.Sprint(want) {
		t.Fatalf("row counts %v, want %v", c, want)
	}
	t.Logf("%d SQL-looking strings in %d fields and parameters: all stored verbatim or refused by name; tables intact: %v", len(sqlStrings), tried, c)
}

// TestHostileControlCharsInURLAndSecret: CR, LF and every other control
// character in a URL or a secret is a 422 naming the field, on create,
// update and rotation, and nothing is stored. Then a URL that carries an
// encoded CRLF with a header after it is accepted as the valid URL it is,
// and the delivery made to it (through the real engine, to a raw TCP
// receiver that sees the exact request head) carries no injected header.
func TestHostileControlCharsInURLAndSecret(t *testing.T) {
	t.Parallel()
	receiver := newRawReceiver(t)
	client := egress.NewClient(egress.Options{AllowPrivate: true, UserAgent: "nanohook/test"})
	t.Cleanup(client.CloseIdleConnections)
	h := newHostile(t, func(cfg *api.Config) {
		cfg.AllowHTTP = true
		engine := delivery.New(delivery.Config{Store: cfg.Store.(delivery.Store), Client: client, UserAgent: "nanohook/test", MaxInFlight: 1})
		cfg.Tester = engine
	})
	before := h.state(t)
	tried := 0
	var controls []rune
	for r := rune(0); r < 0x20; r++ {
		controls = append(controls, r)
	}
	controls = append(controls, 0x7f)
	for _, c := range controls {
		for _, v := range []string{
			"https://example.com/a" + string(c) + "b",
			"https://exa" + string(c) + "mple.com/",
			"https://example.com/?q=" + string(c),
			"https://example.com/\r\nX-Injected: yes",
		} {
			h.wantRefused(t, h.pub(t, "POST", "/api/v1/webhooks", h.key, `{"url":`+quote(v)+`,"events":["job.completed"]}`), before, 422, "validation_error", "url")
			h.wantRefused(t, h.pub(t, "PATCH", fmt.Sprintf("/api/v1/webhooks/%d", h.ep), h.key, `{"url":`+quote(v)+`}`), before, 422, "validation_error", "url")
			tried += 2
		}
		for _, v := range []string{"whsec_abc" + string(c) + "def", "whsec_abcdef\r\nX-Injected: yes"} {
			h.wantRefused(t, h.pub(t, "POST", "/api/v1/webhooks", h.key, `{"url":"https://example.com/","events":["job.completed"],"secret_key":`+quote(v)+`}`), before, 422, "validation_error", "secret_key")
			h.wantRefused(t, h.pub(t, "POST", fmt.Sprintf("/api/v1/webhooks/%d/rotate-secret", h.ep), h.key, `{"secret_key":`+quote(v)+`}`), before, 422, "validation_error", "secret_key")
			tried += 2
		}
	}
	// C1 controls and line/paragraph separators in a secret are refused
	// too (not printable).
	for _, c := range []rune{0x85, 0x9b, 0x2028, 0x2029, 0xfeff} {
		h.wantRefused(t, h.pub(t, "POST", fmt.Sprintf("/api/v1/webhooks/%d/rotate-secret", h.ep), h.key, `{"secret_key":`+quote("whsec_abc"+string(c)+"def")+`}`), before, 422, "validation_error", "secret_key")
		tried++
	}

	// Encoded CRLF is data, not a line break: accepted, delivered, and the
	// receiver sees exactly the documented headers.
	u := receiver.url + "/hook%0D%0AX-Injected:%20path?q=%0d%0aX-Injected:%20query"
	d := h.pub(t, "POST", "/api/v1/webhooks", h.key, `{"url":`+quote(u)+`,"events":["job.completed"],"secret_key":"whsec_header_test"}`).wantData(t, 201)
	if d["url"] != u {
		t.Fatalf("url stored as %v", d["url"])
	}
	res := h.pub(t, "POST", fmt.Sprintf("/api/v1/webhooks/%v/test", d["id"]), h.key, "").wantData(t, 200)
	if res["succeeded"] != true {
		t.Fatalf("test delivery: %v", res)
	}
	head := receiver.next(t)
	lines := strings.Split(strings.TrimSuffix(head, "\r\n\r\n"), "\r\n")
	if want := "POST /hook%0D%0AX-Injected:%20path?q=%0d%0aX-Injected:%20query HTTP/1.1"; lines[0] != want {
		t.Fatalf("request line %q, want %q", lines[0], want)
	}
	allowed := []string{"Host", "User-Agent", "Content-Length", "Content-Type", "Accept-Encoding",
		"X-Nano-Timestamp", "X-Nano-Signature", "X-Nano-Event-Id", "X-Nano-Event", "X-Nano-Delivery-Attempt"}
	for _, l := range lines[1:] {
		name, _, ok := strings.Cut(l, ":")
		if !ok || !slices.Contains(allowed, textproto.CanonicalMIMEHeaderKey(name)) {
			t.Fatalf("unexpected header line %q in the delivery:\n%s", l, head)
		}
	}
	tried++
	t.Logf("%d URLs and secrets with control characters refused; encoded CRLF delivered with %d header lines, none injected", tried, len(lines)-1)
}

// rawReceiver is a loopback HTTP/1.1 server that keeps each request head
// byte for byte, which a net/http server would parse away.
type rawReceiver struct {
	url   string
	heads chan string
}

func newRawReceiver(t *testing.T) *rawReceiver {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	rr := &rawReceiver{url: "http://" + ln.Addr().String(), heads: make(chan string, 16)}
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			rr.serve(conn)
		}
	}()
	t.Cleanup(func() {
		_ = ln.Close()
		<-done
	})
	return rr
}

// serve answers one request on conn with 200 and closes it.
func (rr *rawReceiver) serve(conn net.Conn) {
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(10 * time.Second))
	br := bufio.NewReader(conn)
	var head strings.Builder
	length := 0
	for {
		line, err := br.ReadString('\n')
		if err != nil {
			return
		}
		head.WriteString(line)
		if name, v, ok := strings.Cut(line, ":"); ok && strings.EqualFold(name, "Content-Length") {
			length, _ = strconv.Atoi(strings.TrimSpace(v))
		}
		if line == "\r\n" {
			break
		}
	}
	if _, err := io.CopyN(io.Discard, br, int64(length)); err != nil {
		return
	}
	select {
	case rr.heads <- head.String():
	default:
	}
	_, _ = io.WriteString(conn, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok")
}

func (rr *rawReceiver) next(t *testing.T) string {
	t.Helper()
	select {
	case h := <-rr.heads:
		return h
	case <-time.After(10 * time.Second):
		t.Fatal("no request reached the receiver")
		return ""
	}
}

// TestHostileLimits: absurd, negative, zero, non-numeric and exponent
// limits are a 400 naming limit on both lists; 1 and 100 work.
func TestHostileLimits(t *testing.T) {
	t.Parallel()
	h := newHostile(t)
	tried := 0
	lists := []string{"/api/v1/webhooks", fmt.Sprintf("/api/v1/webhooks/%d/deliveries", h.ep)}
	for _, list := range lists {
		for _, l := range []string{
			"1000000000000000000000000000000", "9223372036854775808", "-9223372036854775809", "-1", "0", "101", "abc", "1e3", "1e30",
			"1.0", "0x10", "", " 1", "1 ", "١", "\x00", "1\x00", "NaN", "Infinity", "10\r\nX: y", strings.Repeat("9", 10_000),
		} {
			h.pub(t, "GET", list+"?limit="+url.QueryEscape(l), h.key, "").wantError(t, 400, "invalid_request", "limit")
			tried++
		}
		for _, l := range []string{"1", "100", "+1", "007"} {
			data := h.pub(t, "GET", list+"?limit="+url.QueryEscape(l), h.key, "").wantSuccess(t, 200).([]any)
			if n, _ := strconv.Atoi(l); len(data) > n {
				t.Fatalf("limit %s listed %d", l, len(data))
			}
			tried++
		}
	}
	// Given twice, even with one valid value, a parameter is refused by
	// name rather than one value being picked (found by FuzzListWebhooks:
	// testdata/fuzz/FuzzListWebhooks/d555f53ab6a1d37d).
	for _, q := range []string{"limit=1&limit=", "limit=1&limit=2", "cursor=&cursor="} {
		name, _, _ := strings.Cut(q, "=")
		h.pub(t, "GET", lists[0]+"?"+q, h.key, "").wantError(t, 400, "invalid_request", name)
		tried++
	}
	for _, name := range []string{"limit", "cursor", "status", "event", "since", "until"} {
		h.pub(t, "GET", lists[1]+"?"+name+"=x&"+name+"=y", h.key, "").wantError(t, 400, "invalid_request", name)
		tried++
	}
	t.Logf("%d limits tried on %d lists", tried, len(lists))
}

// wellFormedCursor is the decoded form of a cursor: scope, dot, id.
var wellFormedCursor = regexp.MustCompile(`^(w[1-9][0-9]*|d[1-9][0-9]*-[1-9][0-9]*)\.[1-9][0-9]*$`)

// TestHostileCursors: random base64, another account's cursor, a cursor of
// another list (the endpoint list's on a delivery list, another endpoint's
// deliveries), every truncation of a real cursor and re-encodings of it are
// a 400 naming cursor, whose answer leaks nothing of the other list.
func TestHostileCursors(t *testing.T) {
	t.Parallel()
	h := newHostile(t)
	tried := 0
	listOf := func(key, path string) (ids []string, next string) {
		r := h.pub(t, "GET", path, key, "")
		for _, it := range r.wantSuccess(t, 200).([]any) {
			ids = append(ids, fmt.Sprint(it.(map[string]any)["id"]))
		}
		next, _ = r.body["next_cursor"].(string)
		return ids, next
	}
	hooks := "/api/v1/webhooks"
	dels := func(ep int64) string { return fmt.Sprintf("/api/v1/webhooks/%d/deliveries", ep) }

	// Real cursors of four lists.
	_, ownHooks := listOf(h.key, hooks+"?limit=1")
	_, otherHooks := listOf(h.otherKey, hooks+"?limit=1") // the bystander has one endpoint: no next page
	_, ownDels := listOf(h.key, dels(h.ep)+"?limit=2")
	_, otherDels := listOf(h.otherKey, dels(h.otherEp)+"?limit=2")
	if ownHooks == "" || ownDels == "" || otherDels == "" || otherHooks != "" {
		t.Fatalf("cursors: %q %q %q %q", ownHooks, ownDels, otherDels, otherHooks)
	}
	// The real ones work where they belong.
	if ids, _ := listOf(h.key, hooks+"?cursor="+ownHooks); !slices.Equal(ids, []string{strconv.FormatInt(h.ep2, 10)}) {
		t.Fatalf("own cursor listed %v", ids)
	}

	bad := func(key, path, cursor, why string) {
		t.Helper()
		r := h.pub(t, "GET", path+"?cursor="+url.QueryEscape(cursor), key, "")
		if r.status != 400 {
			t.Fatalf("%s: cursor %q on %s answered %d %s", why, cursor, path, r.status, r.raw)
		}
		r.wantError(t, 400, "invalid_request", "cursor")
		for _, secret := range []string{"bystander", "private-hook", "seed_", "whsec"} {
			if strings.Contains(string(r.raw), secret) {
				t.Fatalf("%s: the refusal leaks %q: %s", why, secret, r.raw)
			}
		}
		tried++
	}
	bad(h.key, dels(h.ep), otherDels, "another account's delivery cursor")
	bad(h.otherKey, hooks, ownHooks, "another account's endpoint cursor")
	bad(h.key, dels(h.ep), ownHooks, "an endpoint-list cursor on a delivery list")
	bad(h.key, hooks, ownDels, "a delivery-list cursor on the endpoint list")
	bad(h.key, dels(h.ep2), ownDels, "another endpoint's delivery cursor")
	for _, c := range []string{ownHooks, ownDels} {
		for i := range len(c) {
			// A cursor is not signed: cutting "…13" to "…1" makes the
			// well-formed cursor of another position in the same list,
			// which is no leak. Every other truncation is refused.
			if b, err := base64.RawURLEncoding.Strict().DecodeString(c[:i]); err == nil && wellFormedCursor.Match(b) {
				continue
			}
			bad(h.key, hooks, c[:i], "a truncated cursor")
			bad(h.key, dels(h.ep), c[:i], "a truncated cursor")
		}
		raw, _ := base64.RawURLEncoding.DecodeString(c)
		for _, forged := range []string{
			base64.URLEncoding.EncodeToString(raw), // padded
			base64.StdEncoding.EncodeToString(raw),
			c + "A", c + "=", " " + c, c + "\n",
			base64.RawURLEncoding.EncodeToString(bytes.Replace(raw, []byte("."), []byte(".0"), 1)),
			base64.RawURLEncoding.EncodeToString(bytes.Replace(raw, []byte("."), []byte(".-"), 1)),
			base64.RawURLEncoding.EncodeToString([]byte(" OR 1=1 --")),
		} {
			bad(h.key, hooks, forged, "a re-encoded cursor")
			bad(h.key, dels(h.ep), forged, "a re-encoded cursor")
		}
	}
	rng := rand.New(rand.NewPCG(6, 4))
	for range 300 {
		b := make([]byte, 1+rng.IntN(40))
		for i := range b {
			b[i] = byte(rng.UintN(256))
		}
		c := base64.RawURLEncoding.EncodeToString(b)
		bad(h.key, hooks, c, "random base64")
		bad(h.key, dels(h.ep), c, "random base64")
	}
	t.Logf("%d forged cursors tried, all 400 on cursor", tried)
}
