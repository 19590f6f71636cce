package api

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/nanohook/nanohook"
	"github.com/nanohook/nanohook/store"
	"github.com/nanohook/nanohook/webhook"
)

// PublishStore is what publishing needs: the events and their deliveries
// written, and each account's endpoints counted to size the transactions
// (see planChunks).
type PublishStore interface {
	PublishEvents(ctx context.Context, events []store.PublishEventParams) ([]store.PublishResult, error)
	CountEndpoints(ctx context.Context, accountID int64) (int, error)
}

// publishRequest is one job event as the platform sends it, alone or as an
// item of a batch.
type publishRequest struct {
	AccountID      *int64          `json:"account_id"`
	Event          string          `json:"event"`
	TaskID         string          `json:"task_id"`
	TaskType       string          `json:"task_type"`
	Data           json.RawMessage `json:"data"`        // kept raw: canonicalised, never re-encoded by Go
	OccurredAt     *string         `json:"occurred_at"` // RFC 3339; absent: now
	IdempotencyKey *string         `json:"idempotency_key"`
}

// publishResultJSON is what happened to one published event.
type publishResultJSON struct {
	EventID    string `json:"event_id"`
	Deliveries int    `json:"deliveries"`
	Duplicate  bool   `json:"duplicate"`
}

// batchJSON is the answer of a batch publish: one result per item, in order.
type batchJSON struct {
	Results []publishResultJSON `json:"results"`
}

// publishEvent accepts one job event. The 202 is written only after the
// store committed the event and its deliveries, so nothing acknowledged can
// be lost.
func (s *server) publishEvent(w http.ResponseWriter, r *http.Request) error {
	data, err := readJSONBody(w, r, s.maxBody)
	if err != nil {
		return err
	}
	accounts := accountCache{}
	p, err := s.prepareEvent(r.Context(), data, "", accounts)
	if err != nil {
		return err
	}
	res, err := s.publish(r.Context(), []store.PublishEventParams{p}, accounts.fanout)
	if errors.Is(err, store.ErrNotFound) {
		return nanohook.Invalid("account_id", "no such account")
	}
	if err != nil {
		return err
	}
	s.respond(w, r, http.StatusAccepted, toPublishResultJSON(res[0]))
	return nil
}

// publishBatch accepts up to nanohook.MaxBatchEvents job events.
//
// A 2xx always means every event of the request is committed. If any item
// is refused, the answer is 422 (413 when the first refused item is too
// large to deliver) naming the first offending field, with every refused
// item listed in error.items, and nothing is stored. Otherwise the events
// are committed in transactions of bounded size (publish), and each gets
// its result, in order. An event published before (same idempotency key)
// is reported as a duplicate, so retrying a whole batch after a lost
// answer, or after a failure that left its first transactions committed,
// is safe.
func (s *server) publishBatch(w http.ResponseWriter, r *http.Request) error {
	var req struct {
		Events []json.RawMessage `json:"events"`
	}
	if _, err := decodeBody(w, r, s.maxBatchBody, &req); err != nil {
		return err
	}
	if n := len(req.Events); n < 1 || n > nanohook.MaxBatchEvents {
		return nanohook.Invalid("events", "must hold 1 to %d events (got %d)", nanohook.MaxBatchEvents, n)
	}
	events := make([]store.PublishEventParams, 0, len(req.Events))
	var refusal *batchRefusal
	accounts := accountCache{}
	for i, raw := range req.Events {
		p, err := s.prepareEvent(r.Context(), raw, fmt.Sprintf("events[%d]", i), accounts)
		if e, ok := errors.AsType[*nanohook.Error](err); ok {
			if refusal == nil {
				refusal = &batchRefusal{first: e}
			}
			refusal.items = append(refusal.items, itemError{Index: i, errorBody: errorBody{Code: e.Code, Message: e.Message, Field: e.Field}})
			continue
		}
		if err != nil {
			return err // storage trouble: fail the whole batch, nothing stored
		}
		events = append(events, p)
	}
	if refusal != nil {
		return refusal
	}
	res, err := s.publish(r.Context(), events, accounts.fanout)
	if errors.Is(err, store.ErrNotFound) {
		return nanohook.Invalid("events", "an account of this batch no longer exists")
	}
	if err != nil {
		return err
	}
	results := make([]publishResultJSON, len(res))
	for i := range res {
		results[i] = toPublishResultJSON(res[i])
	}
	s.respond(w, r, http.StatusAccepted, batchJSON{Results: results})
	return nil
}

