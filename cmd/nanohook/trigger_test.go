package main

import (
	"bytes"
	"encoding/json"
	"io"
	"maps"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nanohook/nanohook/client"
	"github.com/nanohook/nanohook/webhook"
)

func noEnv(string) string { return "" }

// capturedDelivery is one request a test receiver got.
type capturedDelivery struct {
	header http.Header
	body   []byte
}

// newCapturingReceiver answers every request with status after passing
// it on the returned channel.
func newCapturingReceiver(t *testing.T, status int) (*httptest.Server, <-chan capturedDelivery) {
	got := make(chan capturedDelivery, 10)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		got <- capturedDelivery{header: r.Header.Clone(), body: body}
		w.WriteHeader(status)
	}))
	t.Cleanup(srv.Close)
	return srv, got
}

func nextDelivery(t *testing.T, got <-chan capturedDelivery) capturedDelivery {
	t.Helper()
	select {
	case d := <-got:
		return d
	case <-time.After(10 * time.Second):
		t.Fatal("no delivery within 10s")
		return capturedDelivery{}
	}
}

func TestTriggerAgainstListen(t *testing.T) {
	t.Parallel()
	const secret = "whsec_trigger-against-listen"
	l := startListen(t, "--secret", secret)

	var out bytes.Buffer
	err := run(t.Context(), []string{"trigger", "job.completed", "--to", l.url + "/hook", "--secret", secret, "--task-id", "task_trig"},
		noEnv, &out, io.Discard)
	if err != nil {
		t.Fatalf("trigger: %v\n%s", err, out.String())
	}
	for _, w := range []string{"→ POST " + l.url + "/hook\n", "  X-Nano-Delivery-Attempt: 1\n", `"task_id":"task_trig"`, "← 200 OK in "} {
		if !strings.Contains(out.String(), w) {
			t.Errorf("trigger output lacks %q:\n%s", w, out.String())
		}
	}
	for _, w := range []string{"event=job.completed", "attempt=1", "✔ signature verified", `"task_id": "task_trig"`, `"credits_charged": 6`} {
		if !strings.Contains(l.out.String(), w) {
			t.Errorf("listen output lacks %q:\n%s", w, l.out.String())
		}
	}

	// Signed with another secret: listen refuses it and trigger says so.
	out.Reset()
	err = run(t.Context(), []string{"trigger", "job.failed", "--to", l.url + "/hook", "--secret", "not-the-secret"}, noEnv, &out, io.Discard)
	if err == nil || !strings.Contains(err.Error(), "401 Unauthorized") {
		t.Fatalf("trigger with a wrong secret: %v", err)
	}
	if !strings.Contains(out.String(), "← 401 Unauthorized") || !strings.Contains(out.String(), "signature verification failed") {
		t.Fatalf("trigger output does not show the refusal:\n%s", out.String())
	}
}

