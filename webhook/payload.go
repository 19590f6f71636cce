package webhook

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
)

// Event types a delivery can carry, as sent in the body's "event" field and in
// the X-Nano-Event header. Receivers switch on them; unknown values should be
// acknowledged and ignored, since new event types may be added.
const (
	// EventJobCompleted: a generation task finished and its results are in Data.
	EventJobCompleted = "job.completed"
	// EventJobFailed: a generation task failed; Data says why.
	EventJobFailed = "job.failed"
	// EventPing: a test delivery sent on request to check an endpoint.
	EventPing = "ping"
)

// Task statuses carried in the body's "status" field.
const (
	// StatusCompleted accompanies EventJobCompleted.
	StatusCompleted = "completed"
	// StatusFailed accompanies EventJobFailed.
	StatusFailed = "failed"
)

// Payload is the body every endpoint receives, fields in wire order: the typed
// form receivers parse deliveries into and nanohook encodes them from.
type Payload struct {
	// Event is the event type: EventJobCompleted, EventJobFailed, EventPing.
	Event string `json:"event"`
	// TaskID identifies the generation task the event is about.
	TaskID string `json:"task_id"`
	// TaskType is the kind of task, such as "image" or "video".
	TaskType string `json:"task_type"`
	// Status is StatusCompleted or StatusFailed.
	Status string `json:"status"`
	// Data is the task's result or failure, as the platform published it,
	// kept raw so receivers decode it into their own types.
	Data json.RawMessage `json:"data"`
	// Timestamp is when the event happened, RFC 3339 UTC in seconds.
	Timestamp string `json:"timestamp"`
}

// EncodePayload builds the canonical body of p: the documented key order, and
// exactly the bytes JSON.stringify(JSON.parse(body)) gives back, so that every
// way a receiver checks the signature sees the bytes that were signed. Empty
// Data is sent as {}. A Data error is a *CanonicalError whose Path is relative
// to Data; a string field that is not valid UTF-8 is a *CanonicalError whose
// Path names the field.
func EncodePayload(p Payload) ([]byte, error) {
	size := len(`{"event":"","task_id":"","task_type":"","status":"","data":,"timestamp":""}`) +
		len(p.Event) + len(p.TaskID) + len(p.TaskType) + len(p.Status) + len(p.Data) + len(p.Timestamp) + 16
	return AppendPayload(make([]byte, 0, size), p)
}

// AppendPayload appends the canonical body of p to dst; it is EncodePayload for
// callers that reuse a buffer on a hot path.
func AppendPayload(dst []byte, p Payload) ([]byte, error) {
	out := dst
	var ok bool
	fields := [...]struct{ prefix, name, value string }{
		{`{"event":`, "event", p.Event},
		{`,"task_id":`, "task_id", p.TaskID},
		{`,"task_type":`, "task_type", p.TaskType},
		{`,"status":`, "status", p.Status},
	}
	for _, f := range fields {
		out = append(out, f.prefix...)
		if out, ok = appendJSString(out, f.value); !ok {
			return dst, &CanonicalError{Path: f.name, Reason: "invalid UTF-8", err: ErrInvalidJSON}
		}
	}
	out = append(out, `,"data":`...)
	if len(p.Data) == 0 {
		out = append(out, '{', '}')
	} else {
		var err error
		if out, err = AppendCanonical(out, p.Data); err != nil {
			return dst, fmt.Errorf("webhook: payload data: %w", err)
		}
	}
	out = append(out, `,"timestamp":`...)
	if out, ok = appendJSString(out, p.Timestamp); !ok {
		return dst, &CanonicalError{Path: "timestamp", Reason: "invalid UTF-8", err: ErrInvalidJSON}
	}
	return append(out, '}'), nil
}

// ErrInvalidPayload is returned by ParsePayload for a body that is not a
// delivery, so receivers can answer 400 instead of retrying.
var ErrInvalidPayload = errors.New("webhook: invalid payload")

// ParsePayload decodes a delivery body into a Payload. Unknown fields are
// ignored, as later versions may add some; Data keeps its raw JSON so the
// receiver decodes it into its own type (see Payload.DecodeData).
func ParsePayload(body []byte) (Payload, error) {
	var p Payload
	trimmed := bytes.TrimLeft(body, " \t\r\n")
	if len(trimmed) == 0 || trimmed[0] != '{' {
		return Payload{}, fmt.Errorf("%w: body is not a JSON object", ErrInvalidPayload)
	}
	if err := json.Unmarshal(body, &p); err != nil {
		return Payload{}, fmt.Errorf("%w: %w", ErrInvalidPayload, err)
	}
	if p.Event == "" {
		return Payload{}, fmt.Errorf("%w: no event", ErrInvalidPayload)
	}
	return p, nil
}

// DecodeData decodes p.Data into v, typically a struct describing one task
// type's results, so receivers get typed fields without a second parse of the
// whole body.
func (p Payload) DecodeData(v any) error {
	if len(p.Data) == 0 {
		return fmt.Errorf("%w: no data", ErrInvalidPayload)
	}
	if err := json.Unmarshal(p.Data, v); err != nil {
		return fmt.Errorf("webhook: decode data: %w", err)
	}
	return nil
}
