package client_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/nanohook/nanohook/api"
	"github.com/nanohook/nanohook/client"
	"github.com/nanohook/nanohook/delivery"
	"github.com/nanohook/nanohook/egress"
	"github.com/nanohook/nanohook/store/sqlite"
	"github.com/nanohook/nanohook/webhook"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

const adminToken = "client-test-admin-token"

// bundle is both APIs on a real SQLite file, with the delivery engine wired
// as the test call's sender (not started: deliveries stay pending until a
// test retries or recovers them), and clients for the admin API and for
// one account.
type bundle struct {
	store  *sqlite.Store
	admin  *client.Client
	public *httptest.Server
	acct   *client.Account
	pub    *client.Client // authenticated as acct
}

func setup(t *testing.T) *bundle {
	t.Helper()
	st, err := sqlite.Open(t.Context(), filepath.Join(t.TempDir(), "nanohook.db"))
	if err != nil {
		t.Fatalf("open store: %v", err)
	}
	t.Cleanup(func() { _ = st.Close() })
	deliveries := egress.NewClient(egress.Options{AllowPrivate: true, Timeout: 5 * time.Second})
	t.Cleanup(deliveries.CloseIdleConnections)
	engine := delivery.New(delivery.Config{Store: st, Client: deliveries, Timeout: 5 * time.Second})
	cfg := api.Config{Store: st, AdminToken: adminToken, AllowHTTP: true, Tester: engine}
	b := &bundle{store: st, public: httptest.NewServer(api.NewPublic(cfg))}
	t.Cleanup(b.public.Close)
	admin := httptest.NewServer(api.NewAdmin(cfg))
	t.Cleanup(admin.Close)

	b.admin = newClient(t, admin.URL+"/", adminToken) // a trailing slash is fine
	b.acct, err = b.admin.CreateAccount(t.Context(), "Acme <Co>")
	if err != nil {
		t.Fatalf("CreateAccount: %v", err)
	}
	if b.acct.ID <= 0 || b.acct.Name != "Acme <Co>" || !strings.HasPrefix(b.acct.APIKey, "nhk_") {
		t.Fatalf("CreateAccount = %+v", b.acct)
	}
	b.pub = newClient(t, b.public.URL, b.acct.APIKey)
	return b
}

// newClient gives each client its own transport so that its idle
// connections can be closed before goleak looks.
func newClient(t *testing.T, base, token string) *client.Client {
	tr := &http.Transport{}
	t.Cleanup(tr.CloseIdleConnections)
	return client.New(base, token, client.WithHTTPClient(&http.Client{Transport: tr, Timeout: 10 * time.Second}))
}

// receiver is a webhook endpoint that verifies signatures with secret and
// answers status.
type receiver struct {
	*httptest.Server
	secret   atomic.Value // string
	status   atomic.Int32
	verified atomic.Int32
}

func newReceiver(t *testing.T) *receiver {
	r := &receiver{}
	r.secret.Store("")
	r.status.Store(http.StatusOK)
	r.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		body, _ := io.ReadAll(req.Body)
		v := webhook.Verifier{Secrets: []string{r.secret.Load().(string)}}
		if v.Verify(req.Header, body) == nil {
			r.verified.Add(1)
		}
		w.WriteHeader(int(r.status.Load()))
		io.WriteString(w, "seen")
	}))
	t.Cleanup(r.Close)
	return r
}

func ptr[T any](v T) *T { return &v }

