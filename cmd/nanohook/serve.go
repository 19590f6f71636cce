package main

import (
	"context"
	"crypto/rand"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"runtime/debug"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nanohook/nanohook"
	"github.com/nanohook/nanohook/api"
	"github.com/nanohook/nanohook/connlimit"
	"github.com/nanohook/nanohook/delivery"
	"github.com/nanohook/nanohook/egress"
	"github.com/nanohook/nanohook/internal/dburl"
	"github.com/nanohook/nanohook/internal/rlimit"
	"github.com/nanohook/nanohook/maintenance"
	"github.com/nanohook/nanohook/metrics"
	"github.com/nanohook/nanohook/store"
	"github.com/nanohook/nanohook/webhook"
)

// serveConfig is everything "serve" reads from flags and environment.
type serveConfig struct {
	DB                  string
	Addr                string
	AdminAddr           string
	AdminToken          string
	AllowHTTP           bool
	AllowPrivateTargets bool
	RetrySchedule       []time.Duration
	NoRetry             bool
	DeliveryTimeout     time.Duration
	DeliveryWorkers     int
	EndpointConcurrency int
	AccountConcurrency  int
	BreakerThreshold    int
	BreakerCooldown     time.Duration
	ShutdownTimeout     time.Duration
	Retention           time.Duration
	DisableAfter        time.Duration
	LogFormat           string
	LogLevel            slog.Level
	AuthFailureLimit    int
	MaxPayloadBytes     int
	MaxEndpoints        int
	// Connection limits (connlimits.go).
	MaxConnections      int           // public listener in total; 0: sized from the open-file limit
	MaxConnectionsPerIP int           // public listener per client address; 0: no limit
	AdminMaxConnections int           // admin listener; 0: defaultAdminMaxConnections
	IdleTimeout         time.Duration // keep-alive wait on both listeners; 0: defaultIdleTimeout
	// Keyring encrypts endpoint URLs and webhook secrets at rest; nil
	// stores them as plaintext (--encryption-key).
	Keyring *store.Keyring
}

// minPayloadBytes is the smallest --max-payload-bytes: below 1 KiB even a
// job event with little data would be refused.
const minPayloadBytes = 1 << 10

// adminTokenEnv names the admin API's bearer token. It is read from the
// environment only, never from a flag or the config file, so that it does
// not show in process listings or in files that get copied around.
const adminTokenEnv = "NANOHOOK_ADMIN_TOKEN"

// adminTokenUsage describes adminTokenEnv in the configuration reference.
const adminTokenUsage = "bearer token of the admin API; unset, the admin API refuses every call (/metrics and the health probes stay open)"

// parseServe reads serve's flags, their NANOHOOK_* twins and the --config
// file.
func parseServe(args []string, getenv func(string) string, stderr io.Writer) (serveConfig, error) {
	var c serveConfig
	fs, finish := serveFlags(&c, stderr)
	if err := parseFlags(fs, args, getenv); err != nil {
		return c, err
	}
	if err := finish(); err != nil {
		return c, err
	}
	c.AdminToken = getenv(adminTokenEnv)
	return c, nil
}

