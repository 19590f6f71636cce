package api_test

import (
	"context"
	"errors"
	"fmt"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/nanohook/nanohook"
	"github.com/nanohook/nanohook/api"
	"github.com/nanohook/nanohook/store"
	"github.com/nanohook/nanohook/store/sqlite"
)

// TestRoutesNotFoundAndMethod: unknown routes and wrong methods answer the
// envelope too.
func TestRoutesNotFoundAndMethod(t *testing.T) {
	t.Parallel()
	b := setup(t)
	_, key := b.newAccount(t, "a")

	for _, p := range []string{"/", "/nope", "/api/v1", "/api/v1/webhooks/", "/api/v1/webhooks/1/x", "/admin/v1/accounts", "/api//v1/webhooks", "/api/v1/../v1/webhooks"} {
		call(t, b.public, "GET", p, key, "", "").wantError(t, 404, "not_found", "")
	}
	for _, p := range []string{"/api/v1/webhooks", "/nope"} {
		call(t, b.admin, "GET", p, testAdminToken, "", "").wantError(t, 404, "not_found", "")
	}

	// A route with a trailing slash is not found, but the answer names the
	// route (issue 15, item 9: it said only "no such route").
	for _, c := range []struct{ method, path, route string }{
		{"GET", "/api/v1/webhooks/", "/api/v1/webhooks"},
		{"GET", "/api/v1/webhooks/1/", "/api/v1/webhooks/1"},
		{"POST", "/api/v1/webhooks/1/", "/api/v1/webhooks/1"}, // a route, under other methods
		{"GET", "/api/v1/webhooks/1/deliveries/", "/api/v1/webhooks/1/deliveries"},
	} {
		msg := call(t, b.public, c.method, c.path, key, "application/json", "").wantError(t, 404, "not_found", "")
		if want := "no such route: " + c.path + " ends with a slash; the route is " + c.route; msg != want {
			t.Errorf("%s %s: message %q, want %q", c.method, c.path, msg, want)
		}
	}
	// (openapi.json's validator takes a POST to /admin/v1/events/ for one
	// to /admin/v1/events, whose answers have no 404, so this sends GET.)
	if msg := call(t, b.admin, "GET", "/admin/v1/events/", testAdminToken, "", "").wantError(t, 404, "not_found", ""); !strings.HasSuffix(msg, "the route is /admin/v1/events") {
		t.Errorf("GET /admin/v1/events/: message %q", msg)
	}
	for _, p := range []string{"/nope/", "/api/v1/", "/api/v1/webhooks/1/x/"} {
		if msg := call(t, b.public, "GET", p, key, "", "").wantError(t, 404, "not_found", ""); msg != "no such route" {
			t.Errorf("GET %s: message %q, want no such route", p, msg)
		}
	}

	r := call(t, b.public, "PUT", "/api/v1/webhooks", key, "application/json", `{}`)
	r.wantError(t, 405, "method_not_allowed", "")
	if allow := r.header.Get("Allow"); !strings.Contains(allow, "GET") || !strings.Contains(allow, "POST") {
		t.Fatalf("Allow %q", allow)
	}
	r = call(t, b.public, "POST", "/api/v1/webhooks/1", key, "application/json", `{}`)
	r.wantError(t, 405, "method_not_allowed", "")
	if allow := r.header.Get("Allow"); !strings.Contains(allow, "PATCH") || !strings.Contains(allow, "DELETE") {
		t.Fatalf("Allow %q", allow)
	}
	call(t, b.admin, "GET", "/admin/v1/events", testAdminToken, "", "").wantError(t, 405, "method_not_allowed", "")
	call(t, b.public, "POST", "/healthz", "", "", "").wantError(t, 405, "method_not_allowed", "")
}

// TestHealth: /healthz always answers; /readyz follows the store.
func TestHealth(t *testing.T) {
	t.Parallel()
	b := setup(t)
	for _, srv := range []*httptest.Server{b.public, b.admin} {
		for _, p := range []string{"/healthz", "/readyz"} {
			r := call(t, srv, "GET", p, "", "", "")
			if r.status != 200 || string(r.raw) != `{"success":true,"data":{"status":"ok"}}` {
				t.Fatalf("%s: %d %s", p, r.status, r.raw)
			}
		}
	}

	if err := b.store.Close(); err != nil {
		t.Fatal(err)
	}
	r := call(t, b.public, "GET", "/readyz", "", "", "")
	r.wantError(t, 503, "storage_unavailable", "")
	if r.header.Get("Retry-After") != "1" {
		t.Fatalf("Retry-After %q", r.header.Get("Retry-After"))
	}
	call(t, b.public, "GET", "/healthz", "", "", "").wantSuccess(t, 200)
}

