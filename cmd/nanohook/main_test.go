package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nanohook/nanohook"
	"github.com/nanohook/nanohook/client"
	"github.com/nanohook/nanohook/webhook"
)

const testAdminToken = "test-admin-token-123"

// startTestServer runs a real nanohook (SQLite file, both listeners on
// loopback port 0) in this process and stops it when the test ends.
func startTestServer(t *testing.T, tweak func(*serveConfig)) *server {
	t.Helper()
	cfg := serveConfig{
		DB: filepath.Join(t.TempDir(), "nanohook.db"), Addr: "127.0.0.1:0", AdminAddr: "127.0.0.1:0",
		AdminToken: testAdminToken, AllowHTTP: true, AllowPrivateTargets: true,
		RetrySchedule:   []time.Duration{50 * time.Millisecond, 100 * time.Millisecond},
		DeliveryTimeout: 5 * time.Second, DeliveryWorkers: 32, ShutdownTimeout: 5 * time.Second,
	}
	if tweak != nil {
		tweak(&cfg)
	}
	srv, err := startServer(context.Background(), cfg, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := srv.shutdown(ctx); err != nil {
			t.Errorf("shutdown: %v", err)
		}
	})
	return srv
}

// apiCall sends a JSON request with a bearer token and returns the status
// and the decoded envelope.
func apiCall(t testing.TB, method, url, token, body string) (int, map[string]any) {
	t.Helper()
	var r io.Reader
	if body != "" {
		r = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, url, r)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+token)
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var env map[string]any
	if err := json.NewDecoder(resp.Body).Decode(&env); err != nil {
		t.Fatalf("%s %s: %d, body is not JSON: %v", method, url, resp.StatusCode, err)
	}
	return resp.StatusCode, env
}

func dataOf(t *testing.T, env map[string]any) map[string]any {
	t.Helper()
	d, ok := env["data"].(map[string]any)
	if !ok {
		t.Fatalf("envelope has no data object: %v", env)
	}
	return d
}

// apiClients is an account on a test server with clients for both APIs.
type apiClients struct {
	admin  *client.Client
	public *client.Client // authenticated as acct
	acct   *client.Account
}

// newAPIClients creates an account named name through the admin API.
func newAPIClients(t *testing.T, srv *server, name string) apiClients {
	t.Helper()
	c := apiClients{admin: client.New(srv.adminURL(), testAdminToken)}
	acct, err := c.admin.CreateAccount(t.Context(), name)
	if err != nil {
		t.Fatalf("create account %q: %v", name, err)
	}
	c.acct = acct
	c.public = client.New(srv.publicURL(), acct.APIKey)
	return c
}

// createWebhook registers an endpoint for the account and fails the test
// if the API refuses it.
func (c apiClients) createWebhook(t *testing.T, p client.CreateWebhookParams) *client.CreatedWebhook {
	t.Helper()
	wh, err := c.public.CreateWebhook(t.Context(), p)
	if err != nil {
		t.Fatalf("create webhook %s: %v", p.URL, err)
	}
	return wh
}

// documentedTime is the event time of DESIGN §3's example.
var documentedTime = time.Date(2024, 12, 23, 10, 0, 0, 0, time.UTC)

// nodeReceiver is testdata/receiver.js running in real Node.js.
type nodeReceiver struct {
	url   string
	lines chan map[string]any
}

