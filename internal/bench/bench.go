package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/nanohook/nanohook/egress"
)

// The bench command (DESIGN §6, issue 5): one run on one machine measures
// what the HTTP client and the loopback receiver can do alone (the ceiling)
// and what a real "nanohook serve" child process delivers end to end, in
// several scenarios. Every scenario run gets a fresh database, a fresh
// server and a fresh receiver, so runs cannot disturb each other.

// benchScenarios are the scenario names in the order they run.
var benchScenarios = []string{"fast", "slow", "noisy", "retry", "steady", "singles", "backlog", "isolation", "inflight"}

// defaultScenarios are those run when --scenarios is not given: all but
// inflight, which needs thousands of open files (a hard limit some
// machines do not allow) and loads the machine with a thousand endpoints
// and five thousand connections for one memory figure.
var defaultScenarios = slices.DeleteFunc(slices.Clone(benchScenarios), func(s string) bool { return s == "inflight" })

// benchConfig is everything "bench" reads from its flags.
type benchConfig struct {
	DB         string   // "": a fresh SQLite file per run; else a postgres:// URL
	Scenarios  []string // in benchScenarios order
	Quick      bool     // sizes that finish within a minute
	JSON       bool     // one JSON object on stdout instead of the table
	Endpoints  int      // M
	Events     int      // events of fast, slow, retry and backlog; 0: their defaults
	Batch      int      // events per batch publish
	Publishers int      // concurrent batch publishers
	// SinglePublishers publish one event a request: singles, and steady
	// when SteadySingle.
	SinglePublishers int
	SteadySingle     bool
	Workers          int           // serve's --delivery-workers and the ceiling's senders
	Deadline         time.Duration // per scenario
	ServeArgs        []string      // extra serve flags, after the bench's own
}

// benchSizes are the amounts of work of one bench invocation.
type benchSizes struct {
	ceiling time.Duration // how long the ceiling posts
	steady  time.Duration // how long each steady, noisy or isolation rate is held
	// Deliveries of the fan-out scenarios; events are these divided by M.
	fast, slow, retry, backlog int
	// isolationBacklog is the events each bad tenant of isolation has
	// pending when the healthy load starts (each fans out to its
	// isolationBadEndpoints endpoints); isolationWait is how long after
	// the last healthy publish its deliveries are waited for.
	isolationBacklog int
	isolationWait    time.Duration
	// inflight is how many attempts the inflight scenario asks the server
	// to hold at once (its --delivery-workers), spread over
	// inflightAccounts accounts of inflightEndpoints endpoints.
	inflight, inflightAccounts int
	// singles is the events of the singles scenario, one a request.
	singles int
}

var (
	fullSizes = benchSizes{ceiling: 10 * time.Second, steady: 10 * time.Second, fast: 100_000, slow: 20_000, retry: 20_000, backlog: 100_000,
		isolationBacklog: 300, isolationWait: 10 * time.Second, inflight: 5000, inflightAccounts: 100, singles: 20_000}
	// The quick inflight stays within the race detector's 8,128 live
	// goroutines: the tests run the server as a -race binary, and each
	// attempt in flight costs it a worker and two connection goroutines.
	quickSizes = benchSizes{ceiling: 2 * time.Second, steady: 4 * time.Second, fast: 10_000, slow: 2_000, retry: 2_000, backlog: 20_000,
		isolationBacklog: 100, isolationWait: 5 * time.Second, inflight: 1000, inflightAccounts: 20, singles: 2_000}
)

const benchUsage = `Usage: nanohook bench [flags]

Measures, on this machine, the ceiling (the delivery HTTP client posting
signed bodies straight to a loopback receiver) and nanohook end to end: a
"nanohook serve" child process per scenario run, events published through
the admin batch API, every delivery's signature verified by the receiver.
Progress goes to stderr; the table (or, with --json, one JSON object) to
stdout. It exits non-zero when a delivery is missing or a signature does
not verify; targets missed are reported, not errors.

Scenarios: fast, slow (receiver takes 100 ms), noisy (a dead endpoint
beside healthy ones), retry (a fifth of the endpoints fail every first
attempt), steady (1,000 and 5,000 events/s, in batches every 10 ms, or
one event a request with --steady-single), singles (20,000 events, each
its own POST /admin/v1/events from --single-publishers concurrent
publishers, to M accounts of one endpoint each; 2,000 with --quick),
backlog (server memory with every delivery pending), isolation (a healthy account's latency at 50
events/s alone, then beside three accounts of 8 endpoints with 2,400
deliveries pending each, whose endpoints answer after 3 s, never, or 500),
inflight (server memory with 5,000 attempts held by 1,000 endpoints that
never answer; 1,000 with --quick; run only when named, as it needs about
5,500 open files). --endpoints and --events do not change isolation or
inflight.

Profiling: each run prints its server's pid on stderr; attach a profiler to
it while it runs (perf record -g -p PID), or profile the engine in-process
with go test ./cmd/nanohook -run '^$' -bench BatchThroughput -cpuprofile cpu.out.

Every flag has an environment twin NANOHOOK_BENCH_<FLAG> (not NANOHOOK_<FLAG>:
NANOHOOK_DB names serve's own database, which a benchmark must never touch).

Flags:
`