// serveFlags declares serve's flags on a new flag set, bound to c. Once the
// set is parsed, finish converts what the textual flags hold into c and
// checks every value. The usage strings double as the README's
// configuration reference (TestConfigReference), so they are written to be
// read there.
func serveFlags(c *serveConfig, stderr io.Writer) (fs *flag.FlagSet, finish func() error) {
	fs = newFlagSet("serve", stderr)
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), serveUsage)
		printSettings(fs.Output(), serveSettings())
	}
	addConfigFlag(fs)
	fs.StringVar(&c.DB, "db", defaultDB, "SQLite file, or a postgres:// URL for several nodes sharing one database")
	fs.StringVar(&c.Addr, "addr", ":8080", "listen address of the public API (customers)")
	fs.StringVar(&c.AdminAddr, "admin-addr", "127.0.0.1:8081", "listen address of the admin API and /metrics; keep it off the internet")
	fs.BoolVar(&c.AllowHTTP, "allow-http", false, "accept plain http:// webhook URLs (local development)")
	fs.BoolVar(&c.AllowPrivateTargets, "allow-private-targets", false, "let deliveries reach loopback, private and link-local addresses (local development)")
	schedule := fs.String("retry-schedule", "5s,5m,30m,2h,5h,10h,10h", "waits after each failed attempt, comma-separated, each ±10% jitter; empty: never retry")
	fs.DurationVar(&c.DeliveryTimeout, "delivery-timeout", 15*time.Second, "time limit of one delivery attempt")
	fs.IntVar(&c.DeliveryWorkers, "delivery-workers", delivery.DefaultMaxInFlight, "delivery attempts in flight at once on this node (each waits on the network: an idle goroutine and a connection)")
	fs.IntVar(&c.EndpointConcurrency, "endpoint-concurrency", delivery.DefaultMaxPerEndpoint, "most attempts in flight to one endpoint on this node; below it each endpoint's limit adapts to its latency and errors: while over half of --delivery-workers are in flight, an endpoint answering within 500 ms may use all of it, a slower one a share in inverse proportion to its latency (about a sixth at 3 s)")
	fs.IntVar(&c.AccountConcurrency, "account-concurrency", 0, "most attempts in flight for one account on this node, whatever its number of endpoints; 0: a quarter of --delivery-workers (at least 16 endpoints' worth)")
	fs.IntVar(&c.BreakerThreshold, "breaker-threshold", 5, "consecutive failed attempts that open an endpoint's circuit breaker once they span 1s (10s when it answered every one with an error status other than 429 and 503)")
	fs.DurationVar(&c.BreakerCooldown, "breaker-cooldown", 30*time.Second, "how long an open circuit breaker waits before letting one probe attempt through")
	fs.DurationVar(&c.Retention, "retention", 30*24*time.Hour, "how long finished deliveries and their attempts are kept")
	fs.DurationVar(&c.DisableAfter, "disable-after", 120*time.Hour, "disable an endpoint whose attempts have all failed for this long")
	fs.DurationVar(&c.ShutdownTimeout, "shutdown-timeout", 20*time.Second, "how long SIGTERM lets attempts in flight finish before the rest go back to the queue")
	fs.StringVar(&c.LogFormat, "log-format", "text", "log format: text or json")
	level := fs.String("log-level", "info", "log level: debug (adds a line per request and per delivery attempt), info, warn or error")
	fs.IntVar(&c.AuthFailureLimit, "auth-failure-limit", api.DefaultAuthFailureLimit, "failed authentications one client address may make in a row on a listener; then its requests with credentials answer 429 until failures are forgiven, one a second; 0: no limit. Clients are told apart by the connection's address, so behind a reverse proxy they share one allowance (credentials that authenticated in the last hour are still served)")
	fs.IntVar(&c.MaxPayloadBytes, "max-payload-bytes", api.DefaultMaxPayloadBytes, "largest body delivered for one event, counted on the canonical bytes receivers get; a larger event is refused at publish with 413 (single and batch routes alike). 1024 to 1048576, the webhook package's default limit")
	fs.IntVar(&c.MaxEndpoints, "max-endpoints-per-account", api.DefaultMaxEndpoints, "most live (active or disabled) endpoints one account may have; creating one more answers 409. Every event fans out to each of them, so this bounds what one publish writes; 0: no limit")
	addConnectionFlags(fs, c)
	keys := addEncryptionKeyFlag(fs)
	return fs, func() error {
		var err error
		if c.Keyring, err = store.ParseKeyring(*keys); err != nil {
			return err
		}
		if c.RetrySchedule, err = delivery.ParseSchedule(*schedule); err != nil {
			return fmt.Errorf("--retry-schedule: %w", err)
		}
		c.NoRetry = len(c.RetrySchedule) == 0
		if c.DeliveryTimeout <= 0 {
			return fmt.Errorf("--delivery-timeout must be positive")
		}
		if c.Retention <= 0 {
			return fmt.Errorf("--retention must be positive")
		}
		if c.DisableAfter <= 0 {
			return fmt.Errorf("--disable-after must be positive")
		}
		if c.DeliveryWorkers <= 0 {
			return fmt.Errorf("--delivery-workers must be positive")
		}
		if c.AccountConcurrency < 0 {
			return fmt.Errorf("--account-concurrency must be 0 (the default share) or positive")
		}
		if c.EndpointConcurrency <= 0 || c.BreakerThreshold <= 0 || c.BreakerCooldown <= 0 {
			return fmt.Errorf("--endpoint-concurrency, --breaker-threshold and --breaker-cooldown must be positive")
		}
		if err := c.LogLevel.UnmarshalText([]byte(*level)); err != nil {
			return fmt.Errorf("--log-level: %w", err)
		}
		if c.LogFormat != "text" && c.LogFormat != "json" {
			return fmt.Errorf("--log-format must be text or json")
		}
		if c.AuthFailureLimit < 0 {
			return fmt.Errorf("--auth-failure-limit must be 0 (no limit) or positive")
		}
		if c.MaxEndpoints < 0 {
			return fmt.Errorf("--max-endpoints-per-account must be 0 (no limit) or positive")
		}
		if c.MaxPayloadBytes < minPayloadBytes || c.MaxPayloadBytes > webhook.MaxPayloadBytes {
			return fmt.Errorf("--max-payload-bytes must be %d to %d (got %d)", minPayloadBytes, webhook.MaxPayloadBytes, c.MaxPayloadBytes)
		}
		return checkConnectionFlags(c)
	}
}