func TestWebhookLifecycle(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := t.Context()
	rcv := newReceiver(t)

	created, err := b.pub.CreateWebhook(ctx, client.CreateWebhookParams{
		URL: rcv.URL + "/hook", Events: []string{client.EventJobCompleted, client.EventJobCompleted}, Description: "main <hook>",
	})
	if err != nil {
		t.Fatalf("CreateWebhook: %v", err)
	}
	if created.ID <= 0 || created.URL != rcv.URL+"/hook" || !slices.Equal(created.Events, []string{"job.completed"}) ||
		created.Status != client.StatusActive || created.Description != "main <hook>" ||
		!strings.HasPrefix(created.SecretKey, "whsec_") || created.CreatedAt.IsZero() || created.DisabledReason != "" {
		t.Fatalf("CreateWebhook = %+v", created)
	}

	got, err := b.pub.GetWebhook(ctx, created.ID)
	if err != nil || got.ID != created.ID || got.URL != created.URL || !got.CreatedAt.Equal(created.CreatedAt) {
		t.Fatalf("GetWebhook = %+v, %v", got, err)
	}

	up, err := b.pub.UpdateWebhook(ctx, created.ID, client.UpdateWebhookParams{
		Events: []string{client.EventJobFailed, client.EventJobCompleted}, Status: ptr(client.StatusDisabled),
	})
	if err != nil || up.Status != client.StatusDisabled || up.DisabledReason != "disabled by the account" ||
		!slices.Equal(up.Events, []string{"job.failed", "job.completed"}) || up.Description != "main <hook>" {
		t.Fatalf("UpdateWebhook (disable) = %+v, %v", up, err)
	}
	up, err = b.pub.UpdateWebhook(ctx, created.ID, client.UpdateWebhookParams{Status: ptr(client.StatusActive), Description: ptr("")})
	if err != nil || up.Status != client.StatusActive || up.DisabledReason != "" || up.Description != "" {
		t.Fatalf("UpdateWebhook (enable) = %+v, %v", up, err)
	}

	// The test call signs with the secret of the create answer.
	rcv.secret.Store(created.SecretKey)
	td, err := b.pub.TestWebhook(ctx, created.ID)
	if err != nil {
		t.Fatalf("TestWebhook: %v", err)
	}
	if !td.Succeeded || td.DeliveryID <= 0 || !strings.HasPrefix(td.EventID, "evt_") || td.Attempt.Number != 1 ||
		td.Attempt.ResponseStatus != 200 || td.Attempt.ResponseBody != "seen" || td.Attempt.RemoteAddress == "" ||
		td.Attempt.Error != "" || rcv.verified.Load() != 1 {
		t.Fatalf("TestWebhook = %+v (verified %d)", td, rcv.verified.Load())
	}
	if i := slices.IndexFunc(td.Attempt.RequestHeaders, func(h client.Header) bool { return h.Name == webhook.HeaderEvent }); i < 0 ||
		td.Attempt.RequestHeaders[i].Value != "ping" {
		t.Fatalf("request headers of the ping: %+v", td.Attempt.RequestHeaders)
	}

	// Rotation with the defaults (no body), then with a chosen secret and
	// no overlap; deliveries verify with the newest secret.
	rot, err := b.pub.RotateSecret(ctx, created.ID, nil)
	if err != nil || !strings.HasPrefix(rot.SecretKey, "whsec_") || rot.SecretKey == created.SecretKey ||
		rot.PreviousSecretExpiresAt == nil || time.Until(*rot.PreviousSecretExpiresAt) < 23*time.Hour || rot.ID != created.ID {
		t.Fatalf("RotateSecret(nil) = %+v, %v", rot, err)
	}
	rot, err = b.pub.RotateSecret(ctx, created.ID, &client.RotateSecretParams{SecretKey: "the-chosen-secret", OverlapSeconds: ptr[int64](0)})
	if err != nil || rot.SecretKey != "the-chosen-secret" || rot.PreviousSecretExpiresAt != nil {
		t.Fatalf("RotateSecret(no overlap) = %+v, %v", rot, err)
	}
	rcv.secret.Store("the-chosen-secret")
	if td, err := b.pub.TestWebhook(ctx, created.ID); err != nil || !td.Succeeded || rcv.verified.Load() != 2 {
		t.Fatalf("TestWebhook after rotation = %+v, %v (verified %d)", td, err, rcv.verified.Load())
	}

	if err := b.pub.DeleteWebhook(ctx, created.ID); err != nil {
		t.Fatalf("DeleteWebhook: %v", err)
	}
	_, err = b.pub.GetWebhook(ctx, created.ID)
	wantError(t, err, http.StatusNotFound, "not_found", "")
}

