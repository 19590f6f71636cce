package api

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/nanohook/nanohook"
	"github.com/nanohook/nanohook/store"
)

// DeliveryStore is what the delivery routes need: an endpoint's history,
// one delivery with its attempts, and retries and recovers.
type DeliveryStore interface {
	ListDeliveries(ctx context.Context, p store.ListDeliveriesParams) ([]nanohook.Delivery, error)
	GetDelivery(ctx context.Context, accountID, id int64) (nanohook.Delivery, []nanohook.Attempt, error)
	RetryDelivery(ctx context.Context, accountID, id int64, now time.Time) (nanohook.Delivery, error)
	RecoverDeliveries(ctx context.Context, p store.RecoverParams) (int, error)
}

// The customers' delivery-history calls: an endpoint's deliveries, one
// delivery with its attempts, a manual retry, and recovering an endpoint's
// failed deliveries.

// defaultDeliveryPageLimit is the page size of a delivery listing without
// limit; history pages are heavier than endpoint pages, so it is smaller.
const defaultDeliveryPageLimit = 50

// Byte budgets of the delivery history answers. A customer may retry one
// delivery without end and a receiver chooses what each attempt keeps (up
// to nanohook.MaxStoredResponseBody, MaxStoredError and MaxStoredLocation
// bytes, which JSON may escape to six bytes each), so these answers are
// bounded by size as well as by count.
const (
	// deliveryPageBudget bounds the items of one page of deliveries: the
	// page ends early, with a next_cursor, once they would pass it. One
	// delivery is at most about 7 KiB (its last_error escaped) and an
	// ordinary one about 400 bytes, so a page of 100 ordinary deliveries
	// is never cut and no page passes about 136 KiB.
	deliveryPageBudget = 128 << 10
	// attemptsBudget bounds the attempts of a delivery's detail: the
	// newest that fit are shown, the newest always. One attempt is at most
	// about 44 KiB, so the attempts stay under 64 KiB; the detail adds the
	// payload, which publish bounds (--max-payload-bytes, escaped in JSON).
	attemptsBudget = 48 << 10
)

// recoverBackgroundLimit bounds a background recover; a range too large to
// finish in it is finished by calling recover again.
const recoverBackgroundLimit = 10 * time.Minute

// deliveryJSON is the public form of a delivery.
type deliveryJSON struct {
	ID            int64                   `json:"id"`
	WebhookID     int64                   `json:"webhook_id"`
	EventID       string                  `json:"event_id"`
	Event         nanohook.EventType      `json:"event"`
	Status        nanohook.DeliveryStatus `json:"status"`
	AttemptCount  int                     `json:"attempt_count"`   // attempts made so far
	NextAttemptAt *string                 `json:"next_attempt_at"` // null unless pending
	LastError     *string                 `json:"last_error"`
	CreatedAt     string                  `json:"created_at"`
	UpdatedAt     string                  `json:"updated_at"`
}

func toDeliveryJSON(d nanohook.Delivery) deliveryJSON {
	out := deliveryJSON{
		ID:           d.ID,
		WebhookID:    d.EndpointID,
		EventID:      d.EventID,
		Event:        d.EventType,
		Status:       d.Status,
		AttemptCount: d.Attempts,
		CreatedAt:    formatTime(d.CreatedAt),
		UpdatedAt:    formatTime(d.UpdatedAt),
	}
	if d.Status == nanohook.DeliveryPending {
		next := formatTime(d.NextAttemptAt)
		out.NextAttemptAt = &next
	}
	if d.LastError != "" {
		out.LastError = &d.LastError
	}
	return out
}

// deliveryDetailJSON is one delivery with its newest attempts, oldest
// first: at most store.MaxDetailAttempts and attemptsBudget bytes of them;
// attempt_count says how many were made. The list may hold more entries
// than attempt_count: an attempt recorded after its lease had expired (and
// the delivery was claimed again) is history too. Attempts are encoded
// attemptJSON.
type deliveryDetailJSON struct {
	deliveryJSON
	// Payload is the body every attempt sent, byte for byte (the event's
	// canonical JSON), as a JSON string: with an attempt's timestamp a
	// receiver can recompute the signature it got.
	Payload  string            `json:"payload"`
	Attempts []json.RawMessage `json:"attempts"`
}