// serveUsage heads serve's help, above its settings.
const serveUsage = `Usage: nanohook serve [flags]

Runs the public API, the admin API and the delivery workers. Each setting
comes from its flag, else its environment variable, else the --config file,
else its default. The admin token comes from the environment only.

Settings:
`

// serveSettings lists every way to configure serve: its flags with their
// environment twins, then the admin token. serve -h prints them and
// README.md's configuration table is generated from them
// (TestConfigReference).
func serveSettings() []setting {
	fs, _ := serveFlags(&serveConfig{}, io.Discard)
	return append(flagSettings(fs, envName), setting{env: adminTokenEnv, usage: adminTokenUsage})
}

// serveFlagNames lists serve's flags, which a config file shared with
// migrate may hold.
func serveFlagNames() []string {
	fs, _ := serveFlags(&serveConfig{}, io.Discard)
	var names []string
	fs.VisitAll(func(f *flag.Flag) { names = append(names, f.Name) })
	return names
}

// newLogger builds the process logger from the configuration.
func newLogger(w io.Writer, format string, level slog.Level) *slog.Logger {
	opts := &slog.HandlerOptions{Level: level}
	if format == "json" {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}

// runServe runs the service until ctx is cancelled (SIGINT/SIGTERM), then
// shuts down gracefully.
func runServe(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	cfg, err := parseServe(args, getenv, stderr)
	if err != nil {
		return err
	}
	log := newLogger(stderr, cfg.LogFormat, cfg.LogLevel)
	if getenv("GOGC") == "" {
		// The live heap is small (bounded claims, no caches), so a collection
		// at every doubling of it is frequent work for little memory: at 200
		// the batch benchmark delivered about 7% more a second, for about
		// 10 MiB more resident memory. GOGC still overrides.
		debug.SetGCPercent(200)
	}
	srv, err := startServer(ctx, cfg, log)
	if err != nil {
		return err
	}
	return srv.run(ctx, cfg.ShutdownTimeout)
}

// run serves until ctx is cancelled or a listener fails, then shuts down
// within timeout. A failed listener is returned (with any error of the
// shutdown): a node that has silently stopped answering one of its APIs
// would otherwise look alive to its supervisor until the next restart.
func (s *server) run(ctx context.Context, timeout time.Duration) error {
	select {
	case <-ctx.Done():
		s.log.InfoContext(ctx, "shutting down", slog.Duration("deadline", timeout))
	case <-s.failed:
		s.log.ErrorContext(ctx, "a listener failed; shutting down", slog.Any("error", s.failure), slog.Duration("deadline", timeout))
	}
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), timeout)
	defer cancel()
	return s.shutdown(sctx)
}

// server is a running nanohook: both listeners, the engine and the store.
type server struct {
	log      *slog.Logger
	store    store.Store
	engine   *delivery.Engine
	maint    *maintenance.Service
	apiBG    *api.Background    // the API's work that outlives its requests
	stopBG   context.CancelFunc // ends background loops such as the due listener
	bgDone   chan struct{}
	public   *httpServer
	admin    *httpServer
	publicLn net.Listener
	adminLn  net.Listener
	served   chan error    // each listener's end: nil once shut down, or why it failed
	failed   chan struct{} // closed when a listener first fails, after failure is set
	failOnce sync.Once
	failure  error
}

// serve runs one listener's server until it is shut down. If it fails
// instead, the failure also ends run, which shuts the rest down.
func (s *server) serve(name string, h *httpServer, ln net.Listener) {
	err := serveHTTP(h.Server, ln)
	if err != nil {
		err = fmt.Errorf("%s listener failed: %w", name, err)
		s.failOnce.Do(func() {
			s.failure = err
			close(s.failed)
		})
	}
	s.served <- err
}

