package api

import (
	"context"
	"fmt"
	"net/http"
	"strconv"

	"github.com/nanohook/nanohook"
	"github.com/nanohook/nanohook/store"
)

// EventStore is what the events API needs of storage.
type EventStore interface {
	ListEvents(ctx context.Context, p store.ListEventsParams) ([]store.EventRecord, error)
	GetEventRecord(ctx context.Context, accountID int64, id string) (store.EventRecord, error)
}

// The customers' events API: the account's published events, newest
// first, each with the exact body its endpoints were sent and where it
// went, so that a receiver that missed callbacks can reconcile. Events are
// kept as long as the delivery history.

// defaultEventPageLimit is the page size of an events listing without
// limit: events carry their payloads, so pages are smaller by default.
const defaultEventPageLimit = 20

// eventPageBudget bounds the items of one page of events: the page ends
// early, with a next_cursor, once they would pass it (the first event is
// always there). An event is at most its payload (--max-payload-bytes,
// 64 KiB by default, escaped in JSON) and one delivery per endpoint of the
// account.
const eventPageBudget = 1 << 20

// eventJSON is the public form of a published event.
type eventJSON struct {
	ID       string             `json:"id"`
	Event    nanohook.EventType `json:"event"`
	TaskID   string             `json:"task_id"`
	TaskType string             `json:"task_type"`
	// Payload is the body every endpoint was sent, byte for byte, as a
	// JSON string.
	Payload    string              `json:"payload"`
	CreatedAt  string              `json:"created_at"`
	Deliveries []eventDeliveryJSON `json:"deliveries"`
}

// eventDeliveryJSON is where an event went: one endpoint's delivery.
type eventDeliveryJSON struct {
	EndpointID int64                   `json:"endpoint_id"`
	DeliveryID int64                   `json:"delivery_id"`
	Status     nanohook.DeliveryStatus `json:"status"`
}

func toEventJSON(e store.EventRecord) eventJSON {
	out := eventJSON{
		ID: e.ID, Event: e.Type, TaskID: e.TaskID, TaskType: e.TaskType,
		Payload: string(e.Payload), CreatedAt: formatTime(e.CreatedAt),
		Deliveries: make([]eventDeliveryJSON, len(e.Deliveries)),
	}
	for i, d := range e.Deliveries {
		out.Deliveries[i] = eventDeliveryJSON{EndpointID: d.EndpointID, DeliveryID: d.DeliveryID, Status: d.Status}
	}
	return out
}

// eventScope names the event list of an account in its cursors.
func eventScope(accountID int64) string { return "e" + strconv.FormatInt(accountID, 10) }

// listEvents answers one page of the account's events, newest first.
func (s *server) listEvents(w http.ResponseWriter, r *http.Request) error {
	acct := accountID(r.Context())
	q := r.URL.Query()
	pg, err := parsePage(q, eventScope(acct))
	if err != nil {
		return err
	}
	if !q.Has("limit") {
		pg.limit = defaultEventPageLimit
	}
	p := store.ListEventsParams{AccountID: acct, BeforePK: pg.afterID, Limit: pg.limit + 1}
	for _, name := range []string{"event", "task_id", "since", "until"} {
		if err := onlyOnce(q, name); err != nil {
			return err
		}
	}
	if q.Has("event") {
		typ, err := nanohook.ParseEventType("event", q.Get("event"))
		if err != nil || typ == nanohook.EventPing {
			return badParam("event", "unknown event %q (want job.completed or job.failed)", q.Get("event"))
		}
		p.Type = typ
	}
	if err := parseTaskAndTimes(q, &p.TaskID, &p.Since, &p.Until); err != nil {
		return err
	}
	es, err := s.store.ListEvents(r.Context(), p)
	if err != nil {
		return err
	}
	out, next, err := budgetPageOf(es, pg.limit, eventPageBudget, eventScope(acct),
		func(e store.EventRecord) int64 { return e.PK }, toEventJSON)
	if err != nil {
		return fmt.Errorf("api: encode events: %w", err)
	}
	s.respondPage(w, r, out, next)
	return nil
}

// maxEventIDLen bounds the event id of a lookup: nanohook's ids are 30
// bytes (evt_ and 26 characters); a longer one cannot name an event, so
// it is 404 without a query.
const maxEventIDLen = 64

// getEvent answers one published event of the account.
func (s *server) getEvent(w http.ResponseWriter, r *http.Request) error {
	id := r.PathValue("id")
	if len(id) > maxEventIDLen {
		return errNotFound
	}
	e, err := s.store.GetEventRecord(r.Context(), accountID(r.Context()), id)
	if err != nil {
		return err
	}
	s.respond(w, r, http.StatusOK, toEventJSON(e))
	return nil
}
