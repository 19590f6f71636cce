// Package store is the storage seam of nanohook: one small interface that the
// API and the delivery engine use, with parameter structs for every call and
// ErrNotFound for absent rows. store/sqlite and store/postgres implement it;
// store/storetest is the one conformance suite both must pass.
//
// Times are passed in explicitly (Now fields) wherever they decide what is due,
// so that drivers never read a clock of their own and tests control time.
package store

import (
	"context"
	"errors"
	"time"

	"github.com/nanohook/nanohook"
)

// ErrNotFound is returned when a row does not exist or belongs to another
// account. Callers branch on it with errors.Is.
var ErrNotFound = errors.New("store: not found")

// ErrUnavailable wraps failures where storage could not commit (locked,
// disconnected, read-only). The API answers 503 for these.
var ErrUnavailable = errors.New("store: unavailable")

// Store is what the rest of nanohook needs from a database.
type Store interface {
	// Migrate applies the embedded schema migrations that are not yet applied.
	Migrate(ctx context.Context) error
	// Ping reports whether storage is reachable.
	Ping(ctx context.Context) error
	// ProbeWrite makes one small write and commits it, so that it fails
	// (wrapping ErrUnavailable) when storage answers reads but cannot take
	// writes: a full disk or database, a read-only file or database, a
	// write lock held elsewhere. It rewrites the same rows every time, so
	// storage does not grow however often it runs. /readyz runs it,
	// beside Ping; callers bound its frequency.
	ProbeWrite(ctx context.Context) error
	// Close releases the database; the Store is not used afterwards.
	Close() error

	// CreateAccount creates an account and its first API key in one
	// transaction.
	CreateAccount(ctx context.Context, p CreateAccountParams) (nanohook.Account, nanohook.APIKey, error)
	// GetAccount returns an account (ErrNotFound if none).
	GetAccount(ctx context.Context, id int64) (nanohook.Account, error)
	// CreateAPIKey adds a key to an existing account (ErrNotFound if none).
	CreateAPIKey(ctx context.Context, p CreateAPIKeyParams) (nanohook.APIKey, error)
	// DeleteAPIKey revokes a key of an account (ErrNotFound if none).
	DeleteAPIKey(ctx context.Context, accountID, keyID int64) error
	// APIKeyByHash finds a live key by the SHA-256 of its secret.
	APIKeyByHash(ctx context.Context, hash []byte) (nanohook.APIKey, error)

	// CreateEndpoint creates an active endpoint of an existing account
	// (ErrNotFound if none). Endpoint ids are never reused. With
	// MaxEndpoints set, an account that already has that many live
	// (active or disabled, not deleted) endpoints gets none: the call
	// fails with EndpointLimitError. The count and the insert are one
	// transaction that concurrent creates for the account wait for, so
	// they never overshoot the limit together.
	CreateEndpoint(ctx context.Context, p CreateEndpointParams) (nanohook.Endpoint, error)
	// CountEndpoints counts the account's live (active or disabled)
	// endpoints, the most deliveries one of its events fans out to
	// (ErrNotFound if the account does not exist). The API sizes its
	// publish transactions by it.
	CountEndpoints(ctx context.Context, accountID int64) (int, error)
	// GetEndpoint returns an endpoint of the account; another account's
	// endpoint and a deleted one are ErrNotFound.
	GetEndpoint(ctx context.Context, accountID, id int64) (nanohook.Endpoint, error)
	// ListEndpoints returns the account's endpoints (deleted ones excluded)
	// with ids above AfterID, ascending, at most Limit (clamped to 1..1000).
	ListEndpoints(ctx context.Context, p ListEndpointsParams) ([]nanohook.Endpoint, error)
	// UpdateEndpoint changes an endpoint of the account (ErrNotFound as in
	// GetEndpoint) and returns it, as nanohook.ApplyEndpointPatch decides:
	// setting Status to disabled fails its pending deliveries ("endpoint
	// disabled: <reason>") in the same transaction; setting it to active
	// clears DisabledReason unless one is given.
	UpdateEndpoint(ctx context.Context, p UpdateEndpointParams) (nanohook.Endpoint, error)
	// RotateSecret replaces an endpoint's signing secret. The old secret
	// stays valid until PreviousValidUntil (deliveries carry a second
	// signature made with it); a PreviousValidUntil not after Now drops it
	// at once.
	RotateSecret(ctx context.Context, p RotateSecretParams) (nanohook.Endpoint, error)
	// DeleteEndpoint removes an endpoint and cancels its pending deliveries in
	// the same transaction.
	DeleteEndpoint(ctx context.Context, accountID, id int64, now time.Time) error

	// PublishEvents writes each new event and one pending delivery per active
	// endpoint of its account subscribed to its type, all in one transaction.
	// A disabled (not deleted) endpoint subscribed to the type gets a
	// delivery too, already failed (no attempt, attempts 0, last error
	// "endpoint disabled: <reason>"), so that nothing is dropped silently and
	// RecoverDeliveries after re-enabling replays it (nanohook.StartDelivery).
	// An event whose (account, idempotency key) already exists is not written
	// again: its result carries the existing event id and Duplicate = true.
	// A missing account makes the whole call fail with ErrNotFound.
	PublishEvents(ctx context.Context, events []PublishEventParams) ([]PublishResult, error)

	// QueueHeads lists every endpoint that has queued deliveries (pending
	// and not leased), ascending by endpoint id, with its account and its
	// head: the earliest next_attempt_at among them. A head at or before
	// now means the endpoint has work to claim now, and the earliest head
	// is when the next work falls due. The engine plans its claims from
	// this list (fair shares across accounts and endpoints); its cost is
	// one index probe per endpoint listed, however many deliveries each
	// has queued.
	QueueHeads(ctx context.Context) ([]QueueHead, error)
	// ClaimDeliveries leases, for each of p.Quotas, up to Limit of that
	// endpoint's due deliveries (queued, next_attempt_at at or before
	// Now), oldest first (next_attempt_at, then id). A leased delivery
	// leaves its endpoint's queue, and its next_attempt_at becomes
	// LeaseUntil; the claim's Lease.DueAt keeps the time it was due, for
	// ReleaseDeliveries. Each claim carries a fresh lease token that
	// CompleteDeliveries must present. Claims come back grouped by quota,
	// in quota order, each group oldest first.
	ClaimDeliveries(ctx context.Context, p ClaimParams) ([]ClaimedDelivery, error)
	// RescueExpiredLeases puts every delivery whose lease expired at or
	// before now, still pending, back in its endpoint's queue, due at once
	// (its next_attempt_at is its lease's expiry), and says how many: the
	// claims of a node that crashed, or whose outcome was never recorded.
	// Their lease token no longer matches, so a late outcome records its
	// attempt without moving the delivery. Finding none costs one index
	// probe; the engine calls it about once a second.
	RescueExpiredLeases(ctx context.Context, now time.Time) (int64, error)
	// CompleteDeliveries records attempts and moves deliveries on, in one
	// transaction. A result whose lease token no longer matches (the lease
	// expired and another worker claimed the delivery) still records its
	// attempt but does not change the delivery.
	CompleteDeliveries(ctx context.Context, results []CompleteParams) error
	// ReleaseDeliveries gives leased deliveries back unattempted (shutdown,
	// or a claim beyond an endpoint's limit): the lease is dropped and the
	// delivery is due again at its Lease.DueAt. Leases that are no longer
	// current are ignored.
	ReleaseDeliveries(ctx context.Context, leases []Lease) error

	// GetDelivery returns a delivery of an account with its newest
	// attempts, at most MaxDetailAttempts of them, ordered by number
	// (ErrNotFound for another account's delivery). The delivery's
	// Attempts says how many were made in all.
	GetDelivery(ctx context.Context, accountID, id int64) (nanohook.Delivery, []nanohook.Attempt, error)
	// GetEvent returns an event (with its payload) of an account
	// (ErrNotFound for another account's event).
	GetEvent(ctx context.Context, accountID int64, id string) (nanohook.Event, error)

	// AcquireLeadership takes or renews the named leadership for Holder until
	// Until, and reports whether Holder holds it now. Leadership passes to
	// another holder only after the current one's term expired (Now beyond
	// its Until) or it resigned. Background maintenance runs only on the
	// node that holds it, so it runs once across nodes and moves when the
	// holder dies.
	AcquireLeadership(ctx context.Context, p LeadershipParams) (bool, error)
	// ResignLeadership gives the leadership up at once if Holder has it.
	ResignLeadership(ctx context.Context, name, holder string) error

	// PruneHistory deletes up to Limit finished deliveries (succeeded,
	// failed, cancelled) last updated before Before, with their attempts,
	// and then the events left without deliveries that were created before
	// Before. It returns how many deliveries it deleted; callers repeat until
	// it returns fewer than Limit, so that no transaction holds the writer
	// for long.
	PruneHistory(ctx context.Context, p PruneParams) (int, error)

	// ListDeliveries returns one page of an endpoint's delivery history,
	// newest first (id descending), with the filters of p applied. The
	// endpoint must be a live endpoint of the account: another account's
	// endpoint and a deleted one are ErrNotFound, like GetEndpoint. Limit is
	// clamped to 1..1000.
	ListDeliveries(ctx context.Context, p ListDeliveriesParams) ([]nanohook.Delivery, error)
	// ListEvents reads one page of the account's published events (test
	// calls' pings are not among them), newest first, each with its
	// deliveries.
	ListEvents(ctx context.Context, p ListEventsParams) ([]EventRecord, error)
	// GetEventRecord returns the account's published event with public id
	// id and its deliveries, as ListEvents shows it; ErrNotFound for
	// another account's, a ping's, or one pruned with its history.
	GetEventRecord(ctx context.Context, accountID int64, id string) (EventRecord, error)
	// RetryDelivery makes one delivery of the account due again at now, on
	// its customer's request, and returns it as it then is:
	//
	//   - failed or succeeded: pending again, due at now, unleased. Its
	//     attempt count is kept, so attempt numbers continue.
	//   - pending and not leased: due now (next_attempt_at becomes now unless
	//     it is already earlier).
	//   - pending and leased (an attempt is in flight): unchanged, no error.
	//
	// What a retry does, and which it refuses, is nanohook.PlanRetry's
	// decision: a delivery whose endpoint was deleted (or that was
	// cancelled) and one whose endpoint is disabled are refused with a
	// *nanohook.Error of code nanohook.CodeConflict. ErrNotFound for another
	// account's delivery.
	RetryDelivery(ctx context.Context, accountID, id int64, now time.Time) (nanohook.Delivery, error)
	// RecoverDeliveries re-queues up to Limit failed deliveries of a live,
	// active endpoint of the account that were created in [Since, Until) and
	// that failed (were last updated) no later than Now: pending, due at Now,
	// attempt counts kept. It returns how many it re-queued; callers repeat
	// until it returns fewer than Limit, so that no transaction holds the
	// writer for long. The Now bound keeps a delivery that is retried and
	// fails again while the caller loops from being re-queued twice in one
	// recovery. Test pings (nanohook.EventPing) are neither re-queued nor
	// counted: a ping is a one-off check made on request, never retried.
	// ErrNotFound as in GetEndpoint; a disabled endpoint is a
	// *nanohook.Error of code nanohook.CodeConflict.
	RecoverDeliveries(ctx context.Context, p RecoverParams) (int, error)

	// CreateTestDelivery writes a ping event (type nanohook.EventPing, the
	// given payload, no idempotency key, TaskID/TaskType as given) and one
	// delivery of it to one endpoint of the account, already leased to the
	// caller until LeaseUntil with a fresh token, and returns it as a claim:
	// the caller attempts it at once and records the outcome with
	// CompleteDeliveries (or hands it back with ReleaseDeliveries).
	//
	// The claim is filled as ClaimDeliveries fills one (URL, Secret,
	// PreviousSecret while still valid at Now, Attempt 1, Lease.DueAt =
	// Now). Because the delivery is leased, its next_attempt_at is
	// LeaseUntil, as for any claim, and ClaimDeliveries does not return it
	// before LeaseUntil passes; no other node is woken for it. A release
	// makes it due at Now. The endpoint's event
	// subscriptions are not consulted: a ping goes to the endpoint asked for.
	// Pings are never deduplicated: every call writes a new event.
	//
	// Works for active and disabled endpoints (customers test before
	// re-enabling); a deleted endpoint or another account's → ErrNotFound.
	// A delivery to a disabled endpoint that is not completed before its
	// lease expires is failed, not sent, by a later ClaimDeliveries, as any
	// pending delivery of a disabled endpoint is.
	CreateTestDelivery(ctx context.Context, p TestDeliveryParams) (ClaimedDelivery, error)

	// DisableFailingEndpoints disables every live, active endpoint that has
	// been failing since before p.FailingSince (CompleteDeliveries marks an
	// endpoint failing at the start of its first failed attempt after a
	// success, and a success clears the mark), in one transaction. Each gets
	// the disabled reason p.Reason followed by " since <time it began
	// failing, RFC 3339>", and its pending deliveries are failed as
	// UpdateEndpoint's disabling fails them. It returns the ids disabled,
	// ascending. Re-enabling an endpoint (UpdateEndpoint to active) clears
	// its mark, so it starts afresh.
	DisableFailingEndpoints(ctx context.Context, p DisableFailingParams) ([]int64, error)

	// Stats counts pending deliveries and live endpoints across every
	// account, for the metrics an operator alerts on. It reads only
	// indexes, in one statement, so that it stays cheap however large the
	// history grows; the caller still bounds and caches it.
	Stats(ctx context.Context, now time.Time) (Stats, error)

	// CheckSecrets opens every stored endpoint URL, secret and previous
	// secret (deleted endpoints included) with the store's Keyring and
	// fails, wrapping ErrSecretSealed, when some cannot be opened: the error
	// counts them by key id and names the setting to fix. serve runs it at
	// start, so that a missing or wrong key stops the process instead of
	// every delivery.
	CheckSecrets(ctx context.Context) error
	// ResealSecrets rewrites every stored URL, secret and previous secret
	// for which Keyring.NeedsReseal holds (plaintext, sealed in the first
	// format, or sealed under a key that is not the primary) under the
	// primary key, in short transactions, and returns how many endpoints it
	// rewrote. Each row is compared and swapped on its old values, so a
	// secret rotated or a URL changed meanwhile is never overwritten; such
	// rows are read again. Rows that cannot be opened are left as they are
	// and reported as CheckSecrets reports them, after the others are done.
	// Without a Keyring it fails: there is no key to seal with.
	ResealSecrets(ctx context.Context) (int, error)
}

