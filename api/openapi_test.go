package api

// openapi.json is checked three ways: it is a valid OpenAPI 3.1 document
// that needs nothing beyond itself, every JSON route of both listeners is in
// it (and it documents nothing that is not served), and every answer the
// package's tests see validates against it: the shared helpers in
// api_test.go hand each request and answer to CheckOpenAPI.

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pb33f/libopenapi"
	validator "github.com/pb33f/libopenapi-validator"
	"github.com/pb33f/libopenapi-validator/config"
	valerrors "github.com/pb33f/libopenapi-validator/errors"
	"github.com/pb33f/libopenapi-validator/schema_validation"
	"github.com/pb33f/libopenapi/datamodel/high/base"
	v3 "github.com/pb33f/libopenapi/datamodel/high/v3"

	"github.com/nanohook/nanohook/delivery"
	"github.com/nanohook/nanohook/egress"
	"github.com/nanohook/nanohook/store/sqlite"
)

// openAPIContract is the document loaded once per test binary, ready to
// validate exchanges from any test goroutine.
type openAPIContract struct {
	doc   libopenapi.Document
	model *v3.Document
	// answers validates answers strictly: every member an answer carries
	// must be declared, although the document leaves answer objects open
	// for clients (fields may be added). requests validates requests as the
	// document states them: their schemas are closed where the server
	// refuses unknown fields, and the platform's free-form event data must
	// not be held to declared members.
	answers, requests validator.Validator
	// schemas validates bodies that no operation describes: answers to
	// unknown routes and the deliveries an endpoint receives.
	schemas  schema_validation.SchemaValidator
	envelope *base.Schema
}

var loadOpenAPI = sync.OnceValues(func() (*openAPIContract, error) {
	doc, err := libopenapi.NewDocument(openAPIDocument)
	if err != nil {
		return nil, fmt.Errorf("openapi.json: %w", err)
	}
	m, err := doc.BuildV3Model()
	if err != nil {
		return nil, fmt.Errorf("openapi.json: building the OpenAPI 3.1 model: %w", err)
	}
	c := &openAPIContract{doc: doc, model: &m.Model, schemas: schema_validation.NewSchemaValidator()}
	// Formats are part of the contract: created_at must be a date-time.
	if c.requests, err = newValidator(doc, config.WithFormatAssertions()); err != nil {
		return nil, err
	}
	c.answers, err = newValidator(doc, config.WithFormatAssertions(), config.WithStrictMode(),
		// Sent with every JSON answer: a browser hint, not part of the
		// contract of an operation.
		config.WithStrictIgnoredHeadersExtra("x-content-type-options"),
		// The answer of GET /api/v1/openapi.json is an OpenAPI object,
		// whose members are open by nature; only its top level is declared.
		// No API answer has these members.
		// (A member whose name holds a dot, such as a path, is written
		// $.body.paths['/a.json'], hence no dot before the **.)
		config.WithStrictIgnorePaths("$.body.info**", "$.body.paths**", "$.body.webhooks**", "$.body.components**",
			"$.body.externalDocs**", "$.body.servers**", "$.body.security**", "$.body.tags**"))
	if err != nil {
		return nil, err
	}
	if c.envelope, err = c.schema("ErrorEnvelope"); err != nil {
		return nil, err
	}
	return c, nil
})

func newValidator(doc libopenapi.Document, opts ...config.Option) (validator.Validator, error) {
	v, errs := validator.NewValidator(doc, opts...)
	if len(errs) > 0 {
		return nil, fmt.Errorf("openapi.json: building the validator: %w", errors.Join(errs...))
	}
	return v, nil
}

// schema returns a schema of components/schemas.
func (c *openAPIContract) schema(name string) (*base.Schema, error) {
	proxy := c.model.Components.Schemas.GetOrZero(name)
	if proxy == nil {
		return nil, fmt.Errorf("openapi.json: components/schemas has no %s", name)
	}
	s, err := proxy.BuildSchema()
	if err != nil {
		return nil, fmt.Errorf("openapi.json: schema %s: %w", name, err)
	}
	return s, nil
}

// What the validation of one test binary covered, logged at its end.
var openAPIChecked struct {
	answers, requests, unrouted atomic.Int64
}

