package dashboard_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/chromedp"

	"github.com/nanohook/nanohook"
	"github.com/nanohook/nanohook/api"
	"github.com/nanohook/nanohook/delivery"
	"github.com/nanohook/nanohook/egress"
	"github.com/nanohook/nanohook/internal/skipnote"
	"github.com/nanohook/nanohook/store/sqlite"
)

// screenshotEnv names a file the browser test also writes its final
// screenshot to (docs/dashboard.png is made this way).
const screenshotEnv = "NANOHOOK_DASHBOARD_SCREENSHOT"

// browserTimeout bounds the whole browser session; the browser is killed
// when it passes.
const browserTimeout = 60 * time.Second

// hit is one request the receiver got.
type hit struct {
	event   string // X-Nano-Event
	attempt string // X-Nano-Delivery-Attempt
}

// receiver fails the first attempt of every delivery with a 500 and
// accepts every later one, so that a retry visibly turns a failure into a
// success.
type receiver struct {
	srv     *httptest.Server
	mu      sync.Mutex
	hits    []hit
	arrived chan hit
}

const receiverFailure = `{"error":"receiver not ready yet"}`

func newReceiver(t *testing.T) *receiver {
	t.Helper()
	rc := &receiver{arrived: make(chan hit, 100)}
	rc.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		h := hit{event: r.Header.Get("X-Nano-Event"), attempt: r.Header.Get("X-Nano-Delivery-Attempt")}
		rc.mu.Lock()
		rc.hits = append(rc.hits, h)
		rc.mu.Unlock()
		rc.arrived <- h
		if h.attempt == "1" {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusInternalServerError)
			_, _ = io.WriteString(w, receiverFailure)
			return
		}
		_, _ = io.WriteString(w, "ok")
	}))
	t.Cleanup(rc.srv.Close)
	return rc
}

// await waits for the request want, skipping others.
func (rc *receiver) await(t *testing.T, want hit) {
	t.Helper()
	timeout := time.After(10 * time.Second)
	for {
		select {
		case h := <-rc.arrived:
			if h == want {
				return
			}
		case <-timeout:
			rc.mu.Lock()
			defer rc.mu.Unlock()
			t.Fatalf("receiver never got %+v; got %+v", want, rc.hits)
		}
	}
}

// service is nanohook as serve wires it: both APIs, the delivery engine
// and a real SQLite database.
type service struct {
	store  *sqlite.Store
	public *httptest.Server
	admin  *httptest.Server
}

const adminToken = "dashboard-test-admin-token"

func startService(t *testing.T) *service {
	t.Helper()
	st, err := sqlite.Open(context.Background(), filepath.Join(t.TempDir(), "nanohook.db"))
	if err != nil {
		t.Fatalf("open store: %v", err)
	}
	t.Cleanup(func() { _ = st.Close() })
	log := slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelWarn}))
	engine := delivery.New(delivery.Config{
		Store: st,
		// The receiver is on loopback, which serve only reaches with
		// --allow-private-targets.
		Client: egress.NewClient(egress.Options{AllowPrivate: true, Timeout: 5 * time.Second}),
		// One retry, an hour away: within the test only the dashboard's
		// Retry button can make the second attempt.
		Schedule:    []time.Duration{time.Hour},
		Timeout:     5 * time.Second,
		MaxInFlight: 4,
		UserAgent:   "nanohook/test",
		Logger:      log,
	})
	engine.Start(context.Background())
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := engine.Stop(ctx); err != nil {
			t.Errorf("stop engine: %v", err)
		}
	})
	cfg := api.Config{
		Store:      st,
		Logger:     log,
		AdminToken: adminToken,
		AllowHTTP:  true, // the receiver is plain http on loopback
		Waker:      engine,
		Tester:     engine,
	}
	s := &service{store: st, public: httptest.NewServer(api.NewPublic(cfg)), admin: httptest.NewServer(api.NewAdmin(cfg))}
	t.Cleanup(s.public.Close)
	t.Cleanup(s.admin.Close)
	return s
}