// attemptJSON is one HTTP request made for a delivery and what came back.
// Members are added here as attempts record more; existing ones keep their
// meaning.
type attemptJSON struct {
	Number         int          `json:"number"`
	StartedAt      string       `json:"started_at"`
	DurationMS     int64        `json:"duration_ms"`
	RequestHeaders []headerJSON `json:"request_headers"` // as sent, in order; the body is the event's payload
	RemoteAddress  *string      `json:"remote_address"`  // "ip:port" connected to; null: no connection
	ResponseStatus *int         `json:"response_status"` // null: no response arrived
	ResponseBody   string       `json:"response_body"`   // the first 4 KiB
	Location       *string      `json:"location"`        // of a 3xx, so the URL can be fixed
	Error          *string      `json:"error"`
}

// headerJSON is one request header an attempt sent. Signature headers are
// shown: they are HMACs of the payload, not the secret.
type headerJSON struct {
	Name  string `json:"name"`
	Value string `json:"value"`
}

func toAttemptJSON(a nanohook.Attempt) attemptJSON {
	out := attemptJSON{
		Number:       a.Number,
		StartedAt:    formatTime(a.StartedAt),
		DurationMS:   a.Duration.Milliseconds(),
		ResponseBody: a.ResponseBody,
		// Always an array: attempts recorded before headers were kept show
		// none.
		RequestHeaders: make([]headerJSON, len(a.RequestHeaders)),
	}
	for i, h := range a.RequestHeaders {
		out.RequestHeaders[i] = headerJSON{Name: h.Name, Value: h.Value}
	}
	if a.RemoteAddr != "" {
		out.RemoteAddress = &a.RemoteAddr
	}
	if a.ResponseStatus != 0 {
		out.ResponseStatus = &a.ResponseStatus
	}
	if a.Location != "" {
		out.Location = &a.Location
	}
	if a.Error != "" {
		out.Error = &a.Error
	}
	return out
}

// badParam is the 400 of a malformed query parameter, naming it.
func badParam(name, format string, args ...any) error {
	return nanohook.Errorf(nanohook.CodeInvalidRequest, name, name+": "+format, args...)
}

// parseDeliveryFilters reads status, event, task_id, since and until of a
// delivery listing into p.
func parseDeliveryFilters(q url.Values, p *store.ListDeliveriesParams) error {
	for _, name := range []string{"status", "event", "task_id", "since", "until"} {
		if err := onlyOnce(q, name); err != nil {
			return err
		}
	}
	if q.Has("status") {
		switch st := nanohook.DeliveryStatus(q.Get("status")); st {
		case nanohook.DeliveryPending, nanohook.DeliverySucceeded, nanohook.DeliveryFailed, nanohook.DeliveryCancelled:
			p.Status = st
		default:
			return badParam("status", "unknown status %q (want pending, succeeded, failed or cancelled)", q.Get("status"))
		}
	}
	if q.Has("event") {
		switch ev := nanohook.EventType(q.Get("event")); ev {
		case nanohook.EventJobCompleted, nanohook.EventJobFailed, nanohook.EventPing:
			p.Event = ev
		default:
			return badParam("event", "unknown event %q (want job.completed, job.failed or ping)", q.Get("event"))
		}
	}
	return parseTaskAndTimes(q, &p.TaskID, &p.Since, &p.Until)
}

// parseTaskAndTimes reads the task_id, since and until filters that the
// delivery and event listings share (each given at most once: the caller
// checks).
func parseTaskAndTimes(q url.Values, task *string, since, until *time.Time) error {
	if q.Has("task_id") {
		// A task id as publish takes it; a bad one is a bad query (400),
		// not a bad body.
		if err := nanohook.ValidateLine("task_id", q.Get("task_id"), nanohook.MaxTaskIDLen); err != nil {
			return badParam("task_id", "%s", strings.TrimPrefix(err.Error(), "task_id: "))
		}
		*task = q.Get("task_id")
	}
	for _, f := range []struct {
		name string
		dst  *time.Time
	}{{"since", since}, {"until", until}} {
		if !q.Has(f.name) {
			continue
		}
		v := q.Get(f.name)
		t, err := time.Parse(time.RFC3339, v)
		if err != nil {
			// "+00:00" typed into a URL: a query reads '+' as a space.
			if strings.Contains(v, " ") {
				if _, err := time.Parse(time.RFC3339, strings.ReplaceAll(v, " ", "+")); err == nil {
					return badParam(f.name, "%q has a space where its offset's '+' was: a '+' in a query string means a space, so encode it as %%2B (%s=%s) or give the time in UTC with Z (such as 2024-12-23T10:00:00Z)",
						v, f.name, strings.ReplaceAll(v, " ", "%2B"))
				}
			}
			return badParam(f.name, "must be an RFC 3339 time such as 2024-12-23T10:00:00Z")
		}
		*f.dst = t
	}
	return nil
}