// CheckOpenAPI validates one exchange of a test against openapi.json and
// fails t with the validator's messages. The answer is always validated,
// against the operation the request matched: its status must be documented
// and its headers and body must match what the document says. The request
// is validated only when the server accepted it (2xx): tests send malformed
// requests on purpose, and what the server refuses need not fit the
// document, but what it accepts must. An answer to a route the document
// does not have must be a 404 or 405 error envelope.
//
// req is the request as sent; its body is replayed through GetBody. body
// is the answer's body, already read from res.
func CheckOpenAPI(t testing.TB, req *http.Request, res *http.Response, body []byte) {
	t.Helper()
	c, err := loadOpenAPI()
	if err != nil {
		t.Fatal(err)
	}
	if problems := c.check(req, res, body); len(problems) > 0 {
		t.Errorf("%s %s answered %d, against openapi.json:\n\t%s\nanswer: %s",
			req.Method, req.URL.RequestURI(), res.StatusCode, strings.Join(problems, "\n\t"), clip(body))
	}
}

func (c *openAPIContract) check(req *http.Request, res *http.Response, body []byte) []string {
	// The answer's operation is found from the request's method and path;
	// its body is not needed (and a streamed one cannot be replayed).
	vres := *res
	vres.Body = io.NopCloser(bytes.NewReader(body))
	_, errs := c.answers.ValidateHttpResponse(req.Clone(context.Background()), &vres)
	if slices.ContainsFunc(errs, func(e *valerrors.ValidationError) bool {
		return e.IsPathMissingError() || e.IsOperationMissingError()
	}) {
		return c.checkUnrouted(res, body)
	}
	openAPIChecked.answers.Add(1)
	problems := messages(errs)
	if res.StatusCode >= 200 && res.StatusCode < 300 {
		vreq, err := replay(req)
		if err != nil {
			return append(problems, err.Error())
		}
		_, errs = c.requests.ValidateHttpRequestSync(vreq)
		problems = append(problems, messages(errs)...)
		openAPIChecked.requests.Add(1)
	}
	return problems
}

// checkUnrouted checks the answer to a method and path that no operation
// of the document has: the router's 404 or 405, in the error envelope.
func (c *openAPIContract) checkUnrouted(res *http.Response, body []byte) []string {
	openAPIChecked.unrouted.Add(1)
	if res.StatusCode != http.StatusNotFound && res.StatusCode != http.StatusMethodNotAllowed {
		return []string{fmt.Sprintf("the document has no such operation, yet the answer is %d, not 404 or 405", res.StatusCode)}
	}
	_, errs := c.schemas.ValidateSchemaBytes(c.envelope, body)
	return messages(errs)
}

// replay copies req with a fresh copy of the body it sent.
func replay(req *http.Request) (*http.Request, error) {
	r := req.Clone(context.Background())
	if req.Body == nil || req.Body == http.NoBody {
		return r, nil
	}
	if req.GetBody == nil {
		return nil, errors.New("the request body cannot be replayed for validation (no GetBody)")
	}
	b, err := req.GetBody()
	if err != nil {
		return nil, fmt.Errorf("replaying the request body: %w", err)
	}
	r.Body = b
	return r, nil
}

// messages renders validation errors with their schema failures, which
// name the offending member.
func messages(errs []*valerrors.ValidationError) []string {
	var out []string
	for _, e := range errs {
		msg := e.Message + ": " + e.Reason
		for _, f := range e.SchemaValidationErrors {
			msg += fmt.Sprintf("\n\t\t%s (at %s)", f.Reason, f.FieldPath)
		}
		out = append(out, msg)
	}
	return out
}

func clip(b []byte) string {
	const most = 600
	if len(b) > most {
		return string(b[:most]) + "…"
	}
	return string(b)
}

// ReportOpenAPIChecks wraps a test run so that it ends by saying how much
// the document was checked against: a number that drops to zero would mean
// the helpers stopped validating.
func ReportOpenAPIChecks(m interface{ Run() int }) interface{ Run() int } {
	return openAPIReport{m}
}

type openAPIReport struct{ m interface{ Run() int } }

func (r openAPIReport) Run() int {
	code := r.m.Run()
	fmt.Printf("openapi.json: validated %d answers against their operation (%d with their request) and %d answers to unknown routes against the error envelope\n",
		openAPIChecked.answers.Load(), openAPIChecked.requests.Load(), openAPIChecked.unrouted.Load())
	return code
}