// parseBench reads bench's flags and their NANOHOOK_BENCH_* twins.
func parseBench(args []string, getenv func(string) string, stderr io.Writer) (benchConfig, error) {
	c := benchConfig{Endpoints: 10, Batch: 100, Publishers: 4, SinglePublishers: 50, Workers: 256, Deadline: 3 * time.Minute}
	fs := newFlagSet("bench", stderr)
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), benchUsage)
		printSettings(fs.Output(), flagSettings(fs, benchEnvName))
	}
	fs.StringVar(&c.DB, "db", "", "postgres:// URL to benchmark PostgreSQL (a fresh schema per run); default: a fresh SQLite file per run in a temporary directory")
	scenarios := fs.String("scenarios", strings.Join(defaultScenarios, ","), "comma-separated scenarios to run, of "+strings.Join(benchScenarios, ", "))
	fs.BoolVar(&c.Quick, "quick", false, "small sizes: the whole run finishes within a minute")
	fs.BoolVar(&c.JSON, "json", false, "print one JSON object instead of the table")
	fs.IntVar(&c.Endpoints, "endpoints", c.Endpoints, "endpoints (M) each event fans out to, and accounts of steady and noisy")
	fs.IntVar(&c.Events, "events", 0, "events of fast, slow, retry and backlog (default: 100,000 deliveries for fast and backlog, 20,000 for slow and retry, divided by M; --quick: 10,000, 20,000 and 2,000)")
	fs.IntVar(&c.Batch, "batch", c.Batch, "events per batch publish request (1 to 1000)")
	fs.IntVar(&c.Publishers, "publishers", c.Publishers, "concurrent batch publishers (steady and noisy use at least 32, to hold their rate)")
	fs.IntVar(&c.SinglePublishers, "single-publishers", c.SinglePublishers, "concurrent publishers of singles (and of steady with --steady-single), each sending one event a request")
	fs.BoolVar(&c.SteadySingle, "steady-single", false, "steady publishes one event a request instead of a batch every 10 ms")
	fs.IntVar(&c.Workers, "workers", c.Workers, "serve's --delivery-workers, and the ceiling's concurrent senders")
	fs.DurationVar(&c.Deadline, "deadline", c.Deadline, "a scenario not finished within this time fails")
	fs.Func("serve-arg", "extra flag passed to every serve (repeatable), e.g. --serve-arg=--endpoint-concurrency=128", func(v string) error {
		c.ServeArgs = append(c.ServeArgs, v)
		return nil
	})
	if err := parseBenchFlags(fs, args, getenv); err != nil {
		return c, err
	}
	var err error
	if c.Scenarios, err = parseScenarios(*scenarios); err != nil {
		return c, err
	}
	if c.DB != "" && !isPostgresURL(c.DB) {
		return c, fmt.Errorf("--db must be a postgres:// URL (the default benchmarks SQLite in a temporary file)")
	}
	for _, f := range []struct {
		name string
		v    int
	}{{"endpoints", c.Endpoints}, {"batch", c.Batch}, {"publishers", c.Publishers}, {"single-publishers", c.SinglePublishers}, {"workers", c.Workers}} {
		if f.v <= 0 {
			return c, fmt.Errorf("--%s must be positive", f.name)
		}
	}
	if c.Batch > 1000 {
		return c, fmt.Errorf("--batch must be at most 1000 (the batch API's limit)")
	}
	if c.Events < 0 {
		return c, fmt.Errorf("--events must not be negative")
	}
	if c.Deadline <= 0 {
		return c, fmt.Errorf("--deadline must be positive")
	}
	return c, nil
}

// benchEnvName is the environment twin of a bench flag:
// --db is NANOHOOK_BENCH_DB.
func benchEnvName(flagName string) string {
	return "NANOHOOK_BENCH_" + strings.TrimPrefix(envName(flagName), "NANOHOOK_")
}

// parseBenchFlags is parseFlags with NANOHOOK_BENCH_* environment twins.
func parseBenchFlags(fs *flag.FlagSet, args []string, getenv func(string) string) error {
	if err := parseFlags(fs, args, func(string) string { return "" }); err != nil {
		return err
	}
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	var err error
	fs.VisitAll(func(f *flag.Flag) {
		name := benchEnvName(f.Name)
		if set[f.Name] || err != nil {
			return
		}
		if v := getenv(name); v != "" {
			if e := fs.Set(f.Name, v); e != nil {
				err = fmt.Errorf("%s=%q: %w", name, v, e)
			}
		}
	})
	return err
}

