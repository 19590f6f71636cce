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
	"github.com/nanohook/nanohook/internal/testsignal"
	"github.com/nanohook/nanohook/store"
)

// Store is what the engine needs from storage.
type Store interface {
	QueueHeads(ctx context.Context) ([]store.QueueHead, error)
	ClaimDeliveries(ctx context.Context, p store.ClaimParams) ([]store.ClaimedDelivery, error)
	RescueExpiredLeases(ctx context.Context, now time.Time) (int64, error)
	CompleteDeliveries(ctx context.Context, results []store.CompleteParams) error
	ReleaseDeliveries(ctx context.Context, leases []store.Lease) error
}

// Config configures an Engine. Zero values take the documented defaults.
type Config struct {
	Store  Store
	Client *http.Client // the egress client (it must not follow redirects); nil: a guarded egress client
	Logger *slog.Logger

	Schedule []time.Duration // waits after each failure; nil: DefaultSchedule
	NoRetry  bool            // with an empty Schedule: fail after one attempt
	Timeout  time.Duration   // per attempt; default 15 s
	// MaxInFlight bounds this node's attempts in flight. Attempts wait on
	// the network, not the CPU, so it is sized for I/O: default 4096, each
	// an idle goroutine and a connection while it waits.
	MaxInFlight int
	ClaimSize   int // most deliveries claimed per query; default 256
	// LeaseMargin is added to Timeout to make the lease: a claim is held at
	// most that long before another node may take it. Default 30 s.
	LeaseMargin time.Duration
	// PollInterval is the fallback wait when nobody calls Wake (another node
	// published, or a clock jumped). Default 1 s.
	PollInterval time.Duration
	// MaxPerEndpoint caps this node's attempts in flight to one endpoint.
	// Each endpoint's limit adapts below it to its latency and errors
	// (limiter): while more than half of MaxInFlight is in flight, a slow
	// endpoint is held to its latency's share; below that, any endpoint
	// whose attempts succeed may use its whole window. Default 64.
	MaxPerEndpoint int
	// MaxPerAccount caps this node's attempts in flight for one account,
	// whatever its number of endpoints, so no customer takes the whole
	// node. Default a quarter of MaxInFlight, but at least sixteen
	// endpoints' caps (or MaxInFlight if smaller), so that a small node
	// still lets an account use several endpoints at once.
	MaxPerAccount int
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
	slotFreed chan struct{} // an attempt ended; buffered 1
	freed     atomic.Int64  // attempts ended since the last round began
	results   chan outcomeWithLease
	inflight  atomic.Int64 // claimed and not yet handed to the completer
	lanes     *lanes       // per-endpoint limits and breakers, per-account shares
	payloads  payloads     // the bodies of the events in flight, one copy each
	// idle hands a claimed delivery to an attempt goroutine waiting for
	// work (unbuffered: a send succeeds only when one is waiting).
	idle chan store.ClaimedDelivery

	claimCtx    context.Context // cancelled by Stop: no more claims
	stopClaims  context.CancelFunc
	attemptCtx  context.Context // cancelled when Stop's deadline passes
	abortSends  context.CancelFunc
	writeCtx    context.Context // cancelled when Stop's deadline passes and writes still hang
	abortWrites context.CancelFunc
	claimerDone chan struct{}
	// heads is the queue heads the claimer last read (when, headsAt), less
	// the endpoints a round found drained since: rounds that only ending
	// attempts woke plan from it instead of reading them again. Only the
	// claimer touches them.
	heads       []store.QueueHead
	headsAt     time.Time
	attemptsWG  sync.WaitGroup // attempts started and not yet handed to the completer
	runnersWG   sync.WaitGroup // attempt goroutines, busy or idle
	completerWG sync.WaitGroup
	startOnce   sync.Once
	stopOnce    sync.Once
	// stored is a test-only hook (off, a no-op, in production): the
	// engine wrote to the store in the background, so that a delivery's
	// state may have moved: a claim round ended (claiming also fails the
	// due deliveries of disabled endpoints), or the completer committed a
	// batch of outcomes and releases. One nil check per round and per
	// batch, never per delivery.
	stored testsignal.Signal
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
	if cfg.MaxInFlight <= 0 {
		cfg.MaxInFlight = DefaultMaxInFlight
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
		cfg.MaxPerEndpoint = DefaultMaxPerEndpoint
	}
	if cfg.MaxPerAccount <= 0 {
		cfg.MaxPerAccount = max(cfg.MaxInFlight/4, min(cfg.MaxInFlight, 16*cfg.MaxPerEndpoint))
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
		results:     make(chan outcomeWithLease, cfg.ClaimSize),
		claimerDone: make(chan struct{}),
		lanes:       newLanes(cfg.MaxPerEndpoint, cfg.MaxPerAccount, cfg.BreakerThreshold, cfg.BreakerCooldown),
		payloads:    payloads{m: map[string]*sharedPayload{}},
		idle:        make(chan store.ClaimedDelivery),
	}
	return e
}