func TestDeliveryHistory(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := t.Context()
	rcv := newReceiver(t)
	wh, err := b.pub.CreateWebhook(ctx, client.CreateWebhookParams{URL: rcv.URL, Events: []string{client.EventJobCompleted, client.EventJobFailed}, SecretKey: "history-secret"})
	if err != nil {
		t.Fatal(err)
	}
	rcv.secret.Store("history-secret")

	// One job event: a pending delivery (the engine is not running).
	res, err := b.admin.PublishEvent(ctx, client.JobEvent{
		AccountID: b.acct.ID, Event: client.EventJobCompleted, TaskID: "task_1", TaskType: "image",
		Data: json.RawMessage(`{"url":"https://cdn.example.com/1.png","credits_charged":6}`), OccurredAt: time.Date(2024, 12, 23, 10, 0, 0, 0, time.UTC),
	})
	if err != nil || !strings.HasPrefix(res.EventID, "evt_") || res.Deliveries != 1 || res.Duplicate {
		t.Fatalf("PublishEvent = %+v, %v", res, err)
	}
	// Two pings: one succeeds, one fails.
	okPing, err := b.pub.TestWebhook(ctx, wh.ID)
	if err != nil || !okPing.Succeeded {
		t.Fatalf("TestWebhook = %+v, %v", okPing, err)
	}
	rcv.status.Store(http.StatusInternalServerError)
	failedPing, err := b.pub.TestWebhook(ctx, wh.ID)
	if err != nil || failedPing.Succeeded || failedPing.Attempt.ResponseStatus != 500 || failedPing.Attempt.Error != "HTTP 500" {
		t.Fatalf("failing TestWebhook = %+v, %v", failedPing, err)
	}

	all, err := b.pub.ListDeliveries(ctx, wh.ID, client.ListDeliveriesParams{})
	if err != nil || len(all.Items) != 3 || all.NextCursor != "" {
		t.Fatalf("ListDeliveries = %+v, %v", all, err)
	}
	if all.Items[0].ID != failedPing.DeliveryID || all.Items[2].EventID != res.EventID {
		t.Fatalf("deliveries are not newest first: %+v", all.Items)
	}
	pending := all.Items[2]
	if pending.Status != client.DeliveryPending || pending.NextAttemptAt == nil || pending.Event != client.EventJobCompleted ||
		pending.WebhookID != wh.ID || pending.AttemptCount != 0 {
		t.Fatalf("the published event's delivery: %+v", pending)
	}

	pings, err := b.pub.ListDeliveries(ctx, wh.ID, client.ListDeliveriesParams{
		Event: client.EventPing, Status: client.DeliveryFailed, Since: time.Now().Add(-time.Hour), Until: time.Now().Add(time.Hour),
	})
	if err != nil || len(pings.Items) != 1 || pings.Items[0].ID != failedPing.DeliveryID || pings.Items[0].LastError != "HTTP 500" {
		t.Fatalf("ListDeliveries(failed pings) = %+v, %v", pings, err)
	}
	none, err := b.pub.ListDeliveries(ctx, wh.ID, client.ListDeliveriesParams{Since: time.Now().Add(time.Hour)})
	if err != nil || len(none.Items) != 0 {
		t.Fatalf("ListDeliveries(since the future) = %+v, %v", none, err)
	}

	// The events API: the published event (pings are not events), its
	// payload the bytes its delivery's detail shows, by task and by id.
	events, err := b.pub.ListEvents(ctx, client.ListEventsParams{TaskID: "task_1"})
	if err != nil || len(events.Items) != 1 || events.NextCursor != "" {
		t.Fatalf("ListEvents = %+v, %v", events, err)
	}
	ev := events.Items[0]
	pendingDetail, err := b.pub.GetDelivery(ctx, pending.ID)
	if err != nil || ev.ID != res.EventID || ev.Event != client.EventJobCompleted || ev.TaskType != "image" ||
		ev.Payload == "" || ev.Payload != pendingDetail.Payload || ev.CreatedAt.IsZero() ||
		len(ev.Deliveries) != 1 || ev.Deliveries[0] != (client.EventDelivery{EndpointID: wh.ID, DeliveryID: pending.ID, Status: client.DeliveryPending}) {
		t.Fatalf("event %+v (delivery detail %+v, %v)", ev, pendingDetail, err)
	}
	if one, err := b.pub.GetEvent(ctx, res.EventID); err != nil || one.ID != res.EventID || one.Payload != ev.Payload {
		t.Fatalf("GetEvent = %+v, %v", one, err)
	}
	n := 0
	for e, err := range b.pub.Events(ctx, client.ListEventsParams{}) {
		if err != nil || e.ID != res.EventID {
			t.Fatalf("Events yielded %+v, %v", e, err)
		}
		n++
	}
	if n != 1 {
		t.Fatalf("Events yielded %d events, want the one published", n)
	}
	_, err = b.pub.GetEvent(ctx, "evt_missing")
	wantError(t, err, http.StatusNotFound, "not_found", "")

	detail, err := b.pub.GetDelivery(ctx, failedPing.DeliveryID)
	if err != nil || detail.Status != client.DeliveryFailed || len(detail.Attempts) != 1 ||
		detail.Attempts[0].ResponseStatus != 500 || detail.Attempts[0].ResponseBody != "seen" || detail.Attempts[0].StartedAt.IsZero() {
		t.Fatalf("GetDelivery = %+v, %v", detail, err)
	}

	retried, err := b.pub.RetryDelivery(ctx, okPing.DeliveryID)
	if err != nil || retried.ID != okPing.DeliveryID || retried.Status != client.DeliveryPending || retried.NextAttemptAt == nil {
		t.Fatalf("RetryDelivery = %+v, %v", retried, err)
	}
	// Recover leaves test pings alone (a ping is a one-off check, never
	// retried but on request): the only failed delivery is one.
	queued, err := b.pub.Recover(ctx, wh.ID, client.RecoverParams{Since: time.Now().Add(-time.Hour)})
	if err != nil || queued != 0 {
		t.Fatalf("Recover = %d, %v; want none: the only failed delivery is a ping", queued, err)
	}
	if d, err := b.pub.GetDelivery(ctx, failedPing.DeliveryID); err != nil || d.Status != client.DeliveryFailed {
		t.Fatalf("the failed ping after a recover: %+v, %v", d, err)
	}
	_, err = b.pub.Recover(ctx, wh.ID, client.RecoverParams{Since: time.Now().Add(-time.Hour), Until: time.Now().Add(-2 * time.Hour)})
	wantError(t, err, http.StatusUnprocessableEntity, "validation_error", "until")
}

