// Package bench is the harness of "nanohook bench" (DESIGN §6, issue 5):
// one run on one machine measures what the HTTP client and the loopback
// receiver can do alone (the ceiling) and what a real "nanohook serve"
// child process delivers end to end, in several scenarios. Every scenario
// run gets a fresh database, a fresh server and a fresh receiver, so runs
// cannot disturb each other. It talks to the servers through the client
// package; the command's flags are cmd/nanohook's.
package bench

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/nanohook/nanohook/egress"
)

// Scenarios are the scenario names in the order they run.
var Scenarios = []string{"fast", "slow", "noisy", "retry", "steady", "singles", "backlog", "isolation", "inflight"}

// DefaultScenarios are those run when --scenarios is not given: all but
// inflight, which needs thousands of open files (a hard limit some
// machines do not allow) and loads the machine with a thousand endpoints
// and five thousand connections for one memory figure.
var DefaultScenarios = slices.DeleteFunc(slices.Clone(Scenarios), func(s string) bool { return s == "inflight" })

// Config is one bench invocation: what "nanohook bench" reads from its
// flags, and how to start the servers it measures.
type Config struct {
	DB         string   // "": a fresh SQLite file per run; else a postgres:// URL
	Scenarios  []string // in Scenarios order
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

	// Serve is how to start a "nanohook serve" child; required.
	Serve Command
	// Version is the nanohook version the ceiling's requests name in
	// their User-Agent, as the engine's do.
	Version string
}

// DefaultConfig is what "nanohook bench" runs without flags; Serve and
// Version are left to the caller.
func DefaultConfig() Config {
	return Config{Scenarios: slices.Clone(DefaultScenarios), Endpoints: 10, Batch: 100, Publishers: 4,
		SinglePublishers: 50, Workers: 256, Deadline: 3 * time.Minute}
}

// Command is a program that runs nanohook's commands: Path with Args,
// then "serve" and the bench's serve flags. The child's environment is
// this process's without its NANOHOOK_* variables (only the bench's flags
// configure the server), plus Env. "nanohook bench" passes its own
// executable; tests pass a nanohook they built.
type Command struct {
	Path string
	Args []string
	Env  []string
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

// bench is one invocation's shared state.
type bench struct {
	cfg   Config
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

// Run is the bench command: it runs cfg's scenarios, prints progress on
// stderr and the result on stdout, and fails when a delivery is missing or
// a signature does not verify (after printing the result).
func Run(ctx context.Context, cfg Config, stdout, stderr io.Writer) error {
	if cfg.Serve.Path == "" {
		return errors.New("bench: no command to start serve with (Config.Serve)")
	}
	scenarios, err := SortScenarios(cfg.Scenarios)
	if err != nil {
		return fmt.Errorf("bench: %w", err)
	}
	cfg.Scenarios = scenarios
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

// SortScenarios puts names in running order (Scenarios'), each once,
// refusing unknown ones.
func SortScenarios(names []string) ([]string, error) {
	var out []string
	for _, s := range names {
		if !slices.Contains(Scenarios, s) {
			return nil, fmt.Errorf("unknown scenario %q (known: %s)", s, strings.Join(Scenarios, ", "))
		}
		if !slices.Contains(out, s) {
			out = append(out, s)
		}
	}
	slices.SortFunc(out, func(a, b string) int { return slices.Index(Scenarios, a) - slices.Index(Scenarios, b) })
	return out, nil
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