// The defaults of MaxInFlight and MaxPerEndpoint, which serve's flags show.
const (
	DefaultMaxInFlight    = 4096
	DefaultMaxPerEndpoint = 64
)

// transportOf is the transport attempts go through: the client's own.
func transportOf(c *http.Client) http.RoundTripper {
	if c.Transport != nil {
		return c.Transport
	}
	return http.DefaultTransport
}

// InFlight is how many attempts this engine has in flight now: claimed and
// not yet handed to the completer.
func (e *Engine) InFlight() int { return int(e.inflight.Load()) }

// Wake tells the engine that new work may be due now. It never blocks; the
// publish path calls it after every commit that created deliveries.
func (e *Engine) Wake() {
	select {
	case e.wake <- struct{}{}:
	default:
	}
}

// Start runs the claimer and the completer in the background; the claimer
// starts one goroutine per attempt.
// ctx only carries values; stopping is Stop's job.
func (e *Engine) Start(ctx context.Context) {
	e.startOnce.Do(func() {
		base := context.WithoutCancel(ctx)
		e.claimCtx, e.stopClaims = context.WithCancel(base)
		e.attemptCtx, e.abortSends = context.WithCancel(base)
		e.writeCtx, e.abortWrites = context.WithCancel(base)
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
		<-e.claimerDone // no attempt starts after this

		attemptsDone := make(chan struct{})
		go func() { e.attemptsWG.Wait(); close(attemptsDone) }()
		select {
		case <-attemptsDone:
		case <-ctx.Done():
			err = fmt.Errorf("attempts cut short and released: %w", ctx.Err())
			e.abortSends() // attempts end at once and come back as aborted
			<-attemptsDone
		}
		e.runnersWG.Wait() // idle ones end with the claimer's context
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

// claimer leases due work while there is room for it, in fair shares.
//
// Each round reads the store's queue heads (which endpoints have due work),
// or reuses the last ones (see round), plans how many deliveries to take from each (plan: fair across accounts,
// then endpoints, within each endpoint's adaptive limit and each account's
// cap), and claims them in one call. A round runs when a publish wakes the
// engine, when the next queue head falls due, when an open breaker lets a
// probe through, and when attempts end and free room; rounds woken only by
// ending attempts are at most one per claimLinger unless claimBulk attempts
// ended since the last one, so that under load one claim takes the room
// many attempts freed instead of one claim each.
func (e *Engine) claimer() {
	defer close(e.claimerDone)
	ctx := e.claimCtx
	timer := time.NewTimer(0)
	defer timer.Stop()
	var lastRound, lastRescue time.Time
	next := nextRound{woken: true, refresh: true}
	for {
		if time.Since(lastRescue) >= rescueEvery {
			lastRescue = time.Now()
			if n, err := e.cfg.Store.RescueExpiredLeases(ctx, e.cfg.Now()); err != nil && ctx.Err() == nil {
				e.log.ErrorContext(ctx, "rescuing expired leases failed", slog.Any("error", err))
			} else if n > 0 {
				e.log.WarnContext(ctx, "deliveries whose lease expired unfinished are queued again",
					slog.Int64("deliveries", n))
				next.wake()
			}
		}
		wait := e.cfg.PollInterval
		if since := time.Since(lastRound); !next.woken && !next.again && since < claimLinger && e.freed.Load() < claimBulk(e.cfg.ClaimSize) {
			wait = claimLinger - since
		} else if free := int64(e.cfg.MaxInFlight) - e.inflight.Load(); free > 0 {
			lastRound, next.again = time.Now(), false
			e.freed.Store(0)
			more, dueAt, err := e.round(ctx, int(min(free, int64(e.cfg.ClaimSize))), next.refresh)
			e.stored.Notify()
			next.refresh = next.refresh && err != nil
			if ctx.Err() != nil {
				return
			}
			if err != nil {
				e.log.ErrorContext(ctx, "claiming deliveries failed", slog.Any("error", err))
			} else if more {
				// A woken round claims again at once, from the heads it
				// has just read.
				next.again, next.woken = next.woken, false
				continue
			} else if !dueAt.IsZero() {
				wait = max(time.Millisecond, min(wait, dueAt.Sub(e.cfg.Now())))
			}
		}
		timer.Reset(wait)
		next.woken = false
		select {
		case <-ctx.Done():
			return
		case <-e.wake:
			next.wake()
		case <-e.slotFreed:
		case <-timer.C:
			next.wake()
		}
		// Since Go 1.23 Reset needs no drained channel: stale ticks are dropped.
	}
}

// nextRound is what the claimer knows of its next round: why it runs and
// what it may plan from.
type nextRound struct {
	// woken: something besides ending attempts calls for a round.
	woken bool
	// again: the last round, woken, got all it asked for: claim again at
	// once while room lasts.
	again bool
	// refresh: since the last read of the queue heads, something may have
	// made work due that they do not show (see round).
	refresh bool
}

// wake records a publish, a timer or rescued leases: a round is called
// for, on queue heads read afresh.
func (r *nextRound) wake() { r.woken, r.refresh = true, true }

// round claims up to free deliveries in fair shares and starts their
// attempts. It plans from the queue heads read afresh when fresh (a publish,
// a retry scheduled, a timer: work may have appeared anywhere), when the
// last read is older than headsMaxAge, or when it has none; otherwise from
// the last read less the endpoints found drained since, which is all that
// ending attempts change. more reports that an endpoint gave all it was asked for (it may
// have more due: claim again while room lasts); otherwise next is when the
// claimer should look again without being woken (zero: only when woken):
// the next queue head's due time, an open breaker's probe time, or soon
// when due work was not found where the heads said it was.
func (e *Engine) round(ctx context.Context, free int, fresh bool) (more bool, next time.Time, err error) {
	if fresh || e.heads == nil || time.Since(e.headsAt) >= headsMaxAge {
		heads, err := e.cfg.Store.QueueHeads(ctx)
		if err != nil {
			e.heads = nil
			return false, time.Time{}, err
		}
		e.heads, e.headsAt = heads, time.Now()
	}
	heads := e.heads
	now := e.cfg.Now()
	due, next := dueEndpoints(heads, now)
	if len(due) == 0 {
		return false, next, nil
	}
	r := e.lanes.room(due, now)
	if !r.reopen.IsZero() && (next.IsZero() || r.reopen.Before(next)) {
		next = r.reopen
	}
	spare := e.cfg.MaxInFlight/2 - int(e.inflight.Load())
	quotas := plan(due, r, free, spare)
	if len(quotas) == 0 {
		// Every due endpoint is at its limit or its account at its cap:
		// ending attempts wake the claimer.
		return false, next, nil
	}
	claimed, err := e.cfg.Store.ClaimDeliveries(ctx, store.ClaimParams{
		Now:        now,
		LeaseUntil: now.Add(e.cfg.Timeout + e.cfg.LeaseMargin),
		Owner:      e.cfg.NodeID,
		Quotas:     quotas,
	})
	if err != nil {
		return false, next, err
	}
	got := make(map[int64]int, len(quotas))
	var back []store.Lease
	for i := range claimed {
		c := &claimed[i]
		got[c.EndpointID]++
		if !e.lanes.admit(c.EndpointID, c.AccountID, now) {
			back = append(back, c.Lease)
			continue
		}
		e.start(*c)
	}
	if len(back) > 0 {
		if err := e.cfg.Store.ReleaseDeliveries(ctx, back); err != nil {
			e.log.WarnContext(ctx, "giving back deliveries over an endpoint's limit failed; their leases will expire",
				slog.Any("error", err), slog.Int("deliveries", len(back)))
		}
	}
	// An endpoint that gave fewer than asked has no more due now: later
	// rounds on these heads leave it out until they are read again.
	drained := map[int64]bool{}
	for _, q := range quotas {
		if got[q.EndpointID] >= q.Limit {
			more = true
		} else {
			drained[q.EndpointID] = true
		}
	}
	if len(drained) > 0 {
		e.heads = slices.DeleteFunc(e.heads, func(h store.QueueHead) bool { return drained[h.EndpointID] })
	}
	if more {
		return true, next, nil
	}
	if len(claimed) == 0 {
		// The heads said due, the claim found nothing: another node took
		// it meanwhile. Look again soon rather than spin.
		soon := now.Add(skippedRecheck)
		if next.IsZero() || soon.Before(next) {
			next = soon
		}
	}
	return false, next, nil
}

// start runs one claimed delivery's attempt: on an attempt goroutine that
// is idle, or on a new one.
func (e *Engine) start(c store.ClaimedDelivery) {
	c.Payload = e.payloads.share(c.EventID, c.Payload)
	e.inflight.Add(1)
	e.attemptsWG.Add(1)
	select {
	case e.idle <- c:
	default:
		e.runnersWG.Add(1)
		go e.runner(c)
	}
}

// runner makes attempts, starting with c, as long as work comes within
// runnerIdle of the last. Goroutines are cheap, but each attempt's
// goroutine grows its stack through the HTTP client and TLS, and a fresh
// goroutine per attempt paid that copying every time (about 3 % of the
// engine's CPU under load); a runner keeps its grown stack and its cache
// of signers between attempts, and idle ones go away once the load does.
func (e *Engine) runner(c store.ClaimedDelivery) {
	defer e.runnersWG.Done()
	sign := newSigners()
	idle := time.NewTimer(runnerIdle)
	defer idle.Stop()
	for {
		e.attempt(c, sign)
		idle.Reset(runnerIdle)
		select {
		case c = <-e.idle:
		case <-idle.C:
			return
		case <-e.claimCtx.Done():
			return // stopping: no more claims, so no more work
		}
	}
}

// runnerIdle is how long an attempt goroutine waits for its next attempt
// before it ends.
const runnerIdle = 2 * time.Second

// claimLinger is how long the claimer lets a few free worker slots wait for
// more before it claims for them anyway. Once claimBulk attempts have ended
// since the last round, it claims at once: their room is worth a claim of
// its own, and under a fast receiver's load waiting out the linger leaves
// those slots idle for most of a claim's cycle.
const claimLinger = 5 * time.Millisecond

// claimBulk is how many ended attempts call for a round without waiting
// for claimLinger: half a full claim. A quarter claimed more often, which
// on PostgreSQL cost 6 % of fast's throughput (each claim is a round trip
// and a transaction there); half left PostgreSQL unchanged.
func claimBulk(claimSize int) int64 { return int64(max(1, claimSize/2)) }

// completeLinger bounds how long the completer waits, from a batch's first
// result, for more results before it commits a small batch while other
// attempts are in flight.
const completeLinger = 2 * time.Millisecond

// rescueEvery is how often the claimer asks the store to queue again the
// deliveries whose lease expired unfinished (a crashed node's claims, or an
// outcome that could not be recorded). Finding none costs one index probe,
// and a lease lasts the attempt timeout and its margin, so a second late
// is nothing.
const rescueEvery = time.Second

// headsMaxAge bounds how long rounds that only ending attempts woke plan
// from the last queue heads read: under a steady load slots free all the
// time and the claimer is never otherwise woken, and work may appear
// without a wake here (another node's publish, a lease of another node
// rescued). Reading the heads at each of a hundred rounds a second cost a
// tenth of the claimer's CPU.
const headsMaxAge = 100 * time.Millisecond

// skippedRecheck is how soon the claimer looks again when the queue heads
// said work was due and the claim found none: often enough that work which
// fell due meanwhile is not late, rarely enough not to spin.
const skippedRecheck = 50 * time.Millisecond

// attempt makes one claimed delivery's attempt, frees its endpoint's slot
// and hands the outcome to the completer.
func (e *Engine) attempt(c store.ClaimedDelivery, sign *signers) {
	defer e.attemptsWG.Done()
	var out outcome
	if e.attemptCtx.Err() != nil {
		out.aborted = true
	} else {
		out = e.sender.send(e.attemptCtx, &c, sign)
	}
	now := e.cfg.Now()
	if out.aborted {
		e.lanes.release(c.EndpointID, now)
	} else {
		a := &out.attempt
		e.lanes.done(c.EndpointID, attemptResult{verdict: verdictOf(out.success, a.ResponseStatus), retry: c.Attempt > 1, started: a.StartedAt}, now)
	}
	e.payloads.drop(c.EventID)
	c.Payload = nil
	// The slot is free as soon as the outcome is queued for the completer:
	// a new claim need not wait for that commit, which would otherwise hold
	// every slot for a transaction's time on top of the attempt's. The
	// delivery stays leased until its outcome is written, so it cannot be
	// claimed again meanwhile. While the completer is stuck (storage down)
	// the queue fills and the slots stay taken: no new claims pile up.
	e.results <- outcomeWithLease{claim: &c, out: out}
	e.inflight.Add(-1)
	e.freed.Add(1)
	select {
	case e.slotFreed <- struct{}{}:
	default:
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
				batch = append(batch, e.completion(r.claim, &r.out))
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
		e.stored.Notify()
	}
}

// retrying reports whether an outcome schedules another attempt.
func retrying(p store.CompleteParams) bool { return p.Status == nanohook.DeliveryPending }

// completion turns one attempt's outcome into the write that records it
// (it writes nothing itself: the completer commits a batch of them).
func (e *Engine) completion(c *store.ClaimedDelivery, out *outcome) store.CompleteParams {
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

// ReserveTest takes one of an endpoint's slots for a test call (a
// customer's ping), before the call writes anything: the call then makes
// its attempt with AttemptNow and calls release when done. Test calls are
// held to the per-endpoint cap (MaxPerEndpoint), not to the adaptive limit
// or the breaker, since customers test an endpoint precisely while it
// fails; they count against both, so pings cannot push an endpoint past
// the cap. When the cap is full it fails with a rate_limited error (the
// API answers 429 with Retry-After). accountID must own endpointID.
func (e *Engine) ReserveTest(accountID, endpointID int64) (release func(), err error) {
	now := e.cfg.Now()
	if !e.lanes.admitTest(endpointID, accountID, now) {
		return nil, nanohook.Errorf(nanohook.CodeRateLimited, "",
			"the endpoint already has %d attempts in flight, its limit; retry shortly", e.cfg.MaxPerEndpoint)
	}
	var once sync.Once
	return func() { once.Do(func() { e.lanes.release(endpointID, e.cfg.Now()) }) }, nil
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

// payloads holds the body of every event with attempts in flight once,
// however many of its deliveries are in flight: a fan-out of one large
// event to many endpoints, claimed in several rounds, shares one copy
// instead of holding one per attempt.
type payloads struct {
	mu sync.Mutex
	m  map[string]*sharedPayload // by event id
}

type sharedPayload struct {
	body []byte
	refs int
}

// share returns the body in flight for eventID, taking body as it if none
// is, and counts one more attempt holding it.
func (p *payloads) share(eventID string, body []byte) []byte {
	p.mu.Lock()
	defer p.mu.Unlock()
	s := p.m[eventID]
	if s == nil {
		s = &sharedPayload{body: body}
		p.m[eventID] = s
	}
	s.refs++
	return s.body
}

// drop counts one attempt less holding eventID's body, forgetting it after
// the last.
func (p *payloads) drop(eventID string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if s := p.m[eventID]; s != nil {
		if s.refs--; s.refs == 0 {
			delete(p.m, eventID)
		}
	}
}
