package api_test

import (
	"cmp"
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/nanohook/nanohook"
	"github.com/nanohook/nanohook/api"
	"github.com/nanohook/nanohook/store"
)

// tenants is two accounts on one server. A owns one of everything a path
// can name (endpoint, delivery with an attempt, API keys); B owns an
// endpoint of its own. Everything of A that must never reach anyone else
// is in secrets.
type tenants struct {
	*bundle
	a, b           int64
	keyA, keyB     string
	spareKey       string // a second live key of A, the target of the admin DELETE route
	spareKeyID     int64
	revoked        string // a key of A, created then deleted
	webhookA       int64
	webhookB       int64
	deliveryA      int64
	eventA         string
	secretA, urlA  string
	secrets        []string // A's keys, secret, URL, event id, attempt body
	requests, runs int      // counted for the log
}

// okTester stands in for the delivery engine behind the test call: the
// attempt it reports is a 204, made at once.
type okTester struct{}

func (okTester) ReserveTest(int64, int64) (func(), error) { return func() {}, nil }

func (okTester) AttemptNow(_ context.Context, c store.ClaimedDelivery) (nanohook.Attempt, error) {
	return nanohook.Attempt{DeliveryID: c.DeliveryID, Number: c.Attempt, StartedAt: testNow,
		Duration: time.Millisecond, ResponseStatus: http.StatusNoContent}, nil
}

func setupTenants(t *testing.T) *tenants {
	t.Helper()
	b := setup(t, func(c *api.Config) {
		c.Tester = okTester{}
		// Far more failures than the default allows are made on purpose;
		// the limit still counts them, it never trips (ratelimit_test.go
		// tests it tripping).
		c.AuthFailureLimit = 10_000
	})
	tn := &tenants{bundle: b}
	tn.a, tn.keyA = b.newAccount(t, "tenant-a")
	tn.b, tn.keyB = b.newAccount(t, "tenant-b")
	newKey := func() (string, int64) {
		d := b.adm(t, "POST", fmt.Sprintf("/admin/v1/accounts/%d/keys", tn.a), "").wantData(t, http.StatusCreated)
		return d["api_key"].(string), int64(d["id"].(float64))
	}
	var revokedID int64
	tn.revoked, revokedID = newKey()
	b.adm(t, "DELETE", fmt.Sprintf("/admin/v1/accounts/%d/keys/%d", tn.a, revokedID), "").wantData(t, http.StatusOK)
	tn.spareKey, tn.spareKeyID = newKey()

	tn.secretA, tn.urlA = "tenant-a-signing-secret-5e1d", "https://a-tenant.example.com/hook?token=a-url-token-93ab"
	d := b.pub(t, "POST", "/api/v1/webhooks", tn.keyA, fmt.Sprintf(`{"url":%q,"events":["job.completed"],"secret_key":%q}`,
		tn.urlA, tn.secretA)).wantData(t, http.StatusCreated)
	tn.webhookA = int64(d["id"].(float64))
	tn.webhookB = b.newWebhook(t, tn.keyB, "https://b-tenant.example.com/hook")
	event := b.publishAt(t, tn.a, nanohook.EventJobCompleted, testNow.Add(-2*time.Hour))
	tn.eventA = event
	tn.deliveryA = b.attempt(t, testNow.Add(-2*time.Hour+time.Minute), nanohook.DeliveryFailed,
		nanohook.Attempt{ResponseStatus: 500, ResponseBody: "a-tenant receiver says no"}, time.Time{}).DeliveryID
	tn.secrets = []string{tn.keyA, tn.spareKey, tn.revoked, tn.secretA, tn.urlA, "a-tenant.example.com",
		"a-url-token-93ab", event, "a-tenant receiver says no", "tenant-a"}
	return tn
}

// fill substitutes the path values of a route pattern with A's objects. A
// path value it does not know fails the test: a new kind of route needs
// its object in the fixture.
func (tn *tenants) fill(t *testing.T, pattern string) (method, path string) {
	t.Helper()
	method, path, _ = strings.Cut(pattern, " ")
	segs := strings.Split(path, "/")
	for i, s := range segs {
		if !strings.HasPrefix(s, "{") {
			continue
		}
		if s == "{id}" && segs[i-1] == "events" {
			segs[i] = tn.eventA // event ids are strings
			continue
		}
		var id int64
		switch prev := segs[i-1]; {
		case s == "{id}" && prev == "webhooks":
			id = tn.webhookA
		case s == "{id}" && prev == "deliveries":
			id = tn.deliveryA
		case s == "{id}" && prev == "accounts":
			id = tn.a
		case s == "{key_id}" && prev == "keys":
			id = tn.spareKeyID
		default:
			t.Fatalf("route %s: no object of account A for %s after %q; add one to setupTenants and fill", pattern, s, prev)
		}
		segs[i] = fmt.Sprint(id)
	}
	return method, strings.Join(segs, "/")
}