// TestTriggerSendsWhatNanohookSends checks every documented header and the
// canonical body against a receiver built on webhook.Middleware.
func TestTriggerSendsWhatNanohookSends(t *testing.T) {
	t.Parallel()
	const secret = "a spaced secret ✓"
	got := make(chan capturedDelivery, 1)
	v := &webhook.Verifier{Secrets: []string{secret}}
	rcv := httptest.NewServer(webhook.Middleware(v, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		got <- capturedDelivery{header: r.Header.Clone(), body: body}
		w.WriteHeader(http.StatusNoContent)
	})))
	defer rcv.Close()

	before := time.Now().Unix()
	var out bytes.Buffer
	err := run(t.Context(), []string{"trigger", "job.failed", "--to", rcv.URL, "--secret", secret,
		"--data", `{"b":1, "2":"<x>", "n":1e21, "s":"\u2028"}`, "--task-id", "task_42", "--task-type", "video"}, noEnv, &out, io.Discard)
	if err != nil {
		t.Fatalf("trigger: %v\n%s", err, out.String())
	}
	d := nextDelivery(t, got) // the Middleware verified it
	h := d.header
	ts, err := strconv.ParseInt(h.Get(webhook.HeaderTimestamp), 10, 64)
	if err != nil || ts < before || ts > time.Now().Unix() {
		t.Fatalf("X-Nano-Timestamp %q is not now", h.Get(webhook.HeaderTimestamp))
	}
	for name, want := range map[string]string{
		"Content-Type":                "application/json",
		"User-Agent":                  "nanohook/" + version,
		webhook.HeaderEvent:           "job.failed",
		webhook.HeaderDeliveryAttempt: "1",
		webhook.HeaderSignature:       webhook.Sign(secret, ts, d.body),
	} {
		if h.Get(name) != want {
			t.Errorf("%s = %q, want %q", name, h.Get(name), want)
		}
	}
	if id := h.Get(webhook.HeaderEventID); !strings.HasPrefix(id, "evt_") || len(id) < 20 {
		t.Errorf("X-Nano-Event-Id = %q, want a fresh evt_ id", id)
	}
	want := `{"event":"job.failed","task_id":"task_42","task_type":"video","status":"failed","data":{"2":"<x>","b":1,"n":1e+21,"s":"` +
		"\u2028" + `"},"timestamp":"` + time.Unix(ts, 0).UTC().Format(time.RFC3339) + `"}`
	if string(d.body) != want {
		t.Fatalf("body\n got %s\nwant %s", d.body, want)
	}
	if !strings.Contains(out.String(), "← 204 No Content") {
		t.Fatalf("trigger output:\n%s", out.String())
	}
}

// TestTriggerBodyIsTheServers sends the same job event with trigger and
// through a running nanohook: the receiver gets the same bytes and the same
// headers, but for the timestamp, signature and event id of each.
func TestTriggerBodyIsTheServers(t *testing.T) {
	t.Parallel()
	const secret = "whsec_same-as-the-server"
	const data = `{"prompt":"a <cat> & a \u2028 line 😀","1":{"z":-0,"a":1.50},"pair":"\ud83d\ude00"}`
	srv := startTestServer(t, nil)
	rcv, got := newCapturingReceiver(t, http.StatusOK)
	api := newAPIClients(t, srv, "trigger")
	api.createWebhook(t, client.CreateWebhookParams{URL: rcv.URL, Events: []string{client.EventJobCompleted}, SecretKey: secret})

	if err := run(t.Context(), []string{"trigger", "job.completed", "--to", rcv.URL, "--secret", secret, "--data", data, "--task-id", "task_same"},
		noEnv, io.Discard, io.Discard); err != nil {
		t.Fatalf("trigger: %v", err)
	}
	fromTrigger := nextDelivery(t, got)
	p, err := webhook.ParsePayload(fromTrigger.body)
	if err != nil {
		t.Fatal(err)
	}
	occurred, err := time.Parse(time.RFC3339, p.Timestamp)
	if err != nil {
		t.Fatalf("body timestamp %q: %v", p.Timestamp, err)
	}
	if _, err := api.admin.PublishEvent(t.Context(), client.JobEvent{
		AccountID: api.acct.ID, Event: client.EventJobCompleted, TaskID: "task_same", TaskType: "image",
		Data: json.RawMessage(data), OccurredAt: occurred,
	}); err != nil {
		t.Fatalf("publish: %v", err)
	}
	fromServer := nextDelivery(t, got)

	if !bytes.Equal(fromTrigger.body, fromServer.body) {
		t.Fatalf("bodies differ\ntrigger %s\n server %s", fromTrigger.body, fromServer.body)
	}
	if a, b := slices.Sorted(maps.Keys(fromTrigger.header)), slices.Sorted(maps.Keys(fromServer.header)); !slices.Equal(a, b) {
		t.Fatalf("header names differ\ntrigger %v\n server %v", a, b)
	}
	for _, name := range []string{"Content-Type", "User-Agent", webhook.HeaderEvent, webhook.HeaderDeliveryAttempt} {
		if fromTrigger.header.Get(name) != fromServer.header.Get(name) {
			t.Errorf("%s: trigger sent %q, the server %q", name, fromTrigger.header.Get(name), fromServer.header.Get(name))
		}
	}
	v := webhook.Verifier{Secrets: []string{secret}}
	for who, d := range map[string]capturedDelivery{"trigger": fromTrigger, "server": fromServer} {
		if err := v.Verify(d.header, d.body); err != nil {
			t.Errorf("the %s's delivery does not verify: %v", who, err)
		}
	}
}