func TestPublishing(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := t.Context()
	rcv := newReceiver(t)
	if _, err := b.pub.CreateWebhook(ctx, client.CreateWebhookParams{URL: rcv.URL, Events: []string{client.EventJobFailed}}); err != nil {
		t.Fatal(err)
	}
	ev := client.JobEvent{AccountID: b.acct.ID, Event: client.EventJobFailed, TaskID: "task_f", TaskType: "video"}
	first, err := b.admin.PublishEvent(ctx, ev)
	if err != nil || first.Deliveries != 1 || first.Duplicate {
		t.Fatalf("PublishEvent = %+v, %v", first, err)
	}
	again, err := b.admin.PublishEvent(ctx, ev)
	if err != nil || !again.Duplicate || again.EventID != first.EventID {
		t.Fatalf("the same job event again = %+v, %v", again, err)
	}

	results, err := b.admin.PublishBatch(ctx, []client.JobEvent{
		ev,
		{AccountID: b.acct.ID, Event: client.EventJobCompleted, TaskID: "task_c", TaskType: "image"}, // nobody subscribed
		{AccountID: b.acct.ID, Event: client.EventJobFailed, TaskID: "task_g", TaskType: "image", IdempotencyKey: "k-1"},
	})
	if err != nil || len(results) != 3 || !results[0].Duplicate || results[0].EventID != first.EventID ||
		results[1].Deliveries != 0 || results[2].Deliveries != 1 || results[2].Duplicate {
		t.Fatalf("PublishBatch = %+v, %v", results, err)
	}

	// A refused batch names its first bad field and lists every bad item.
	_, err = b.admin.PublishBatch(ctx, []client.JobEvent{
		{AccountID: b.acct.ID, Event: client.EventJobFailed, TaskID: "ok", TaskType: "image"},
		{AccountID: b.acct.ID, Event: "job.done", TaskID: "t", TaskType: "image"},
		{AccountID: b.acct.ID, Event: client.EventJobFailed, TaskID: "t", TaskType: "image", Data: json.RawMessage(`{"id":9007199254740993}`)},
	})
	e := wantError(t, err, http.StatusUnprocessableEntity, "validation_error", "events[1].event")
	if len(e.Items) != 2 || e.Items[0].Index != 1 || e.Items[1].Index != 2 || e.Items[1].Field != "events[2].data.id" {
		t.Fatalf("refused items: %+v", e.Items)
	}
}