// TestOpenAPIDocument: libopenapi builds the 3.1 model without errors, the
// document passes the validator's check against the OpenAPI 3.1 schema, and
// every reference is local, so loading it never needs the network.
func TestOpenAPIDocument(t *testing.T) {
	t.Parallel()
	c, err := loadOpenAPI()
	if err != nil {
		t.Fatal(err)
	}
	if v := c.doc.GetVersion(); v != "3.1.0" {
		t.Fatalf("openapi %q, want 3.1.0", v)
	}
	if ok, errs := c.requests.ValidateDocument(); !ok {
		t.Fatalf("openapi.json is not a valid OpenAPI 3.1 document:\n%s", strings.Join(messages(errs), "\n"))
	}
	for _, ref := range regexp.MustCompile(`"\$ref":\s*"([^"]*)"`).FindAllSubmatch(openAPIDocument, -1) {
		if !bytes.HasPrefix(ref[1], []byte("#/")) {
			t.Errorf("$ref %s points outside the document", ref[1])
		}
	}
	ids := map[string]bool{}
	for path, item := range c.model.Paths.PathItems.FromOldest() {
		for method, op := range item.GetOperations().FromOldest() {
			if op.OperationId == "" || ids[op.OperationId] || op.Summary == "" {
				t.Errorf("%s %s: operationId %q (must be set and unique), summary %q", method, path, op.OperationId, op.Summary)
			}
			ids[op.OperationId] = true
			if op.Security == nil {
				t.Errorf("%s %s: no security requirement (an empty list for open routes)", method, path)
			}
		}
	}
}

// undocumented lists what the listeners may serve beside the JSON API: the
// dashboard's HTML pages and Prometheus' /metrics are not part of the API
// contract. Everything else, and in particular everything under /api/v1/
// and /admin/v1/, must be in openapi.json.
var undocumented = []string{"/dashboard", "/metrics"}

func isUndocumented(path string) bool {
	return slices.ContainsFunc(undocumented, func(p string) bool {
		return path == p || strings.HasPrefix(path, p+"/")
	})
}

// TestOpenAPIRoutes: every route of both listeners, as routes.go lists
// them, is an operation of the document, and every operation is served.
func TestOpenAPIRoutes(t *testing.T) {
	t.Parallel()
	c, err := loadOpenAPI()
	if err != nil {
		t.Fatal(err)
	}
	served := map[string]bool{} // "GET /api/v1/webhooks/{id}" -> served by some listener
	for path, item := range c.model.Paths.PathItems.FromOldest() {
		for method := range item.GetOperations().KeysFromOldest() {
			served[strings.ToUpper(method)+" "+path] = false
		}
	}
	s := &server{} // the handlers are listed, never called
	for _, l := range []struct {
		name   string
		routes []route
	}{{"public", s.publicRoutes()}, {"admin", s.adminRoutes()}} {
		for _, rt := range l.routes {
			_, path, ok := strings.Cut(rt.pattern, " ")
			if !ok || !strings.HasPrefix(path, "/") {
				t.Errorf("%s route %q: want a pattern of the form \"METHOD /path\"", l.name, rt.pattern)
				continue
			}
			if isUndocumented(path) {
				continue
			}
			if _, ok := served[rt.pattern]; !ok {
				t.Errorf("%s route %q is not in openapi.json", l.name, rt.pattern)
				continue
			}
			served[rt.pattern] = true
		}
	}
	for op, ok := range served {
		if !ok {
			t.Errorf("openapi.json documents %s, which no listener serves", op)
		}
	}
}

