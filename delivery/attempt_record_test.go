package delivery_test

import (
	"context"
	"net/http"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/nanohook/nanohook"
	"github.com/nanohook/nanohook/delivery"
	"github.com/nanohook/nanohook/egress"
	"github.com/nanohook/nanohook/store"
	"github.com/nanohook/nanohook/webhook"
)

// TestAttemptRecordsRequestHeadersAndRemoteAddr checks that an attempt's
// history shows exactly the headers the receiver got, in the documented
// order (signature of the rotated-out secret included), and the address of
// the receiver's listener.
func TestAttemptRecordsRequestHeadersAndRemoteAddr(t *testing.T) {
	t.Parallel()
	b := setup(t, func(_ int, w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusNoContent) }, nil)
	// A rotation in its overlap, so X-Nano-Signature-Previous is sent too.
	if _, err := b.store.RotateSecret(context.Background(), store.RotateSecretParams{
		AccountID: b.account.ID, ID: b.endpoint.ID, Secret: "whsec_new-secret-value",
		PreviousValidUntil: time.Now().Add(time.Hour), Now: time.Now(),
	}); err != nil {
		t.Fatal(err)
	}
	b.publish(t, "task_headers")
	got := b.rcv.wait(t)
	_, atts := b.waitDelivery(t, 1, statusIs(nanohook.DeliverySucceeded))
	if len(atts) != 1 {
		t.Fatalf("%d attempts, want 1", len(atts))
	}
	a := atts[0]

	var names []string
	for _, h := range a.RequestHeaders {
		names = append(names, h.Name)
		if v := got.header.Values(h.Name); !slices.Equal(v, []string{h.Value}) {
			t.Errorf("recorded %s = %q, receiver saw %q", h.Name, h.Value, v)
		}
	}
	wantNames := []string{"Content-Type", "User-Agent", webhook.HeaderTimestamp, webhook.HeaderSignature,
		webhook.HeaderSignaturePrevious, webhook.HeaderEventID, webhook.HeaderEvent, webhook.HeaderDeliveryAttempt}
	if !slices.Equal(names, wantNames) {
		t.Errorf("recorded header names %q, want %q", names, wantNames)
	}
	// Everything else the receiver saw is added by net/http on the wire.
	for name := range got.header {
		if !slices.Contains(names, name) && name != "Content-Length" && name != "Accept-Encoding" {
			t.Errorf("receiver saw %s: %q, not recorded", name, got.header.Values(name))
		}
	}
	if want := b.rcv.srv.Listener.Addr().String(); a.RemoteAddr != want {
		t.Errorf("remote address %q, want the receiver's %q", a.RemoteAddr, want)
	}
}

// TestAttemptWithoutConnectionHasNoRemoteAddr checks that an attempt that
// never connected records no remote address, and still the headers it would
// have sent.
func TestAttemptWithoutConnectionHasNoRemoteAddr(t *testing.T) {
	t.Parallel()
	b := setup(t, nil, nil)
	b.rcv.srv.Close() // connection refused from now on
	b.publish(t, "task_refused")
	_, atts := b.waitDelivery(t, 1, statusIs(nanohook.DeliveryFailed))
	if len(atts) == 0 {
		t.Fatal("no attempts recorded")
	}
	for _, a := range atts {
		if a.Error == "" || a.RemoteAddr != "" || len(a.RequestHeaders) == 0 {
			t.Errorf("attempt %d: error %q, remote address %q, %d headers", a.Number, a.Error, a.RemoteAddr, len(a.RequestHeaders))
		}
	}
}

// internalDNS answers every lookup with one private address, as a
// company's internal DNS answers for its own names.
type internalDNS struct{}

func (internalDNS) LookupNetIP(context.Context, string, string) ([]netip.Addr, error) {
	return []netip.Addr{netip.MustParseAddr("10.20.30.40")}, nil
}

// TestAttemptErrorHidesResolvedAddress points an endpoint at a name that
// resolves to a private address: the attempt fails without connecting,
// and neither its error nor the delivery's last_error, which the customer
// reads, says what the name resolved to (issue 13, item 8: customers could
// map the internal DNS by registering names).
func TestAttemptErrorHidesResolvedAddress(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	st, acct := openWithAccount(t)
	if _, err := st.CreateEndpoint(ctx, store.CreateEndpointParams{AccountID: acct.ID, URL: "https://db.internal.test/hook",
		Secret: testSecret, Events: []nanohook.EventType{nanohook.EventJobCompleted}, Now: time.Now()}); err != nil {
		t.Fatal(err)
	}
	body, err := webhook.EncodePayload(webhook.Payload{Event: "job.completed", TaskID: "t", TaskType: "image",
		Status: "completed", Data: []byte(`{}`), Timestamp: "2024-12-23T10:00:00Z"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := st.PublishEvents(ctx, []store.PublishEventParams{{ID: nanohook.NewEventID(), AccountID: acct.ID,
		Type: nanohook.EventJobCompleted, TaskID: "t", TaskType: "image", Payload: body,
		OccurredAt: time.Now(), Now: time.Now()}}); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{}, 1)
	e := startEngine(t, delivery.Config{
		Store:    st,
		Client:   egress.NewClient(egress.Options{Resolver: internalDNS{}, Timeout: 2 * time.Second}),
		Schedule: []time.Duration{time.Hour}, Timeout: 2 * time.Second, PollInterval: time.Hour,
		OnComplete: func(store.CompleteParams) { done <- struct{}{} },
	})
	e.Wake()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("no attempt within 10 s")
	}
	d, atts, err := st.GetDelivery(ctx, acct.ID, 1)
	if err != nil || len(atts) != 1 {
		t.Fatalf("delivery 1: %d attempts, %v", len(atts), err)
	}
	for what, msg := range map[string]string{"error": atts[0].Error, "last_error": d.LastError} {
		if !strings.Contains(msg, `"db.internal.test" resolves to a private address`) || strings.Contains(msg, "10.20.30.40") {
			t.Errorf("%s = %q, want the refusal without the address", what, msg)
		}
	}
}
