package main

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/nanohook/nanohook/api"
	"github.com/nanohook/nanohook/delivery"
	"github.com/nanohook/nanohook/egress"
	"github.com/nanohook/nanohook/maintenance"
	"github.com/nanohook/nanohook/store"
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
	BreakerThreshold    int
	BreakerCooldown     time.Duration
	ShutdownTimeout     time.Duration
	Retention           time.Duration
	DisableAfter        time.Duration
	LogFormat           string
	LogLevel            slog.Level
}

// parseServe reads serve's flags and their NANOHOOK_* twins.
func parseServe(args []string, getenv func(string) string, stderr io.Writer) (serveConfig, error) {
	var c serveConfig
	fs := newFlagSet("serve", stderr)
	fs.StringVar(&c.DB, "db", defaultDB, "SQLite file path or postgres:// URL")
	fs.StringVar(&c.Addr, "addr", ":8080", "public API listen address")
	fs.StringVar(&c.AdminAddr, "admin-addr", "127.0.0.1:8081", "admin API listen address")
	fs.BoolVar(&c.AllowHTTP, "allow-http", false, "accept plain http:// webhook URLs")
	fs.BoolVar(&c.AllowPrivateTargets, "allow-private-targets", false, "let deliveries reach loopback and private addresses")
	schedule := fs.String("retry-schedule", "5s,5m,30m,2h,5h,10h,10h", "waits after each failed attempt, comma-separated (empty: never retry)")
	fs.DurationVar(&c.DeliveryTimeout, "delivery-timeout", 15*time.Second, "time limit of one delivery attempt")
	fs.IntVar(&c.DeliveryWorkers, "delivery-workers", 256, "concurrent delivery attempts")
	fs.IntVar(&c.EndpointConcurrency, "endpoint-concurrency", 64, "most attempts in flight to one endpoint (per node)")
	fs.IntVar(&c.BreakerThreshold, "breaker-threshold", 5, "consecutive failed attempts that open an endpoint's circuit breaker")
	fs.DurationVar(&c.BreakerCooldown, "breaker-cooldown", 30*time.Second, "how long an open breaker waits before one probe attempt")
	fs.DurationVar(&c.Retention, "retention", 30*24*time.Hour, "how long finished deliveries and their attempts are kept")
	fs.DurationVar(&c.DisableAfter, "disable-after", 120*time.Hour, "disable an endpoint whose attempts have all failed for this long")
	fs.DurationVar(&c.ShutdownTimeout, "shutdown-timeout", 20*time.Second, "how long a graceful stop lets attempts in flight finish")
	fs.StringVar(&c.LogFormat, "log-format", "text", "log format: text or json")
	level := fs.String("log-level", "info", "log level: debug, info, warn or error")
	if err := parseFlags(fs, args, getenv); err != nil {
		return c, err
	}
	var err error
	if c.RetrySchedule, err = delivery.ParseSchedule(*schedule); err != nil {
		return c, fmt.Errorf("--retry-schedule: %w", err)
	}
	c.NoRetry = len(c.RetrySchedule) == 0
	if c.DeliveryTimeout <= 0 {
		return c, fmt.Errorf("--delivery-timeout must be positive")
	}
	if c.Retention <= 0 {
		return c, fmt.Errorf("--retention must be positive")
	}
	if c.DisableAfter <= 0 {
		return c, fmt.Errorf("--disable-after must be positive")
	}
	if c.DeliveryWorkers <= 0 {
		return c, fmt.Errorf("--delivery-workers must be positive")
	}
	if c.EndpointConcurrency <= 0 || c.BreakerThreshold <= 0 || c.BreakerCooldown <= 0 {
		return c, fmt.Errorf("--endpoint-concurrency, --breaker-threshold and --breaker-cooldown must be positive")
	}
	if err := c.LogLevel.UnmarshalText([]byte(*level)); err != nil {
		return c, fmt.Errorf("--log-level: %w", err)
	}
	if c.LogFormat != "text" && c.LogFormat != "json" {
		return c, fmt.Errorf("--log-format must be text or json")
	}
	c.AdminToken = getenv("NANOHOOK_ADMIN_TOKEN")
	return c, nil
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
	srv, err := startServer(ctx, cfg, log)
	if err != nil {
		return err
	}
	<-ctx.Done()
	log.InfoContext(ctx, "shutting down", slog.Duration("deadline", cfg.ShutdownTimeout))
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), cfg.ShutdownTimeout)
	defer cancel()
	return srv.shutdown(sctx)
}