// TestOpenAPIAuthAnswers: every operation that needs credentials documents
// what a caller gets without them (401 unauthorized) and after too many
// failures (429 rate_limited with Retry-After, limitAuth), and no open
// operation documents either.
func TestOpenAPIAuthAnswers(t *testing.T) {
	t.Parallel()
	c, err := loadOpenAPI()
	if err != nil {
		t.Fatal(err)
	}
	checked := 0
	for path, item := range c.model.Paths.PathItems.FromOldest() {
		for method, op := range item.GetOperations().FromOldest() {
			secured := len(op.Security) > 0
			for code, want := range map[string]string{"401": "Unauthorized", "429": "RateLimited"} {
				resp := op.Responses.Codes.GetOrZero(code)
				switch {
				case secured && resp == nil:
					t.Errorf("%s %s needs credentials but does not document %s", method, path, code)
				case secured && resp.GoLow().IsReference() && resp.GoLow().GetReference() != "#/components/responses/"+want:
					t.Errorf("%s %s: %s is %s, want #/components/responses/%s", method, path, code, resp.GoLow().GetReference(), want)
				case !secured && resp != nil:
					t.Errorf("%s %s is open but documents %s", method, path, code)
				}
			}
			if secured {
				checked++
			}
		}
	}
	limited := c.model.Components.Responses.GetOrZero("RateLimited")
	if limited == nil || limited.Headers.GetOrZero("Retry-After") == nil {
		t.Fatal("components/responses/RateLimited must declare the Retry-After header")
	}
	t.Logf("%d operations need credentials; each documents 401 and 429", checked)
}

// RoutePatterns returns the patterns of both listeners' routes as routes.go
// lists them, for the tests of package api_test that must cover every
// route: a route added there is then a route those tests must handle.
func RoutePatterns() (public, admin []string) {
	s := &server{} // the handlers are listed, never called
	for _, rt := range s.publicRoutes() {
		public = append(public, rt.pattern)
	}
	for _, rt := range s.adminRoutes() {
		admin = append(admin, rt.pattern)
	}
	return public, admin
}

// startAPIs serves both APIs on a fresh SQLite database, for the calls that
// the api_test helpers cannot make from inside the package. configure
// adjusts the Config once its Store is set.
func startAPIs(t *testing.T, configure func(*Config)) (public, admin *httptest.Server) {
	t.Helper()
	st, err := sqlite.Open(context.Background(), filepath.Join(t.TempDir(), "nanohook.db"))
	if err != nil {
		t.Fatalf("open store: %v", err)
	}
	t.Cleanup(func() { _ = st.Close() })
	cfg := Config{Store: st, AdminToken: openAPIAdminToken}
	if configure != nil {
		configure(&cfg)
	}
	public = httptest.NewServer(NewPublic(cfg))
	t.Cleanup(public.Close)
	admin = httptest.NewServer(NewAdmin(cfg))
	t.Cleanup(admin.Close)
	return public, admin
}

const openAPIAdminToken = "openapi-admin-token"

// exchange makes one call, checks it against the document and returns the
// answer with its body. header holds name, value pairs.
func exchange(t *testing.T, srv *httptest.Server, method, path, body string, header ...string) (*http.Response, []byte) {
	t.Helper()
	return exchangeVia(t, srv.Client(), srv, method, path, body, header...)
}

// exchangeVia is exchange through the given client, which may connect from
// another address.
func exchangeVia(t *testing.T, client *http.Client, srv *httptest.Server, method, path, body string, header ...string) (*http.Response, []byte) {
	t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequestWithContext(t.Context(), method, srv.URL+path, rd)
	if err != nil {
		t.Fatal(err)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	res, err := client.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer res.Body.Close()
	raw, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatal(err)
	}
	CheckOpenAPI(t, req, res, raw)
	return res, raw
}

// jsonData makes a call that must answer status and returns its data.
func jsonData(t *testing.T, srv *httptest.Server, method, path, body string, status int, header ...string) map[string]any {
	t.Helper()
	res, raw := exchange(t, srv, method, path, body, header...)
	var env struct {
		Success bool
		Data    map[string]any
	}
	if err := json.Unmarshal(raw, &env); err != nil || res.StatusCode != status || !env.Success {
		t.Fatalf("%s %s: %d %s, want %d and success", method, path, res.StatusCode, raw, status)
	}
	return env.Data
}

