package main

import (
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/nanohook/nanohook/client"
	"github.com/nanohook/nanohook/webhook"
)

// TestSecretRotationOverlap rotates an endpoint's secret through the public
// API and checks real deliveries: during the overlap they verify with the old
// secret alone (X-Nano-Signature-Previous) and with the new one alone; a
// rotation without overlap stops signing with the old secret at once.
func TestSecretRotationOverlap(t *testing.T) {
	t.Parallel()
	srv := startTestServer(t, nil)
	got := make(chan http.Header, 10)
	rcv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		h := r.Header.Clone()
		h.Set("X-Test-Body", string(body))
		got <- h
	}))
	defer rcv.Close()

	ctx := t.Context()
	api := newAPIClients(t, srv, "rot")
	const oldSecret = "the-old-secret"
	wh := api.createWebhook(t, client.CreateWebhookParams{URL: rcv.URL, Events: []string{client.EventJobCompleted}, SecretKey: oldSecret})
	publish := func(task string) (http.Header, []byte) {
		t.Helper()
		if _, err := api.admin.PublishEvent(ctx, client.JobEvent{
			AccountID: api.acct.ID, Event: client.EventJobCompleted, TaskID: task, TaskType: "image",
		}); err != nil {
			t.Fatalf("publish: %v", err)
		}
		select {
		case h := <-got:
			return h, []byte(h.Get("X-Test-Body"))
		case <-time.After(10 * time.Second):
			t.Fatal("no delivery")
			return nil, nil
		}
	}
	verifies := func(h http.Header, body []byte, secrets ...string) bool {
		v := webhook.Verifier{Secrets: secrets}
		return v.Verify(h, body) == nil
	}

	// Bad overlap, another account: refused.
	_, err := api.public.RotateSecret(ctx, wh.ID, &client.RotateSecretParams{OverlapSeconds: ptrTo[int64](604801)})
	if e, ok := errors.AsType[*client.Error](err); !ok || e.StatusCode != 422 || e.Field != "overlap_seconds" {
		t.Fatalf("overlap beyond 7 days: %v", err)
	}
	other := newAPIClients(t, srv, "other")
	_, err = other.public.RotateSecret(ctx, wh.ID, nil)
	if e, ok := errors.AsType[*client.Error](err); !ok || e.StatusCode != 404 {
		t.Fatalf("another account rotated: %v", err)
	}

	// Rotate with the default overlap and no body: a generated secret.
	rot, err := api.public.RotateSecret(ctx, wh.ID, nil)
	if err != nil {
		t.Fatalf("rotate: %v", err)
	}
	newSecret := rot.SecretKey
	if !strings.HasPrefix(newSecret, "whsec_") || rot.PreviousSecretExpiresAt == nil {
		t.Fatalf("rotate answer: %+v", rot)
	}
	if left := time.Until(*rot.PreviousSecretExpiresAt); left < 23*time.Hour || left > 25*time.Hour {
		t.Fatalf("previous secret expires at %s, want in about 24h", rot.PreviousSecretExpiresAt)
	}
	h, body := publish("during-overlap")
	if h.Get(webhook.HeaderSignaturePrevious) == "" {
		t.Fatal("no X-Nano-Signature-Previous during the overlap")
	}
	if h.Get(webhook.HeaderSignature) != webhook.Sign(newSecret, mustInt(t, h.Get(webhook.HeaderTimestamp)), body) {
		t.Fatal("X-Nano-Signature is not made with the newest secret")
	}
	if !verifies(h, body, oldSecret) || !verifies(h, body, newSecret) {
		t.Fatal("a delivery during the overlap does not verify with each secret alone")
	}

	// Rotate again without overlap: only the newest secret signs.
	rot, err = api.public.RotateSecret(ctx, wh.ID, &client.RotateSecretParams{SecretKey: "the-third-secret", OverlapSeconds: ptrTo[int64](0)})
	if err != nil || rot.PreviousSecretExpiresAt != nil {
		t.Fatalf("rotate without overlap: %+v, %v", rot, err)
	}
	h, body = publish("after-overlap")
	if h.Get(webhook.HeaderSignaturePrevious) != "" || verifies(h, body, newSecret) || !verifies(h, body, "the-third-secret") {
		t.Fatalf("after a rotation without overlap: previous=%q", h.Get(webhook.HeaderSignaturePrevious))
	}
	// The secret never shows again: checked on the raw answer, since the
	// client's Webhook has no place for it.
	_, env := apiCall(t, "GET", fmt.Sprintf("%s/api/v1/webhooks/%d", srv.publicURL(), wh.ID), api.acct.APIKey, "")
	if _, ok := dataOf(t, env)["secret_key"]; ok {
		t.Fatal("GET shows the secret after a rotation")
	}
}

// ptrTo returns a pointer to v, for the optional fields of API parameters.
func ptrTo[T any](v T) *T { return &v }

func mustInt(t *testing.T, s string) int64 {
	t.Helper()
	var n int64
	if _, err := fmt.Sscan(s, &n); err != nil {
		t.Fatalf("not a number: %q", s)
	}
	return n
}