// startServer opens storage, starts the engine and both listeners. It
// returns once everything accepts work.
func startServer(ctx context.Context, cfg serveConfig, log *slog.Logger) (*server, error) {
	st, err := openKeyedStore(ctx, cfg.DB, cfg.Keyring)
	if err != nil {
		return nil, err
	}
	// A key missing from the keyring would otherwise surface as every claim
	// and endpoint read failing; better not to start at all.
	if err := st.CheckSecrets(ctx); err != nil {
		st.Close()
		return nil, fmt.Errorf("refusing to start: %w", err)
	}
	client := egress.NewClient(egress.Options{
		AllowPrivate: cfg.AllowPrivateTargets,
		Timeout:      cfg.DeliveryTimeout,
		UserAgent:    "nanohook/" + version,
		Logger:       log.With(slog.String("component", "egress")),
	})
	nodeID := newNodeID()
	var engine *delivery.Engine // the metrics read it once it runs
	m := metrics.New(metrics.Config{
		Stats:    st,
		Version:  version,
		Logger:   log.With(slog.String("component", "metrics")),
		InFlight: func() int { return engine.InFlight() },
	})
	dlog := log.With(slog.String("component", "delivery"))
	engine = delivery.New(delivery.Config{
		Store:       st,
		Client:      client,
		Logger:      dlog,
		Schedule:    cfg.RetrySchedule,
		NoRetry:     cfg.NoRetry,
		Timeout:     cfg.DeliveryTimeout,
		MaxInFlight: cfg.DeliveryWorkers,

		MaxPerEndpoint:   cfg.EndpointConcurrency,
		MaxPerAccount:    cfg.AccountConcurrency,
		BreakerThreshold: cfg.BreakerThreshold,
		BreakerCooldown:  cfg.BreakerCooldown,
		UserAgent:        "nanohook/" + version,
		NodeID:           nodeID,
		OnComplete: func(p store.CompleteParams) {
			m.ObserveCompletion(p)
			logCompletion(dlog, p)
		},
	})
	maint := maintenance.New(maintenance.Config{
		Store:        st,
		Logger:       log.With(slog.String("component", "maintenance")),
		NodeID:       nodeID,
		Retention:    cfg.Retention,
		DisableAfter: cfg.DisableAfter,
	})
	var checkURL func(context.Context, string) error
	if !cfg.AllowPrivateTargets {
		checkURL = func(ctx context.Context, u string) error { return egress.CheckURL(ctx, nil, u) }
	}
	if cfg.AdminToken == "" {
		log.WarnContext(ctx, adminTokenEnv+" is not set: the admin API refuses every request")
	}
	apiBG := api.NewBackground()
	acfg := api.Config{
		Store:      st,
		Background: apiBG,
		Logger:     log.With(slog.String("component", "api")),
		AdminToken: cfg.AdminToken,
		AllowHTTP:  cfg.AllowHTTP,
		CheckURL:   checkURL,
		Waker:      engine,
		Tester:     engine,
		OnPublish:  m.ObservePublish,

		MaxPayloadBytes:    cfg.MaxPayloadBytes,
		PublishConcurrency: publishConcurrency(cfg.DB),
	}
	if acfg.MaxEndpointsPerAccount = cfg.MaxEndpoints; acfg.MaxEndpointsPerAccount == 0 {
		acfg.MaxEndpointsPerAccount = -1 // the flag's 0 is api.Config's "no limit"
	}
	if acfg.AuthFailureLimit = cfg.AuthFailureLimit; acfg.AuthFailureLimit == 0 {
		acfg.AuthFailureLimit = -1 // the flag's 0 is api.Config's "no limit"
	}
	s := &server{log: log, store: st, engine: engine, maint: maint, apiBG: apiBG, served: make(chan error, 2), failed: make(chan struct{}), bgDone: make(chan struct{})}
	publicLn, err := net.Listen("tcp", cfg.Addr)
	if err != nil {
		st.Close()
		return nil, fmt.Errorf("--addr %s: %w", cfg.Addr, err)
	}
	adminLn, err := net.Listen("tcp", cfg.AdminAddr)
	if err != nil {
		publicLn.Close()
		st.Close()
		return nil, fmt.Errorf("--admin-addr %s: %w", cfg.AdminAddr, err)
	}
	// Each listener holds at most its own budget of connections, sized from
	// the open-file limit, so that a flood on the public one leaves files
	// for deliveries, the database and the admin listener.
	files, ferr := rlimit.Raise()
	budget, warnings := planConnections(files.Soft, cfg)
	idle := cfg.IdleTimeout
	if idle <= 0 {
		idle = defaultIdleTimeout
	}
	logConnectionLimits(ctx, log, files, ferr, budget, idle, warnings)
	llog := log.With(slog.String("component", "listener"))
	public := connlimit.New(publicLn, connlimit.Config{Max: budget.Public, MaxPerAddr: budget.PerIP, Name: "public", Logger: llog})
	admin := connlimit.New(adminLn, connlimit.Config{Max: budget.Admin, Name: "admin", Logger: llog})
	s.publicLn, s.adminLn = public, admin
	s.public = newHTTPServer(api.NewPublic(acfg), log, idle, public.ConnState)
	s.admin = newHTTPServer(withMetrics(api.NewAdmin(acfg), m.Handler()), log, idle, admin.ConnState)
	engine.Start(ctx)
	maint.Start(ctx)
	apiBG.Start(ctx)
	bg, stopBG := context.WithCancel(context.WithoutCancel(ctx))
	s.stopBG = stopBG
	go func() {
		defer close(s.bgDone)
		if l, ok := st.(dueListener); ok {
			// Other nodes' publishes wake this engine too; polling stays the fallback.
			if err := l.ListenDue(bg, engine.Wake); err != nil {
				log.ErrorContext(bg, "listening for due work stopped", slog.Any("error", err))
			}
		}
	}()
	go s.serve("public", s.public, s.publicLn)
	go s.serve("admin", s.admin, s.adminLn)
	log.InfoContext(ctx, "nanohook serving",
		slog.String("version", version),
		slog.String("public", s.publicLn.Addr().String()),
		slog.String("admin", s.adminLn.Addr().String()),
		slog.String("db", dburl.Redact(cfg.DB)),
		slog.String("node", nodeID),
		slog.Bool("allow_http", cfg.AllowHTTP),
		slog.Bool("allow_private_targets", cfg.AllowPrivateTargets))
	return s, nil
}