// server is a running nanohook: both listeners, the engine and the store.
type server struct {
	log      *slog.Logger
	store    store.Store
	engine   *delivery.Engine
	maint    *maintenance.Service
	stopBG   context.CancelFunc // ends background loops such as the due listener
	bgDone   chan struct{}
	public   *http.Server
	admin    *http.Server
	publicLn net.Listener
	adminLn  net.Listener
	served   chan error
}

// startServer opens storage, starts the engine and both listeners. It
// returns once everything accepts work.
func startServer(ctx context.Context, cfg serveConfig, log *slog.Logger) (*server, error) {
	st, err := openStore(ctx, cfg.DB)
	if err != nil {
		return nil, err
	}
	client := egress.NewClient(egress.Options{
		AllowPrivate: cfg.AllowPrivateTargets,
		Timeout:      cfg.DeliveryTimeout,
		UserAgent:    "nanohook/" + version,
	})
	nodeID := newNodeID()
	engine := delivery.New(delivery.Config{
		Store:    st,
		Client:   client,
		Logger:   log.With(slog.String("component", "delivery")),
		Schedule: cfg.RetrySchedule,
		NoRetry:  cfg.NoRetry,
		Timeout:  cfg.DeliveryTimeout,
		Workers:  cfg.DeliveryWorkers,

		MaxPerEndpoint:   cfg.EndpointConcurrency,
		BreakerThreshold: cfg.BreakerThreshold,
		BreakerCooldown:  cfg.BreakerCooldown,
		UserAgent:        "nanohook/" + version,
		NodeID:           nodeID,
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
		log.WarnContext(ctx, "NANOHOOK_ADMIN_TOKEN is not set: the admin API refuses every request")
	}
	acfg := api.Config{
		Store:      st,
		Logger:     log.With(slog.String("component", "api")),
		AdminToken: cfg.AdminToken,
		AllowHTTP:  cfg.AllowHTTP,
		CheckURL:   checkURL,
		Waker:      engine,
		Tester:     engine,
	}
	s := &server{log: log, store: st, engine: engine, maint: maint, served: make(chan error, 2), bgDone: make(chan struct{})}
	if s.publicLn, err = net.Listen("tcp", cfg.Addr); err != nil {
		st.Close()
		return nil, fmt.Errorf("--addr %s: %w", cfg.Addr, err)
	}
	if s.adminLn, err = net.Listen("tcp", cfg.AdminAddr); err != nil {
		s.publicLn.Close()
		st.Close()
		return nil, fmt.Errorf("--admin-addr %s: %w", cfg.AdminAddr, err)
	}
	s.public = newHTTPServer(api.NewPublic(acfg), log)
	s.admin = newHTTPServer(api.NewAdmin(acfg), log)
	engine.Start(ctx)
	maint.Start(ctx)
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
	go func() { s.served <- serveHTTP(s.public, s.publicLn) }()
	go func() { s.served <- serveHTTP(s.admin, s.adminLn) }()
	log.InfoContext(ctx, "nanohook serving",
		slog.String("version", version),
		slog.String("public", s.publicLn.Addr().String()),
		slog.String("admin", s.adminLn.Addr().String()),
		slog.String("db", redactURL(cfg.DB)),
		slog.String("node", nodeID),
		slog.Bool("allow_http", cfg.AllowHTTP),
		slog.Bool("allow_private_targets", cfg.AllowPrivateTargets))
	return s, nil
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

// newHTTPServer configures a listener's server with timeouts that bound
// slow clients.
func newHTTPServer(h http.Handler, log *slog.Logger) *http.Server {
	return &http.Server{
		Handler:           h,
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       60 * time.Second,
		WriteTimeout:      60 * time.Second,
		IdleTimeout:       120 * time.Second,
		MaxHeaderBytes:    64 << 10,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
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
	if err := s.public.Shutdown(ctx); err != nil {
		errs = append(errs, fmt.Errorf("public listener: %w", err))
	}
	if err := s.admin.Shutdown(ctx); err != nil {
		errs = append(errs, fmt.Errorf("admin listener: %w", err))
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