// MaxDetailAttempts is how many attempts GetDelivery returns at most: the
// newest. A customer may retry one delivery without end, each retry adding
// an attempt of up to about 8 KiB (nanohook.Attempt.Bounded), so reading
// them all would cost without bound; 25 cover three runs of the default
// schedule (8 attempts each) and cost at most about 200 KiB.
const MaxDetailAttempts = 25

// Stats is a snapshot of the delivery queue and the endpoints. With
// PostgreSQL it covers every node sharing the database.
type Stats struct {
	// DueDeliveries are pending deliveries due at or before the given now
	// that no worker holds: those waiting for a worker, those held back by
	// an endpoint's in-flight cap or open circuit breaker, and those whose
	// lease expired (their worker died).
	DueDeliveries int64
	// ScheduledDeliveries are pending deliveries due later: retries
	// waiting out their backoff, and deliveries being attempted (a lease
	// makes the delivery due again at its expiry; see ClaimDeliveries).
	ScheduledDeliveries int64
	// OldestDueAt is when the longest-waiting due delivery became due
	// (its next attempt time, or its lease's expiry for one whose worker
	// died); zero when nothing is due.
	OldestDueAt time.Time
	// ActiveEndpoints and DisabledEndpoints count live (not deleted)
	// endpoints by status.
	ActiveEndpoints   int64
	DisabledEndpoints int64
}

