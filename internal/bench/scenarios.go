package bench

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nanohook/nanohook"
	"github.com/nanohook/nanohook/client"
)

// runSpec describes one scenario run: a fresh server and receiver, and the
// endpoints between them.
type runSpec struct {
	label string
	slots int                      // receiver endpoints
	does  func(slot int) behaviour // how each answers
	// awaited tells the endpoints whose deliveries the run waits for and
	// times; nil: every endpoint.
	awaited func(slot int) bool
	// perAccount gives every endpoint an account of its own, so each event
	// has one delivery; otherwise one account holds every endpoint and each
	// event fans out to all of them.
	perAccount bool
	// accountSizes, when set, overrides perAccount: the first
	// accountSizes[0] endpoints belong to one account, the next
	// accountSizes[1] to a second, and so on, adding up to slots.
	accountSizes []int
	expect       int      // deliveries the run waits for; 0: none
	serveArgs    []string // scenario flags for serve
	// single publishes one event a request instead of batches.
	single bool
}

// benchEnv is one run's world.
type benchEnv struct {
	b   *bench
	srv *serveProc
	rcv *benchReceiver
	// accounts are the run's accounts in creation order; events go to
	// them round robin. A run that publishes in phases to different
	// accounts points it elsewhere between phases (never while one runs).
	accounts  []int64
	published atomic.Int64 // events acknowledged so far
	single    bool         // publish one event a request (runSpec.single)
}

// setup starts the receiver and the server and registers the endpoints
// through the public API.
func (b *bench) setup(ctx context.Context, spec runSpec) (*benchEnv, error) {
	secrets := benchSecrets(spec.slots)
	rcv, err := startReceiver(secrets, spec.does, spec.awaited, spec.expect)
	if err != nil {
		return nil, err
	}
	srv, err := b.startServe(ctx, spec.label, spec.serveArgs)
	if err != nil {
		rcv.close()
		return nil, err
	}
	e := &benchEnv{b: b, srv: srv, rcv: rcv, single: spec.single}
	if err := e.register(ctx, secrets, spec.accountGroups()); err != nil {
		e.close()
		return nil, fmt.Errorf("setting up endpoints: %w", err)
	}
	return e, nil
}

// benchSecrets makes n distinct endpoint secrets.
func benchSecrets(n int) []string {
	secrets := make([]string, n)
	for i := range secrets {
		secrets[i] = fmt.Sprintf("whsec_bench_%d_%s", i, nanohook.NewSecret()[6:18])
	}
	return secrets
}

// accountGroups are the slots of each account: [first, first+n).
func (spec runSpec) accountGroups() []accountGroup {
	sizes := spec.accountSizes
	switch {
	case sizes != nil:
	case spec.perAccount:
		sizes = slices.Repeat([]int{1}, spec.slots)
	default:
		sizes = []int{spec.slots}
	}
	groups, first := make([]accountGroup, len(sizes)), 0
	for i, n := range sizes {
		groups[i] = accountGroup{first: first, n: n}
		first += n
	}
	return groups
}

// accountGroup is one account's endpoint slots: [first, first+n).
type accountGroup struct{ first, n int }

// registerParallel is how many accounts register at once: a thousand
// endpoints one request after another take seconds, and the server
// serialises the writes anyway.
const registerParallel = 8

// register creates the accounts, concurrently, and one endpoint per
// receiver slot in each, in slot order; e.accounts follows groups' order.
func (e *benchEnv) register(ctx context.Context, secrets []string, groups []accountGroup) error {
	e.accounts = make([]int64, len(groups))
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	next := make(chan int, len(groups))
	for i := range groups {
		next <- i
	}
	close(next)
	var wg sync.WaitGroup
	for range min(registerParallel, len(groups)) {
		wg.Go(func() {
			for i := range next {
				if err := e.registerAccount(ctx, i, secrets, groups[i]); err != nil {
					cancel(err)
					return
				}
			}
		})
	}
	wg.Wait()
	return context.Cause(ctx)
}

// registerAccount creates account i and its group's endpoints.
func (e *benchEnv) registerAccount(ctx context.Context, i int, secrets []string, g accountGroup) error {
	id, pub, err := e.srv.api.createAccount(ctx, "bench-"+strconv.Itoa(i))
	if err != nil {
		return err
	}
	e.accounts[i] = id // each goroutine its own index; read after wg.Wait
	for slot := g.first; slot < g.first+g.n; slot++ {
		// A job.completed endpoint with a known secret, for the receiver.
		if _, err := pub.CreateWebhook(ctx, client.CreateWebhookParams{
			URL: e.rcv.url(slot), Events: []string{client.EventJobCompleted}, SecretKey: secrets[slot],
		}); err != nil {
			return err
		}
	}
	return nil
}