// parseScenarios checks a --scenarios list and puts it in running order.
func parseScenarios(list string) ([]string, error) {
	var out []string
	for s := range strings.SplitSeq(list, ",") {
		s = strings.TrimSpace(s)
		if s == "" {
			continue
		}
		if !slices.Contains(benchScenarios, s) {
			return nil, fmt.Errorf("--scenarios: unknown scenario %q (known: %s)", s, strings.Join(benchScenarios, ", "))
		}
		if !slices.Contains(out, s) {
			out = append(out, s)
		}
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("--scenarios: name at least one of %s", strings.Join(benchScenarios, ", "))
	}
	slices.SortFunc(out, func(a, b string) int { return slices.Index(benchScenarios, a) - slices.Index(benchScenarios, b) })
	return out, nil
}

// bench is one invocation's shared state.
type bench struct {
	cfg   benchConfig
	sizes benchSizes
	dir   string // temporary: SQLite files and server logs
	// timeout is one delivery attempt's limit, the engine's and the
	// ceiling client's alike.
	timeout time.Duration
	// ceilingRate is the ceiling's requests a second, once measured.
	ceilingRate float64

	mu     sync.Mutex // serialises progress lines from several goroutines
	stderr io.Writer
}

// say writes one progress line to stderr.
func (b *bench) say(format string, a ...any) {
	b.mu.Lock()
	defer b.mu.Unlock()
	fmt.Fprintf(b.stderr, format+"\n", a...)
}

// dbName is how the table names the storage under test.
func (b *bench) dbName() string {
	if b.cfg.DB == "" {
		return "sqlite"
	}
	return "postgres"
}

// events is the event count of a fan-out scenario of the given deliveries.
func (b *bench) events(deliveries int) int {
	if b.cfg.Events > 0 {
		return b.cfg.Events
	}
	return max(1, (deliveries+b.cfg.Endpoints-1)/b.cfg.Endpoints)
}

// runBench is the bench command.
func runBench(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	cfg, err := parseBench(args, getenv, stderr)
	if err != nil {
		return err
	}
	dir, err := os.MkdirTemp("", "nanohook-bench-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	b := &bench{cfg: cfg, sizes: fullSizes, dir: dir, timeout: egress.DefaultTimeout, stderr: stderr}
	if cfg.Quick {
		b.sizes = quickSizes
	}
	start := time.Now()
	res := benchResult{Machine: machineInfo(ctx), Settings: b.settings()}
	if res.Ceiling, err = b.ceiling(ctx); err != nil {
		return fmt.Errorf("ceiling: %w", err)
	}
	b.ceilingRate = res.Ceiling.RequestsPerSec
	for _, name := range cfg.Scenarios {
		sc := b.scenario(ctx, name)
		if ctx.Err() != nil {
			return ctx.Err()
		}
		res.Scenarios = append(res.Scenarios, sc)
	}
	res.WallSeconds = time.Since(start).Seconds()
	problems := res.problems()
	res.OK = len(problems) == 0
	if cfg.JSON {
		err = writeBenchJSON(stdout, &res)
	} else {
		err = writeBenchTable(stdout, &res)
	}
	if err != nil {
		return err
	}
	if !res.OK {
		// After the result: a missing delivery or a bad signature fails the
		// command, so scripts and CI notice.
		return fmt.Errorf("bench failed: %s", strings.Join(problems, "; "))
	}
	return nil
}

// scenario runs one scenario within the deadline and evaluates its target.
func (b *bench) scenario(ctx context.Context, name string) benchScenario {
	ctx, cancel := context.WithTimeout(ctx, b.cfg.Deadline)
	defer cancel()
	sc := benchScenario{Name: name, DB: b.dbName()}
	var err error
	switch name {
	case "fast":
		err = b.fanOut(ctx, &sc, runSpec{label: "fast", does: func(int) behaviour { return answerAtOnce }}, b.sizes.fast, true)
	case "slow":
		// Not compared with the ceiling, whose receiver answers at once.
		err = b.fanOut(ctx, &sc, runSpec{label: "slow", does: func(int) behaviour { return answerSlowly }}, b.sizes.slow, false)
	case "retry":
		err = b.retry(ctx, &sc)
	case "steady":
		err = b.steady(ctx, &sc)
	case "singles":
		err = b.singles(ctx, &sc)
	case "noisy":
		err = b.noisy(ctx, &sc)
	case "backlog":
		err = b.backlog(ctx, &sc)
	case "isolation":
		err = b.isolation(ctx, &sc)
	case "inflight":
		err = b.inflight(ctx, &sc)
	}
	if err != nil {
		if errors.Is(err, context.DeadlineExceeded) {
			err = fmt.Errorf("not finished within --deadline %s: %w", b.cfg.Deadline, err)
		}
		sc.Error = err.Error()
		b.say("%s: FAILED: %v", name, err)
	}
	sc.Targets = b.targets(&sc)
	return sc
}