// LeadershipParams asks for one named leadership term.
type LeadershipParams struct {
	Name   string // e.g. "maintenance"
	Holder string // node id, unique per process
	Now    time.Time
	Until  time.Time // the term ends then unless renewed
}

// PruneParams bounds one pruning step.
type PruneParams struct {
	Before time.Time
	Limit  int
}

// CreateAccountParams creates an account with its first API key.
type CreateAccountParams struct {
	Name    string
	KeyHash []byte // SHA-256 of the API key
	Now     time.Time
}

// CreateAPIKeyParams adds a key to an account.
type CreateAPIKeyParams struct {
	AccountID int64
	KeyHash   []byte
	Now       time.Time
}

// CreateEndpointParams creates an endpoint; fields are already validated.
type CreateEndpointParams struct {
	AccountID   int64
	URL         string
	Events      []nanohook.EventType
	Secret      string
	Description string
	Now         time.Time
	// MaxEndpoints is the most live endpoints the account may have once
	// this one is created; 0: no limit.
	MaxEndpoints int
}

// RotateSecretParams replaces an endpoint's secret.
type RotateSecretParams struct {
	AccountID          int64
	ID                 int64
	Secret             string // the new secret, already validated
	PreviousValidUntil time.Time
	Now                time.Time
}

// MaxListLimit is the largest page ListEndpoints and ListDeliveries return.
const MaxListLimit = 1000

