package api

import (
	"context"
	"log/slog"
	"time"

	"github.com/nanohook/nanohook"
	"github.com/nanohook/nanohook/store"
	"github.com/nanohook/nanohook/webhook"
)

// Default body limits. One event or endpoint is a few KiB at most, so 1 MiB
// leaves ample room while bounding memory per request; a batch carries up to
// nanohook.MaxBatchEvents events and gets a larger allowance.
const (
	DefaultMaxBodyBytes = 1 << 20
	MaxBatchBodyBytes   = 16 << 20
)

// DefaultMaxPayloadBytes is the default of Config.MaxPayloadBytes: 64 KiB
// holds any job event's result (URLs and a few fields, not the media), and
// keeps what a delivery in flight holds small. The setting cannot exceed
// webhook.MaxPayloadBytes (1 MiB), the receiver library's default limit.
const DefaultMaxPayloadBytes = 64 << 10

// DefaultMaxEndpoints is the default of Config.MaxEndpointsPerAccount.
// Every event of an account becomes one delivery per endpoint, so the
// limit bounds the fan-out (and the writes) one publish can cause; 100 is
// far more than an account needs for its environments and services.
const DefaultMaxEndpoints = 100

// Tester attempts a delivery the caller already holds, now, and records the
// outcome; the test call uses it so the customer sees the attempt in the
// answer. ReserveTest takes one of the endpoint's in-flight slots first,
// before anything is written, and fails with a rate_limited error (429)
// when the endpoint already has its cap in flight.
type Tester interface {
	ReserveTest(accountID, endpointID int64) (release func(), err error)
	AttemptNow(ctx context.Context, c store.ClaimedDelivery) (nanohook.Attempt, error)
}

// Store is all the handlers need from storage, each part declared beside
// the handlers that use it. store.Store satisfies it; tests may pass
// anything that does.
type Store interface {
	AccountStore
	KeyStore
	EndpointStore
	TestDeliveryStore
	PublishStore
	DeliveryStore
	EventStore
	HealthStore
}

// Config is everything the handlers need, injected by cmd so that tests can
// run them against a temporary database, a fixed clock and a fake URL check.
type Config struct {
	// Store is where accounts, endpoints and events live.
	Store Store
	// Logger receives internal errors (with method and path), recovered
	// panics and, at debug level, one line per request; every line of a
	// request carries its request_id. nil discards them.
	Logger *slog.Logger
	// AdminToken authenticates the admin API. Empty means every admin route
	// answers 401 saying that the admin API is disabled until
	// NANOHOOK_ADMIN_TOKEN is set: it refuses to run open.
	AdminToken string
	// AllowHTTP accepts plain http:// endpoint URLs (--allow-http), for local
	// development only.
	AllowHTTP bool
	// CheckURL checks an endpoint URL's host at create and update time (cmd
	// wires egress.CheckURL unless --allow-private-targets); nil skips the
	// check. Deliveries are guarded again at dial time either way.
	CheckURL func(ctx context.Context, rawURL string) error
	// Waker is woken after every publish that created deliveries, so the
	// delivery engine sends them now instead of at its next poll. May be nil.
	Waker interface{ Wake() }
	// Tester makes the attempt of a test delivery at once and records it
	// (the delivery engine). nil: the test call answers 503.
	Tester Tester
	// RecoverStep is how many deliveries one recover transaction re-queues;
	// default 1000.
	RecoverStep int
	// Background runs the steps of a recover after the first, once its
	// request has been answered. The caller starts it and stops it before
	// closing Store, so that no step runs on a closed store. nil: the
	// handlers start one of their own that nothing stops, which suits
	// tests whose store outlives them.
	Background *Background
	// Now is the clock; nil means time.Now.
	Now func() time.Time
	// MaxBodyBytes bounds request bodies (default DefaultMaxBodyBytes); batch
	// publish allows MaxBatchBodyBytes or MaxBodyBytes, whichever is larger.
	MaxBodyBytes int64
	// MaxPayloadBytes bounds the body delivered for one event: its
	// canonical bytes (webhook.EncodePayload), which is what receivers get,
	// not the size of the request. A larger event is refused at publish
	// with 413 payload_too_large, on the single and batch routes alike.
	// 0 means DefaultMaxPayloadBytes; values above webhook.MaxPayloadBytes
	// are cut to it.
	MaxPayloadBytes int
	// MaxEndpointsPerAccount is the most live (active or disabled)
	// endpoints one account may have: creating one more answers 409
	// conflict. 0 means DefaultMaxEndpoints; negative: no limit.
	MaxEndpointsPerAccount int
	// PublishConcurrency is how many publish transactions run at once on
	// this node (default 1); further ones wait their turn, handed to the
	// waiting accounts round robin, so that one account's flood of
	// publishes cannot hold another's back by more than about one
	// transaction (see planChunks for their size). One suits SQLite,
	// which writes one transaction at a time anyway; PostgreSQL takes a
	// few at once, fewer than its connection pool holds so that reads
	// still find connections.
	PublishConcurrency int
	// TestCallBurst is how many test calls (POST /api/v1/webhooks/{id}/test)
	// one account may make at once; then one more per TestCallRefill. A
	// call beyond answers 429 rate_limited with Retry-After. 0 means
	// DefaultTestCallBurst; negative turns the limit off.
	TestCallBurst int
	// TestCallRefill is how often an account gets one test call back;
	// 0 means DefaultTestCallRefill.
	TestCallRefill time.Duration
	// OnPublish, when set, is called after every publish request (single or
	// batch) committed, with how many of its events were new (duplicates
	// excluded) and how long the request took from its arrival to the
	// commit. Metrics hang here; it must not block.
	OnPublish func(created int, took time.Duration)
	// AuthFailureLimit is how many failed authentications (answers 401) one
	// client address (an IPv6 /64) may make in a row on one listener. Then
	// its requests that carry credentials answer 429 rate_limited with
	// Retry-After, before the credentials are looked up, until failures are
	// forgiven again at one per AuthFailureRefill. Clients are told apart
	// by the connection's address, never by X-Forwarded-For. Credentials
	// that authenticated successfully within the last hour, from any
	// address, are still looked up and served. 0 means
	// DefaultAuthFailureLimit; negative turns the limit off.
	AuthFailureLimit int
	// AuthFailureRefill is how often one failed authentication is forgiven;
	// 0 means DefaultAuthFailureRefill.
	AuthFailureRefill time.Duration
	// AuthFailureClients caps how many client addresses the limit tracks
	// at once, which bounds its memory; 0 means DefaultAuthFailureClients.
	AuthFailureClients int
}

