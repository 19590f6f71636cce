package main

import (
	"context"
	"encoding/json"
	"errors"
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
	"github.com/nanohook/nanohook/client"
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
	rcv, err := startDemoReceiver(say)
	if err != nil {
		return errors.Join(err, srv.shutdown(context.WithoutCancel(ctx)))
	}
	return runTour(ctx, srv, rcv, func(ctx context.Context) error {
		return demoTour(ctx, srv, rcv, adminToken, dir, say)
	})
}

// runTour runs tour against srv and rcv, then shuts them down. Like
// serve's run, it stops when a listener fails: the tour's context is
// cancelled at once, and the failure is returned, naming the listener
// (with any error of the shutdown), rather than the tour failing on a
// refused call or waiting out its timeout for a delivery that cannot come.
func runTour(ctx context.Context, srv *server, rcv *demoReceiver, tour func(context.Context) error) error {
	tourCtx, stop := context.WithCancel(ctx)
	defer stop()
	go func() {
		select {
		case <-srv.failed:
		case <-rcv.failed:
		case <-tourCtx.Done():
		}
		stop()
	}()
	err := tour(tourCtx)
	stop()
	rcv.close()
	shutdownErr := srv.shutdown(context.WithoutCancel(ctx))
	select {
	case <-srv.failed:
		return shutdownErr // it carries the failed listener's error, as run's does
	case <-rcv.failed:
		return errors.Join(rcv.failure, shutdownErr)
	default:
		return errors.Join(err, shutdownErr)
	}
}

// demoTour is the tour itself, against a running server and receiver.
func demoTour(ctx context.Context, srv *server, rcv *demoReceiver, adminToken, dir string, say func(string, ...any)) error {
	say("▶ nanohook is running on a temporary SQLite database in %s", dir)
	say("  public API %s, admin API %s", srv.publicURL(), srv.adminURL())
	say("▶ a local receiver listens on %s; it verifies every signature and fails its /flaky path twice", rcv.url)

	admin := client.New(srv.adminURL(), adminToken)
	acct, err := admin.CreateAccount(ctx, "demo")
	if err != nil {
		return err
	}
	say("▶ admin API: account %d created, API key %s…", acct.ID, acct.APIKey[:10])

	public := client.New(srv.publicURL(), acct.APIKey)
	ok, err := public.CreateWebhook(ctx, client.CreateWebhookParams{
		URL: rcv.url + "/ok", Events: []string{client.EventJobCompleted, client.EventJobFailed},
	})
	if err != nil {
		return err
	}
	flaky, err := public.CreateWebhook(ctx, client.CreateWebhookParams{
		URL: rcv.url + "/flaky", Events: []string{client.EventJobCompleted}, SecretKey: "flaky-endpoint-secret",
	})
	if err != nil {
		return err
	}
	rcv.setSecrets(ok.SecretKey, flaky.SecretKey)
	say("▶ POST /api/v1/webhooks: endpoint %d (%s/ok, generated secret %s…) and endpoint %d (%s/flaky)",
		ok.ID, rcv.url, ok.SecretKey[:10], flaky.ID, rcv.url)
	list, err := public.ListWebhooks(ctx, client.PageParams{})
	if err != nil {
		return err
	}
	say("▶ GET /api/v1/webhooks: %d endpoints, secrets never listed", len(list.Items))

	event := client.JobEvent{
		AccountID: acct.ID, Event: client.EventJobCompleted, TaskID: "task_demo_1", TaskType: "image",
		Data: json.RawMessage(`{"url":"https://cdn.example.com/image.png","credits_charged":6,"prompt":"a <cat> & a \u2028 line"}`),
	}
	say("▶ publishing job.completed for task_demo_1 through the admin API…")
	start := time.Now()
	rcv.publishedAt(start)
	pub, err := admin.PublishEvent(ctx, event)
	if err != nil {
		return err
	}
	say("▶ POST /admin/v1/events answered 202: %s, %d deliveries committed", pub.EventID, pub.Deliveries)
	if pub, err = admin.PublishEvent(ctx, event); err != nil {
		return err
	}
	say("▶ the same job event published again: still %s (idempotent, duplicate=%t), no new deliveries", pub.EventID, pub.Duplicate)

	if err := rcv.waitFlakyOK(ctx); err != nil {
		return err
	}
	if err := public.DeleteWebhook(ctx, flaky.ID); err != nil {
		return err
	}
	say("▶ DELETE /api/v1/webhooks/%d: removed", flaky.ID)
	say("✔ tour complete in %s", time.Since(start).Round(time.Millisecond))
	return nil
}

// demoReceiver is the customer's side of the tour.
type demoReceiver struct {
	url     string
	ln      net.Listener
	srv     *http.Server
	say     func(string, ...any)
	mu      sync.Mutex
	secrets map[string]string // path → secret
	start   time.Time
	flaky   int
	flakyOK chan struct{}
	failed  chan struct{} // closed if the listener fails, after failure is set
	failure error
}

func startDemoReceiver(say func(string, ...any)) (*demoReceiver, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	r := &demoReceiver{url: "http://" + ln.Addr().String(), ln: ln, say: say, flakyOK: make(chan struct{}), failed: make(chan struct{})}
	r.srv = &http.Server{Handler: http.HandlerFunc(r.serve), ReadHeaderTimeout: 5 * time.Second}
	go func() {
		if err := serveHTTP(r.srv, ln); err != nil {
			r.failure = fmt.Errorf("demo receiver's listener failed: %w", err)
			close(r.failed)
		}
	}()
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