// batchRefusal is a batch refused because of invalid items: its first
// item's error (code, field) and every refused item. publishBatch answers
// it as a 422.
type batchRefusal struct {
	first *nanohook.Error
	items []itemError
}

func (b *batchRefusal) Error() string {
	if len(b.items) == 1 {
		return b.first.Message + " (nothing was stored)"
	}
	return fmt.Sprintf("%s (and %d more refused items; nothing was stored)", b.first.Message, len(b.items)-1)
}

// Unwrap lets the error mapping treat the refusal as its first item's error.
func (b *batchRefusal) Unwrap() error { return b.first }

// itemError is one refused item of a batch, in error.items.
type itemError struct {
	Index int `json:"index"`
	errorBody
}

func toPublishResultJSON(r store.PublishResult) publishResultJSON {
	return publishResultJSON{EventID: r.EventID, Deliveries: r.Deliveries, Duplicate: r.Duplicate}
}

// accountCache remembers, within one request, which accounts exist and how
// many live endpoints each has, so a batch of 1000 events for one account
// asks once. The counts size the request's transactions (planChunks).
type accountCache map[int64]accountSeen

// accountSeen is what a request learnt of one account: its live endpoints,
// or err when it does not exist.
type accountSeen struct {
	endpoints int
	err       error
}

// fanout is the live endpoints of an account seen before.
func (c accountCache) fanout(account int64) int { return c[account].endpoints }

// prepareEvent decodes and validates one event and builds its payload, the
// exact bytes every endpoint will receive. Field names in errors are
// prefixed with prefix ("events[3]") for batch items. A *nanohook.Error is
// the item's fault; any other error is storage trouble.
func (s *server) prepareEvent(ctx context.Context, raw []byte, prefix string, accounts accountCache) (store.PublishEventParams, error) {
	var req publishRequest
	if _, err := decodeObject(raw, &req, prefix); err != nil {
		return store.PublishEventParams{}, err
	}
	f := func(name string) string { return joinField(prefix, name) }
	fail := func(err error) (store.PublishEventParams, error) { return store.PublishEventParams{}, err }

	if req.AccountID == nil {
		return fail(nanohook.Invalid(f("account_id"), "is required"))
	}
	if *req.AccountID <= 0 {
		return fail(nanohook.Invalid(f("account_id"), "must be a positive integer"))
	}
	if req.Event == "" {
		return fail(nanohook.Invalid(f("event"), "is required"))
	}
	typ, err := nanohook.ParseEventType(f("event"), req.Event)
	if err != nil {
		return fail(err)
	}
	if err := nanohook.ValidateLine(f("task_id"), req.TaskID, nanohook.MaxTaskIDLen); err != nil {
		return fail(err)
	}
	if err := nanohook.ValidateLine(f("task_type"), req.TaskType, nanohook.MaxTaskTypeLen); err != nil {
		return fail(err)
	}
	data, err := canonicalData(f("data"), req.Data)
	if err != nil {
		return fail(err)
	}
	now := s.now()
	occurred := now
	if req.OccurredAt != nil {
		t, err := time.Parse(time.RFC3339, *req.OccurredAt)
		if err != nil {
			return fail(nanohook.Invalid(f("occurred_at"), "must be an RFC 3339 time such as 2024-12-23T10:00:00Z"))
		}
		occurred = t
	}
	occurred = occurred.UTC().Truncate(time.Second)
	key := nanohook.DefaultIdempotencyKey(typ, req.TaskID)
	if req.IdempotencyKey != nil {
		key = *req.IdempotencyKey
		if err := nanohook.ValidateLine(f("idempotency_key"), key, nanohook.MaxIdempotencyKeyLen); err != nil {
			return fail(err)
		}
	}
	// The account check needs storage, so it runs after the cheap checks.
	if err := s.checkAccount(ctx, f("account_id"), *req.AccountID, accounts); err != nil {
		return fail(err)
	}
	payload, err := webhook.EncodePayload(webhook.Payload{
		Event:     string(typ),
		TaskID:    req.TaskID,
		TaskType:  req.TaskType,
		Status:    typ.JobStatus(),
		Data:      data,
		Timestamp: occurred.Format(time.RFC3339),
	})
	if err != nil {
		return fail(fmt.Errorf("api: encoding payload: %w", err))
	}
	// The bound is on what receivers get, which may be larger than what was
	// sent (JavaScript prints 1e21 as 1e+21) or smaller (whitespace).
	if len(payload) > s.maxPayload {
		return fail(nanohook.Errorf(nanohook.CodePayloadTooLarge, f("data"),
			"%s: the delivered body would be %d bytes, more than the %d allowed (--max-payload-bytes)",
			f("data"), len(payload), s.maxPayload))
	}
	return store.PublishEventParams{
		ID:             nanohook.NewEventID(),
		AccountID:      *req.AccountID,
		Type:           typ,
		TaskID:         req.TaskID,
		TaskType:       req.TaskType,
		IdempotencyKey: key,
		Payload:        payload,
		OccurredAt:     occurred,
		Now:            now,
	}, nil
}