// listDeliveries answers one page of an endpoint's deliveries, newest
// first. The cursor is the last delivery id of the previous page.
func (s *server) listDeliveries(w http.ResponseWriter, r *http.Request) error {
	id, err := pathID(r, "id")
	if err != nil {
		return err
	}
	q := r.URL.Query()
	pg, err := parsePage(q, deliveryScope(accountID(r.Context()), id))
	if err != nil {
		return err
	}
	if !q.Has("limit") {
		pg.limit = defaultDeliveryPageLimit
	}
	p := store.ListDeliveriesParams{
		AccountID:  accountID(r.Context()),
		EndpointID: id,
		BeforeID:   pg.afterID,
		Limit:      pg.limit + 1, // one more tells whether another page follows
	}
	if err := parseDeliveryFilters(q, &p); err != nil {
		return err
	}
	ds, err := s.store.ListDeliveries(r.Context(), p)
	if err != nil {
		return err
	}
	out, next, err := budgetPageOf(ds, pg.limit, deliveryPageBudget, deliveryScope(accountID(r.Context()), id),
		func(d nanohook.Delivery) int64 { return d.ID }, toDeliveryJSON)
	if err != nil {
		return fmt.Errorf("api: encode deliveries: %w", err)
	}
	s.respondPage(w, r, out, next)
	return nil
}

// getDelivery answers one delivery of the account with its newest
// attempts (see deliveryDetailJSON).
func (s *server) getDelivery(w http.ResponseWriter, r *http.Request) error {
	id, err := pathID(r, "id")
	if err != nil {
		return err
	}
	d, attempts, err := s.store.GetDelivery(r.Context(), accountID(r.Context()), id)
	if err != nil {
		return err
	}
	out := deliveryDetailJSON{deliveryJSON: toDeliveryJSON(d), Payload: string(d.Payload)}
	if out.Attempts, err = newestAttempts(attempts, attemptsBudget); err != nil {
		return fmt.Errorf("api: encode attempts: %w", err)
	}
	s.respond(w, r, http.StatusOK, out)
	return nil
}

// newestAttempts encodes the newest of attempts (ordered by number) whose
// JSON fits in budget bytes, the newest always, and returns them oldest
// first.
func newestAttempts(attempts []nanohook.Attempt, budget int) ([]json.RawMessage, error) {
	var buf bytes.Buffer
	enc := newAnswerEncoder(&buf)
	var ends []int
	for i := len(attempts) - 1; i >= 0; i-- {
		if err := enc.Encode(toAttemptJSON(attempts[i])); err != nil {
			return nil, err
		}
		if len(ends) > 0 && buf.Len() > budget {
			break
		}
		ends = append(ends, buf.Len())
	}
	out := make([]json.RawMessage, len(ends))
	start := 0
	for i, end := range ends {
		out[len(ends)-1-i] = bytes.TrimSuffix(buf.Bytes()[start:end], []byte("\n"))
		start = end
	}
	return out, nil
}

// retryDelivery makes one delivery due now and wakes the engine. The answer
// is 202: the attempt itself happens afterwards.
func (s *server) retryDelivery(w http.ResponseWriter, r *http.Request) error {
	id, err := pathID(r, "id")
	if err != nil {
		return err
	}
	d, err := s.store.RetryDelivery(r.Context(), accountID(r.Context()), id, s.now())
	if err != nil {
		return withReenableHint(err)
	}
	s.wakeAfterRequeue()
	s.respond(w, r, http.StatusAccepted, toDeliveryJSON(d))
	return nil
}

// reenableHint follows nanohook.EndpointDisabledMessage in the API's
// answer: how to get past the conflict with this API.
const reenableHint = "; re-enable it with PATCH first"

// withReenableHint adds reenableHint to a refusal because the endpoint is
// disabled; other errors come back as they are.
func withReenableHint(err error) error {
	if e, ok := errors.AsType[*nanohook.Error](err); ok && e.Code == nanohook.CodeConflict && e.Message == nanohook.EndpointDisabledMessage {
		return &nanohook.Error{Code: e.Code, Field: e.Field, Message: e.Message + reenableHint}
	}
	return err
}