func startNodeReceiver(t *testing.T, secret string) *nodeReceiver {
	t.Helper()
	node, err := exec.LookPath("node")
	if err != nil {
		t.Fatal("node is required for the signature tests (install Node.js 20): ", err)
	}
	cmd := exec.Command(node, "testdata/receiver.js", secret)
	stdin, _ := cmd.StdinPipe()
	stdout, _ := cmd.StdoutPipe()
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		stdin.Close()
		done := make(chan struct{})
		go func() { cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			cmd.Process.Kill()
			<-done
		}
		if stderr.Len() > 0 {
			t.Logf("node stderr: %s", stderr.String())
		}
	})
	r := &nodeReceiver{lines: make(chan map[string]any, 100)}
	sc := bufio.NewScanner(stdout)
	sc.Buffer(make([]byte, 1<<20), 1<<24)
	if !sc.Scan() {
		t.Fatalf("node receiver did not start: %s", stderr.String())
	}
	var hello struct{ Port int }
	if err := json.Unmarshal(sc.Bytes(), &hello); err != nil || hello.Port == 0 {
		t.Fatalf("node receiver said %q", sc.Text())
	}
	r.url = fmt.Sprintf("http://127.0.0.1:%d", hello.Port)
	go func() {
		for sc.Scan() {
			var m map[string]any
			if json.Unmarshal(sc.Bytes(), &m) == nil {
				r.lines <- m
			}
		}
		close(r.lines)
	}()
	return r
}

func (r *nodeReceiver) next(t *testing.T) map[string]any {
	t.Helper()
	select {
	case m, ok := <-r.lines:
		if !ok {
			t.Fatal("node receiver exited")
		}
		return m
	case <-time.After(10 * time.Second):
		t.Fatal("no delivery reached the node receiver within 10s")
	}
	return nil
}

// signatureCases are job data that Go's encoder and JavaScript's disagree
// on, or that are easy to get wrong; every one must verify in Node. Data is
// I-JSON (issue 15, item 4), so the edges here are the largest integers it
// allows; repeated names and unpaired surrogates are refused at publish.
var signatureCases = []struct{ name, data string }{
	{"documented example", `{"url":"https://cdn.example.com/image.png","credits_charged":6}`},
	{"html characters", `{"caption":"<b>cats</b> & \"dogs\" 'quoted'","url":"https://x.example/?a=1&b=2"}`},
	{"non-ascii and emoji", `{"prompt":"café naïve Ελληνικά 日本語 😀👍🏽 👩‍👩‍👧","ok":true}`},
	{"line and paragraph separators", `{"text":"a\u2028b\u2029c","raw":"x` + "\u2028" + `y"}`},
	{"control characters", `{"c":"\u0000\u0001\b\f\n\r\t\u001f\u007f","nul":"a\u0000b"}`},
	{"escaped forms", `{"slash":"a\/b","A":"\u0041","pair":"\ud83d\ude00","bmp":"\uffff\ue000x"}`},
	{"integer-like keys", `{"b":1,"10":2,"a":3,"2":4,"01":5,"-1":6,"4294967294":7,"4294967295":8,"1.5":9,"0":10}`},
	{"nested arrays", `{"m":[[1,[2,[3,[]]]],{"x":[{"y":[null,true,false]}]}],"e":{}}`},
	{"numbers", `{"a":1.0,"b":1e21,"c":-0,"d":0.1,"e":1E5,"f":1.50e-3,"g":1.5e300,"h":5e-324,"i":1e-7,"j":0.000001,"k":-1.7976931348623157e308,"l":9007199254740991,"m":9.007199254740991e15,"n":-9007199254740991}`},
	{"empty data", `{}`},
}