// TestPublishingEncodedJSON: PublishEventJSON and PublishBatchJSON send the
// caller's bytes as they are and answer as PublishEvent and PublishBatch
// do, refusals included; the caller's buffer may be reused at once.
func TestPublishingEncodedJSON(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := t.Context()
	rcv := newReceiver(t)
	wh, err := b.pub.CreateWebhook(ctx, client.CreateWebhookParams{URL: rcv.URL, Events: []string{client.EventJobCompleted}})
	if err != nil {
		t.Fatal(err)
	}
	event := func(dst []byte, task string) []byte {
		return fmt.Appendf(dst, `{"account_id":%d,"event":"job.completed","task_id":%q,"task_type":"image","data":{"n":1}}`, b.acct.ID, task)
	}
	buf := event(nil, "raw_1")
	first, err := b.admin.PublishEventJSON(ctx, buf)
	if err != nil || !strings.HasPrefix(first.EventID, "evt_") || first.Deliveries != 1 || first.Duplicate {
		t.Fatalf("PublishEventJSON = %+v, %v", first, err)
	}

	// The same buffer, reused for a batch: the first event again (a
	// duplicate) and a new one.
	buf = append(buf[:0], `{"events":[`...)
	buf = append(event(buf, "raw_1"), ',')
	buf = append(event(buf, "raw_2"), "]}"...)
	results, err := b.admin.PublishBatchJSON(ctx, buf)
	if err != nil || len(results) != 2 || !results[0].Duplicate || results[0].EventID != first.EventID ||
		results[1].Duplicate || results[1].Deliveries != 1 || results[1].EventID == first.EventID {
		t.Fatalf("PublishBatchJSON = %+v, %v", results, err)
	}
	page, err := b.pub.ListDeliveries(ctx, wh.ID, client.ListDeliveriesParams{})
	if err != nil || len(page.Items) != 2 {
		t.Fatalf("deliveries after both publishes: %+v, %v; want 2", page, err)
	}

	_, err = b.admin.PublishEventJSON(ctx, []byte(`{"account_id":1,"event":"job.done","task_id":"t","task_type":"image"}`))
	wantError(t, err, http.StatusUnprocessableEntity, "validation_error", "event")
	_, err = b.admin.PublishBatchJSON(ctx, fmt.Appendf(nil, `{"events":[{"account_id":%d,"event":"job.done","task_id":"t","task_type":"image"}]}`, b.acct.ID))
	if e := wantError(t, err, http.StatusUnprocessableEntity, "validation_error", "events[0].event"); len(e.Items) != 1 {
		t.Fatalf("refused items: %+v", e.Items)
	}
}