// recoverRequest is the body of POST /api/v1/webhooks/{id}/recover.
type recoverRequest struct {
	Since *string `json:"since"`
	Until *string `json:"until"`
}

// recoverJSON is the answer of a recovery.
type recoverJSON struct {
	Queued int `json:"queued"`
}

// recoverWebhook re-queues the endpoint's failed deliveries created in
// [since, until). It runs synchronously, in bounded steps of recoverStep
// deliveries (one short transaction each), and answers once all are queued:
// history is pruned after 30 days, so even a busy endpoint's failures are a
// few hundred thousand rows at most, seconds of work. The step's Now bound
// (see store.RecoverParams) keeps the loop finite even while the engine
// fails the re-queued deliveries again.
func (s *server) recoverWebhook(w http.ResponseWriter, r *http.Request) error {
	id, err := pathID(r, "id")
	if err != nil {
		return err
	}
	var req recoverRequest
	if _, err := decodeBody(w, r, s.maxBody, &req); err != nil {
		return err
	}
	now := s.now()
	if req.Since == nil {
		return nanohook.Invalid("since", "is required")
	}
	since, err := time.Parse(time.RFC3339, *req.Since)
	if err != nil {
		return nanohook.Invalid("since", "must be an RFC 3339 time such as 2024-12-23T10:00:00Z")
	}
	if since.After(now) {
		return nanohook.Invalid("since", "is in the future")
	}
	var until time.Time
	if req.Until != nil {
		if until, err = time.Parse(time.RFC3339, *req.Until); err != nil {
			return nanohook.Invalid("until", "must be an RFC 3339 time such as 2024-12-23T10:00:00Z")
		}
		if !until.After(since) {
			return nanohook.Invalid("until", "must be after since")
		}
	}
	p := store.RecoverParams{
		AccountID:  accountID(r.Context()),
		EndpointID: id,
		Since:      since,
		Until:      until,
		Now:        now,
		Limit:      s.recoverStep,
		CountOnly:  true,
	}
	// The answer is the count; the first step is re-queued before it, the
	// rest (ranges of more than one step) in the background, one bounded
	// transaction per step so deliveries are never held up behind it. If
	// the process stops meanwhile, calling recover again finishes the job:
	// it only ever picks failed deliveries.
	total, err := s.store.RecoverDeliveries(r.Context(), p)
	if err != nil {
		return withReenableHint(err)
	}
	p.CountOnly = false
	n, err := s.store.RecoverDeliveries(r.Context(), p)
	if err != nil {
		return withReenableHint(err)
	}
	if n > 0 {
		s.wakeAfterRequeue()
	}
	if n == s.recoverStep && !s.background.Go(r.Context(), func(ctx context.Context) { s.recoverRest(ctx, p) }) {
		// Only a process that is shutting down refuses; the answer's count
		// stands, and calling recover again finishes the job.
		s.log.LogAttrs(r.Context(), slog.LevelWarn, "api: shutting down, so the rest of a recover is not re-queued; calling recover again finishes it",
			slog.Int64("webhook_id", p.EndpointID))
	}
	s.respond(w, r, http.StatusAccepted, recoverJSON{Queued: total})
	return nil
}

// recoverRest re-queues the remaining steps of a recover in the background,
// until they are done, recoverBackgroundLimit passes or ctx is cancelled
// (the Background that runs it stops).
func (s *server) recoverRest(ctx context.Context, p store.RecoverParams) {
	ctx, cancel := context.WithTimeout(ctx, recoverBackgroundLimit)
	defer cancel()
	for {
		n, err := s.store.RecoverDeliveries(ctx, p)
		if err != nil {
			// A cancelled ctx is a shutdown, expected; a failure or the
			// time limit is not.
			level := slog.LevelError
			if errors.Is(ctx.Err(), context.Canceled) {
				level = slog.LevelWarn
			}
			s.log.LogAttrs(ctx, level, "api: background recover stopped; calling recover again finishes it",
				slog.Int64("webhook_id", p.EndpointID), slog.Any("error", err))
			return
		}
		if n > 0 {
			s.wakeAfterRequeue()
		}
		if n < p.Limit {
			return
		}
	}
}

// wakeAfterRequeue tells the delivery engine that work is due now, if one is wired.
func (s *server) wakeAfterRequeue() {
	if s.waker != nil {
		s.waker.Wake()
	}
}
