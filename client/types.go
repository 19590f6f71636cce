package client

import (
	"encoding/json"
	"time"
)

// Event types: what endpoints subscribe to and the platform publishes.
// EventPing only ever comes from TestWebhook.
const (
	EventJobCompleted = "job.completed"
	EventJobFailed    = "job.failed"
	EventPing         = "ping"
)

// Endpoint statuses (Webhook.Status, UpdateWebhookParams.Status).
const (
	StatusActive   = "active"
	StatusDisabled = "disabled"
)

// Delivery statuses (Delivery.Status, ListDeliveriesParams.Status).
const (
	DeliveryPending   = "pending"
	DeliverySucceeded = "succeeded"
	DeliveryFailed    = "failed"
	DeliveryCancelled = "cancelled"
)

// Webhook is an endpoint as the public API shows it. The signing secret is
// never part of it, except in the answers of CreateWebhook and RotateSecret.
type Webhook struct {
	ID          int64    `json:"id"`
	URL         string   `json:"url"`
	Events      []string `json:"events"`
	Status      string   `json:"status"` // StatusActive or StatusDisabled
	Description string   `json:"description"`
	// DisabledReason says why the endpoint is disabled ("" when it is not,
	// or was never disabled by the service).
	DisabledReason string    `json:"disabled_reason"`
	CreatedAt      time.Time `json:"created_at"`
	UpdatedAt      time.Time `json:"updated_at"`
}

// CreatedWebhook is the answer of CreateWebhook: the endpoint and its signing
// secret, shown this once.
type CreatedWebhook struct {
	Webhook
	SecretKey string `json:"secret_key"`
}

// RotatedSecret is the answer of RotateSecret: the endpoint, its new secret
// (shown this once) and until when deliveries are also signed with the old
// one (nil: the old secret stopped at once).
type RotatedSecret struct {
	Webhook
	SecretKey               string     `json:"secret_key"`
	PreviousSecretExpiresAt *time.Time `json:"previous_secret_expires_at"`
}

// CreateWebhookParams is the body of CreateWebhook. URL and Events are
// required; an empty SecretKey lets the server generate one (whsec_…).
type CreateWebhookParams struct {
	URL         string   `json:"url"`
	Events      []string `json:"events"`
	SecretKey   string   `json:"secret_key,omitempty"`
	Description string   `json:"description,omitempty"`
}

// UpdateWebhookParams is the body of UpdateWebhook: nil fields are left as
// they are; at least one must be set. Setting Status to StatusActive
// re-enables a disabled endpoint (then Recover replays what it missed).
type UpdateWebhookParams struct {
	URL         *string  `json:"url,omitempty"`
	Events      []string `json:"events,omitempty"`
	Status      *string  `json:"status,omitempty"`
	Description *string  `json:"description,omitempty"`
}

// RotateSecretParams is the optional body of RotateSecret. An empty SecretKey
// lets the server generate one; a nil OverlapSeconds keeps the old secret
// valid for the default 24 hours, and 0 ends it at once (at most 604800).
type RotateSecretParams struct {
	SecretKey      string `json:"secret_key,omitempty"`
	OverlapSeconds *int64 `json:"overlap_seconds,omitempty"`
}

// PageParams selects one page of a list: Limit 1 to 100 (0: the server's
// default) and Cursor, the NextCursor of the previous page ("" for the first).
type PageParams struct {
	Limit  int
	Cursor string
}

// Page is one page of a list. NextCursor is "" on the last page.
type Page[T any] struct {
	Items      []T
	NextCursor string
}

// Delivery is one event's delivery to one endpoint.
type Delivery struct {
	ID           int64  `json:"id"`
	WebhookID    int64  `json:"webhook_id"`
	EventID      string `json:"event_id"`
	Event        string `json:"event"`
	Status       string `json:"status"` // DeliveryPending, DeliverySucceeded, …
	AttemptCount int    `json:"attempt_count"`
	// NextAttemptAt is when the next attempt is due; nil unless pending.
	NextAttemptAt *time.Time `json:"next_attempt_at"`
	LastError     string     `json:"last_error"`
	CreatedAt     time.Time  `json:"created_at"`
	UpdatedAt     time.Time  `json:"updated_at"`
}

