package client

import (
	"context"
	"errors"
	"iter"
	"net/http"
	"net/url"
	"time"
)

// Event is a job event published for the account: the exact body its
// endpoints were sent, and the delivery to each.
type Event struct {
	ID       string `json:"id"`
	Event    string `json:"event"` // EventJobCompleted or EventJobFailed
	TaskID   string `json:"task_id"`
	TaskType string `json:"task_type"`
	// Payload is the body every endpoint was sent, byte for byte.
	Payload    string          `json:"payload"`
	CreatedAt  time.Time       `json:"created_at"`
	Deliveries []EventDelivery `json:"deliveries"`
}

// EventDelivery is an event's delivery to one endpoint; GetDelivery has
// its attempts.
type EventDelivery struct {
	EndpointID int64  `json:"endpoint_id"`
	DeliveryID int64  `json:"delivery_id"`
	Status     string `json:"status"` // DeliveryPending, DeliverySucceeded, …
}

// ListEventsParams filters ListEvents and Events; zero values select
// everything.
type ListEventsParams struct {
	Event  string // EventJobCompleted or EventJobFailed
	TaskID string // the task_id the events were published with
	Since  time.Time
	Until  time.Time
	PageParams
}

// ListEvents returns one page of the account's events, newest first.
func (c *Client) ListEvents(ctx context.Context, p ListEventsParams) (*Page[Event], error) {
	q := p.query()
	if p.Event != "" {
		q.Set("event", p.Event)
	}
	setTaskAndTimes(q, p.TaskID, p.Since, p.Until)
	var items []Event
	next, err := c.do(ctx, http.MethodGet, "/api/v1/events", q, nil, &items)
	if err != nil {
		return nil, err
	}
	return &Page[Event]{Items: items, NextCursor: next}, nil
}

// Events iterates over all of the account's events that match p, newest
// first, starting at p.Cursor. An error ends the iteration after being
// yielded once.
func (c *Client) Events(ctx context.Context, p ListEventsParams) iter.Seq2[Event, error] {
	return paginate(p.PageParams, func(pp PageParams) (*Page[Event], error) {
		p.PageParams = pp
		return c.ListEvents(ctx, p)
	})
}

// GetEvent returns one of the account's events by its id (evt_…).
func (c *Client) GetEvent(ctx context.Context, id string) (*Event, error) {
	if id == "" {
		return nil, errors.New("nanohook: event id: empty")
	}
	var out Event
	if _, err := c.do(ctx, http.MethodGet, "/api/v1/events/"+url.PathEscape(id), nil, nil, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// setTaskAndTimes sets the task_id, since and until filters that the
// delivery and event listings share; zero values are left out.
func setTaskAndTimes(q url.Values, task string, since, until time.Time) {
	if task != "" {
		q.Set("task_id", task)
	}
	if !since.IsZero() {
		q.Set("since", since.UTC().Format(time.RFC3339))
	}
	if !until.IsZero() {
		q.Set("until", until.UTC().Format(time.RFC3339))
	}
}