func TestTriggerRefusesBadInput(t *testing.T) {
	t.Parallel()
	var requests atomic.Int32
	rcv := httptest.NewServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) { requests.Add(1) }))
	defer rcv.Close()
	down := httptest.NewServer(http.NotFoundHandler())
	down.Close()

	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"job.completed", "--to", rcv.URL, "--secret", "s", "--data", `{"a":`}, "--data: a: invalid JSON: unexpected end of input"},
		{[]string{"job.completed", "--to", rcv.URL, "--secret", "s", "--data", `{"a":1}}`}, "--data: invalid JSON"},
		{[]string{"job.completed", "--to", rcv.URL, "--secret", "s", "--data", `[1,2]`}, "--data: must be a JSON object"},
		{[]string{"job.completed", "--to", rcv.URL, "--secret", "s", "--data", `{"items":[{"id":9007199254740993}]}`}, "--data: items[0].id: integer 9007199254740993"},
		// Event data is I-JSON on the server, so here too.
		{[]string{"job.completed", "--to", rcv.URL, "--secret", "s", "--data", `{"id":9007199254740992}`}, "--data: id: integer 9007199254740992 is beyond"},
		{[]string{"job.completed", "--to", rcv.URL, "--secret", "s", "--data", `{"a":1,"a":2}`}, `--data: a: member name "a" appears twice`},
		{[]string{"job.completed", "--to", rcv.URL, "--secret", "s", "--data", `{"s":"\ud800"}`}, "--data: s: a string holds the unpaired UTF-16 surrogate"},
		{[]string{"--to", rcv.URL, "--secret", "s"}, "want job.completed or job.failed"},
		{[]string{"job.done", "--to", rcv.URL, "--secret", "s"}, `event "job.done"`},
		{[]string{"job.completed", "--secret", "s"}, "--to is required"},
		{[]string{"job.completed", "--to", "example.com/hook", "--secret", "s"}, `--to "example.com/hook"`},
		{[]string{"job.completed", "--to", rcv.URL}, "--secret is required"},
		{[]string{"job.completed", "--to", down.URL, "--secret", "s"}, "no answer from --to " + down.URL},
	} {
		err := run(t.Context(), append([]string{"trigger"}, tc.args...), noEnv, io.Discard, io.Discard)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("trigger %v: error %v, want one containing %q", tc.args, err, tc.want)
		}
	}
	if n := requests.Load(); n != 0 {
		t.Fatalf("refused input still sent %d requests", n)
	}
}

// TestTriggerFlagsHaveEnvironmentTwins: the receiver and secret can come
// from the environment, like every flag.
func TestTriggerFlagsHaveEnvironmentTwins(t *testing.T) {
	t.Parallel()
	rcv, got := newCapturingReceiver(t, http.StatusAccepted)
	env := map[string]string{"NANOHOOK_TO": rcv.URL, "NANOHOOK_SECRET": "from-the-environment"}
	if err := run(t.Context(), []string{"trigger", "job.completed"}, func(k string) string { return env[k] }, io.Discard, io.Discard); err != nil {
		t.Fatalf("trigger: %v", err)
	}
	d := nextDelivery(t, got)
	v := webhook.Verifier{Secrets: []string{"from-the-environment"}}
	if err := v.Verify(d.header, d.body); err != nil {
		t.Fatalf("signed with another secret than NANOHOOK_SECRET's: %v", err)
	}
}