// TestOpenAPIServed: both listeners serve the embedded document as is,
// without credentials, cacheable and revalidated by its ETag.
func TestOpenAPIServed(t *testing.T) {
	t.Parallel()
	public, admin := startAPIs(t, nil)
	for _, srv := range []*httptest.Server{public, admin} {
		res, raw := exchange(t, srv, "GET", "/api/v1/openapi.json", "")
		if res.StatusCode != http.StatusOK || res.Header.Get("Content-Type") != "application/json" || !bytes.Equal(raw, openAPIDocument) {
			t.Fatalf("%d %q, %d bytes: want 200 application/json and the embedded document", res.StatusCode, res.Header.Get("Content-Type"), len(raw))
		}
		etag := res.Header.Get("ETag")
		if !regexp.MustCompile(`^"[0-9a-f]{32}"$`).MatchString(etag) || !strings.Contains(res.Header.Get("Cache-Control"), "max-age=") {
			t.Fatalf("ETag %q, Cache-Control %q", etag, res.Header.Get("Cache-Control"))
		}
		for _, inm := range []string{etag, "W/" + etag, `"other", ` + etag, "*"} {
			res, raw = exchange(t, srv, "GET", "/api/v1/openapi.json", "", "If-None-Match", inm)
			if res.StatusCode != http.StatusNotModified || len(raw) != 0 || res.Header.Get("ETag") != etag {
				t.Fatalf("If-None-Match %s: %d, %d bytes, ETag %q; want 304 and no body", inm, res.StatusCode, len(raw), res.Header.Get("ETag"))
			}
		}
		if res, _ = exchange(t, srv, "GET", "/api/v1/openapi.json", "", "If-None-Match", `"stale"`); res.StatusCode != http.StatusOK {
			t.Fatalf("stale If-None-Match: %d, want 200", res.StatusCode)
		}
	}
}

// TestOpenAPIDeliveries covers the calls no other api test makes, rotating
// a secret and sending a test delivery, with the real delivery engine
// behind the API, and checks what the receiver gets against the document's
// webhooks: a ping and a published job event, headers included.
func TestOpenAPIDeliveries(t *testing.T) {
	t.Parallel()
	c, err := loadOpenAPI()
	if err != nil {
		t.Fatal(err)
	}
	type receipt struct {
		event    string
		problems []string
	}
	received := make(chan receipt, 4)
	var failing atomic.Bool
	receiver := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		event := r.Header.Get("X-Nano-Event")
		webhook := "job-event"
		if event == "ping" {
			webhook = "ping"
		}
		received <- receipt{event, c.checkDelivery(webhook, r.Header, body)}
		if failing.Load() {
			http.Error(w, "not today", http.StatusServiceUnavailable)
			return
		}
		_, _ = io.WriteString(w, "pong")
	}))
	t.Cleanup(receiver.Close)
	receive := func(want string) {
		t.Helper()
		select {
		case got := <-received:
			if got.event != want || len(got.problems) > 0 {
				t.Errorf("the receiver got %s, want %s; against openapi.json:\n\t%s", got.event, want, strings.Join(got.problems, "\n\t"))
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("no %s delivery arrived", want)
		}
	}
	client := egress.NewClient(egress.Options{AllowPrivate: true, UserAgent: "nanohook/test"})
	t.Cleanup(client.CloseIdleConnections)
	public, admin := startAPIs(t, func(cfg *Config) {
		cfg.AllowHTTP = true
		engine := delivery.New(delivery.Config{Store: cfg.Store.(delivery.Store), Client: client, UserAgent: "nanohook/test", MaxInFlight: 2})
		engine.Start(context.Background())
		t.Cleanup(func() {
			if err := engine.Stop(context.Background()); err != nil {
				t.Errorf("stop the engine: %v", err)
			}
		})
		cfg.Tester, cfg.Waker = engine, engine
	})
	adminAuth := []string{"Authorization", "Bearer " + openAPIAdminToken}
	acct := jsonData(t, admin, "POST", "/admin/v1/accounts", `{"name":"openapi"}`, 201, adminAuth...)
	auth := []string{"Authorization", "Bearer " + acct["api_key"].(string)}
	id := jsonData(t, public, "POST", "/api/v1/webhooks",
		fmt.Sprintf(`{"url":%q,"events":["job.completed"],"secret_key":"first-secret"}`, receiver.URL), 201, auth...)["id"]
	path := fmt.Sprintf("/api/v1/webhooks/%v", id)

	// Without a body the defaults apply: a generated secret, the old one
	// still signing (X-Nano-Signature-Previous) for a day.
	d := jsonData(t, public, "POST", path+"/rotate-secret", "", 200, auth...)
	if !strings.HasPrefix(d["secret_key"].(string), "whsec_") || d["previous_secret_expires_at"] == nil {
		t.Fatalf("rotation: %v", d)
	}
	for body, status := range map[string]int{`{"overlap_seconds":604801}`: 422, `{"secret":"abcdefghij"}`: 400, `{"overlap_seconds":`: 400} {
		if res, raw := exchange(t, public, "POST", path+"/rotate-secret", body, auth...); res.StatusCode != status {
			t.Errorf("rotate %s: %d %s, want %d", body, res.StatusCode, raw, status)
		}
	}

	d = jsonData(t, public, "POST", path+"/test", "", 200, auth...)
	attempt := d["attempt"].(map[string]any)
	if d["succeeded"] != true || attempt["response_status"] != float64(200) || attempt["response_body"] != "pong" {
		t.Fatalf("test delivery: %v", d)
	}
	receive("ping")
	ping := jsonData(t, public, "GET", fmt.Sprintf("/api/v1/deliveries/%v", d["delivery_id"]), "", 200, auth...)
	if ping["event"] != "ping" || ping["status"] != "succeeded" || len(ping["attempts"].([]any)) != 1 {
		t.Fatalf("the ping in the history: %v", ping)
	}

	jsonData(t, admin, "POST", "/admin/v1/events", fmt.Sprintf(`{"account_id":%v,"event":"job.completed","task_id":"task_1",`+
		`"task_type":"image","data":{"url":"https://cdn.example.com/image.png","credits_charged":6}}`, acct["id"]), 202, adminAuth...)
	receive("job.completed")

	failing.Store(true)
	d = jsonData(t, public, "POST", path+"/test", "", 200, auth...)
	if d["succeeded"] != false || d["attempt"].(map[string]any)["response_status"] != float64(503) {
		t.Fatalf("failed test delivery: %v", d)
	}
	receive("ping")

	// No overlap: the old secret stops at once.
	d = jsonData(t, public, "POST", path+"/rotate-secret", `{"secret_key":"second-secret","overlap_seconds":0}`, 200, auth...)
	if d["secret_key"] != "second-secret" || d["previous_secret_expires_at"] != nil {
		t.Fatalf("rotation without overlap: %v", d)
	}

	// Without a delivery engine the test call is unavailable, not broken.
	public, admin = startAPIs(t, func(cfg *Config) { cfg.AllowHTTP = true })
	acct = jsonData(t, admin, "POST", "/admin/v1/accounts", `{"name":"openapi"}`, 201, adminAuth...)
	auth = []string{"Authorization", "Bearer " + acct["api_key"].(string)}
	id = jsonData(t, public, "POST", "/api/v1/webhooks", fmt.Sprintf(`{"url":%q,"events":["job.failed"]}`, receiver.URL), 201, auth...)["id"]
	if res, raw := exchange(t, public, "POST", fmt.Sprintf("/api/v1/webhooks/%v/test", id), "", auth...); res.StatusCode != 503 {
		t.Fatalf("test call without an engine: %d %s, want 503", res.StatusCode, raw)
	}
}