// call makes one API request and decodes the data of a success envelope.
func call[T any](t *testing.T, method, url, token string, body any, wantStatus int) T {
	t.Helper()
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			t.Fatal(err)
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(t.Context(), method, url, rd)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+token)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer res.Body.Close()
	raw, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatalf("%s %s: read body: %v", method, url, err)
	}
	if res.StatusCode != wantStatus {
		t.Fatalf("%s %s: status %d, want %d: %s", method, url, res.StatusCode, wantStatus, raw)
	}
	var env struct {
		Data T `json:"data"`
	}
	if err := json.Unmarshal(raw, &env); err != nil {
		t.Fatalf("%s %s: decode %s: %v", method, url, raw, err)
	}
	return env.Data
}

// chromiumPath finds Debian's chromium. Locally a missing browser skips the
// test; under CI it fails it, because .ci/run installs chromium.
func chromiumPath(t *testing.T) string {
	t.Helper()
	path, err := exec.LookPath("chromium")
	if err == nil {
		return path
	}
	if os.Getenv("CI") != "" {
		t.Fatalf("chromium is not on PATH (%v), but CI is set and .ci/run installs it", err)
	}
	skipnote.Skip(t, "the dashboard's browser test, as chromium is not on PATH", "install Chromium: apt-get install chromium")
	return ""
}

// probeScript runs in the page before the dashboard's own script and
// records what must never happen: uncaught errors and Content-Security-
// Policy violations (which would mean the policy breaks the page).
const probeScript = `
window.__problems = [];
document.addEventListener("securitypolicyviolation", (e) => window.__problems.push("CSP violation: " + e.violatedDirective + " " + e.blockedURI));
window.addEventListener("error", (e) => window.__problems.push("error: " + e.message));
window.addEventListener("unhandledrejection", (e) => window.__problems.push("unhandled rejection: " + e.reason));
`

// startBrowser starts headless chromium for the test. The process is
// killed, and its profile removed, when the test ends or browserTimeout
// passes, whichever comes first; the cleanup checks that it is gone.
func startBrowser(t *testing.T) context.Context {
	t.Helper()
	chromium := chromiumPath(t)
	ctx, cancelTimeout := context.WithTimeout(context.Background(), browserTimeout)
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(chromium),
		chromedp.Headless,
		chromedp.NoSandbox, // CI runs as root, where chromium's sandbox cannot start
		chromedp.DisableGPU,
		chromedp.WindowSize(1280, 900),
	)
	allocCtx, cancelAlloc := chromedp.NewExecAllocator(ctx, opts...)
	bctx, cancelBrowser := chromedp.NewContext(allocCtx)
	// The first action starts the browser; the probe is installed before any
	// page loads.
	_, err := chromedp.Call(bctx, page.AddScriptToEvaluateOnNewDocument, page.AddScriptToEvaluateOnNewDocumentParams{Source: probeScript})
	var proc *os.Process
	if c := chromedp.FromContext(bctx); c != nil && c.Browser != nil {
		proc = c.Browser.Process()
	}
	t.Cleanup(func() {
		cancelBrowser()
		cancelAlloc() // waits until the process has exited and its profile is removed
		cancelTimeout()
		if proc == nil {
			return
		}
		if err := proc.Signal(syscall.Signal(0)); !errors.Is(err, os.ErrProcessDone) {
			t.Errorf("chromium (pid %d) is still running after the test: %v", proc.Pid, err)
		}
	})
	if err != nil {
		t.Fatalf("start chromium %s: %v", chromium, err)
	}
	if proc == nil {
		t.Fatal("chromedp started no browser process")
	}
	return bctx
}

// browser is the test's handle on one page.
type browser struct {
	t   *testing.T
	ctx context.Context
}