// canonicalData checks that data is an I-JSON (RFC 7493) object and returns
// the canonical form endpoints receive. What every receiver's parser would
// not read the same way (an integer beyond ±(2^53 − 1), a name given twice,
// an unpaired surrogate) and what JavaScript cannot hold exactly is refused
// with the path of the offending value, never altered.
func canonicalData(field string, raw json.RawMessage) (json.RawMessage, error) {
	if raw == nil {
		return json.RawMessage("{}"), nil
	}
	if t := bytes.TrimSpace(raw); len(t) == 0 || t[0] != '{' {
		return nil, nanohook.Invalid(field, "must be an object")
	}
	out, err := webhook.CanonicalizeIJSON(raw)
	if ce, ok := errors.AsType[*webhook.CanonicalError](err); ok {
		path := field
		switch {
		case ce.Path == "":
		case strings.HasPrefix(ce.Path, "["):
			path += ce.Path
		default:
			path += "." + ce.Path
		}
		return nil, nanohook.Invalid(path, "%s", ce.Reason)
	}
	if err != nil {
		return nil, fmt.Errorf("api: canonicalising data: %w", err)
	}
	return out, nil
}

// checkAccount refuses events for accounts that do not exist, as a
// validation error of the field, before anything is stored, and counts
// the endpoints of those that do.
func (s *server) checkAccount(ctx context.Context, field string, id int64, cache accountCache) error {
	seen, ok := cache[id]
	if !ok {
		if n, ok := s.accountCounts.get(id, time.Now()); ok {
			seen = accountSeen{endpoints: n}
		} else {
			at := time.Now()
			n, err := s.store.CountEndpoints(ctx, id)
			if err != nil && !errors.Is(err, store.ErrNotFound) {
				return err // not cached: storage trouble is not an answer about the account
			}
			if err == nil {
				s.accountCounts.put(id, n, at)
			}
			seen = accountSeen{endpoints: n, err: err}
		}
		cache[id] = seen
	}
	if seen.err != nil {
		return nanohook.Invalid(field, "no such account")
	}
	return nil
}