// TestRequestHeaders: every request carries the token, asks for JSON and
// names the client; only one with a body says it sends JSON. The values
// are made once per Client and shared by its requests, so two Clients and
// many requests must not mix them up.
func TestRequestHeaders(t *testing.T) {
	t.Parallel()
	type seen struct{ auth, accept, ua, ctype string }
	got := make(chan seen, 4)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got <- seen{r.Header.Get("Authorization"), r.Header.Get("Accept"), r.Header.Get("User-Agent"), r.Header.Get("Content-Type")}
		io.WriteString(w, `{"success":true,"data":{"id":1,"name":"n","api_key":"nhk_x"}}`)
	}))
	t.Cleanup(srv.Close)
	plain := newClient(t, srv.URL, "token-a")
	named := client.New(srv.URL, "token-b", client.WithUserAgent("platform/2"), client.WithHTTPClient(srv.Client()))
	for _, c := range []struct {
		call func() error
		want seen
	}{
		{func() error { return plain.Healthy(t.Context()) }, seen{"Bearer token-a", "application/json", "nanohook-go-client", ""}},
		{func() error { _, err := plain.CreateAccount(t.Context(), "n"); return err }, seen{"Bearer token-a", "application/json", "nanohook-go-client", "application/json"}},
		{func() error { _, err := named.PublishEventJSON(t.Context(), []byte(`{}`)); return err }, seen{"Bearer token-b", "application/json", "platform/2", "application/json"}},
		{func() error { return named.Healthy(t.Context()) }, seen{"Bearer token-b", "application/json", "platform/2", ""}},
	} {
		if err := c.call(); err != nil {
			t.Fatal(err)
		}
		if s := <-got; s != c.want {
			t.Errorf("headers %+v, want %+v", s, c.want)
		}
	}
}

func TestAPIKeys(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := t.Context()
	key, err := b.admin.CreateAPIKey(ctx, b.acct.ID)
	if err != nil || key.ID <= 0 || key.AccountID != b.acct.ID || !strings.HasPrefix(key.APIKey, "nhk_") || key.APIKey == b.acct.APIKey {
		t.Fatalf("CreateAPIKey = %+v, %v", key, err)
	}
	second := newClient(t, b.public.URL, key.APIKey)
	if _, err := second.ListWebhooks(ctx, client.PageParams{}); err != nil {
		t.Fatalf("the new key: %v", err)
	}
	if err := b.admin.DeleteAPIKey(ctx, b.acct.ID, key.ID); err != nil {
		t.Fatalf("DeleteAPIKey: %v", err)
	}
	_, err = second.ListWebhooks(ctx, client.PageParams{})
	wantError(t, err, http.StatusUnauthorized, "unauthorized", "")
	if _, err := b.pub.ListWebhooks(ctx, client.PageParams{}); err != nil {
		t.Fatalf("the first key after deleting the second: %v", err)
	}
	err = b.admin.DeleteAPIKey(ctx, b.acct.ID, key.ID)
	wantError(t, err, http.StatusNotFound, "not_found", "")
}

func TestErrors(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := t.Context()

	_, err := b.pub.CreateWebhook(ctx, client.CreateWebhookParams{URL: "http://127.0.0.1:9/x", Events: []string{"job.done"}})
	e := wantError(t, err, http.StatusUnprocessableEntity, "validation_error", "events")
	if !strings.Contains(e.Message, `"job.done"`) || !strings.Contains(e.Error(), "POST /api/v1/webhooks: 422 validation_error: events:") {
		t.Fatalf("message %q, Error() %q", e.Message, e.Error())
	}

	// Another account's endpoint is not found, never forbidden.
	wh, err := b.pub.CreateWebhook(ctx, client.CreateWebhookParams{URL: "http://127.0.0.1:9/x", Events: []string{client.EventJobCompleted}})
	if err != nil {
		t.Fatal(err)
	}
	other, err := b.admin.CreateAccount(ctx, "other")
	if err != nil {
		t.Fatal(err)
	}
	_, err = newClient(t, b.public.URL, other.APIKey).GetWebhook(ctx, wh.ID)
	wantError(t, err, http.StatusNotFound, "not_found", "")

	_, err = newClient(t, b.public.URL, "nhk_not-a-key").ListWebhooks(ctx, client.PageParams{})
	wantError(t, err, http.StatusUnauthorized, "unauthorized", "")
	_, err = newClient(t, b.public.URL, adminToken).CreateAccount(ctx, "x") // an admin route on the public listener
	wantError(t, err, http.StatusNotFound, "not_found", "")

	// Ids that cannot exist are refused before any request.
	_, err = b.pub.GetWebhook(ctx, 0)
	if err == nil || !strings.Contains(err.Error(), "webhook id") {
		t.Fatalf("GetWebhook(0) = %v", err)
	}
	if _, ok := errors.AsType[*client.Error](err); ok {
		t.Fatal("a refused id is reported as a server answer")
	}
}