// DeliveryDetail is a delivery with its newest attempts, oldest first: at
// most 25, fewer when they are large (AttemptCount counts them all).
type DeliveryDetail struct {
	Delivery
	// Payload is the body every attempt sent, byte for byte: with an
	// attempt's X-Nano-Timestamp it gives the signature back.
	Payload  string    `json:"payload"`
	Attempts []Attempt `json:"attempts"`
}

// Attempt is one HTTP request made for a delivery and what came back.
type Attempt struct {
	Number         int       `json:"number"`
	StartedAt      time.Time `json:"started_at"`
	DurationMS     int64     `json:"duration_ms"`
	RequestHeaders []Header  `json:"request_headers"` // as sent, in order
	// RemoteAddress is the "ip:port" connected to; "" when no connection
	// was made.
	RemoteAddress string `json:"remote_address"`
	// ResponseStatus is the endpoint's HTTP status; 0 when no answer came.
	ResponseStatus int    `json:"response_status"`
	ResponseBody   string `json:"response_body"` // the first 4 KiB
	Location       string `json:"location"`      // of a 3xx answer
	Error          string `json:"error"`         // why the attempt failed; "" on success
}

// Header is one request header an attempt sent.
type Header struct {
	Name  string `json:"name"`
	Value string `json:"value"`
}

// TestDelivery is the answer of TestWebhook: the ping delivery it created
// (in the history like any other) and its one attempt.
type TestDelivery struct {
	DeliveryID int64   `json:"delivery_id"`
	EventID    string  `json:"event_id"`
	Succeeded  bool    `json:"succeeded"`
	Attempt    Attempt `json:"attempt"`
}

// ListDeliveriesParams filters and pages an endpoint's deliveries, newest
// first. Zero fields do not filter; Since and Until bound the creation time.
type ListDeliveriesParams struct {
	Status string // DeliveryPending, DeliverySucceeded, DeliveryFailed or DeliveryCancelled
	Event  string // EventJobCompleted, EventJobFailed or EventPing
	TaskID string // the task_id the events were published with
	Since  time.Time
	Until  time.Time
	PageParams
}

// RecoverParams picks the failed deliveries Recover re-queues: those created
// from Since (required) up to Until (zero: now).
type RecoverParams struct {
	Since time.Time
	Until time.Time
}

// Account is the answer of CreateAccount; APIKey is shown this once.
type Account struct {
	ID     int64  `json:"id"`
	Name   string `json:"name"`
	APIKey string `json:"api_key"`
}

// APIKey is the answer of CreateAPIKey; APIKey is shown this once.
type APIKey struct {
	ID        int64  `json:"id"`
	AccountID int64  `json:"account_id"`
	APIKey    string `json:"api_key"`
}

// JobEvent is one job event as the platform publishes it. AccountID, Event,
// TaskID and TaskType are required. Data must be a JSON object (nil sends
// {}); it is delivered in its canonical form, and data JavaScript cannot hold
// exactly is refused. A zero OccurredAt means now; an empty IdempotencyKey
// means Event + TaskID, so publishing the same job event twice creates one
// event.
type JobEvent struct {
	AccountID      int64           `json:"account_id"`
	Event          string          `json:"event"`
	TaskID         string          `json:"task_id"`
	TaskType       string          `json:"task_type"`
	Data           json.RawMessage `json:"data,omitempty"`
	OccurredAt     time.Time       `json:"occurred_at,omitzero"`
	IdempotencyKey string          `json:"idempotency_key,omitempty"`
}

// PublishResult is what happened to one published event: its id, how many
// deliveries it made, and whether it was already published before (same
// idempotency key), in which case nothing new was created.
type PublishResult struct {
	EventID    string `json:"event_id"`
	Deliveries int    `json:"deliveries"`
	Duplicate  bool   `json:"duplicate"`
}
