package api_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"maps"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/nanohook/nanohook/api"
	"github.com/nanohook/nanohook/store/sqlite"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(api.ReportOpenAPIChecks(m))
}

// testNow is the fixed clock of every bundle.
var testNow = time.Date(2024, 12, 23, 10, 0, 0, 0, time.UTC)

const testAdminToken = "admin-token-for-tests"

// bundle is what a test needs: both APIs on a real SQLite file, the store
// itself to look behind the API, the waker and the log.
type bundle struct {
	store  *sqlite.Store
	public *httptest.Server
	admin  *httptest.Server
	waker  *waker
	logs   *syncBuffer
}

// setup starts both APIs on a fresh SQLite database. opts adjust the Config
// before the handlers are built (AllowHTTP, a faulty store, …).
func setup(t *testing.T, opts ...func(*api.Config)) *bundle {
	t.Helper()
	ctx := context.Background()
	st, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "nanohook.db"))
	if err != nil {
		t.Fatalf("open store: %v", err)
	}
	t.Cleanup(func() { _ = st.Close() })
	b := &bundle{store: st, waker: &waker{ch: make(chan struct{}, 100)}, logs: &syncBuffer{}}
	cfg := api.Config{
		Store:      st,
		Logger:     slog.New(slog.NewTextHandler(b.logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
		AdminToken: testAdminToken,
		CheckURL:   fakeCheckURL,
		Waker:      b.waker,
		Now:        func() time.Time { return testNow },
	}
	for _, o := range opts {
		o(&cfg)
	}
	b.public = httptest.NewServer(api.NewPublic(cfg))
	t.Cleanup(b.public.Close)
	b.admin = httptest.NewServer(api.NewAdmin(cfg))
	t.Cleanup(b.admin.Close)
	return b
}

// fakeCheckURL stands in for the egress guard: it refuses one host, the way
// the guard refuses hosts that resolve to private addresses.
func fakeCheckURL(_ context.Context, rawURL string) error {
	if strings.Contains(rawURL, "internal.example") {
		return errors.New(`forbidden address: host "internal.example" resolves to a private address`)
	}
	return nil
}

// waker counts wake-ups and signals each one.
type waker struct {
	n  atomic.Int64
	ch chan struct{}
}

func (w *waker) Wake() {
	w.n.Add(1)
	select {
	case w.ch <- struct{}{}:
	default:
	}
}

// syncBuffer is a log sink safe for the server's goroutines.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// response is one answer, decoded.
type response struct {
	status int
	header http.Header
	raw    []byte
	body   map[string]any
}

// call sends one request. An empty body sends none; contentType "" sends no
// Content-Type header.
func call(t *testing.T, srv *httptest.Server, method, path, token, contentType, body string) response {
	t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequestWithContext(t.Context(), method, srv.URL+path, rd)
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	return send(t, srv, req)
}

func send(t *testing.T, srv *httptest.Server, req *http.Request) response {
	t.Helper()
	res, err := srv.Client().Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", req.Method, req.URL.Path, err)
	}
	defer res.Body.Close()
	raw, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatal(err)
	}
	// Every answer a test sees must be one that openapi.json describes.
	api.CheckOpenAPI(t, req, res, raw)
	r := response{status: res.StatusCode, header: res.Header, raw: raw}
	if req.Method != http.MethodHead {
		if got := res.Header.Get("Content-Type"); got != "application/json" {
			t.Fatalf("%s %s: Content-Type %q, body %s", req.Method, req.URL.Path, got, raw)
		}
		if err := json.Unmarshal(raw, &r.body); err != nil {
			t.Fatalf("%s %s: answer is not a JSON object: %v: %s", req.Method, req.URL.Path, err, raw)
		}
	}
	return r
}

// pub calls the public API with a JSON body.
func (b *bundle) pub(t *testing.T, method, path, key, body string) response {
	t.Helper()
	ct := ""
	if body != "" {
		ct = "application/json"
	}
	return call(t, b.public, method, path, key, ct, body)
}

