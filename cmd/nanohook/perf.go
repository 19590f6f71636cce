package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/nanohook/nanohook/internal/bench"
	"github.com/nanohook/nanohook/internal/dburl"
)

// The bench command's wiring: its flags, and how the harness (package
// internal/bench) starts its serve children: this executable, run again.

// runBench is the bench command.
func runBench(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	cfg, err := parseBench(args, getenv, stderr)
	if err != nil {
		return err
	}
	exe, err := os.Executable()
	if err != nil {
		return fmt.Errorf("finding this executable to start serve: %w", err)
	}
	cfg.Serve = bench.Command{Path: exe}
	cfg.Version = version
	return bench.Run(ctx, cfg, stdout, stderr)
}

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
func parseBench(args []string, getenv func(string) string, stderr io.Writer) (bench.Config, error) {
	c := bench.DefaultConfig()
	fs := newFlagSet("bench", stderr)
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), benchUsage)
		printSettings(fs.Output(), flagSettings(fs, benchEnvName))
	}
	fs.StringVar(&c.DB, "db", "", "postgres:// URL to benchmark PostgreSQL (a fresh schema per run); default: a fresh SQLite file per run in a temporary directory")
	scenarios := fs.String("scenarios", strings.Join(bench.DefaultScenarios, ","), "comma-separated scenarios to run, of "+strings.Join(bench.Scenarios, ", "))
	fs.BoolVar(&c.Quick, "quick", false, "small sizes: the whole run finishes within a minute")
	fs.BoolVar(&c.JSON, "json", false, "print one JSON object instead of the table")
	fs.IntVar(&c.Endpoints, "endpoints", c.Endpoints, "endpoints (M) each event fans out to, and accounts of steady and noisy")
	fs.IntVar(&c.Events, "events", 0, "events of fast, slow, retry and backlog (default: 100,000 deliveries for fast and backlog, 20,000 for slow and retry, divided by M; --quick: 10,000, 20,000 and 2,000)")
	fs.IntVar(&c.Batch, "batch", c.Batch, "events per batch publish request (1 to 1000)")
	fs.IntVar(&c.Publishers, "publishers", c.Publishers, "concurrent batch publishers (steady and noisy use at least 32, to hold their rate)")
	fs.IntVar(&c.SinglePublishers, "single-publishers", c.SinglePublishers, "concurrent publishers of singles (and of steady with --steady-single, at least 32 there), each sending one event a request")
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
	if c.DB != "" && !dburl.IsPostgres(c.DB) {
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
	var names []string
	for s := range strings.SplitSeq(list, ",") {
		if s = strings.TrimSpace(s); s != "" {
			names = append(names, s)
		}
	}
	out, err := bench.SortScenarios(names)
	if err != nil {
		return nil, fmt.Errorf("--scenarios: %w", err)
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("--scenarios: name at least one of %s", strings.Join(bench.Scenarios, ", "))
	}
	return out, nil
}