// do runs steps that return nothing; a failure ends the test with the page's
// text, which usually says what went wrong.
func (b *browser) do(what string, steps ...chromedp.Action[chromedp.Void]) {
	b.t.Helper()
	if err := chromedp.Do(b.ctx, steps...); err != nil {
		b.t.Fatalf("%s: %v\npage text:\n%s", what, err, b.pageText())
	}
}

// setValue sets a form control's value the way the page reads it.
// (chromedp.SetValue refuses empty values in v0.23: it reads the empty
// string back as a failure.)
func (b *browser) setValue(id, value string) {
	b.t.Helper()
	ok, err := chromedp.Run(b.ctx, chromedp.Evaluate[bool](fmt.Sprintf(
		`(() => { const el = document.getElementById(%s); el.value = %s; return el.value === %s; })()`, js(id), js(value), js(value))))
	if err != nil || !ok {
		b.t.Fatalf("set #%s to %q: ok %v, %v", id, value, ok, err)
	}
}

// eval evaluates a JavaScript expression that yields a string.
func (b *browser) eval(expr string) string {
	b.t.Helper()
	v, err := chromedp.Run(b.ctx, chromedp.Evaluate[string](expr))
	if err != nil {
		b.t.Fatalf("evaluate %s: %v", expr, err)
	}
	return v
}

// waitFor waits until the JavaScript expression is true.
func (b *browser) waitFor(what, expr string, timeout time.Duration) {
	b.t.Helper()
	_, err := chromedp.Run(b.ctx, chromedp.Poll[chromedp.Void](expr,
		chromedp.WithPollingInterval(50*time.Millisecond), chromedp.WithPollingTimeout(timeout)))
	if err != nil {
		b.t.Fatalf("waiting for %s: %v\npage text:\n%s", what, err, b.pageText())
	}
}

// waitText waits until the first element matching selector contains text.
func (b *browser) waitText(selector, text string) {
	b.t.Helper()
	b.waitFor(fmt.Sprintf("%q in %s", text, selector),
		fmt.Sprintf(`(() => { const el = document.querySelector(%s); return !!el && el.textContent.includes(%s); })()`, js(selector), js(text)),
		15*time.Second)
}

// rows waits until the deliveries table has n rows and returns their text.
func (b *browser) rows(n int) string {
	b.t.Helper()
	b.waitFor(fmt.Sprintf("%d delivery rows", n),
		fmt.Sprintf(`document.querySelectorAll("#deliveries tbody tr").length === %d && !document.querySelector("#filter-apply").disabled`, n),
		15*time.Second)
	return b.eval(`document.querySelector("#deliveries tbody").textContent`)
}

// pageText is the visible text of the page, for failure messages.
func (b *browser) pageText() string {
	ctx, cancel := context.WithTimeout(b.ctx, 2*time.Second)
	defer cancel()
	s, err := chromedp.Run(ctx, chromedp.Evaluate[string](`document.body ? document.body.innerText : ""`))
	if err != nil {
		return "(unavailable: " + err.Error() + ")"
	}
	return s
}

// js quotes a Go string as a JavaScript string literal.
func js(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}