// close lets held requests answer, stops the server (removing its
// database) and the receiver. Its error is a note, not a failed run.
func (e *benchEnv) close() error {
	e.rcv.release()
	err := e.srv.stop()
	e.rcv.close()
	return err
}

// cpu is the server's CPU seconds so far, or -1 when unknown.
func (e *benchEnv) cpu() float64 {
	s, err := procCPUSeconds(e.srv.pid())
	if err != nil {
		return -1
	}
	return s
}

// deliverRun runs spec: publish, then wait until every expected delivery
// arrived, and measure.
func (b *bench) deliverRun(ctx context.Context, spec runSpec, publish func(context.Context, *benchEnv) (publishLog, error)) (benchRun, error) {
	e, err := b.setup(ctx, spec)
	if err != nil {
		return benchRun{Label: spec.label}, err
	}
	cpu0 := e.cpu()
	stop := b.progress(spec.label, "delivered", spec.expect, e.rcv.delivered.Load)
	pub, err := publish(ctx, e)
	if err == nil {
		err = e.rcv.wait(ctx)
	}
	stop()
	run := e.measure(spec, pub, cpu0)
	if cerr := e.close(); cerr != nil {
		run.Notes = append(run.Notes, cerr.Error())
	}
	return run, err
}

// fanOut is fast, slow and retry: one account whose M endpoints all get
// every event. The spec names the run and the endpoints' behaviour; a run
// whose endpoints answer at once is compared with the ceiling.
func (b *bench) fanOut(ctx context.Context, sc *benchScenario, spec runSpec, deliveries int, vsCeiling bool) error {
	events, m := b.events(deliveries), b.cfg.Endpoints
	spec.slots, spec.expect = m, events*m
	run, err := b.deliverRun(ctx, spec, func(ctx context.Context, e *benchEnv) (publishLog, error) {
		return e.publishAll(ctx, events, events*m)
	})
	if vsCeiling && b.ceilingRate > 0 {
		run.RatioToCeiling = run.DeliveriesPerSec / b.ceilingRate
	}
	sc.Runs = append(sc.Runs, run)
	return err
}

// retry is fan-out where a fifth of the endpoints (at least one) fail every
// first attempt: every delivery must still arrive.
func (b *bench) retry(ctx context.Context, sc *benchScenario) error {
	failing := max(1, b.cfg.Endpoints/5)
	does := func(slot int) behaviour {
		if slot < failing {
			return failFirstAttempt
		}
		return answerAtOnce
	}
	// The server's own breaker settings: an endpoint whose retries succeed
	// must not be cut off by it (delivery/lanes.go).
	err := b.fanOut(ctx, sc, runSpec{label: "retry", does: does}, b.sizes.retry, true)
	run := &sc.Runs[len(sc.Runs)-1]
	run.Notes = append(run.Notes, fmt.Sprintf("%d of %d endpoints fail attempt 1; %s attempts",
		failing, b.cfg.Endpoints, thousands(run.Attempts)))
	return err
}

// singles publishes events one a request, as fast as --single-publishers
// concurrent publishers go, to M accounts of one endpoint each (fan-out
// 1, as a platform's job workers publish one event when a job ends), and
// compares the events/s with the ceiling.
func (b *bench) singles(ctx context.Context, sc *benchScenario) error {
	events, m := b.sizes.singles, b.cfg.Endpoints
	spec := runSpec{label: "singles", slots: m, does: func(int) behaviour { return answerAtOnce },
		perAccount: true, expect: events, single: true}
	run, err := b.deliverRun(ctx, spec, func(ctx context.Context, e *benchEnv) (publishLog, error) {
		return e.publishSingles(ctx, events, events)
	})
	if b.ceilingRate > 0 {
		// Delivered events a second, first publish to last receipt: with
		// fan-out 1 the same as deliveries/s, and never more than the
		// publishers' rate.
		run.RatioToCeiling = run.DeliveriesPerSec / b.ceilingRate
	}
	run.Notes = append(run.Notes, fmt.Sprintf("%d publishers, one event a request", b.cfg.SinglePublishers))
	sc.Runs = append(sc.Runs, run)
	return err
}

// steadyRates are the fixed publish rates of the steady scenario, events a
// second.
var steadyRates = []int{1000, 5000}

// steady publishes at fixed rates to M accounts of one endpoint each.
func (b *bench) steady(ctx context.Context, sc *benchScenario) error {
	for _, rate := range steadyRates {
		run, err := b.steadyRun(ctx, fmt.Sprintf("steady %d/s", rate), float64(rate), b.cfg.Endpoints, nil)
		sc.Runs = append(sc.Runs, run)
		if err != nil {
			return err
		}
	}
	return nil
}

// noisyRate is the healthy endpoints' event rate in the noisy scenario.
const noisyRate = 1000