// TestErrorsOutsideTheEnvelope covers answers the handlers cannot be made to
// give on demand: a 503 with Retry-After, and a proxy's page that is no
// envelope at all.
func TestErrorsOutsideTheEnvelope(t *testing.T) {
	t.Parallel()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/api/v1/webhooks/1":
			w.Header().Set("Retry-After", "7")
			w.WriteHeader(http.StatusServiceUnavailable)
			io.WriteString(w, `{"success":false,"error":{"code":"storage_unavailable","message":"storage is unavailable, retry shortly"}}`)
		case "/api/v1/webhooks/2":
			w.Header().Set("Retry-After", time.Now().Add(90*time.Second).UTC().Format(http.TimeFormat))
			w.WriteHeader(http.StatusTooManyRequests)
			io.WriteString(w, `{"success":false,"error":{"code":"rate_limited","message":"slow down"}}`)
		default:
			w.WriteHeader(http.StatusBadGateway)
			io.WriteString(w, "<html>502 Bad Gateway</html>")
		}
	}))
	defer srv.Close()
	c := newClient(t, srv.URL, "nhk_x")

	_, err := c.GetWebhook(t.Context(), 1)
	if e := wantError(t, err, http.StatusServiceUnavailable, "storage_unavailable", ""); e.RetryAfter != 7*time.Second {
		t.Fatalf("RetryAfter = %s, want 7s", e.RetryAfter)
	}
	_, err = c.GetWebhook(t.Context(), 2)
	if e := wantError(t, err, http.StatusTooManyRequests, "rate_limited", ""); e.RetryAfter < 80*time.Second || e.RetryAfter > 90*time.Second {
		t.Fatalf("RetryAfter from a date = %s, want about 90s", e.RetryAfter)
	}
	_, err = c.GetWebhook(t.Context(), 3)
	if e := wantError(t, err, http.StatusBadGateway, "", ""); !strings.Contains(e.Message, "502 Bad Gateway") || e.RetryAfter != 0 {
		t.Fatalf("non-envelope answer: %+v", e)
	}
}