// do sends one call with an Authorization header as given ("" sends none).
func (tn *tenants) do(t *testing.T, srv *httptest.Server, method, path, auth, body string) response {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), method, srv.URL+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if body == "" {
		req.Body, req.GetBody, req.ContentLength = http.NoBody, nil, 0
	} else {
		req.Header.Set("Content-Type", "application/json")
	}
	if auth != "" {
		req.Header.Set("Authorization", auth)
	}
	tn.requests++
	return send(t, srv, req)
}

// noLeak fails when an answer shows anything of A's or the credentials
// that were sent.
func (tn *tenants) noLeak(t *testing.T, what string, r response, sent string) {
	t.Helper()
	for _, s := range append(slices.Clone(tn.secrets), strings.TrimPrefix(sent, "Bearer ")) {
		if len(s) >= 8 && strings.Contains(string(r.raw), s) {
			t.Fatalf("%s: the answer shows %q: %s", what, s, r.raw)
		}
	}
}

// routeCase is what a route expects in the tenancy table.
type routeCase struct {
	body string // a valid body: the call would succeed for the object's owner
	open bool   // served without credentials (probes, the document)
	own  bool   // acts on the caller's own account (list, create): B succeeds with B's data
}

// credential is one Authorization header ("" sends none).
type credential struct{ name, header string }