// publishConcurrency is how many publish transactions run at once
// (api.Config.PublishConcurrency): SQLite writes one at a time anyway;
// PostgreSQL gets two, half its smallest default pool (pgxpool's four), so
// that a flood of publishes leaves connections to the API's reads.
func publishConcurrency(db string) int {
	if dburl.IsPostgres(db) {
		return 2
	}
	return 1
}

// withMetrics serves GET /metrics beside the admin API, on the admin
// listener: scrapers reach it where the platform does, and never from the
// internet. A plain path check rather than a ServeMux in front, so that
// the admin API keeps answering every other path itself (unclean paths
// included) with its JSON envelope.
func withMetrics(admin, metrics http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/metrics" && (r.Method == http.MethodGet || r.Method == http.MethodHead) {
			metrics.ServeHTTP(w, r)
			return
		}
		admin.ServeHTTP(w, r)
	})
}

// logCompletion writes one line per committed attempt, with the ids an
// operator searches by: at debug level while the delivery goes on
// (succeeded, or failed with a retry scheduled), at warn level when it
// ends failed. The endpoint's URL is left out (it may carry a token), and
// so is the response body (the customer's data).
func logCompletion(log *slog.Logger, p store.CompleteParams) {
	ctx := context.Background()
	level, msg := slog.LevelDebug, "delivery attempt"
	if p.Status == nanohook.DeliveryFailed {
		level, msg = slog.LevelWarn, "delivery failed"
	}
	if !log.Enabled(ctx, level) {
		return
	}
	attrs := []slog.Attr{
		slog.Int64("delivery_id", p.DeliveryID),
		slog.Int64("endpoint_id", p.EndpointID),
		slog.String("event_id", p.EventID),
		slog.Int("attempt", p.Attempt.Number),
		slog.String("outcome", metrics.Outcome(p.Status)),
		slog.Int("response_status", p.Attempt.ResponseStatus),
		slog.Duration("duration", p.Attempt.Duration),
	}
	if p.Attempt.Error != "" {
		attrs = append(attrs, slog.String("error", p.Attempt.Error))
	}
	if p.Status == nanohook.DeliveryPending {
		attrs = append(attrs, slog.Time("next_attempt_at", p.NextAttemptAt))
	}
	if p.DisableEndpoint != "" {
		attrs = append(attrs, slog.String("endpoint_disabled", p.DisableEndpoint))
	}
	log.LogAttrs(ctx, level, msg, attrs...)
}