// TestDeliveriesVerifyInNode publishes every case through a running nanohook
// and checks, in real Node.js, that the original documentation's
// verifySignature accepts it, that a raw-body check accepts it, and that the
// body is exactly JSON.stringify(JSON.parse(body)).
func TestDeliveriesVerifyInNode(t *testing.T) {
	t.Parallel()
	const secret = "whsec_node-verification-secret"
	srv := startTestServer(t, nil)
	node := startNodeReceiver(t, secret)
	api := newAPIClients(t, srv, "node")
	hook := api.createWebhook(t, client.CreateWebhookParams{
		URL: node.url + "/hook", Events: []string{client.EventJobCompleted, client.EventJobFailed}, SecretKey: secret,
	})

	for i, c := range signatureCases {
		event := client.EventJobCompleted
		if i%2 == 1 {
			event = client.EventJobFailed
		}
		// Data goes out as written (the client sends json.RawMessage bytes
		// unchanged but for whitespace), so every case reaches the server
		// in the form under test.
		pub, err := api.admin.PublishEvent(t.Context(), client.JobEvent{
			AccountID: api.acct.ID, Event: event, TaskID: fmt.Sprintf("task_%d", i), TaskType: "image",
			Data: json.RawMessage(c.data), OccurredAt: documentedTime,
		})
		if err != nil {
			t.Fatalf("%s: publish: %v", c.name, err)
		}
		got := node.next(t)
		raw, _ := base64.StdEncoding.DecodeString(got["body_b64"].(string))
		if got["event_id"] != pub.EventID {
			t.Fatalf("%s: delivery for %v, want %v", c.name, got["event_id"], pub.EventID)
		}
		if got["doc_verified"] != true || got["raw_verified"] != true || got["round_trip"] != true {
			t.Errorf("%s: node says doc_verified=%v raw_verified=%v round_trip=%v parse_error=%v\nbody: %s",
				c.name, got["doc_verified"], got["raw_verified"], got["round_trip"], got["parse_error"], raw)
		}
		wantPrefix := fmt.Sprintf(`{"event":%q,"task_id":"task_%d","task_type":"image","status":"%s","data":`,
			event, i, strings.TrimPrefix(event, "job."))
		if !strings.HasPrefix(string(raw), wantPrefix) || !strings.HasSuffix(string(raw), `,"timestamp":"2024-12-23T10:00:00Z"}`) {
			t.Errorf("%s: body shape is off: %s", c.name, raw)
		}
		checkPayloadInHistory(t, api, hook.ID, fmt.Sprintf("task_%d", i), secret, raw)
	}

	// The task filter finds every delivery of a task and only those.
	if _, err := api.admin.PublishEvent(t.Context(), client.JobEvent{
		AccountID: api.acct.ID, Event: client.EventJobFailed, TaskID: "task_0", TaskType: "image",
		Data: json.RawMessage(`{}`), OccurredAt: documentedTime,
	}); err != nil {
		t.Fatal(err)
	}
	node.next(t)
	for task, want := range map[string]int{"task_0": 2, "task_1": 1, "task_none": 0} {
		page, err := api.public.ListDeliveries(t.Context(), hook.ID, client.ListDeliveriesParams{TaskID: task})
		if err != nil {
			t.Fatal(err)
		}
		if len(page.Items) != want {
			t.Errorf("deliveries of %s: %d, want %d", task, len(page.Items), want)
		}
	}
}

