package main

import (
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

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

	_, env := apiCall(t, "POST", srv.adminURL()+"/admin/v1/accounts", testAdminToken, `{"name":"rot"}`)
	acct := dataOf(t, env)
	key := acct["api_key"].(string)
	const oldSecret = "the-old-secret"
	_, env = apiCall(t, "POST", srv.publicURL()+"/api/v1/webhooks", key,
		fmt.Sprintf(`{"url":%q,"events":["job.completed"],"secret_key":%q}`, rcv.URL, oldSecret))
	id := dataOf(t, env)["id"]
	publish := func(task string) (http.Header, []byte) {
		t.Helper()
		status, env := apiCall(t, "POST", srv.adminURL()+"/admin/v1/events", testAdminToken, fmt.Sprintf(
			`{"account_id":%v,"event":"job.completed","task_id":%q,"task_type":"image"}`, acct["id"], task))
		if status != 202 {
			t.Fatalf("publish: %d %v", status, env)
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
	status, env := apiCall(t, "POST", fmt.Sprintf("%s/api/v1/webhooks/%v/rotate-secret", srv.publicURL(), id), key, `{"overlap_seconds":604801}`)
	if status != 422 || env["error"].(map[string]any)["field"] != "overlap_seconds" {
		t.Fatalf("overlap beyond 7 days: %d %v", status, env)
	}
	_, env = apiCall(t, "POST", srv.adminURL()+"/admin/v1/accounts", testAdminToken, `{"name":"other"}`)
	if status, _ := apiCall(t, "POST", fmt.Sprintf("%s/api/v1/webhooks/%v/rotate-secret", srv.publicURL(), id),
		dataOf(t, env)["api_key"].(string), ""); status != 404 {
		t.Fatalf("another account rotated: %d", status)
	}

	// Rotate with the default overlap and no body: a generated secret.
	status, env = apiCall(t, "POST", fmt.Sprintf("%s/api/v1/webhooks/%v/rotate-secret", srv.publicURL(), id), key, "")
	if status != 200 {
		t.Fatalf("rotate: %d %v", status, env)
	}
	rot := dataOf(t, env)
	newSecret, _ := rot["secret_key"].(string)
	until, _ := rot["previous_secret_expires_at"].(string)
	if !strings.HasPrefix(newSecret, "whsec_") || until == "" {
		t.Fatalf("rotate answer: %v", rot)
	}
	if exp, err := time.Parse(time.RFC3339, until); err != nil || exp.Sub(time.Now()) < 23*time.Hour || exp.Sub(time.Now()) > 25*time.Hour {
		t.Fatalf("previous secret expires at %q, want in about 24h", until)
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
	status, env = apiCall(t, "POST", fmt.Sprintf("%s/api/v1/webhooks/%v/rotate-secret", srv.publicURL(), id), key,
		`{"secret_key":"the-third-secret","overlap_seconds":0}`)
	if status != 200 || dataOf(t, env)["previous_secret_expires_at"] != nil {
		t.Fatalf("rotate without overlap: %d %v", status, env)
	}
	h, body = publish("after-overlap")
	if h.Get(webhook.HeaderSignaturePrevious) != "" || verifies(h, body, newSecret) || !verifies(h, body, "the-third-secret") {
		t.Fatalf("after a rotation without overlap: previous=%q", h.Get(webhook.HeaderSignaturePrevious))
	}
	// The secret never shows again.
	_, env = apiCall(t, "GET", fmt.Sprintf("%s/api/v1/webhooks/%v", srv.publicURL(), id), key, "")
	if _, ok := dataOf(t, env)["secret_key"]; ok {
		t.Fatal("GET shows the secret after a rotation")
	}
}

func mustInt(t *testing.T, s string) int64 {
	t.Helper()
	var n int64
	if _, err := fmt.Sscan(s, &n); err != nil {
		t.Fatalf("not a number: %q", s)
	}
	return n
}