// ListLimit is the page size a driver reads for a requested limit: limit
// clamped to 1..MaxListLimit.
func ListLimit(limit int) int { return min(max(limit, 1), MaxListLimit) }

// ListEndpointsParams pages through an account's endpoints by ascending id.
type ListEndpointsParams struct {
	AccountID int64
	AfterID   int64 // cursor: only ids greater than this
	Limit     int
}

// UpdateEndpointParams changes the non-nil fields of an endpoint.
type UpdateEndpointParams struct {
	AccountID      int64
	ID             int64
	URL            *string
	Events         []nanohook.EventType // nil: unchanged
	Status         *nanohook.EndpointStatus
	Description    *string
	DisabledReason *string
	Now            time.Time
}

// Patch is the change p asks for, as nanohook.ApplyEndpointPatch takes it.
func (p *UpdateEndpointParams) Patch() nanohook.EndpointPatch {
	return nanohook.EndpointPatch{URL: p.URL, Events: p.Events, Status: p.Status,
		Description: p.Description, DisabledReason: p.DisabledReason}
}

// PublishEventParams is one event to publish; Payload is the final body.
type PublishEventParams struct {
	ID             string // new event id, used if the event is new
	AccountID      int64
	Type           nanohook.EventType
	TaskID         string
	TaskType       string
	IdempotencyKey string
	Payload        []byte
	OccurredAt     time.Time
	Now            time.Time // created_at, and when the deliveries are first due
}

