package delivery

import (
	"context"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nanohook/nanohook"
	"github.com/nanohook/nanohook/egress"
	"github.com/nanohook/nanohook/store"
)

// Store is what the engine needs from storage.
type Store interface {
	ClaimDeliveries(ctx context.Context, p store.ClaimParams) ([]store.ClaimedDelivery, error)
	CompleteDeliveries(ctx context.Context, results []store.CompleteParams) error
	ReleaseDeliveries(ctx context.Context, leases []store.Lease) error
	NextDueAt(ctx context.Context) (time.Time, bool, error)
}

// Config configures an Engine. Zero values take the documented defaults.
type Config struct {
	Store  Store
	Client *http.Client // the egress client (it must not follow redirects); nil: a guarded egress client
	Logger *slog.Logger

	Schedule  []time.Duration // waits after each failure; nil: DefaultSchedule
	NoRetry   bool            // with an empty Schedule: fail after one attempt
	Timeout   time.Duration   // per attempt; default 15 s
	Workers   int             // concurrent attempts; default 256
	ClaimSize int             // most deliveries claimed per query; default 256
	// LeaseMargin is added to Timeout to make the lease: a claim is held at
	// most that long before another node may take it. Default 30 s.
	LeaseMargin time.Duration
	// PollInterval is the fallback wait when nobody calls Wake (another node
	// published, or a clock jumped). Default 1 s.
	PollInterval time.Duration
	// MaxPerEndpoint caps this node's attempts in flight to one endpoint,
	// so a slow or dead endpoint cannot hold every worker. Default 64 (a
	// quarter of the default 256 workers).
	MaxPerEndpoint int
	// BreakerThreshold consecutive failed attempts open an endpoint's
	// circuit breaker: its deliveries wait (untouched, their schedule not
	// consumed) for BreakerCooldown, then one probe goes out; a success
	// closes the breaker. Defaults 5 and 30 s.
	BreakerThreshold int
	BreakerCooldown  time.Duration
	UserAgent        string
	NodeID           string
	// OnComplete, when set, is called by the completer for every outcome
	// once it is committed (metrics hang here). It must not block.
	OnComplete func(store.CompleteParams)
	Now        func() time.Time // default time.Now
	Rand       func() float64   // jitter source in [0,1); default math/rand/v2
}

// Engine delivers due deliveries until it is stopped.
type Engine struct {
	cfg    Config
	log    *slog.Logger
	policy RetryPolicy
	sender sender

	wake      chan struct{} // publish happened; buffered 1
	slotFreed chan struct{} // a completion freed capacity; buffered 1
	jobs      chan store.ClaimedDelivery
	results   chan outcomeWithLease
	inflight  atomic.Int64 // claimed and not yet attempted to the end
	lanes     *lanes       // per-endpoint in-flight caps and circuit breakers

	claimCtx    context.Context // cancelled by Stop: no more claims
	stopClaims  context.CancelFunc
	attemptCtx  context.Context // cancelled when Stop's deadline passes
	abortSends  context.CancelFunc
	writeCtx    context.Context // cancelled when Stop's deadline passes and writes still hang
	abortWrites context.CancelFunc
	claimerDone chan struct{}
	workersWG   sync.WaitGroup
	completerWG sync.WaitGroup
	startOnce   sync.Once
	stopOnce    sync.Once
}

type outcomeWithLease struct {
	claim *store.ClaimedDelivery
	out   outcome
}