// noisy runs steady at 1,000 events/s to M healthy accounts twice: alone,
// then beside one more account whose endpoint never answers and gets as
// many events as each healthy one. The healthy deliveries are the same in
// both runs, so their latencies compare.
func (b *bench) noisy(ctx context.Context, sc *benchScenario) error {
	m := b.cfg.Endpoints
	healthy, err := b.steadyRun(ctx, "noisy healthy", noisyRate, m, nil)
	sc.Runs = append(sc.Runs, healthy)
	if err != nil {
		return err
	}
	dead := func(slot int) bool { return slot == m }
	withDead, err := b.steadyRun(ctx, "noisy +dead", noisyRate*float64(m+1)/float64(m), m+1, dead)
	withDead.Notes = append(withDead.Notes, "latency of the healthy endpoints only")
	sc.Runs = append(sc.Runs, withDead)
	return err
}

// steadyRun publishes at rate events a second for the steady duration to
// slots accounts of one endpoint each; endpoints for which dead is true
// never answer and their deliveries are not waited for.
func (b *bench) steadyRun(ctx context.Context, label string, rate float64, slots int, dead func(int) bool) (benchRun, error) {
	batches := int(b.sizes.steady / steadyTick)
	events := eventsBefore(batches, rate)
	expect := events
	does := func(int) behaviour { return answerAtOnce }
	if dead != nil {
		does = func(slot int) behaviour {
			if dead(slot) {
				return holdUntilFreed
			}
			return answerAtOnce
		}
		for i := range events {
			if dead(i % slots) {
				expect--
			}
		}
	}
	spec := runSpec{label: label, slots: slots, does: does, perAccount: true, expect: expect, single: b.cfg.SteadySingle}
	run, err := b.deliverRun(ctx, spec, func(ctx context.Context, e *benchEnv) (publishLog, error) {
		return e.publishSteady(ctx, rate, batches, events)
	})
	if spec.single {
		run.Notes = append(run.Notes, "one event a request (--steady-single)")
	}
	if err != nil {
		return run, fmt.Errorf("%s: %w", label, err) // the scenario has two runs: say which
	}
	return run, nil
}

// backlog publishes to endpoints that never answer and samples the
// server's memory with every delivery pending.
func (b *bench) backlog(ctx context.Context, sc *benchScenario) error {
	events, m := b.events(b.sizes.backlog), b.cfg.Endpoints
	spec := runSpec{label: "backlog", slots: m, does: func(int) behaviour { return holdUntilFreed }}
	e, err := b.setup(ctx, spec)
	if err != nil {
		return err
	}
	count := func() int64 { return e.published.Load() * int64(m) }
	stop := b.progress("backlog", "pending", events*m, count)
	pub, err := e.publishAll(ctx, events, events*m)
	stop()
	run := e.measure(spec, pub, -1) // nothing is delivered: no CPU per delivery
	if err == nil {
		run.Pending = pub.deliveries
		run.PendingRSSMiB, err = e.sampleRSS(ctx, backlogSampling, nil)
		b.say("backlog: %s deliveries pending, server RSS %.1f MiB", thousands(int64(run.Pending)), run.PendingRSSMiB)
	}
	if _, peak, merr := procMemory(e.srv.pid()); merr == nil {
		run.PeakRSSMiB = mib(peak)
	}
	if cerr := e.close(); cerr != nil {
		run.Notes = append(run.Notes, cerr.Error())
	}
	sc.Runs = append(sc.Runs, run)
	return err
}

// backlogSampling is how long the server's RSS is watched with the backlog
// pending: long enough for its claim loop to have gone round many times.
const backlogSampling = 2 * time.Second

// sampleRSS returns the largest resident set the server shows over d;
// also, when not nil, runs at every sample, to watch something beside it.
func (e *benchEnv) sampleRSS(ctx context.Context, d time.Duration, also func()) (float64, error) {
	var most int64
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	end := time.After(d)
	for {
		rss, _, err := procMemory(e.srv.pid())
		if err != nil {
			return 0, err
		}
		most = max(most, rss)
		if also != nil {
			also()
		}
		select {
		case <-ctx.Done():
			return mib(most), ctx.Err()
		case <-end:
			return mib(most), nil
		case <-tick.C:
		}
	}
}

// progress prints "label: n/total verb, rate/s" about once a second until
// the returned stop is called.
func (b *bench) progress(label, verb string, total int, count func() int64) (stop func()) {
	done, finished := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(finished)
		tick := time.NewTicker(time.Second)
		defer tick.Stop()
		last, lastAt := count(), time.Now()
		for {
			select {
			case <-done:
				return
			case now := <-tick.C:
				n := count()
				rate := float64(n-last) / now.Sub(lastAt).Seconds()
				last, lastAt = n, now
				of := ""
				if total > 0 {
					of = "/" + thousands(int64(total))
				}
				b.say("%s: %s%s %s, %s/s", label, thousands(n), of, verb, thousands(int64(rate)))
			}
		}
	}()
	return func() { close(done); <-finished }
}