// checkDelivery checks a delivery an endpoint received against the
// document's webhook of that name: the body against its schema and every
// header against its parameter.
func (c *openAPIContract) checkDelivery(name string, h http.Header, body []byte) []string {
	item := c.model.Webhooks.GetOrZero(name)
	if item == nil || item.Post == nil {
		return []string{"openapi.json has no webhook " + name}
	}
	op := item.Post
	schema, err := op.RequestBody.Content.GetOrZero("application/json").Schema.BuildSchema()
	if err != nil {
		return []string{err.Error()}
	}
	_, errs := c.schemas.ValidateSchemaBytes(schema, body)
	problems := messages(errs)
	for _, p := range op.Parameters {
		values, ok := h[http.CanonicalHeaderKey(p.Name)]
		if !ok {
			if p.Required != nil && *p.Required {
				problems = append(problems, "required header "+p.Name+" is missing")
			}
			continue
		}
		ps, err := p.Schema.BuildSchema()
		if err != nil {
			return append(problems, err.Error())
		}
		var v any = values[0]
		if slices.Contains(ps.Type, "integer") {
			if v, err = strconv.ParseInt(values[0], 10, 64); err != nil {
				problems = append(problems, fmt.Sprintf("header %s: %q is not an integer", p.Name, values[0]))
				continue
			}
		}
		_, errs := c.schemas.ValidateSchemaObject(ps, v)
		for _, m := range messages(errs) {
			problems = append(problems, "header "+p.Name+": "+m)
		}
	}
	return problems
}
