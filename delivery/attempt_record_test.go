package delivery_test

import (
	"context"
	"net/http"
	"slices"
	"testing"
	"time"

	"github.com/nanohook/nanohook"
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