// server holds the resolved configuration shared by all handlers of one
// handler tree.
type server struct {
	store         Store
	log           *slog.Logger
	adminToken    string
	allowHTTP     bool
	checkURL      func(ctx context.Context, rawURL string) error
	waker         interface{ Wake() }
	tester        Tester
	recoverStep   int
	background    *Background // runs the rest of a large recover
	now           func() time.Time
	maxBody       int64
	maxBatchBody  int64
	maxPayload    int // most canonical bytes delivered for one event
	maxEndpoints  int // most live endpoints per account; 0: no limit
	onPublish     func(created int, took time.Duration)
	authLimit     *authLimiter    // nil: failed authentications are not limited
	gate          *publishGate    // turns of publish transactions, shared fairly by accounts
	groups        publishGroups   // publish transactions waiting for a turn, committed together
	accountCounts accountCounts   // accounts publishes named, and their endpoint counts
	testLimit     *accountLimiter // test calls per account; nil: not limited
	ready         writeProbe      // /readyz's write probe, at most one a second
}

// checkURLTimeout bounds the host check (a DNS lookup) of a create or update
// so that a slow resolver cannot hold a request open indefinitely.
const checkURLTimeout = 5 * time.Second

func newServer(cfg Config) *server {
	if cfg.Store == nil {
		panic("api: Config.Store is required")
	}
	s := &server{
		store:       cfg.Store,
		log:         cfg.Logger,
		adminToken:  cfg.AdminToken,
		allowHTTP:   cfg.AllowHTTP,
		checkURL:    cfg.CheckURL,
		waker:       cfg.Waker,
		tester:      cfg.Tester,
		recoverStep: cfg.RecoverStep,
		background:  cfg.Background,
		now:         cfg.Now,
		maxBody:     cfg.MaxBodyBytes,
		onPublish:   cfg.OnPublish,
	}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	s.log = slog.New(requestIDHandler{s.log.Handler()})
	if s.now == nil {
		s.now = time.Now
	}
	if s.maxBody <= 0 {
		s.maxBody = DefaultMaxBodyBytes
	}
	if s.recoverStep <= 0 {
		s.recoverStep = 1000
	}
	if s.background == nil {
		s.background = NewBackground()
		s.background.Start(context.Background())
	}
	s.maxBatchBody = max(s.maxBody, MaxBatchBodyBytes)
	s.maxPayload = cfg.MaxPayloadBytes
	if s.maxPayload <= 0 {
		s.maxPayload = DefaultMaxPayloadBytes
	}
	s.maxPayload = min(s.maxPayload, webhook.MaxPayloadBytes)
	switch n := cfg.MaxEndpointsPerAccount; {
	case n == 0:
		s.maxEndpoints = DefaultMaxEndpoints
	case n > 0:
		s.maxEndpoints = n
	}
	s.authLimit = newAuthLimiter(cfg, s.now, s.log)
	s.gate = newPublishGate(cfg.PublishConcurrency)
	s.testLimit = newTestCallLimiter(cfg, s.now)
	return s
}
