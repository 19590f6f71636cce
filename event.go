package nanohook

import (
	"fmt"
	"time"
)

// EventType names what happened to a job. Endpoints subscribe to event types.
type EventType string

// The event types of the public contract. EventPing is only sent by the test
// call and cannot be subscribed to or published.
const (
	EventJobCompleted EventType = "job.completed"
	EventJobFailed    EventType = "job.failed"
	EventPing         EventType = "ping"
)

// SubscribableEvents lists, in documented order, the event types an endpoint
// may subscribe to and the platform may publish.
var SubscribableEvents = []EventType{EventJobCompleted, EventJobFailed}

// ParseEventType returns t as an EventType if it can be subscribed to.
func ParseEventType(field, t string) (EventType, error) {
	for _, e := range SubscribableEvents {
		if string(e) == t {
			return e, nil
		}
	}
	return "", Invalid(field, "unknown event %q (want one of job.completed, job.failed)", t)
}

// JobStatus is the payload's status field derived from the event type.
func (t EventType) JobStatus() string {
	switch t {
	case EventJobCompleted:
		return "completed"
	case EventJobFailed:
		return "failed"
	}
	return string(t)
}

// Event is one job event published by the platform. Payload holds the exact
// bytes every endpoint receives: made once at publish, never re-encoded.
type Event struct {
	ID             string // public id, "evt_…"
	AccountID      int64
	Type           EventType
	TaskID         string
	TaskType       string
	IdempotencyKey string
	Payload        []byte
	OccurredAt     time.Time
	CreatedAt      time.Time
}

// Limits of event fields, checked at publish.
const (
	MaxTaskIDLen         = 256
	MaxTaskTypeLen       = 64
	MaxIdempotencyKeyLen = 256
	MaxBatchEvents       = 1000
)

// DefaultIdempotencyKey is the key used when the publisher sends none:
// publishing the same job event twice then creates one event.
func DefaultIdempotencyKey(t EventType, taskID string) string {
	return fmt.Sprintf("%s:%s", t, taskID)
}
