package main

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nanohook/nanohook/webhook"
)

// runningListen is `nanohook listen` started in-process by startListen.
type runningListen struct {
	url string       // http://127.0.0.1:<port>
	out *watchWriter // everything it printed
}

var listeningOn = regexp.MustCompile(`listening on (http://127\.0\.0\.1:(\d+))`)

// startListen runs `nanohook listen --port 0 args…` until the test ends and
// returns once it accepts deliveries, at the address it printed.
func startListen(t *testing.T, args ...string) *runningListen {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	out := newWatchWriter("listening on ")
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, append([]string{"listen", "--port", "0"}, args...), noEnv, out, io.Discard)
	}()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("listen returned %v", err)
			}
		case <-time.After(5 * time.Second):
			t.Error("listen did not stop")
		}
	})
	select {
	case <-out.seen:
	case err := <-done:
		t.Fatalf("listen ended early: %v\n%s", err, out.String())
	case <-time.After(5 * time.Second):
		t.Fatalf("listen printed no address:\n%s", out.String())
	}
	m := listeningOn.FindStringSubmatch(out.String())
	if m == nil || m[2] == "0" {
		t.Fatalf("listen did not print the address it listens on:\n%s", out.String())
	}
	return &runningListen{url: m[1], out: out}
}

// signedDelivery builds a delivery as nanohook sends it, signed now.
func signedDelivery(t *testing.T, url, secret, taskID string) *http.Request {
	t.Helper()
	body, err := webhook.EncodePayload(webhook.Payload{
		Event: webhook.EventJobCompleted, TaskID: taskID, TaskType: "image", Status: webhook.StatusCompleted,
		Data: []byte(`{"url":"https://cdn.example.com/image.png","credits_charged":6}`), Timestamp: "2024-12-23T10:00:00Z",
	})
	if err != nil {
		t.Fatal(err)
	}
	req, err := http.NewRequestWithContext(t.Context(), http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	ts := time.Now().Unix()
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set(webhook.HeaderTimestamp, strconv.FormatInt(ts, 10))
	req.Header.Set(webhook.HeaderSignature, webhook.Sign(secret, ts, body))
	req.Header.Set(webhook.HeaderEventID, "evt_"+taskID)
	req.Header.Set(webhook.HeaderEvent, webhook.EventJobCompleted)
	req.Header.Set(webhook.HeaderDeliveryAttempt, "3")
	req.Header.Set("X-Unrelated", "not forwarded")
	return req
}

// sendTo sends req and returns the status, the body and the headers.
func sendTo(t *testing.T, req *http.Request) (int, string, http.Header) {
	t.Helper()
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), resp.Header
}

// appRecorder is the local app listen forwards to: it keeps what it got
// and answers status, with headers.
type appRecorder struct {
	*httptest.Server
	mu      sync.Mutex
	got     []*http.Request
	bodies  [][]byte
	status  int
	headers http.Header
}

func newAppRecorder(t *testing.T) *appRecorder {
	a := &appRecorder{status: http.StatusCreated, headers: http.Header{}}
	a.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		a.mu.Lock()
		defer a.mu.Unlock()
		a.got = append(a.got, r.Clone(context.Background()))
		a.bodies = append(a.bodies, body)
		for k, v := range a.headers {
			w.Header()[k] = v
		}
		w.WriteHeader(a.status)
		io.WriteString(w, "app says hi")
	}))
	t.Cleanup(a.Close)
	return a
}

func (a *appRecorder) answer(status int, headers http.Header) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.status, a.headers = status, headers
}

func (a *appRecorder) received() ([]*http.Request, [][]byte) {
	a.mu.Lock()
	defer a.mu.Unlock()
	return append([]*http.Request(nil), a.got...), append([][]byte(nil), a.bodies...)
}