// PublishResult says what PublishEvents did with one event.
type PublishResult struct {
	EventID string
	// Deliveries counts the delivery rows created: one per live endpoint
	// subscribed to the type, the failed ones recorded for disabled
	// endpoints included. For a duplicate it is the count of the original
	// publish, as far as the rows still tell (pruning removes some).
	Deliveries int
	Duplicate  bool // the idempotency key was already used
}

// QueueHead is one endpoint's queue of pending deliveries, as
// QueueHeads sees it.
type QueueHead struct {
	EndpointID int64
	AccountID  int64
	// DueAt is the earliest next_attempt_at of the endpoint's pending
	// deliveries: work is claimable now when it is not after now.
	DueAt time.Time
}

// ClaimParams asks for due work: so many deliveries of each endpoint.
type ClaimParams struct {
	Now        time.Time
	LeaseUntil time.Time // the lease expires then; another worker may claim after
	Owner      string    // who claims (node id), for diagnostics
	// Quotas say how many due deliveries to lease from which endpoints. The
	// engine decides them (fair shares, per-endpoint limits, breakers); the
	// driver only runs the claim. An endpoint listed twice is claimed twice.
	Quotas []EndpointQuota
}

// EndpointQuota asks for up to Limit due deliveries of one endpoint.
type EndpointQuota struct {
	EndpointID int64
	Limit      int
}

// Lease identifies one claim of one delivery.
type Lease struct {
	DeliveryID int64
	Token      int64
	// DueAt is when the delivery was due before it was leased:
	// ReleaseDeliveries makes it due then again. Only releases read it.
	DueAt time.Time
}

// ClaimedDelivery is everything a worker needs to make one attempt without
// another query.
type ClaimedDelivery struct {
	Lease
	AccountID  int64
	EndpointID int64
	URL        string
	Secret     string
	// PreviousSecret is the rotated-out secret while it is still valid at
	// the claim's Now, else "".
	PreviousSecret string
	EventID        string
	EventType      nanohook.EventType
	// Payload is the body to send. Deliveries of one event returned by one
	// call share one slice (a fan-out to many endpoints holds the bytes
	// once): nobody may modify it.
	Payload   []byte
	Attempt   int // the number this attempt will have (1 for the first)
	CreatedAt time.Time
}