// faultyStore is the real SQLite store with one call broken on purpose, to
// see how the API answers failures it cannot cause through the database.
type faultyStore struct {
	*sqlite.Store
	listErr   error
	listPanic bool
}

func (f *faultyStore) ListEndpoints(ctx context.Context, p store.ListEndpointsParams) ([]nanohook.Endpoint, error) {
	if f.listPanic {
		panic("list exploded: secret-detail-in-panic")
	}
	if f.listErr != nil {
		return nil, f.listErr
	}
	return f.Store.ListEndpoints(ctx, p)
}

// faulty builds a bundle whose store fails ListEndpoints as configured.
func faulty(t *testing.T, configure func(*faultyStore)) (*bundle, string) {
	t.Helper()
	var fs *faultyStore
	b := setup(t, func(c *api.Config) {
		fs = &faultyStore{Store: c.Store.(*sqlite.Store)}
		configure(fs)
		c.Store = fs
	})
	_, key := b.newAccount(t, "a")
	return b, key
}

// TestInternalErrors: an unexpected error is a 500 whose text is logged with
// method and path and never sent; an unavailable store is a 503 with
// Retry-After; a panic is a 500 envelope and the server keeps serving.
func TestInternalErrors(t *testing.T) {
	t.Parallel()

	t.Run("error", func(t *testing.T) {
		t.Parallel()
		b, key := faulty(t, func(f *faultyStore) { f.listErr = errors.New("disk on fire: secret-detail") })
		r := b.pub(t, "GET", "/api/v1/webhooks", key, "")
		msg := r.wantError(t, 500, "internal_error", "")
		if msg != "internal error" || strings.Contains(string(r.raw), "secret-detail") {
			t.Fatalf("500 leaks: %s", r.raw)
		}
		logs := b.logs.String()
		for _, want := range []string{"secret-detail", "method=GET", "path=/api/v1/webhooks", "level=ERROR"} {
			if !strings.Contains(logs, want) {
				t.Fatalf("log lacks %q:\n%s", want, logs)
			}
		}
	})

	t.Run("unavailable", func(t *testing.T) {
		t.Parallel()
		b, key := faulty(t, func(f *faultyStore) {
			f.listErr = fmt.Errorf("sqlite: list: %w: database is locked", store.ErrUnavailable)
		})
		r := b.pub(t, "GET", "/api/v1/webhooks", key, "")
		r.wantError(t, 503, "storage_unavailable", "")
		if r.header.Get("Retry-After") != "1" || strings.Contains(string(r.raw), "locked") {
			t.Fatalf("503: %v %s", r.header, r.raw)
		}
	})

	t.Run("not found", func(t *testing.T) {
		t.Parallel()
		b, key := faulty(t, func(f *faultyStore) { f.listErr = fmt.Errorf("gone: %w", store.ErrNotFound) })
		b.pub(t, "GET", "/api/v1/webhooks", key, "").wantError(t, 404, "not_found", "")
	})

	t.Run("panic", func(t *testing.T) {
		t.Parallel()
		b, key := faulty(t, func(f *faultyStore) { f.listPanic = true })
		r := b.pub(t, "GET", "/api/v1/webhooks", key, "")
		r.wantError(t, 500, "internal_error", "")
		if strings.Contains(string(r.raw), "secret-detail") {
			t.Fatalf("panic leaks: %s", r.raw)
		}
		if logs := b.logs.String(); !strings.Contains(logs, "secret-detail-in-panic") || !strings.Contains(logs, "path=/api/v1/webhooks") {
			t.Fatalf("panic not logged:\n%s", logs)
		}
		b.pub(t, "POST", "/api/v1/webhooks", key, `{"url":"https://example.com/","events":["job.completed"]}`).wantData(t, 201)
	})
}