func TestListenForwardsVerifiedDeliveries(t *testing.T) {
	t.Parallel()
	const secret = "whsec_listen-forward-secret"
	app := newAppRecorder(t)
	l := startListen(t, "--secret", secret, "--forward-to", app.URL+"/webhooks/nano")
	// The line follows the address line, which startListen waited for; it
	// may be written a moment after (CI saw the check win that race).
	for deadline := time.Now().Add(5 * time.Second); !strings.Contains(l.out.String(), "forwarding verified deliveries to "+app.URL+"/webhooks/nano"); {
		if time.Now().After(deadline) {
			t.Fatalf("listen does not say where it forwards:\n%s", l.out.String())
		}
		time.Sleep(5 * time.Millisecond)
	}

	// A signed delivery reaches the app as sent; its answer reaches the sender.
	req := signedDelivery(t, l.url+"/hook", secret, "task_fwd")
	sentBody, _ := req.GetBody()
	want, _ := io.ReadAll(sentBody)
	status, body, _ := sendTo(t, req)
	if status != http.StatusCreated || body != "app says hi" {
		t.Fatalf("listen answered %d %q, want the app's 201", status, body)
	}
	got, bodies := app.received()
	if len(got) != 1 {
		t.Fatalf("the app got %d requests, want 1", len(got))
	}
	fwd := got[0]
	if fwd.Method != http.MethodPost || fwd.URL.Path != "/webhooks/nano" || !bytes.Equal(bodies[0], want) {
		t.Fatalf("forwarded %s %s %q, want POST /webhooks/nano %q", fwd.Method, fwd.URL.Path, bodies[0], want)
	}
	for _, name := range []string{"Content-Type", webhook.HeaderTimestamp, webhook.HeaderSignature, webhook.HeaderEventID, webhook.HeaderEvent, webhook.HeaderDeliveryAttempt} {
		if fwd.Header.Get(name) != req.Header.Get(name) {
			t.Errorf("forwarded %s = %q, sent %q", name, fwd.Header.Get(name), req.Header.Get(name))
		}
	}
	if fwd.Header.Get("X-Unrelated") != "" {
		t.Error("a header other than Content-Type and X-Nano-* was forwarded")
	}
	v := webhook.Verifier{Secrets: []string{secret}}
	if err := v.Verify(fwd.Header, bodies[0]); err != nil {
		t.Fatalf("the app cannot verify the forwarded delivery: %v", err)
	}
	out := l.out.String()
	for _, w := range []string{"POST /hook  event=job.completed id=evt_task_fwd attempt=3", "✔ signature verified",
		"→ " + app.URL + "/webhooks/nano answered 201 Created in ", `"task_id": "task_fwd"`} {
		if !strings.Contains(out, w) {
			t.Errorf("output lacks %q:\n%s", w, out)
		}
	}

	// An unsigned request is refused and never reaches the app.
	req = signedDelivery(t, l.url+"/hook", secret, "task_unsigned")
	req.Header.Del(webhook.HeaderSignature)
	if status, body, _ := sendTo(t, req); status != http.StatusUnauthorized || !strings.Contains(body, "missing signature") {
		t.Fatalf("unsigned request: %d %q, want 401", status, body)
	}
	// So is one signed with another secret.
	if status, _, _ := sendTo(t, signedDelivery(t, l.url+"/hook", "another-secret", "task_forged")); status != http.StatusUnauthorized {
		t.Fatalf("forged request: %d, want 401", status)
	}
	if got, _ := app.received(); len(got) != 1 {
		t.Fatalf("the app got %d requests, want only the verified one", len(got))
	}
	if out := l.out.String(); !strings.Contains(out, "id=evt_task_unsigned") || strings.Count(out, "not forwarded") != 2 {
		t.Errorf("output does not show the refused requests as not forwarded:\n%s", out)
	}

	// The headers nanohook acts on come back from the app too.
	app.answer(http.StatusServiceUnavailable, http.Header{"Retry-After": {"30"}})
	status, _, h := sendTo(t, signedDelivery(t, l.url+"/hook", secret, "task_busy"))
	if status != http.StatusServiceUnavailable || h.Get("Retry-After") != "30" {
		t.Fatalf("app busy: listen answered %d, Retry-After %q", status, h.Get("Retry-After"))
	}
	if !strings.Contains(l.out.String(), "answered 503 Service Unavailable") {
		t.Errorf("output lacks the app's 503:\n%s", l.out.String())
	}
}

func TestListenAppDown(t *testing.T) {
	t.Parallel()
	const secret = "s3cret-down"
	down := httptest.NewServer(http.NotFoundHandler())
	down.Close() // nothing listens at its address any more
	l := startListen(t, "--secret", secret, "--forward-to", down.URL)
	status, body, _ := sendTo(t, signedDelivery(t, l.url, secret, "task_down"))
	if status != http.StatusBadGateway || !strings.Contains(body, "could not forward to "+down.URL) || !strings.Contains(body, "connection refused") {
		t.Fatalf("app down: %d %q, want 502 saying why", status, body)
	}
	if out := l.out.String(); !strings.Contains(out, "✔ signature verified") || !strings.Contains(out, "answering 502") {
		t.Fatalf("output:\n%s", out)
	}
}

func TestListenWithoutForwarding(t *testing.T) {
	t.Parallel()
	const secret = "s3cret-plain"
	l := startListen(t, "--secret", secret)
	if status, _, _ := sendTo(t, signedDelivery(t, l.url+"/x", secret, "task_plain")); status != http.StatusOK {
		t.Fatalf("verified delivery: %d, want 200", status)
	}
	req := signedDelivery(t, l.url+"/x", secret, "task_stale")
	req.Header.Set(webhook.HeaderTimestamp, strconv.FormatInt(time.Now().Add(-time.Hour).Unix(), 10))
	if status, body, _ := sendTo(t, req); status != http.StatusUnauthorized || !strings.Contains(body, "signature") {
		t.Fatalf("request with a stale timestamp: %d %q, want 401", status, body)
	}
	out := l.out.String()
	if !strings.Contains(out, "id=evt_task_plain attempt=3\n  ✔ signature verified\n  {") || strings.Contains(out, "→") || strings.Contains(out, "forward") {
		t.Fatalf("output:\n%s", out)
	}
}

func TestListenFlags(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"listen", "--port", "0"}, "--secret is required"},
		{[]string{"listen", "--secret", "s", "--port", "0", "--forward-to", "localhost:3000/hook"}, "--forward-to"},
		{[]string{"listen", "--secret", "s", "--port", "0", "--forward-to", "ftp://example.com/x"}, "--forward-to"},
		{[]string{"listen", "--secret", "s", "--port", "-1"}, "--port -1"},
	} {
		err := run(t.Context(), tc.args, noEnv, io.Discard, io.Discard)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%v: error %v, want one naming %s", tc.args, err, tc.want)
		}
	}
}
