package api

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/nanohook/nanohook"
	"github.com/nanohook/nanohook/store"
	"github.com/nanohook/nanohook/webhook"
)

// TestDeliveryStore is what the test call needs: the endpoint checked, then
// a ping delivery to it written and leased to this node.
type TestDeliveryStore interface {
	GetEndpoint(ctx context.Context, accountID, id int64) (nanohook.Endpoint, error)
	CreateTestDelivery(ctx context.Context, p store.TestDeliveryParams) (store.ClaimedDelivery, error)
}

// testLease is how long a test delivery is held by the call making it; the
// attempt itself is bounded by the delivery timeout, well below this.
const testLease = 5 * time.Minute

// testDeliveryJSON is the answer of a test call: the delivery it created
// (visible in the history like any other) and its one attempt.
type testDeliveryJSON struct {
	DeliveryID int64       `json:"delivery_id"`
	EventID    string      `json:"event_id"`
	Succeeded  bool        `json:"succeeded"`
	Attempt    attemptJSON `json:"attempt"`
}

// testWebhook sends a signed ping to one endpoint now and answers with the
// attempt, so a customer can check URL, TLS and signature verification
// before real events flow. It works on disabled endpoints too (to check a
// fix before re-enabling). The ping has the shape of every delivery, with
// event and status "ping".
//
// Each call takes one of the account's test calls (accountLimiter) before
// anything is looked up or written, whatever its outcome; beyond them it
// answers 429 with Retry-After. The engine answers rate_limited too (429)
// when the endpoint already has its most attempts in flight.
func (s *server) testWebhook(w http.ResponseWriter, r *http.Request) error {
	id, err := pathID(r, "id")
	if err != nil {
		return err
	}
	if secs, ok := s.testLimit.take(accountID(r.Context())); !ok {
		w.Header().Set("Retry-After", strconv.Itoa(secs))
		return s.testLimit.refusal()
	}
	// Another account's id is a 404 before the endpoint's slots are
	// touched: nobody may take those of an endpoint that is not theirs.
	if _, err := s.store.GetEndpoint(r.Context(), accountID(r.Context()), id); err != nil {
		return err
	}
	if s.tester == nil {
		return nanohook.Errorf(nanohook.CodeUnavailable, "", "the delivery engine is not running here")
	}
	release, err := s.tester.ReserveTest(accountID(r.Context()), id)
	if err != nil {
		return err
	}
	defer release()
	now := s.now()
	eventID := nanohook.NewEventID()
	data, _ := json.Marshal(struct {
		WebhookID int64  `json:"webhook_id"`
		Message   string `json:"message"`
	}{id, "This is a test delivery from nanohook."})
	taskID := "ping_" + strings.TrimPrefix(eventID, "evt_")
	payload, err := webhook.EncodePayload(webhook.Payload{
		Event: string(nanohook.EventPing), TaskID: taskID, TaskType: "ping", Status: "ping",
		Data: data, Timestamp: now.UTC().Format(time.RFC3339),
	})
	if err != nil {
		return fmt.Errorf("api: encode ping: %w", err)
	}
	claim, err := s.store.CreateTestDelivery(r.Context(), store.TestDeliveryParams{
		AccountID: accountID(r.Context()), EndpointID: id, EventID: eventID,
		TaskID: taskID, TaskType: "ping", Payload: payload,
		Now: now, LeaseUntil: now.Add(testLease), Owner: "api/test",
	})
	if err != nil {
		return err
	}
	attempt, err := s.tester.AttemptNow(r.Context(), claim)
	if err != nil {
		return err
	}
	s.respond(w, r, http.StatusOK, testDeliveryJSON{
		DeliveryID: claim.DeliveryID,
		EventID:    eventID,
		Succeeded:  attempt.ResponseStatus >= 200 && attempt.ResponseStatus < 300,
		Attempt:    toAttemptJSON(attempt),
	})
	return nil
}