func TestPagination(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := t.Context()
	var ids []int64
	for i := range 5 {
		wh, err := b.pub.CreateWebhook(ctx, client.CreateWebhookParams{URL: fmt.Sprintf("http://127.0.0.1:9/%d", i), Events: []string{client.EventJobCompleted}})
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, wh.ID)
	}

	page, err := b.pub.ListWebhooks(ctx, client.PageParams{Limit: 2})
	if err != nil || len(page.Items) != 2 || page.NextCursor == "" || page.Items[0].ID != ids[0] {
		t.Fatalf("first page = %+v, %v", page, err)
	}
	page, err = b.pub.ListWebhooks(ctx, client.PageParams{Limit: 2, Cursor: page.NextCursor})
	if err != nil || len(page.Items) != 2 || page.Items[0].ID != ids[2] {
		t.Fatalf("second page = %+v, %v", page, err)
	}
	page, err = b.pub.ListWebhooks(ctx, client.PageParams{Limit: 2, Cursor: page.NextCursor})
	if err != nil || len(page.Items) != 1 || page.NextCursor != "" || page.Items[0].ID != ids[4] {
		t.Fatalf("last page = %+v, %v", page, err)
	}

	var seen []int64
	for wh, err := range b.pub.Webhooks(ctx, 2) {
		if err != nil {
			t.Fatal(err)
		}
		seen = append(seen, wh.ID)
	}
	if !slices.Equal(seen, ids) {
		t.Fatalf("Webhooks iterated %v, want %v", seen, ids)
	}
	seen = seen[:0]
	for wh, err := range b.pub.Webhooks(ctx, 2) {
		if err != nil {
			t.Fatal(err)
		}
		if seen = append(seen, wh.ID); len(seen) == 3 {
			break
		}
	}
	if !slices.Equal(seen, ids[:3]) {
		t.Fatalf("stopping early gave %v", seen)
	}

	// An error is yielded once and ends the iteration.
	var errs int
	for _, err := range b.pub.Deliveries(ctx, ids[0], client.ListDeliveriesParams{PageParams: client.PageParams{Cursor: "not-a-cursor"}}) {
		if err == nil {
			t.Fatal("a bad cursor yielded a delivery")
		}
		wantError(t, err, http.StatusBadRequest, "invalid_request", "cursor")
		errs++
	}
	if errs != 1 {
		t.Fatalf("%d errors yielded, want 1", errs)
	}

	// Deliveries page newest first through the iterator too.
	var published []string
	for i := range 5 {
		res, err := b.admin.PublishEvent(ctx, client.JobEvent{AccountID: b.acct.ID, Event: client.EventJobCompleted, TaskID: fmt.Sprintf("t%d", i), TaskType: "image"})
		if err != nil {
			t.Fatal(err)
		}
		published = append(published, res.EventID)
	}
	slices.Reverse(published)
	var got []string
	for d, err := range b.pub.Deliveries(ctx, ids[2], client.ListDeliveriesParams{Event: client.EventJobCompleted, PageParams: client.PageParams{Limit: 2}}) {
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, d.EventID)
	}
	if !slices.Equal(got, published) {
		t.Fatalf("Deliveries iterated %v, want %v", got, published)
	}
}

func TestProbes(t *testing.T) {
	t.Parallel()
	b := setup(t)
	for name, c := range map[string]*client.Client{"public": b.pub, "admin": b.admin, "unauthenticated": newClient(t, b.public.URL, "")} {
		if err := c.Healthy(t.Context()); err != nil {
			t.Errorf("%s: Healthy: %v", name, err)
		}
		if err := c.Ready(t.Context()); err != nil {
			t.Errorf("%s: Ready: %v", name, err)
		}
	}
	// Storage gone: not ready, come back in a second; still alive.
	if err := b.store.Close(); err != nil {
		t.Fatal(err)
	}
	e := wantError(t, b.pub.Ready(t.Context()), http.StatusServiceUnavailable, "storage_unavailable", "")
	if e.RetryAfter != time.Second {
		t.Fatalf("RetryAfter = %s, want the server's 1s", e.RetryAfter)
	}
	if err := b.pub.Healthy(t.Context()); err != nil {
		t.Fatalf("Healthy without storage: %v", err)
	}
}

// TestContextCancels: every call takes a context, and a cancelled one stops
// the call without an answer.
func TestContextCancels(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if _, err := b.pub.ListWebhooks(ctx, client.PageParams{}); !errors.Is(err, context.Canceled) {
		t.Fatalf("ListWebhooks with a cancelled context = %v", err)
	}
}

// wantError checks that err is an *Error with this status, code and field.
func wantError(t *testing.T, err error, status int, code, field string) *client.Error {
	t.Helper()
	e, ok := errors.AsType[*client.Error](err)
	if !ok {
		t.Fatalf("error %v (%T) is not a *client.Error", err, err)
	}
	if e.StatusCode != status || e.Code != code || e.Field != field || e.Message == "" {
		t.Fatalf("error = %+v, want status %d, code %q, field %q", e, status, code, field)
	}
	return e
}
