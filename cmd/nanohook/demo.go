package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/nanohook/nanohook"
	"github.com/nanohook/nanohook/webhook"
)

// runDemo is the self-contained tour of DESIGN §6: a temporary database, a
// local receiver that verifies every signature, the three documented calls,
// job events, and a failing endpoint retried until it succeeds.
func runDemo(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	fs := newFlagSet("demo", stderr)
	verbose := fs.Bool("verbose", false, "show the server's own log lines too")
	if err := parseFlags(fs, args, getenv); err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	dir, err := os.MkdirTemp("", "nanohook-demo-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)

	var sayMu sync.Mutex // the receiver prints from its own goroutines
	say := func(format string, a ...any) {
		sayMu.Lock()
		defer sayMu.Unlock()
		fmt.Fprintf(stdout, format+"\n", a...)
	}
	logw := io.Discard
	if *verbose {
		logw = stderr
	}
	adminToken := nanohook.NewSecret()
	cfg := serveConfig{
		DB: filepath.Join(dir, "demo.db"), Addr: "127.0.0.1:0", AdminAddr: "127.0.0.1:0", AdminToken: adminToken,
		AllowHTTP: true, AllowPrivateTargets: true,
		RetrySchedule:   []time.Duration{500 * time.Millisecond, time.Second, 2 * time.Second},
		DeliveryTimeout: 5 * time.Second, DeliveryWorkers: 16, ShutdownTimeout: 5 * time.Second,
	}
	srv, err := startServer(ctx, cfg, newLogger(logw, "text", slog.LevelInfo))
	if err != nil {
		return err
	}
	defer srv.shutdown(context.WithoutCancel(ctx))
	say("▶ nanohook is running on a temporary SQLite database in %s", dir)
	say("  public API %s, admin API %s", srv.publicURL(), srv.adminURL())

	rcv, err := startDemoReceiver(say)
	if err != nil {
		return err
	}
	defer rcv.close()
	say("▶ a local receiver listens on %s; it verifies every signature and fails its /flaky path twice", rcv.url)

	c := &demoClient{ctx: ctx}
	var acct struct {
		ID     int64  `json:"id"`
		APIKey string `json:"api_key"`
	}
	if err := c.do("POST", srv.adminURL()+"/admin/v1/accounts", adminToken, map[string]any{"name": "demo"}, &acct); err != nil {
		return err
	}
	say("▶ admin API: account %d created, API key %s…", acct.ID, acct.APIKey[:10])

	var ok, flaky struct {
		ID        int64  `json:"id"`
		SecretKey string `json:"secret_key"`
	}
	if err := c.do("POST", srv.publicURL()+"/api/v1/webhooks", acct.APIKey,
		map[string]any{"url": rcv.url + "/ok", "events": []string{"job.completed", "job.failed"}}, &ok); err != nil {
		return err
	}
	if err := c.do("POST", srv.publicURL()+"/api/v1/webhooks", acct.APIKey,
		map[string]any{"url": rcv.url + "/flaky", "events": []string{"job.completed"}, "secret_key": "flaky-endpoint-secret"}, &flaky); err != nil {
		return err
	}
	rcv.setSecrets(ok.SecretKey, "flaky-endpoint-secret")
	say("▶ POST /api/v1/webhooks: endpoint %d (%s/ok, generated secret %s…) and endpoint %d (%s/flaky)",
		ok.ID, rcv.url, ok.SecretKey[:10], flaky.ID, rcv.url)
	var list []map[string]any
	if err := c.do("GET", srv.publicURL()+"/api/v1/webhooks", acct.APIKey, nil, &list); err != nil {
		return err
	}
	say("▶ GET /api/v1/webhooks: %d endpoints, secrets never listed", len(list))

	event := map[string]any{
		"account_id": acct.ID, "event": "job.completed", "task_id": "task_demo_1", "task_type": "image",
		"data": map[string]any{"url": "https://cdn.example.com/image.png", "credits_charged": 6, "prompt": "a <cat> & a \u2028 line"},
	}
	var pub struct {
		EventID    string `json:"event_id"`
		Deliveries int    `json:"deliveries"`
	}
	say("▶ publishing job.completed for task_demo_1 through the admin API…")
	start := time.Now()
	rcv.publishedAt(start)
	if err := c.do("POST", srv.adminURL()+"/admin/v1/events", adminToken, event, &pub); err != nil {
		return err
	}
	say("▶ POST /admin/v1/events answered 202: %s, %d deliveries committed", pub.EventID, pub.Deliveries)
	if err := c.do("POST", srv.adminURL()+"/admin/v1/events", adminToken, event, &pub); err != nil {
		return err
	}
	say("▶ the same job event published again: still %s (idempotent), no new deliveries", pub.EventID)

	if err := rcv.waitFlakyOK(ctx); err != nil {
		return err
	}
	var del struct {
		ID int64 `json:"id"`
	}
	if err := c.do("DELETE", fmt.Sprintf("%s/api/v1/webhooks/%d", srv.publicURL(), flaky.ID), acct.APIKey, nil, &del); err != nil {
		return err
	}
	say("▶ DELETE /api/v1/webhooks/%d: removed", del.ID)
	say("✔ tour complete in %s", time.Since(start).Round(time.Millisecond))
	return nil
}

// demoClient calls the JSON APIs and unwraps the envelope.
type demoClient struct{ ctx context.Context }

func (c *demoClient) do(method, url, token string, body any, data any) error {
	var r io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return err
		}
		r = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(c.ctx, method, url, r)
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+token)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	var env struct {
		Success bool            `json:"success"`
		Data    json.RawMessage `json:"data"`
		Error   *struct {
			Code, Message string
		} `json:"error"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&env); err != nil {
		return fmt.Errorf("%s %s: %s: %w", method, url, resp.Status, err)
	}
	if !env.Success || env.Error != nil {
		return fmt.Errorf("%s %s: %s: %+v", method, url, resp.Status, env.Error)
	}
	return json.Unmarshal(env.Data, data)
}

// demoReceiver is the customer's side of the tour.
type demoReceiver struct {
	url     string
	srv     *http.Server
	say     func(string, ...any)
	mu      sync.Mutex
	secrets map[string]string // path → secret
	start   time.Time
	flaky   int
	flakyOK chan struct{}
}

func startDemoReceiver(say func(string, ...any)) (*demoReceiver, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	r := &demoReceiver{url: "http://" + ln.Addr().String(), say: say, flakyOK: make(chan struct{})}
	r.srv = &http.Server{Handler: http.HandlerFunc(r.serve), ReadHeaderTimeout: 5 * time.Second}
	go r.srv.Serve(ln)
	return r, nil
}

func (r *demoReceiver) setSecrets(ok, flaky string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.secrets = map[string]string{"/ok": ok, "/flaky": flaky}
}

func (r *demoReceiver) publishedAt(t time.Time) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.start = t
}

func (r *demoReceiver) serve(w http.ResponseWriter, req *http.Request) {
	body, _ := io.ReadAll(io.LimitReader(req.Body, 1<<20))
	r.mu.Lock()
	defer r.mu.Unlock()
	v := webhook.Verifier{Secrets: []string{r.secrets[req.URL.Path]}}
	verdict := "signature verified"
	if err := v.Verify(req.Header, body); err != nil {
		verdict = "SIGNATURE REJECTED: " + err.Error()
	}
	attempt := req.Header.Get(webhook.HeaderDeliveryAttempt)
	since := time.Since(r.start).Round(time.Millisecond)
	if req.URL.Path == "/flaky" {
		r.flaky++
		if r.flaky <= 2 {
			r.say("  ← %s attempt %s at +%s: %s, answering 500", req.URL.Path, attempt, since, verdict)
			http.Error(w, "temporarily broken", http.StatusInternalServerError)
			return
		}
		r.say("  ← %s attempt %s at +%s: %s, answering 200", req.URL.Path, attempt, since, verdict)
		select {
		case <-r.flakyOK:
		default:
			close(r.flakyOK)
		}
		return
	}
	r.say("  ← %s attempt %s at +%s: %s, answering 200\n    %s", req.URL.Path, attempt, since, verdict, body)
}

func (r *demoReceiver) waitFlakyOK(ctx context.Context) error {
	select {
	case <-r.flakyOK:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("the flaky endpoint was not retried to success in time: %w", ctx.Err())
	}
}

func (r *demoReceiver) close() { r.srv.Close() }