// TestBrowserRetryAndTest drives the dashboard in headless chromium against
// a real service: sign in, find the endpoint, send a test, filter the
// history, rotate the secret, read a failed attempt and retry it through the
// engine to the receiver, then see a refusal inline, re-enable and recover.
func TestBrowserRetryAndTest(t *testing.T) {
	t.Parallel()
	bctx := startBrowser(t)
	svc := startService(t)
	rcv := newReceiver(t)

	// An account, its endpoint and one job event whose first attempt fails.
	acct := call[struct {
		ID     int64  `json:"id"`
		APIKey string `json:"api_key"`
	}](t, http.MethodPost, svc.admin.URL+"/admin/v1/accounts", adminToken, map[string]string{"name": "Acme"}, http.StatusCreated)
	hookURL := rcv.srv.URL + "/hook"
	ep := call[struct {
		ID int64 `json:"id"`
	}](t, http.MethodPost, svc.public.URL+"/api/v1/webhooks", acct.APIKey,
		map[string]any{"url": hookURL, "events": []string{"job.completed"}, "secret_key": "whsec_dashboard_test_secret"}, http.StatusCreated)
	call[map[string]any](t, http.MethodPost, svc.admin.URL+"/admin/v1/events", adminToken, map[string]any{
		"account_id": acct.ID, "event": "job.completed", "task_id": "task_dash_1", "task_type": "image",
		"data": map[string]any{"url": "https://cdn.example.com/image.png", "credits_charged": 6},
	}, http.StatusAccepted)
	rcv.await(t, hit{event: "job.completed", attempt: "1"})
	deliveriesURL := fmt.Sprintf("%s/api/v1/webhooks/%d/deliveries", svc.public.URL, ep.ID)
	var deliveryID int64
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		ds := call[[]struct {
			ID           int64 `json:"id"`
			AttemptCount int   `json:"attempt_count"`
		}](t, http.MethodGet, deliveriesURL, acct.APIKey, nil, http.StatusOK)
		if len(ds) == 1 && ds[0].AttemptCount == 1 {
			deliveryID = ds[0].ID
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the failed first attempt was not recorded: %+v", ds)
		}
	}

	b := &browser{t: t, ctx: bctx}
	b.do("open /dashboard", chromedp.Navigate(svc.public.URL+"/dashboard"), chromedp.WaitVisible(chromedp.ID("api-key")))
	if p := b.eval(`location.pathname`); p != "/dashboard/" {
		t.Errorf("/dashboard led to %s, want /dashboard/", p)
	}

	// A wrong key is said to be one, not in the API's words about
	// credentials (issue 15, item 9); the right one signs in.
	b.do("try a wrong key", chromedp.SendKeys(chromedp.ID("api-key"), "nhk_not_a_real_key"), chromedp.Click(chromedp.ID("sign-in-submit")))
	b.waitText("#sign-in-error", "This API key is not valid.")
	if msg := b.eval(`document.getElementById("sign-in-error").textContent`); strings.Contains(msg, "credentials") {
		t.Errorf("sign-in error %q still speaks of credentials", msg)
	}
	b.setValue("api-key", "")
	b.do("sign in", chromedp.SendKeys(chromedp.ID("api-key"), acct.APIKey), chromedp.Click(chromedp.ID("sign-in-submit")))
	b.waitText("#endpoints", hookURL)
	b.waitText("#endpoints", "active")
	if got := b.eval(`JSON.stringify([sessionStorage.getItem("nanohook.apiKey"), localStorage.length, document.cookie])`); got != fmt.Sprintf(`[%s,0,""]`, js(acct.APIKey)) {
		t.Errorf("key storage [sessionStorage, localStorage entries, cookies] = %s; want the key in sessionStorage only", got)
	}

	// The endpoint and its one delivery, pending a retry an hour away.
	b.do("open the endpoint", chromedp.Click(chromedp.CSS(fmt.Sprintf(`#endpoints a[href="#/webhooks/%d"]`, ep.ID))))
	if text := b.rows(1); !strings.Contains(text, "job.completed") || !strings.Contains(text, "pending") {
		t.Errorf("delivery row %q: want a pending job.completed", text)
	}

	// Send test: the ping's attempt is shown (the receiver fails every
	// first attempt, so it is a 500), and the history gains the ping.
	b.do("send a test", chromedp.Click(chromedp.ID("send-test")))
	b.waitText("#test-result", "HTTP 500")
	b.waitText("#test-result", "X-Nano-Event")
	b.waitText("#test-result", receiverFailure)
	rcv.await(t, hit{event: "ping", attempt: "1"})
	b.rows(2)

	// Filters go to the API: failed is the ping alone, job.completed the job.
	b.setValue("filter-status", "failed")
	b.do("filter failed", chromedp.Click(chromedp.ID("filter-apply")))
	if text := b.rows(1); !strings.Contains(text, "ping") {
		t.Errorf("status=failed shows %q, want the ping", text)
	}
	b.setValue("filter-status", "")
	b.setValue("filter-event", "job.completed")
	b.do("filter job.completed", chromedp.Click(chromedp.ID("filter-apply")))
	if text := b.rows(1); !strings.Contains(text, "job.completed") {
		t.Errorf("event=job.completed shows %q, want the job's delivery", text)
	}

	// Rotation shows the new secret once, and it is the one now stored.
	b.do("rotate the secret", chromedp.Click(chromedp.ID("rotate-secret")), chromedp.WaitVisible(chromedp.ID("new-secret")))
	b.waitText(".secret", "shown only this once")
	shown := b.eval(`document.querySelector("#new-secret").value`)
	stored, err := svc.store.GetEndpoint(context.Background(), acct.ID, ep.ID)
	if err != nil {
		t.Fatal(err)
	}
	if shown == "" || shown != stored.Secret || shown == "whsec_dashboard_test_secret" {
		t.Errorf("the dashboard showed secret %q; the endpoint's secret is now %q", shown, stored.Secret)
	}

	// The failed attempt in full, then a real retry through the engine.
	deliveryLink := fmt.Sprintf(`#deliveries a[href="#/deliveries/%d"]`, deliveryID)
	b.do("open the delivery", chromedp.Click(chromedp.CSS(deliveryLink)))
	first := `article[data-attempt="1"]`
	b.waitText(first, "HTTP 500")
	// The payload sent: indented to read, its JSON the very bytes stored,
	// and the copy button copies exactly those.
	sent, _, err := svc.store.GetDelivery(context.Background(), acct.ID, deliveryID)
	if err != nil {
		t.Fatal(err)
	}
	b.waitText("#payload", `"task_id"`)
	if got := b.eval(`JSON.stringify(JSON.parse(document.getElementById("payload").textContent))`); got != string(sent.Payload) {
		t.Errorf("the payload shown re-serialises to\n %s\nthe payload sent is\n %s", got, sent.Payload)
	}
	if lines := b.eval(`String(document.getElementById("payload").textContent.split("\n").length)`); lines == "1" {
		t.Errorf("the payload is not indented: %s", b.eval(`document.getElementById("payload").textContent`))
	}
	b.eval(`navigator.clipboard.writeText = (s) => { window.copiedPayload = s; return Promise.resolve(); }, ""`)
	b.do("click Copy exact bytes", chromedp.Click(chromedp.ID("copy-payload")))
	b.waitText("#payload-copied", fmt.Sprintf("Copied %d bytes.", len(sent.Payload)))
	if got := b.eval(`window.copiedPayload`); got != string(sent.Payload) {
		t.Errorf("copied\n %s\nwant the payload sent\n %s", got, sent.Payload)
	}
	b.waitText(first, "X-Nano-Delivery-Attempt")
	b.waitText(first, "X-Nano-Signature")
	b.waitText(first, receiverFailure)
	b.waitText(first, "127.0.0.1:")
	b.do("click Retry", chromedp.Click(chromedp.ID("retry")))
	b.waitText(`article[data-attempt="2"]`, "HTTP 200")
	b.waitText("#view .fields", "succeeded")
	b.waitText("#delivery-note", "Attempt 2: HTTP 200; status: succeeded")
	rcv.await(t, hit{event: "job.completed", attempt: "2"})
	d, attempts, err := svc.store.GetDelivery(context.Background(), acct.ID, deliveryID)
	if err != nil {
		t.Fatal(err)
	}
	if d.Status != nanohook.DeliverySucceeded || d.Attempts != 2 || len(attempts) != 2 || attempts[1].ResponseStatus != http.StatusOK {
		t.Errorf("after the retry the store has %s with %d attempts (%d recorded); want succeeded after 2, the second a 200", d.Status, d.Attempts, len(attempts))
	}

	// Disabled (here by its owner, through the API): the list says why,
	// recover is refused with the API's message inline, Re-enable works, and
	// recover then re-sends what failed: the event published while the
	// endpoint was disabled (failed at once, never attempted), not the
	// failed ping, which recover leaves alone.
	call[map[string]any](t, http.MethodPatch, fmt.Sprintf("%s/api/v1/webhooks/%d", svc.public.URL, ep.ID), acct.APIKey,
		map[string]string{"status": "disabled"}, http.StatusOK)
	call[map[string]any](t, http.MethodPost, svc.admin.URL+"/admin/v1/events", adminToken, map[string]any{
		"account_id": acct.ID, "event": "job.completed", "task_id": "task_dash_2", "task_type": "image",
		"data": map[string]any{"url": "https://cdn.example.com/image2.png", "credits_charged": 6},
	}, http.StatusAccepted)
	endpointLink := fmt.Sprintf(`a[href="#/webhooks/%d"]`, ep.ID)
	b.do("back to the endpoints", chromedp.Click(chromedp.CSS(`#view .crumbs a[href="#/"]`)))
	b.waitText("#endpoints", "disabled by the account")
	b.do("open the disabled endpoint", chromedp.Click(chromedp.CSS("#endpoints "+endpointLink)))
	b.do("recover while disabled", chromedp.Click(chromedp.ID("recover")))
	b.waitText("#recover-error", "the endpoint is disabled")
	b.do("re-enable", chromedp.Click(chromedp.ID("enable")))
	b.waitFor("the endpoint to show active", `document.querySelector("#view .fields .badge").textContent === "active" && !document.getElementById("enable")`, 15*time.Second)
	if e, err := svc.store.GetEndpoint(context.Background(), acct.ID, ep.ID); err != nil || e.Status != nanohook.EndpointActive {
		t.Fatalf("after Re-enable the store has the endpoint %s (%v), want active", e.Status, err)
	}
	b.do("recover", chromedp.Click(chromedp.ID("recover")))
	b.waitText("#recover-result", "Queued 1 failed delivery")
	if msg := b.eval(`document.getElementById("recover-error").hidden ? "" : document.getElementById("recover-error").textContent`); msg != "" {
		t.Errorf("the earlier refusal is still shown after a successful recover: %q", msg)
	}
	rcv.await(t, hit{event: "job.completed", attempt: "1"})
	pings := call[[]struct {
		Status string `json:"status"`
	}](t, http.MethodGet, deliveriesURL+"?event=ping", acct.APIKey, nil, http.StatusOK)
	if len(pings) != 1 || pings[0].Status != "failed" {
		t.Errorf("after the recover the pings are %+v, want the one ping still failed", pings)
	}

	// Back to the retried delivery for the screenshot.
	b.rows(3)
	b.do("open the delivery again", chromedp.Click(chromedp.CSS(deliveryLink)))
	b.waitText(`article[data-attempt="2"]`, "HTTP 200")

	if problems := b.eval(`JSON.stringify(window.__problems)`); problems != "[]" {
		t.Errorf("the page reported problems: %s", problems)
	}
	shot, err := chromedp.Run(bctx, chromedp.FullScreenshot(100))
	if err != nil {
		t.Fatalf("screenshot: %v", err)
	}
	saveScreenshot(t, shot)
}

// saveScreenshot writes the PNG to the test's directory, and to the file
// named by NANOHOOK_DASHBOARD_SCREENSHOT when set.
func saveScreenshot(t *testing.T, png []byte) {
	t.Helper()
	paths := []string{filepath.Join(t.TempDir(), "dashboard.png")}
	if p := os.Getenv(screenshotEnv); p != "" {
		paths = append(paths, p)
	}
	for _, p := range paths {
		if err := os.WriteFile(p, png, 0o644); err != nil {
			t.Fatalf("write screenshot: %v", err)
		}
		t.Logf("screenshot (%s bytes): %s", strconv.Itoa(len(png)), p)
	}
}
