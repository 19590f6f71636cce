package bench

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// The isolation scenario (issue 12): can one customer's slow, hanging or
// failing endpoints delay another customer's deliveries? A healthy tenant
// publishes at a steady rate twice, alone and then beside three bad
// tenants with large backlogs; its publish→receipt latency in both runs
// and the bad tenants' progress meanwhile show how the engine shares its
// workers between accounts.

const (
	// isolationRate is the healthy tenant's events a second, each its own
	// publish request (steadyTick batches of at most one event), as a
	// platform publishes one job's completion at a time. 50 a second to
	// two endpoints is 1,000 deliveries in the 10 s run, so that its p99 is
	// the tenth-slowest delivery rather than one of a few outliers that
	// decide a ratio of two p99s.
	isolationRate = 50
	// isolationHealthyEndpoints answer at once: 40 deliveries a second.
	isolationHealthyEndpoints = 2
	// isolationBadEndpoints is each bad tenant's endpoint count: more than
	// four slow endpoints with the default per-endpoint cap (64) can take
	// every one of the default 256 workers.
	isolationBadEndpoints = 8
)

// badTenant is one account whose endpoints all misbehave the same way.
type badTenant struct {
	name string
	does behaviour
}

// badTenants are the isolation scenario's bad tenants, in account order
// after the healthy one.
var badTenants = []badTenant{
	{"slow", answerVerySlowly},  // 200 after 3 s: never trips a breaker
	{"hanging", holdUntilFreed}, // no answer: each attempt holds its worker until the delivery timeout
	{"failing", failAlways},     // 500 at once: retried on the schedule until the breaker opens
}

// isolation runs the healthy tenant's steady load alone, then beside the
// bad tenants, and compares its p99 in the two.
func (b *bench) isolation(ctx context.Context, sc *benchScenario) error {
	alone, err := b.isolationRun(ctx, "isolation alone", false)
	sc.Runs = append(sc.Runs, alone)
	if err != nil {
		return err
	}
	withBad, err := b.isolationRun(ctx, "isolation +bad", true)
	if alone.P99MS > 0 && withBad.P99MS > 0 && withBad.Late == 0 {
		withBad.P99RatioToAlone = withBad.P99MS / alone.P99MS
	}
	sc.Runs = append(sc.Runs, withBad)
	return err
}

// isolationRun is one run: the healthy account (slots 0 and 1), and with
// bad, one account per bad tenant (isolationBadEndpoints slots each) whose
// backlog is published before the healthy load starts. Only the healthy
// deliveries are waited for, and at most the isolation wait after the last
// publish: with bad tenants, those not arrived by then are late (the
// target fails), not missing (the run fails), since they would arrive.
func (b *bench) isolationRun(ctx context.Context, label string, bad bool) (benchRun, error) {
	batches := int(b.sizes.steady / steadyTick)
	events := eventsBefore(batches, isolationRate)
	sizes := []int{isolationHealthyEndpoints}
	if bad {
		for range badTenants {
			sizes = append(sizes, isolationBadEndpoints)
		}
	}
	tenantOf := func(slot int) int { return (slot - isolationHealthyEndpoints) / isolationBadEndpoints }
	spec := runSpec{
		label: label, slots: sum(sizes), accountSizes: sizes, expect: events * isolationHealthyEndpoints,
		does: func(slot int) behaviour {
			if slot < isolationHealthyEndpoints {
				return answerAtOnce
			}
			return badTenants[tenantOf(slot)].does
		},
		awaited: func(slot int) bool { return slot < isolationHealthyEndpoints },
	}
	e, err := b.setup(ctx, spec)
	if err != nil {
		return benchRun{Label: label}, err
	}
	healthy, others := e.accounts[0], e.accounts[1:]
	var backlog publishLog
	if bad {
		e.accounts = others // round robin: the same backlog each
		n := b.sizes.isolationBacklog * len(others)
		if backlog, err = e.publishAll(ctx, n, n*isolationBadEndpoints); err != nil {
			e.close()
			return benchRun{Label: label}, fmt.Errorf("%s: the bad tenants' backlog: %w", label, err)
		}
		b.say("%s: %s deliveries pending for the bad tenants", label, thousands(int64(backlog.deliveries)))
		e.accounts = []int64{healthy}
	}

	cpu0 := e.cpu()
	if bad {
		cpu0 = -1 // the bad tenants' work is in it: no CPU per healthy delivery
	}
	startCounts := e.tenantCounts(len(others))
	e.rcv.resetHeldPeak()
	stop := b.progress(label, "healthy delivered", spec.expect, e.rcv.delivered.Load)
	pub, err := e.publishSteady(ctx, isolationRate, batches, events)
	windowEnd := time.Now()
	endCounts, heldPeak := e.tenantCounts(len(others)), e.rcv.heldPeak.Load()
	var late bool
	if err == nil {
		late, err = e.waitBounded(ctx, pub.lastSent.Add(b.sizes.isolationWait))
	}
	stop()
	run := e.measure(spec, pub, cpu0)
	switch {
	case late && bad:
		run.Late, run.Missing = run.Missing, 0
	case late:
		err = fmt.Errorf("%s of %s healthy deliveries not received within %s of the last publish",
			thousands(int64(run.Missing)), thousands(int64(spec.expect)), b.sizes.isolationWait)
	}
	run.WindowSeconds = windowEnd.Sub(pub.first).Seconds()
	for i, t := range badTenants[:len(others)] {
		tn := benchTenant{Name: t.name, Endpoints: isolationBadEndpoints, Backlog: b.sizes.isolationBacklog * isolationBadEndpoints,
			Requests: endCounts[i].requests - startCounts[i].requests, Delivered: endCounts[i].delivered - startCounts[i].delivered}
		if t.does == holdUntilFreed {
			tn.HeldPeak = heldPeak // only this tenant's requests are held
		}
		run.Tenants = append(run.Tenants, tn)
	}
	if bad {
		b.say("%s: healthy %s of %s delivered, %s late; %s", label, thousands(int64(run.Delivered)), thousands(int64(spec.expect)),
			thousands(int64(run.Late)), tenantSummary(run.Tenants, run.WindowSeconds))
	}
	if cerr := e.close(); cerr != nil {
		run.Notes = append(run.Notes, cerr.Error())
	}
	if err != nil {
		return run, fmt.Errorf("%s: %w", label, err) // the scenario has two runs: say which
	}
	return run, nil
}

// tenantCounts is what each of the first n bad tenants' endpoints have
// received so far.
func (e *benchEnv) tenantCounts(n int) []slotCounts {
	out := make([]slotCounts, n)
	for i := range out {
		first := isolationHealthyEndpoints + i*isolationBadEndpoints
		out[i] = e.rcv.counts(first, first+isolationBadEndpoints)
	}
	return out
}

// waitBounded waits for the run's expected deliveries until the bound; it
// reports late when the bound ran out first. The scenario's own deadline
// and a bad signature are errors as in every run.
func (e *benchEnv) waitBounded(ctx context.Context, bound time.Time) (late bool, err error) {
	wctx, cancel := context.WithDeadline(ctx, bound)
	defer cancel()
	err = e.rcv.wait(wctx)
	if err != nil && ctx.Err() == nil && errors.Is(wctx.Err(), context.DeadlineExceeded) {
		return true, nil
	}
	return false, err
}

func sum(ns []int) int {
	total := 0
	for _, n := range ns {
		total += n
	}
	return total
}
