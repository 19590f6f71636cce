package main

import (
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"

	"github.com/nanohook/nanohook/webhook"
)

// TestTestDeliverySendsASignedPingNow: POST /api/v1/webhooks/{id}/test makes
// the attempt before answering, signed like any delivery, recorded in the
// history, and not retried when it fails.
func TestTestDeliverySendsASignedPingNow(t *testing.T) {
	t.Parallel()
	srv := startTestServer(t, nil)
	const secret = "ping-test-secret"
	var failing atomic.Bool
	var verified, requests atomic.Int32
	rcv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		requests.Add(1)
		body, _ := io.ReadAll(r.Body)
		v := webhook.Verifier{Secrets: []string{secret}}
		p, err := webhook.ParsePayload(body)
		if v.Verify(r.Header, body) == nil && err == nil && p.Event == "ping" && r.Header.Get(webhook.HeaderEvent) == "ping" {
			verified.Add(1)
		}
		if failing.Load() {
			http.Error(w, "not today", http.StatusInternalServerError)
			return
		}
		io.WriteString(w, "pong")
	}))
	defer rcv.Close()

	_, env := apiCall(t, "POST", srv.adminURL()+"/admin/v1/accounts", testAdminToken, `{"name":"ping"}`)
	key := dataOf(t, env)["api_key"].(string)
	_, env = apiCall(t, "POST", srv.publicURL()+"/api/v1/webhooks", key,
		fmt.Sprintf(`{"url":%q,"events":["job.completed"],"secret_key":%q}`, rcv.URL, secret))
	id := dataOf(t, env)["id"]
	testURL := fmt.Sprintf("%s/api/v1/webhooks/%v/test", srv.publicURL(), id)

	status, env := apiCall(t, "POST", testURL, key, "")
	if status != 200 {
		t.Fatalf("test call: %d %v", status, env)
	}
	d := dataOf(t, env)
	att := d["attempt"].(map[string]any)
	if d["succeeded"] != true || att["response_status"] != float64(200) || att["response_body"] != "pong" || att["number"] != float64(1) {
		t.Fatalf("test answer: %v", d)
	}
	if requests.Load() != 1 || verified.Load() != 1 {
		t.Fatalf("receiver saw %d requests, %d verified pings", requests.Load(), verified.Load())
	}
	_, env = apiCall(t, "GET", fmt.Sprintf("%s/api/v1/deliveries/%v", srv.publicURL(), d["delivery_id"]), key, "")
	if h := dataOf(t, env); h["status"] != "succeeded" || h["event"] != "ping" || h["event_id"] != d["event_id"] {
		t.Fatalf("the ping in the history: %v", h)
	}

	// A failing endpoint: the answer says so, and the ping is not retried.
	failing.Store(true)
	status, env = apiCall(t, "POST", testURL, key, "")
	d = dataOf(t, env)
	if status != 200 || d["succeeded"] != false || d["attempt"].(map[string]any)["error"] != "HTTP 500" {
		t.Fatalf("failing test call: %d %v", status, env)
	}
	_, env = apiCall(t, "GET", fmt.Sprintf("%s/api/v1/deliveries/%v", srv.publicURL(), d["delivery_id"]), key, "")
	if h := dataOf(t, env); h["status"] != "failed" || h["attempt_count"] != float64(1) {
		t.Fatalf("failed ping in the history: %v", h)
	}

	// Another account's endpoint is not found.
	_, env = apiCall(t, "POST", srv.adminURL()+"/admin/v1/accounts", testAdminToken, `{"name":"other"}`)
	if status, _ := apiCall(t, "POST", testURL, dataOf(t, env)["api_key"].(string), ""); status != 404 {
		t.Fatalf("another account's test call: %d", status)
	}
}
