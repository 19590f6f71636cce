package main

import (
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"

	"github.com/nanohook/nanohook/client"
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

	ctx := t.Context()
	api := newAPIClients(t, srv, "ping")
	wh := api.createWebhook(t, client.CreateWebhookParams{URL: rcv.URL, Events: []string{client.EventJobCompleted}, SecretKey: secret})

	d, err := api.public.TestWebhook(ctx, wh.ID)
	if err != nil {
		t.Fatalf("test call: %v", err)
	}
	if !d.Succeeded || d.Attempt.ResponseStatus != 200 || d.Attempt.ResponseBody != "pong" || d.Attempt.Number != 1 {
		t.Fatalf("test answer: %+v", d)
	}
	if requests.Load() != 1 || verified.Load() != 1 {
		t.Fatalf("receiver saw %d requests, %d verified pings", requests.Load(), verified.Load())
	}
	if h, err := api.public.GetDelivery(ctx, d.DeliveryID); err != nil || h.Status != client.DeliverySucceeded ||
		h.Event != client.EventPing || h.EventID != d.EventID {
		t.Fatalf("the ping in the history: %+v, %v", h, err)
	}

	// A failing endpoint: the answer says so, and the ping is not retried.
	failing.Store(true)
	d, err = api.public.TestWebhook(ctx, wh.ID)
	if err != nil || d.Succeeded || d.Attempt.Error != "HTTP 500" {
		t.Fatalf("failing test call: %+v, %v", d, err)
	}
	if h, err := api.public.GetDelivery(ctx, d.DeliveryID); err != nil || h.Status != client.DeliveryFailed || h.AttemptCount != 1 {
		t.Fatalf("failed ping in the history: %+v, %v", h, err)
	}

	// Another account's endpoint is not found.
	other := newAPIClients(t, srv, "other")
	_, err = other.public.TestWebhook(ctx, wh.ID)
	if e, ok := errors.AsType[*client.Error](err); !ok || e.StatusCode != 404 {
		t.Fatalf("another account's test call: %v", err)
	}
}