// checkPayloadInHistory finds the one delivery of task to the webhook and
// checks that its detail holds the body the receiver got, byte for byte,
// and that the body and its attempt's recorded timestamp give the
// signature the attempt sent (the attempt is recorded after the receiver
// answers, so this waits for it).
func checkPayloadInHistory(t *testing.T, api apiClients, webhookID int64, task, secret string, received []byte) {
	t.Helper()
	page, err := api.public.ListDeliveries(t.Context(), webhookID, client.ListDeliveriesParams{TaskID: task})
	if err != nil {
		t.Fatal(err)
	}
	if len(page.Items) != 1 {
		t.Fatalf("deliveries of %s: %d, want 1", task, len(page.Items))
	}
	var d *client.DeliveryDetail
	for deadline := time.Now().Add(10 * time.Second); ; {
		if d, err = api.public.GetDelivery(t.Context(), page.Items[0].ID); err != nil {
			t.Fatal(err)
		}
		if len(d.Attempts) > 0 || time.Now().After(deadline) {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	if d.Payload != string(received) {
		t.Fatalf("%s: detail payload\n %q\nreceived\n %q", task, d.Payload, received)
	}
	if len(d.Attempts) != 1 {
		t.Fatalf("%s: %d attempts recorded, want 1", task, len(d.Attempts))
	}
	var ts, sig string
	for _, h := range d.Attempts[0].RequestHeaders {
		switch h.Name {
		case webhook.HeaderTimestamp:
			ts = h.Value
		case webhook.HeaderSignature:
			sig = h.Value
		}
	}
	sec, err := strconv.ParseInt(ts, 10, 64)
	if err != nil {
		t.Fatalf("%s: recorded timestamp %q: %v", task, ts, err)
	}
	if want := webhook.Sign(secret, sec, []byte(d.Payload)); sig != want {
		t.Errorf("%s: recorded signature %s, recomputed from the payload %s", task, sig, want)
	}
}

// TestDocumentedBodyExactly pins the body of DESIGN §3's example byte for
// byte.
func TestDocumentedBodyExactly(t *testing.T) {
	t.Parallel()
	const secret = "a spaced secret ✓ café" // printable non-ASCII: the HMAC key is its UTF-8 bytes on both sides
	srv := startTestServer(t, nil)
	node := startNodeReceiver(t, secret)
	api := newAPIClients(t, srv, "doc")
	api.createWebhook(t, client.CreateWebhookParams{URL: node.url, Events: []string{client.EventJobCompleted}, SecretKey: secret})
	if _, err := api.admin.PublishEvent(t.Context(), client.JobEvent{
		AccountID: api.acct.ID, Event: client.EventJobCompleted, TaskID: "task_xxx", TaskType: "image",
		Data: json.RawMessage(`{"url":"https://cdn.example.com/image.png","credits_charged":6}`), OccurredAt: documentedTime,
	}); err != nil {
		t.Fatalf("publish: %v", err)
	}
	got := node.next(t)
	raw, _ := base64.StdEncoding.DecodeString(got["body_b64"].(string))
	const want = `{"event":"job.completed","task_id":"task_xxx","task_type":"image","status":"completed","data":{"url":"https://cdn.example.com/image.png","credits_charged":6},"timestamp":"2024-12-23T10:00:00Z"}`
	if string(raw) != want {
		t.Fatalf("body\n got %s\nwant %s", raw, want)
	}
	if got["doc_verified"] != true {
		t.Fatal("documentation's verifySignature rejected the documented example")
	}
}

// TestUnsafeIntegerRefused: data JavaScript cannot hold is refused at
// publish, naming the field, and nothing is delivered or stored.
func TestUnsafeIntegerRefused(t *testing.T) {
	t.Parallel()
	srv := startTestServer(t, nil)
	api := newAPIClients(t, srv, "big")
	_, err := api.admin.PublishEvent(t.Context(), client.JobEvent{
		AccountID: api.acct.ID, Event: client.EventJobCompleted, TaskID: "t", TaskType: "image",
		Data: json.RawMessage(`{"items":[{"id":9007199254740993}]}`),
	})
	e, ok := errors.AsType[*client.Error](err)
	if !ok || e.StatusCode != 422 || e.Field != "data.items[0].id" || !strings.Contains(e.Message, "9007199254740993") {
		t.Fatalf("publish error = %v", err)
	}
}

func TestDemoRunsTheTour(t *testing.T) {
	t.Parallel()
	var out, errOut bytes.Buffer
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if err := run(ctx, []string{"demo"}, func(string) string { return "" }, &out, &errOut); err != nil {
		t.Fatalf("demo: %v\n%s\n%s", err, out.String(), errOut.String())
	}
	s := out.String()
	for _, want := range []string{"POST /api/v1/webhooks", "GET /api/v1/webhooks", "POST /admin/v1/events",
		"signature verified, answering 500", "attempt 3", "DELETE /api/v1/webhooks", "tour complete"} {
		if !strings.Contains(s, want) {
			t.Errorf("demo output lacks %q:\n%s", want, s)
		}
	}
	if strings.Contains(s, "REJECTED") {
		t.Errorf("a signature was rejected in the demo:\n%s", s)
	}
}

func TestAccountsCreateJSON(t *testing.T) {
	t.Parallel()
	db := filepath.Join(t.TempDir(), "a.db")
	var out bytes.Buffer
	err := run(context.Background(), []string{"accounts", "create", "--db", db, "--name", "Acme <Co>", "--json"},
		func(string) string { return "" }, &out, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	line := strings.TrimSpace(out.String())
	if !strings.HasPrefix(line, `{"id":1,"name":"Acme <Co>","api_key":"nhk_`) {
		t.Fatalf("output %s", line)
	}
}

// TestAccountsCreateNameRule: the CLI refuses the names the API refuses
// (nanohook.ValidateAccountName), before it opens any database.
func TestAccountsCreateNameRule(t *testing.T) {
	t.Parallel()
	for name, want := range map[string]string{
		"":       "--name: is required",
		" Acme":  "--name: must not start or end with spaces",
		"Acme\t": "--name: must not contain control characters",
		strings.Repeat("x", nanohook.MaxAccountNameLen+1): "--name: must be at most 200 bytes",
	} {
		db := filepath.Join(t.TempDir(), "a.db")
		err := run(context.Background(), []string{"accounts", "create", "--db", db, "--name", name},
			func(string) string { return "" }, io.Discard, io.Discard)
		if err == nil || err.Error() != want {
			t.Errorf("--name %q: %v, want %q", name, err, want)
		}
		if _, err := os.Stat(db); err == nil {
			t.Errorf("--name %q: the database was created", name)
		}
	}
}

func TestFlagsHaveEnvironmentTwins(t *testing.T) {
	t.Parallel()
	env := map[string]string{
		"NANOHOOK_DB":               "/tmp/x.db",
		"NANOHOOK_ADDR":             ":9999",
		"NANOHOOK_ALLOW_HTTP":       "true",
		"NANOHOOK_RETRY_SCHEDULE":   "1s,2s",
		"NANOHOOK_DELIVERY_TIMEOUT": "3s",
		"NANOHOOK_ADMIN_TOKEN":      "tok",
	}
	cfg, err := parseServe([]string{"--addr", ":7777"}, func(k string) string { return env[k] }, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.DB != "/tmp/x.db" || cfg.Addr != ":7777" || !cfg.AllowHTTP || len(cfg.RetrySchedule) != 2 ||
		cfg.DeliveryTimeout != 3*time.Second || cfg.AdminToken != "tok" || cfg.AdminAddr != "127.0.0.1:8081" {
		t.Fatalf("config = %+v", cfg)
	}
	if _, err := parseServe(nil, func(k string) string {
		if k == "NANOHOOK_DELIVERY_TIMEOUT" {
			return "soon"
		}
		return ""
	}, io.Discard); err == nil || !strings.Contains(err.Error(), "NANOHOOK_DELIVERY_TIMEOUT") {
		t.Fatalf("bad env value error = %v", err)
	}
}

// TestServeStopsOnCancel runs the real serve command and cancels it, as
// SIGTERM does; it must return cleanly.
func TestServeStopsOnCancel(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	errOut := newWatchWriter("nanohook serving")
	go func() {
		done <- run(ctx, []string{"serve", "--db", filepath.Join(t.TempDir(), "s.db"), "--addr", "127.0.0.1:0", "--admin-addr", "127.0.0.1:0"},
			func(string) string { return "" }, io.Discard, errOut)
	}()
	select {
	case <-errOut.seen:
	case err := <-done:
		t.Fatalf("serve ended early: %v\n%s", err, errOut.String())
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("serve returned %v\n%s", err, errOut.String())
		}
	case <-time.After(10 * time.Second):
		t.Fatal("serve did not stop")
	}
	if !strings.Contains(errOut.String(), "stopped cleanly") {
		t.Fatalf("log lacks the clean stop:\n%s", errOut.String())
	}
}

// watchWriter collects log output and signals once a phrase appears.
type watchWriter struct {
	mu     sync.Mutex
	buf    bytes.Buffer
	phrase string
	seen   chan struct{}
}

func newWatchWriter(phrase string) *watchWriter {
	return &watchWriter{phrase: phrase, seen: make(chan struct{})}
}

func (w *watchWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	had := strings.Contains(w.buf.String(), w.phrase)
	w.buf.Write(p)
	if !had && strings.Contains(w.buf.String(), w.phrase) {
		close(w.seen)
	}
	return len(p), nil
}

func (w *watchWriter) String() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.buf.String()
}