// CompleteParams is the outcome of one attempt.
type CompleteParams struct {
	Lease
	Attempt nanohook.Attempt // DeliveryID and Number set by the engine
	// Status after this attempt: pending (retry at NextAttemptAt), succeeded
	// or failed.
	Status        nanohook.DeliveryStatus
	NextAttemptAt time.Time
	// DisableEndpoint, when non-empty, disables the delivery's endpoint with
	// this reason (410 Gone) in the same transaction.
	DisableEndpoint string
	EndpointID      int64
	// EventID is the delivery's event, for the engine's completion hook
	// (logs carry it); storage does not read it.
	EventID string
	Now     time.Time
}

// EventRecord is a published event as the events API shows it: the event
// and where it went.
type EventRecord struct {
	nanohook.Event
	// PK orders the account's events (newer ones are larger) and is the
	// cursor of ListEvents; it is not shown.
	PK int64
	// Deliveries are the event's deliveries, by id: one per endpoint it
	// fanned out to, so at most the endpoints an account may have.
	Deliveries []EventDelivery
}

// EventDelivery is one delivery of an event, as an event shows it.
type EventDelivery struct {
	DeliveryID int64
	EndpointID int64
	Status     nanohook.DeliveryStatus
}

// ListEventsParams selects one page of an account's published events,
// newest first. Zero values of the filters select everything.
type ListEventsParams struct {
	AccountID int64
	Type      nanohook.EventType // "": any
	TaskID    string             // "": any
	Since     time.Time          // created at or after; zero: open
	Until     time.Time          // created before; zero: open
	BeforePK  int64              // cursor: only events below this; 0: none
	Limit     int
}

// ListDeliveriesParams selects one page of an endpoint's delivery history.
// Zero values of the filters select everything.
type ListDeliveriesParams struct {
	AccountID  int64
	EndpointID int64
	Status     nanohook.DeliveryStatus // "": any
	Event      nanohook.EventType      // "": any
	TaskID     string                  // the event's task_id; "": any
	Since      time.Time               // created at or after; zero: open
	Until      time.Time               // created before; zero: open
	BeforeID   int64                   // cursor: only ids below this; 0: none
	Limit      int
}

// RecoverParams bounds one step of re-queueing an endpoint's failed
// deliveries.
type RecoverParams struct {
	AccountID  int64
	EndpointID int64
	Since      time.Time // created at or after
	Until      time.Time // created before; zero: open
	Now        time.Time // when they become due; only deliveries updated by then
	Limit      int
	// CountOnly counts the deliveries the call would re-queue (ignoring
	// Limit) and changes nothing, after the same endpoint checks; the API
	// answers with this count and re-queues in the background.
	CountOnly bool
}

// TestDeliveryParams asks for one test (ping) delivery to one endpoint.
type TestDeliveryParams struct {
	AccountID  int64
	EndpointID int64
	EventID    string // new public event id
	TaskID     string
	TaskType   string
	Payload    []byte    // the final body, sent as it is
	Now        time.Time // the event's occurred_at and created_at, the delivery's created_at
	LeaseUntil time.Time // the lease expires then, like a claim's
	Owner      string    // who holds the lease (node id), for diagnostics
}

// Claim is the claim CreateTestDelivery returns, as far as the params tell
// (nanohook.NewTestDelivery at now, the caller's own clock truncated to the
// driver's precision): the ping's first attempt, due at now had it not
// been leased (a release makes it due then), its payload never nil (the
// column is NOT NULL). The driver fills in the lease token, the delivery
// id and the endpoint's URL and secrets.
func (p *TestDeliveryParams) Claim(now time.Time) ClaimedDelivery {
	d := nanohook.NewTestDelivery(p.AccountID, p.EndpointID, p.EventID, now)
	payload := p.Payload
	if payload == nil {
		payload = []byte{}
	}
	return ClaimedDelivery{
		Lease:      Lease{DueAt: d.NextAttemptAt},
		AccountID:  d.AccountID,
		EndpointID: d.EndpointID,
		EventID:    d.EventID,
		EventType:  d.EventType,
		Payload:    payload,
		Attempt:    d.Attempts + 1,
		CreatedAt:  d.CreatedAt,
	}
}

// DisableFailingParams selects the endpoints DisableFailingEndpoints
// disables.
type DisableFailingParams struct {
	// FailingSince: endpoints failing since before this are disabled.
	FailingSince time.Time
	Now          time.Time // updated_at of the endpoints and failed deliveries
	// Reason prefixes each endpoint's disabled_reason, e.g. "failing for
	// 120h0m0s"; nanohook.FailingReason appends " since <RFC 3339 time>".
	Reason string
}