// adm calls the admin API with the admin token and a JSON body.
func (b *bundle) adm(t *testing.T, method, path, body string) response {
	t.Helper()
	ct := ""
	if body != "" {
		ct = "application/json"
	}
	return call(t, b.admin, method, path, testAdminToken, ct, body)
}

// newAccount creates an account through the admin API.
func (b *bundle) newAccount(t *testing.T, name string) (id int64, key string) {
	t.Helper()
	r := b.adm(t, "POST", "/admin/v1/accounts", `{"name":`+quote(name)+`}`)
	d := r.wantData(t, http.StatusCreated)
	return int64(d["id"].(float64)), d["api_key"].(string)
}

// newWebhook creates an endpoint and returns its id.
func (b *bundle) newWebhook(t *testing.T, key, url string, events ...string) int64 {
	t.Helper()
	if len(events) == 0 {
		events = []string{"job.completed", "job.failed"}
	}
	ev, _ := json.Marshal(events)
	r := b.pub(t, "POST", "/api/v1/webhooks", key, `{"url":`+quote(url)+`,"events":`+string(ev)+`}`)
	return int64(r.wantData(t, http.StatusCreated)["id"].(float64))
}

// listIDs lists the account's endpoint ids (first page).
func (b *bundle) listIDs(t *testing.T, key string) []int64 {
	t.Helper()
	r := b.pub(t, "GET", "/api/v1/webhooks", key, "")
	if r.status != http.StatusOK {
		t.Fatalf("list: %d %s", r.status, r.raw)
	}
	var ids []int64
	for _, e := range r.body["data"].([]any) {
		ids = append(ids, int64(e.(map[string]any)["id"].(float64)))
	}
	return ids
}

// wantData checks a success envelope and returns data as an object.
func (r response) wantData(t *testing.T, status int) map[string]any {
	t.Helper()
	data := r.wantSuccess(t, status)
	m, ok := data.(map[string]any)
	if !ok {
		t.Fatalf("data is %T, want an object: %s", data, r.raw)
	}
	return m
}

// wantSuccess checks a success envelope and returns data.
func (r response) wantSuccess(t *testing.T, status int) any {
	t.Helper()
	if r.status != status {
		t.Fatalf("status %d, want %d: %s", r.status, status, r.raw)
	}
	if r.body["success"] != true {
		t.Fatalf("success is %v: %s", r.body["success"], r.raw)
	}
	if _, ok := r.body["error"]; ok {
		t.Fatalf("success answer has an error: %s", r.raw)
	}
	data, ok := r.body["data"]
	if !ok {
		t.Fatalf("no data: %s", r.raw)
	}
	return data
}

// wantError checks an error envelope: status, code and field (absent when
// field is ""), a non-empty message, nothing else.
func (r response) wantError(t *testing.T, status int, code, field string) string {
	t.Helper()
	if r.status != status {
		t.Fatalf("status %d, want %d: %s", r.status, status, r.raw)
	}
	if r.body["success"] != false {
		t.Fatalf("success is %v: %s", r.body["success"], r.raw)
	}
	if len(r.body) != 2 {
		t.Fatalf("envelope has keys beyond success and error: %s", r.raw)
	}
	e, ok := r.body["error"].(map[string]any)
	if !ok {
		t.Fatalf("error is not an object: %s", r.raw)
	}
	if e["code"] != code {
		t.Fatalf("code %v, want %s: %s", e["code"], code, r.raw)
	}
	msg, _ := e["message"].(string)
	if msg == "" {
		t.Fatalf("empty message: %s", r.raw)
	}
	f, has := e["field"]
	switch {
	case field == "" && has:
		t.Fatalf("field %v present, want none: %s", f, r.raw)
	case field != "" && f != field:
		t.Fatalf("field %v, want %s: %s", f, field, r.raw)
	}
	return msg
}

func quote(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}

// keysOf returns the sorted keys of an object.
func keysOf(m map[string]any) []string { return slices.Sorted(maps.Keys(m)) }