// TestTenancyEveryRoute walks every route of both listeners, as routes.go
// lists them, with every kind of bad credential (401 unauthorized, nothing
// of A's in the answer, nothing changed) and, on the public API, with
// another account's valid key (404 on A's objects, only B's own data on
// lists, A's objects unchanged afterwards). A route missing from the
// tables below fails the test.
func TestTenancyEveryRoute(t *testing.T) {
	t.Parallel()
	tn := setupTenants(t)
	publicCases := map[string]routeCase{
		"GET /healthz":             {open: true},
		"GET /readyz":              {open: true},
		"GET /api/v1/openapi.json": {open: true},

		"GET /api/v1/webhooks":                     {own: true},
		"POST /api/v1/webhooks":                    {own: true, body: `{"url":"https://b-tenant.example.com/second","events":["job.failed"]}`},
		"GET /api/v1/webhooks/{id}":                {},
		"PATCH /api/v1/webhooks/{id}":              {body: `{"url":"https://evil.example.com/hook","status":"disabled","description":"taken over"}`},
		"DELETE /api/v1/webhooks/{id}":             {},
		"GET /api/v1/webhooks/{id}/deliveries":     {},
		"POST /api/v1/webhooks/{id}/recover":       {body: `{"since":"2024-12-01T00:00:00Z"}`},
		"GET /api/v1/deliveries/{id}":              {},
		"POST /api/v1/deliveries/{id}/retry":       {},
		"POST /api/v1/webhooks/{id}/rotate-secret": {body: `{"secret_key":"stolen-secret-123","overlap_seconds":0}`},
		"POST /api/v1/webhooks/{id}/test":          {},
		"GET /api/v1/events":                       {own: true},
		"GET /api/v1/events/{id}":                  {},
	}
	publish := func(task string) string {
		return fmt.Sprintf(`{"account_id":%d,"event":"job.completed","task_id":%q,"task_type":"image","data":{}}`, tn.a, task)
	}
	adminCases := map[string]routeCase{
		"GET /healthz":             {open: true},
		"GET /readyz":              {open: true},
		"GET /api/v1/openapi.json": {open: true},

		"POST /admin/v1/accounts":                      {body: `{"name":"intruder"}`},
		"POST /admin/v1/accounts/{id}/keys":            {},
		"DELETE /admin/v1/accounts/{id}/keys/{key_id}": {},
		"POST /admin/v1/events":                        {body: publish("intruder_1")},
		"POST /admin/v1/events/batch":                  {body: `{"events":[` + publish("intruder_2") + `]}`},
	}
	publicRoutes, adminRoutes := api.RoutePatterns()
	for _, l := range []struct {
		name   string
		routes []string
		cases  map[string]routeCase
	}{{"public", publicRoutes, publicCases}, {"admin", adminRoutes, adminCases}} {
		for _, p := range l.routes {
			if _, ok := l.cases[p]; !ok {
				t.Errorf("%s route %q is not in this test's table: add it with a valid body and what another account gets", l.name, p)
			}
		}
		for p := range l.cases {
			if !slices.Contains(l.routes, p) {
				t.Errorf("the %s table has %q, which routes.go does not serve", l.name, p)
			}
		}
	}
	if t.Failed() {
		t.FailNow()
	}

	before := tn.snapshotA(t)
	basic := base64.StdEncoding.EncodeToString([]byte("tenant-a:" + tn.keyA))
	wrongKey, _ := nanohook.NewAPIKey()
	nearMiss := tn.keyA[:len(tn.keyA)-1] + "A"
	if nearMiss == tn.keyA {
		nearMiss = tn.keyA[:len(tn.keyA)-1] + "B"
	}
	bad := []credential{
		{"none", ""},
		{"malformed: no scheme", tn.keyA},
		{"malformed: Basic", "Basic " + basic},
		{"malformed: empty bearer", "Bearer "},
		{"malformed: two spaces", "Bearer  " + tn.keyA},
		{"wrong key", "Bearer " + wrongKey},
		{"near miss of A's key", "Bearer " + nearMiss},
		{"revoked key", "Bearer " + tn.revoked},
	}
	publicBad := append(slices.Clone(bad), credential{"admin token on the public API", "Bearer " + testAdminToken})
	adminBad := append(slices.Clone(bad),
		credential{"near miss of the admin token", "Bearer " + testAdminToken + "x"},
		credential{"A's API key", "Bearer " + tn.keyA},
		credential{"B's API key", "Bearer " + tn.keyB})

	bCreated := []int64{}
	for _, l := range []struct {
		srv    *httptest.Server
		routes []string
		cases  map[string]routeCase
		bad    []credential
	}{{tn.public, publicRoutes, publicCases, publicBad}, {tn.admin, adminRoutes, adminCases, adminBad}} {
		for _, pattern := range l.routes {
			rc := l.cases[pattern]
			method, path := tn.fill(t, pattern)
			for _, c := range l.bad {
				what := fmt.Sprintf("%s %s with %s", method, path, c.name)
				r := tn.do(t, l.srv, method, path, c.header, rc.body)
				tn.runs++
				tn.noLeak(t, what, r, c.header)
				if rc.open {
					wantOpen(t, what, r)
					continue
				}
				r.wantError(t, http.StatusUnauthorized, "unauthorized", "")
				if r.header.Get("WWW-Authenticate") != "Bearer" {
					t.Fatalf("%s: WWW-Authenticate %q", what, r.header.Get("WWW-Authenticate"))
				}
			}
			if l.srv != tn.public {
				continue
			}
			// B's own valid key on A's objects.
			what := fmt.Sprintf("%s %s with B's key", method, path)
			r := tn.do(t, l.srv, method, path, "Bearer "+tn.keyB, rc.body)
			tn.runs++
			tn.noLeak(t, what, r, "")
			switch {
			case rc.open:
				wantOpen(t, what, r)
			case rc.own && method == "GET" && path == "/api/v1/events":
				// B published nothing: none of A's events (noLeak checks
				// their ids) and none at all.
				if data := r.wantSuccess(t, http.StatusOK).([]any); len(data) != 0 {
					t.Fatalf("%s: lists %d events, want none of B's", what, len(data))
				}
			case rc.own && method == "GET":
				if ids := dataIDs(t, r); !slices.Equal(ids, append([]int64{tn.webhookB}, bCreated...)) {
					t.Fatalf("%s: lists %v, want only B's %v", what, ids, append([]int64{tn.webhookB}, bCreated...))
				}
			case rc.own:
				bCreated = append(bCreated, int64(r.wantData(t, http.StatusCreated)["id"].(float64)))
			default:
				r.wantError(t, http.StatusNotFound, "not_found", "")
			}
		}
	}

	// Nothing of A changed: not through B's key, not through bad
	// credentials on either listener.
	if after := tn.snapshotA(t); !slices.Equal(before, after) {
		t.Fatalf("A's objects changed:\nbefore %q\nafter  %q", before, after)
	}
	ctx := context.Background()
	if e, err := tn.store.GetEndpoint(ctx, tn.a, tn.webhookA); err != nil || e.Secret != tn.secretA {
		t.Fatalf("A's endpoint secret: %v, %v", e.Secret == tn.secretA, err)
	}
	for id := tn.b + 1; id <= tn.b+3; id++ {
		if _, err := tn.store.GetAccount(ctx, id); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("account %d exists (%v): created without the admin token", id, err)
		}
	}
	tn.pub(t, "GET", "/api/v1/webhooks", tn.spareKey, "").wantSuccess(t, http.StatusOK) // not revoked
	if got := tn.listIDs(t, tn.keyB); !slices.Equal(got, append([]int64{tn.webhookB}, bCreated...)) {
		t.Fatalf("B's endpoints %v: created by bad credentials?", got)
	}
	// A key created now takes the next id: no key was created by the bad
	// calls.
	d := tn.adm(t, "POST", fmt.Sprintf("/admin/v1/accounts/%d/keys", tn.b), "").wantData(t, http.StatusCreated)
	if int64(d["id"].(float64)) != tn.spareKeyID+1 {
		t.Fatalf("new key id %v, want %d: the bad calls created keys", d["id"], tn.spareKeyID+1)
	}

	// The owner's credentials reach every object the table named, so
	// every 404 above was about the account, not a wrong id. PATCH (which
	// disables the endpoint) and DELETE (which removes it) go last.
	for _, l := range []struct {
		srv    *httptest.Server
		routes []string
		cases  map[string]routeCase
		auth   string
	}{{tn.public, publicRoutes, publicCases, "Bearer " + tn.keyA}, {tn.admin, adminRoutes, adminCases, "Bearer " + testAdminToken}} {
		routes := slices.Clone(l.routes)
		slices.SortStableFunc(routes, func(x, y string) int { return cmp.Compare(lateness(x), lateness(y)) })
		for _, pattern := range routes {
			method, path := tn.fill(t, pattern)
			r := tn.do(t, l.srv, method, path, l.auth, l.cases[pattern].body)
			tn.runs++
			if r.status < 200 || r.status > 299 {
				t.Fatalf("%s %s with the owner's credentials: %d %s", method, path, r.status, r.raw)
			}
		}
	}
	t.Logf("tenancy: %d public and %d admin routes; %d public and %d admin bad credentials plus B's key; %d route×credential runs, %d requests",
		len(publicRoutes), len(adminRoutes), len(publicBad), len(adminBad), tn.runs, tn.requests)
}