// newNodeID names this process among the nodes sharing a database: host,
// pid and a random suffix, so a restarted process with a reused pid is a
// new node.
func newNodeID() string {
	host, _ := os.Hostname()
	var b [4]byte
	_, _ = rand.Read(b[:])
	return fmt.Sprintf("%s/%d/%x", host, os.Getpid(), b)
}

// httpServer is one listener's server and the count of requests its
// handlers are running.
type httpServer struct {
	*http.Server
	active atomic.Int64
}

// newHTTPServer configures a listener's server with timeouts that bound
// slow clients: idle is how long a keep-alive connection may wait for its
// next request. connState is the listener's connlimit hook, which tells it
// which connections are idle.
func newHTTPServer(h http.Handler, log *slog.Logger, idle time.Duration, connState func(net.Conn, http.ConnState)) *httpServer {
	s := &httpServer{}
	s.Server = &http.Server{
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			s.active.Add(1)
			defer s.active.Add(-1)
			h.ServeHTTP(w, r)
		}),
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       60 * time.Second,
		WriteTimeout:      60 * time.Second,
		IdleTimeout:       idle,
		ConnState:         connState,
		MaxHeaderBytes:    64 << 10,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}
	return s
}

// shutdown stops accepting connections and waits, until ctx ends, for the
// requests in progress to finish. Connections that carry no request are
// closed as soon as none is in progress: http.Server.Shutdown alone would
// wait up to 5 s for a freshly opened connection to send its first
// request, and one idle client could then use up a short shutdown
// deadline that the delivery engine needs.
func (s *httpServer) shutdown(ctx context.Context) error {
	done := make(chan error, 1)
	go func() { done <- s.Shutdown(ctx) }()
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case err := <-done:
			return err
		case <-tick.C:
			if s.active.Load() == 0 {
				_ = s.Close() // Shutdown then returns: no connection is left
			}
		}
	}
}

func serveHTTP(s *http.Server, ln net.Listener) error {
	if err := s.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

// publicURL and adminURL are the base URLs of the listeners (tests use them
// with port 0).
func (s *server) publicURL() string { return "http://" + loopbackAddr(s.publicLn.Addr()) }
func (s *server) adminURL() string  { return "http://" + loopbackAddr(s.adminLn.Addr()) }

func loopbackAddr(a net.Addr) string {
	addr := a.String()
	if strings.HasPrefix(addr, "[::]:") {
		return "127.0.0.1:" + strings.TrimPrefix(addr, "[::]:")
	}
	if strings.HasPrefix(addr, "0.0.0.0:") {
		return "127.0.0.1:" + strings.TrimPrefix(addr, "0.0.0.0:")
	}
	return addr
}

// shutdown stops accepting requests, lets the engine finish or release its
// attempts within ctx, and closes storage. Nothing stays claimed.
func (s *server) shutdown(ctx context.Context) error {
	var errs []error
	// Stop taking publishes first: every request in progress still finishes
	// (and commits) before its 2xx.
	if err := s.public.shutdown(ctx); err != nil {
		errs = append(errs, fmt.Errorf("public listener: %w", err))
	}
	if err := s.admin.shutdown(ctx); err != nil {
		errs = append(errs, fmt.Errorf("admin listener: %w", err))
	}
	// No request can start a recover now; end the ones still re-queueing
	// in the background while the store is open (calling recover again
	// finishes them).
	if err := s.apiBG.Stop(ctx); err != nil {
		s.log.WarnContext(ctx, "background recovers still running at the shutdown deadline", slog.Any("error", err))
	}
	if err := s.engine.Stop(ctx); err != nil {
		s.log.WarnContext(ctx, "delivery engine stopped at the shutdown deadline", slog.Any("error", err))
	}
	if err := s.maint.Stop(ctx); err != nil {
		s.log.WarnContext(ctx, "resigning maintenance leadership failed; another node takes over when the term ends", slog.Any("error", err))
	}
	s.stopBG()
	<-s.bgDone
	if err := s.store.Close(); err != nil {
		errs = append(errs, fmt.Errorf("close storage: %w", err))
	}
	for range 2 {
		if err := <-s.served; err != nil {
			errs = append(errs, err)
		}
	}
	if len(errs) == 0 {
		s.log.InfoContext(ctx, "stopped cleanly")
	}
	return errors.Join(errs...)
}