// New returns an engine; call Start to run it.
func New(cfg Config) *Engine {
	if cfg.Schedule == nil && !cfg.NoRetry {
		cfg.Schedule = DefaultSchedule()
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = 15 * time.Second
	}
	if cfg.Workers <= 0 {
		cfg.Workers = 256
	}
	if cfg.ClaimSize <= 0 {
		cfg.ClaimSize = 256
	}
	if cfg.LeaseMargin <= 0 {
		cfg.LeaseMargin = 30 * time.Second
	}
	if cfg.PollInterval <= 0 {
		cfg.PollInterval = time.Second
	}
	if cfg.MaxPerEndpoint <= 0 {
		cfg.MaxPerEndpoint = 64
	}
	if cfg.BreakerThreshold <= 0 {
		cfg.BreakerThreshold = 5
	}
	if cfg.BreakerCooldown <= 0 {
		cfg.BreakerCooldown = 30 * time.Second
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Rand == nil {
		cfg.Rand = rand.Float64
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.UserAgent == "" {
		cfg.UserAgent = "nanohook"
	}
	if cfg.Client == nil {
		cfg.Client = egress.NewClient(egress.Options{Timeout: cfg.Timeout, UserAgent: cfg.UserAgent})
	}
	e := &Engine{
		cfg:         cfg,
		log:         cfg.Logger,
		policy:      RetryPolicy{Schedule: cfg.Schedule},
		sender:      sender{transport: transportOf(cfg.Client), timeout: cfg.Timeout, userAgent: cfg.UserAgent, now: cfg.Now},
		wake:        make(chan struct{}, 1),
		slotFreed:   make(chan struct{}, 1),
		jobs:        make(chan store.ClaimedDelivery, cfg.Workers),
		results:     make(chan outcomeWithLease, cfg.Workers),
		claimerDone: make(chan struct{}),
		lanes:       newLanes(cfg.MaxPerEndpoint, cfg.BreakerThreshold, cfg.BreakerCooldown),
	}
	return e
}

// transportOf is the transport attempts go through: the client's own.
func transportOf(c *http.Client) http.RoundTripper {
	if c.Transport != nil {
		return c.Transport
	}
	return http.DefaultTransport
}

// Wake tells the engine that new work may be due now. It never blocks; the
// publish path calls it after every commit that created deliveries.
func (e *Engine) Wake() {
	select {
	case e.wake <- struct{}{}:
	default:
	}
}

// Start runs the claimer, the workers and the completer in the background.
// ctx only carries values; stopping is Stop's job.
func (e *Engine) Start(ctx context.Context) {
	e.startOnce.Do(func() {
		base := context.WithoutCancel(ctx)
		e.claimCtx, e.stopClaims = context.WithCancel(base)
		e.attemptCtx, e.abortSends = context.WithCancel(base)
		e.writeCtx, e.abortWrites = context.WithCancel(base)
		for range e.cfg.Workers {
			e.workersWG.Add(1)
			go e.worker()
		}
		e.completerWG.Add(1)
		go e.completer(e.writeCtx)
		go e.claimer()
	})
}

// Stop shuts the engine down gracefully: it stops claiming at once, lets the
// attempts in flight finish until ctx is done, then aborts the rest and
// gives their deliveries back to the store, so nothing stays claimed beyond
// this call. It returns ctx's error if the deadline cut attempts short.
//
// If storage hangs so that the outcomes cannot be written by the deadline,
// Stop gives up on them and returns an error: those deliveries stay leased
// until their leases expire and are then attempted again (at least once).
func (e *Engine) Stop(ctx context.Context) error {
	if e.stopClaims == nil { // never started: nothing to stop, Start still works
		return nil
	}
	var err error
	e.stopOnce.Do(func() {
		e.stopClaims()
		<-e.claimerDone
		close(e.jobs) // workers drain what was claimed, then exit

		workersDone := make(chan struct{})
		go func() { e.workersWG.Wait(); close(workersDone) }()
		select {
		case <-workersDone:
		case <-ctx.Done():
			err = fmt.Errorf("attempts cut short and released: %w", ctx.Err())
			e.abortSends() // attempts end at once and come back as aborted
			<-workersDone
		}
		close(e.results)

		completerDone := make(chan struct{})
		go func() { e.completerWG.Wait(); close(completerDone) }()
		select {
		case <-completerDone:
		case <-ctx.Done():
			// Give the writes in progress a moment, then abandon them.
			select {
			case <-completerDone:
			case <-time.After(time.Second):
				e.abortWrites()
				<-completerDone
				err = fmt.Errorf("outcomes not recorded, their leases will expire: %w", ctx.Err())
			}
		}
		e.abortSends()
		e.abortWrites()
	})
	return err
}

// claimer leases due deliveries while there are free worker slots.
func (e *Engine) claimer() {
	defer close(e.claimerDone)
	ctx := e.claimCtx
	timer := time.NewTimer(0)
	defer timer.Stop()
	// Under load, claim in batches rather than a few slots at a time: each
	// claim is a write transaction, and fewer, larger ones cost storage far
	// less. Until a quarter of the pool is free, a claim waits at most
	// claimLinger after the previous one, so that slow attempts freeing
	// slots one by one do not leave workers idle for long.
	minClaim := int64(max(1, min(e.cfg.ClaimSize, e.cfg.Workers)/4))
	var lastClaim time.Time
	for {
		wait := e.cfg.PollInterval
		free := int64(e.cfg.Workers) - e.inflight.Load()
		if free > 0 && free < minClaim {
			if since := time.Since(lastClaim); since < claimLinger {
				free, wait = 0, claimLinger-since
			}
		}
		if free > 0 {
			lastClaim = time.Now()
			n := int(min(free, int64(e.cfg.ClaimSize)))
			got, refused, skipping, err := e.claim(ctx, n)
			if ctx.Err() != nil {
				return
			}
			if err != nil {
				e.log.ErrorContext(ctx, "claiming deliveries failed", slog.Any("error", err))
			} else if got == n || refused {
				// Probably more due, or an endpoint just reached its cap and
				// the next claim will skip it: claim again while slots are free.
				continue
			} else if next, ok, err := e.cfg.Store.NextDueAt(ctx); err == nil && ok {
				d := next.Sub(e.cfg.Now())
				switch {
				case d > 0:
					wait = min(wait, d)
				case !skipping:
					// It fell due between the claim and this look: claim again.
					wait = time.Millisecond
				default:
					// Due but perhaps skipped (capped or open endpoints): a
					// freed slot wakes us; look again soon, not in a spin.
					wait = min(wait, skippedRecheck)
				}
			}
		}
		timer.Reset(wait)
		select {
		case <-ctx.Done():
			return
		case <-e.wake:
		case <-e.slotFreed:
		case <-timer.C:
		}
		// Since Go 1.23 Reset needs no drained channel: stale ticks are dropped.
	}
}

// claim leases up to n deliveries, skipping endpoints at their cap or with
// an open breaker, and hands them to the workers. Deliveries beyond an
// endpoint's cap within one claim are given back at once (refused reports
// that; the next claim skips that endpoint). It returns how many it claimed.
func (e *Engine) claim(ctx context.Context, n int) (got int, refused, skipping bool, err error) {
	now := e.cfg.Now()
	skip := e.lanes.skip(now)
	claimed, err := e.cfg.Store.ClaimDeliveries(ctx, store.ClaimParams{
		Now:           now,
		LeaseUntil:    now.Add(e.cfg.Timeout + e.cfg.LeaseMargin),
		Limit:         n,
		Owner:         e.cfg.NodeID,
		SkipEndpoints: skip,
	})
	if err != nil {
		return 0, false, len(skip) > 0, err
	}
	var back []store.Lease
	for i := range claimed {
		if !e.lanes.admit(claimed[i].EndpointID, now) {
			back = append(back, claimed[i].Lease)
			continue
		}
		e.inflight.Add(1)
		e.jobs <- claimed[i] // never blocks: inflight ≤ Workers = cap(jobs)
	}
	if len(back) > 0 {
		if err := e.cfg.Store.ReleaseDeliveries(ctx, back); err != nil {
			e.log.WarnContext(ctx, "giving back deliveries over an endpoint's cap failed; their leases will expire",
				slog.Any("error", err), slog.Int("deliveries", len(back)))
		}
	}
	return len(claimed), len(back) > 0, len(skip) > 0, nil
}

// claimLinger is how long the claimer lets a few free worker slots wait for
// more before it claims for them anyway.
const claimLinger = 5 * time.Millisecond

// completeLinger bounds how long the completer waits, from a batch's first
// result, for more results before it commits a small batch while other
// attempts are in flight.
const completeLinger = 2 * time.Millisecond

// skippedRecheck is how soon the claimer looks again when due work may all
// belong to skipped endpoints: often enough that work which fell due
// meanwhile is not late, rarely enough not to spin over a capped backlog.
const skippedRecheck = 50 * time.Millisecond

// worker makes attempts until the jobs channel is closed.
func (e *Engine) worker() {
	defer e.workersWG.Done()
	sign := newSigners()
	for c := range e.jobs {
		var out outcome
		if e.attemptCtx.Err() != nil {
			out.aborted = true
		} else {
			out = e.sender.send(e.attemptCtx, &c, sign)
		}
		// The worker is free again as soon as the attempt ends: its outcome
		// waits for the completer (bounded by the results channel), but a
		// new claim need not wait for that commit, which would otherwise
		// hold every slot for a transaction's time on top of the attempt's.
		// The delivery stays leased until its outcome is written, so it
		// cannot be claimed again meanwhile.
		now := e.cfg.Now()
		if out.aborted {
			e.lanes.done(c.EndpointID, false, false, false, now, now)
		} else {
			a := &out.attempt
			answered := a.ResponseStatus != 0 && a.ResponseStatus != http.StatusTooManyRequests && a.ResponseStatus != http.StatusServiceUnavailable
			e.lanes.done(c.EndpointID, true, out.success, answered, a.StartedAt, now)
		}
		e.inflight.Add(-1)
		select {
		case e.slotFreed <- struct{}{}:
		default:
		}
		e.results <- outcomeWithLease{claim: &c, out: out}
	}
}

// completer writes outcomes back in batches: it takes whatever results are
// waiting (at least one) and commits them in one store call, so under load
// one transaction carries many completions and when idle a single result is
// written at once.
func (e *Engine) completer(ctx context.Context) {
	defer e.completerWG.Done()
	batch := make([]store.CompleteParams, 0, e.cfg.ClaimSize)
	var aborted []store.Lease
	var linger *time.Timer
	for first := range e.results {
		batch, aborted = batch[:0], aborted[:0]
		lingerUntil := time.Now().Add(completeLinger)
		r := first
		for {
			if r.out.aborted {
				aborted = append(aborted, r.claim.Lease)
			} else {
				batch = append(batch, e.complete(r.claim, &r.out))
			}
			if len(batch)+len(aborted) >= e.cfg.ClaimSize {
				break
			}
			var ok bool
			select {
			case r, ok = <-e.results:
			default:
				// Nothing waiting. Under load more results are moments away,
				// and one transaction for many costs far less than many for
				// one each: linger briefly for them. When idle this only
				// delays the bookkeeping, never a delivery.
				n := len(batch) + len(aborted)
				if wait := time.Until(lingerUntil); wait > 0 && n < e.cfg.ClaimSize/4 && e.inflight.Load() > 0 {
					if linger == nil {
						linger = time.NewTimer(wait)
					} else {
						linger.Reset(wait)
					}
					select {
					case r, ok = <-e.results:
					case <-linger.C:
					}
				}
			}
			if !ok {
				break
			}
		}
		e.flush(ctx, batch, aborted)
		if len(aborted) > 0 || slices.ContainsFunc(batch, retrying) {
			// The claimer may be asleep until these deliveries' leases
			// expire (their slots were freed before the outcomes were
			// written): the outcomes just cleared those leases and
			// scheduled retries that may be due sooner, so it must look at
			// the due times again. Finished deliveries make nothing due.
			e.Wake()
		}
		if e.cfg.OnComplete != nil {
			for i := range batch {
				e.cfg.OnComplete(batch[i])
			}
		}
	}
}

// retrying reports whether an outcome schedules another attempt.
func retrying(p store.CompleteParams) bool { return p.Status == nanohook.DeliveryPending }

// complete turns one attempt's outcome into the store write.
func (e *Engine) complete(c *store.ClaimedDelivery, out *outcome) store.CompleteParams {
	now := e.cfg.Now()
	p := store.CompleteParams{
		Lease:      c.Lease,
		Attempt:    out.attempt,
		EndpointID: c.EndpointID,
		EventID:    c.EventID,
		Now:        now,
	}
	switch {
	case out.success:
		p.Status = nanohook.DeliverySucceeded
	case out.gone:
		p.Status = nanohook.DeliveryFailed
		p.DisableEndpoint = "endpoint answered 410 Gone"
	default:
		if wait, ok := e.policy.Next(c.Attempt, out.retryAfter, e.cfg.Rand()); ok {
			p.Status = nanohook.DeliveryPending
			p.NextAttemptAt = now.Add(wait)
		} else {
			p.Status = nanohook.DeliveryFailed
		}
	}
	return p
}

// flush commits completions and releases aborted claims. A failed write is
// retried briefly; if storage stays down the leases expire and the
// deliveries are attempted again (at least once, never lost).
func (e *Engine) flush(ctx context.Context, batch []store.CompleteParams, aborted []store.Lease) {
	if len(batch) > 0 {
		e.retryWrite(ctx, "recording attempts", func(ctx context.Context) error {
			return e.cfg.Store.CompleteDeliveries(ctx, batch)
		})
	}
	if len(aborted) > 0 {
		e.retryWrite(ctx, "releasing deliveries", func(ctx context.Context) error {
			return e.cfg.Store.ReleaseDeliveries(ctx, aborted)
		})
	}
}

func (e *Engine) retryWrite(ctx context.Context, what string, write func(context.Context) error) {
	backoff := 50 * time.Millisecond
	for try := 1; ; try++ {
		wctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		err := write(wctx)
		cancel()
		if err == nil {
			return
		}
		if try == 5 || ctx.Err() != nil {
			e.log.ErrorContext(ctx, what+" failed; the leases will expire and the deliveries be retried",
				slog.Any("error", err), slog.Int("tries", try))
			return
		}
		e.log.WarnContext(ctx, what+" failed; retrying", slog.Any("error", err), slog.Int("try", try))
		select {
		case <-ctx.Done():
		case <-time.After(backoff):
		}
		backoff *= 2
	}
}

// AttemptNow makes one attempt of a delivery the caller already holds (the
// test call's ping), records it, and returns it. The outcome is final: a
// test is not retried. A 410 disables the endpoint as on any delivery.
func (e *Engine) AttemptNow(ctx context.Context, c store.ClaimedDelivery) (nanohook.Attempt, error) {
	out := e.sender.send(ctx, &c, nil) // a test ping: rare, and not on a worker
	p := store.CompleteParams{
		Lease:      c.Lease,
		Attempt:    out.attempt,
		EndpointID: c.EndpointID,
		EventID:    c.EventID,
		Now:        e.cfg.Now(),
		Status:     nanohook.DeliveryFailed,
	}
	switch {
	case out.success:
		p.Status = nanohook.DeliverySucceeded
	case out.gone:
		p.DisableEndpoint = "endpoint answered 410 Gone"
	}
	// Recorded even when the caller went away meanwhile: the attempt happened.
	if err := e.cfg.Store.CompleteDeliveries(context.WithoutCancel(ctx), []store.CompleteParams{p}); err != nil {
		return out.attempt, fmt.Errorf("record test attempt: %w", err)
	}
	return out.attempt, nil
}