// lateness orders the owner's calls so that none breaks the next one.
func lateness(pattern string) int {
	switch {
	case strings.HasPrefix(pattern, "PATCH "):
		return 1
	case strings.HasPrefix(pattern, "DELETE "):
		return 2
	}
	return 0
}

// wantOpen checks the answer of a route that needs no credentials: 200
// whatever was sent (the document is no envelope).
func wantOpen(t *testing.T, what string, r response) {
	t.Helper()
	if r.status != http.StatusOK {
		t.Fatalf("%s: %d %s, want 200", what, r.status, r.raw)
	}
}

// snapshotA is what A sees of its objects, raw.
func (tn *tenants) snapshotA(t *testing.T) []string {
	t.Helper()
	var out []string
	for _, p := range []string{
		"/api/v1/webhooks",
		fmt.Sprintf("/api/v1/webhooks/%d", tn.webhookA),
		fmt.Sprintf("/api/v1/webhooks/%d/deliveries", tn.webhookA),
		fmt.Sprintf("/api/v1/deliveries/%d", tn.deliveryA),
	} {
		r := tn.do(t, tn.public, "GET", p, "Bearer "+tn.keyA, "")
		r.wantSuccess(t, http.StatusOK)
		out = append(out, string(r.raw))
	}
	return out
}

// dataIDs returns the ids of a list answer's data.
func dataIDs(t *testing.T, r response) []int64 {
	t.Helper()
	data, ok := r.wantSuccess(t, http.StatusOK).([]any)
	if !ok {
		t.Fatalf("data is not an array: %s", r.raw)
	}
	ids := []int64{}
	for _, e := range data {
		ids = append(ids, int64(e.(map[string]any)["id"].(float64)))
	}
	return ids
}
