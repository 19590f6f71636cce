package bench

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"time"

	"github.com/nanohook/nanohook/internal/rlimit"
)

// The inflight scenario (issue 12 item 2): what memory does the server
// need to hold thousands of attempts in flight? Endpoints that never
// answer hold every attempt sent to them; the receiver counts how many it
// holds at once while the server's RSS is sampled.

const (
	// inflightEndpoints is each account's endpoint count. The load is
	// spread over many accounts and endpoints (100 × 10 in a full run) so
	// that per-account and per-endpoint limits leave room for the number
	// asked: 5,000 over 1,000 endpoints is 5 each, 50 per account.
	inflightEndpoints = 10
	// inflightBacklog is each account's events; each fans out to all of
	// its endpoints, so every endpoint has this many deliveries due:
	// 100 × 10 × 10 = 10,000 in a full run, twice the 5,000 asked.
	inflightBacklog = 10
	// inflightSpareFiles are the bench's open files besides the held
	// connections: listeners, API connections, logs.
	inflightSpareFiles = 512
	// inflightSettle ends the wait for held requests once their count has
	// stopped growing this long: the engine holds no more than that.
	inflightSettle = 2 * time.Second
	// inflightRamp bounds that wait.
	inflightRamp = 30 * time.Second
	// inflightTimeout is the server's delivery timeout here: longer than
	// the ramp and the sampling, so no attempt ends while RSS is measured.
	inflightTimeout = 2 * time.Minute
)

// inflight registers inflightAccounts accounts of hanging endpoints, asks
// the server for the sized number of attempts in flight (its
// --delivery-workers), publishes twice as many deliveries and samples the
// server's RSS once the held count has stopped growing.
func (b *bench) inflight(ctx context.Context, sc *benchScenario) error {
	target, accounts := b.sizes.inflight, b.sizes.inflightAccounts
	if err := ensureFileLimit(target + inflightSpareFiles); err != nil {
		return err
	}
	spec := runSpec{
		label: "inflight", slots: accounts * inflightEndpoints,
		does:         func(int) behaviour { return holdUntilFreed },
		accountSizes: slices.Repeat([]int{inflightEndpoints}, accounts),
		serveArgs:    []string{"--delivery-workers=" + strconv.Itoa(target), "--delivery-timeout=" + inflightTimeout.String()},
	}
	start := time.Now()
	e, err := b.setup(ctx, spec)
	if err != nil {
		return err
	}
	b.say("inflight: %s endpoints of %s accounts registered in %.1fs", thousands(int64(spec.slots)), thousands(int64(accounts)), time.Since(start).Seconds())
	run, err := e.holdInFlight(ctx, spec, target)
	if cerr := e.close(); cerr != nil {
		run.Notes = append(run.Notes, cerr.Error())
	}
	sc.Runs = append(sc.Runs, run)
	return err
}

// holdInFlight publishes the backlog, waits for the held requests to
// build up and measures the server's memory with them held.
func (e *benchEnv) holdInFlight(ctx context.Context, spec runSpec, target int) (benchRun, error) {
	idle, _, err := procMemory(e.srv.pid())
	if err != nil {
		return benchRun{Label: spec.label}, err
	}
	events := len(e.accounts) * inflightBacklog
	stop := e.b.progress(spec.label, "held", target, e.rcv.held.Load)
	pub, err := e.publishAll(ctx, events, events*inflightEndpoints)
	if err == nil {
		err = e.waitHeld(ctx, target)
	}
	stop()
	run := e.measure(spec, pub, -1) // nothing is delivered: no CPU per delivery
	if err != nil {
		return run, err
	}
	var held int64
	rss, err := e.sampleRSS(ctx, backlogSampling, func() { held = max(held, e.rcv.held.Load()) })
	run.InFlight, run.IdleRSSMiB, run.InFlightRSSMiB = held, mib(idle), rss
	if held > 0 && rss > run.IdleRSSMiB {
		run.KiBPerInFlight = (rss - run.IdleRSSMiB) * 1024 / float64(held)
	}
	if held < int64(target) {
		run.Notes = append(run.Notes, fmt.Sprintf("held %s of the %s asked for", thousands(held), thousands(int64(target))))
	}
	if _, peak, merr := procMemory(e.srv.pid()); merr == nil {
		run.PeakRSSMiB = mib(peak)
	}
	e.b.say("inflight: %s attempts in flight, server RSS %.1f MiB (idle %.1f MiB): %.1f KiB each",
		thousands(held), rss, run.IdleRSSMiB, run.KiBPerInFlight)
	return run, err
}

// waitHeld waits until the receiver holds target requests, or their count
// has not grown for inflightSettle, or inflightRamp has passed. Holding
// none by then is an error: there is nothing to measure.
func (e *benchEnv) waitHeld(ctx context.Context, target int) error {
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	start := time.Now()
	var most int64
	grew := start
	for {
		now := time.Now()
		if n := e.rcv.held.Load(); n > most {
			most, grew = n, now
		}
		switch {
		case most >= int64(target):
			return nil
		case most > 0 && now.Sub(grew) >= inflightSettle:
			return nil
		case now.Sub(start) >= inflightRamp:
			if most == 0 {
				return fmt.Errorf("no request held within %s of publishing", inflightRamp)
			}
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%s requests held: %w", thousands(e.rcv.held.Load()), ctx.Err())
		case <-tick.C:
		}
	}
}

// ensureFileLimit raises this process's soft limit of open files to its
// hard limit (rlimit.Raise, as serve does at start), since the inflight
// scenario's receiver holds one connection per attempt in flight; it
// fails, saying what to change, when even the hard limit is below need.
// serve children inherit the raised limit. Where the limit is not known
// (outside Linux) it does nothing.
func ensureFileLimit(need int) error {
	fl, err := rlimit.Raise()
	if errors.Is(err, rlimit.ErrUnknown) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("raising the soft limit of open files: %w", err)
	}
	if fl.Hard < uint64(need) {
		return fmt.Errorf("the hard limit of open files is %d, and this scenario needs about %d (a connection per attempt held, and spare): "+
			"raise it (ulimit -Hn as root, LimitNOFILE= in a systemd unit, --ulimit nofile= for a container)", fl.Hard, need)
	}
	return nil
}
