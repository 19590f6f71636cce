package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"time"

	"github.com/nanohook/nanohook/internal/rlimit"
)

// Connection limits of serve's listeners (issue 13, item 7): how many
// connections each may hold, sized from the process's open-file limit so
// that a flood of connections on the public listener cannot take the
// descriptors that the delivery engine, the database and the admin
// listener need.
const (
	// defaultMaxConnectionsPerIP is --max-connections-per-ip. An API
	// client needs a handful of connections (browsers open 6 per host, Go's
	// client keeps 2 idle); 256 leaves room for many clients behind one
	// NAT while one address cannot hold more than a small share.
	defaultMaxConnectionsPerIP = 256
	// defaultAdminMaxConnections is --admin-max-connections: the platform's
	// publishers, the metrics scraper and the probes. At the cap the
	// connection idle longest is closed to admit a new one, so busy
	// publishers are not refused while others' connections sit idle.
	defaultAdminMaxConnections = 256
	// defaultIdleTimeout is --idle-timeout: nginx's keepalive_timeout, and
	// above the 60 s idle timeout of common load balancers (AWS ALB), which
	// must close a pooled connection before the backend does or their
	// reuse of it races its close.
	defaultIdleTimeout = 75 * time.Second

	// egressIdleConns is how many idle connections to endpoints the
	// delivery client keeps for reuse (MaxIdleConns of egress.NewClient's
	// transport): descriptors held beside those of attempts in flight.
	egressIdleConns = 1024
	// fdMargin is what the process holds beside connections: the database
	// (SQLite's file, WAL and shared memory on five connections; a
	// PostgreSQL pool of its default size and the LISTEN connection), the
	// listening sockets, the poller, standard streams, DNS lookups in
	// flight. A PostgreSQL pool made large with pool_max_conns counts
	// against it too.
	fdMargin = 256
	// minPublicConnections is the least the public listener is given
	// before the budget is called too small and a warning logged.
	minPublicConnections = 64
	// fallbackMaxConnections is the public cap where the open-file limit
	// cannot be read (not Linux) and --max-connections is 0.
	fallbackMaxConnections = 4096
	// maxFileLimit bounds the limit the caps are sized from, so that an
	// unlimited or absurd limit still gives sane caps.
	maxFileLimit = 1 << 20
)

// Usage strings of the connection flags; they are also the README's
// configuration reference.
var (
	maxConnectionsUsage = fmt.Sprintf("most connections the public listener holds open at once; at the cap the connection idle longest is closed to admit a new one, or, none idle, the new one is answered 503 and closed. "+
		"0: as many as the open-file limit leaves after --delivery-workers, %d idle delivery connections, --admin-max-connections and %d for the database and the rest (serve raises its soft limit to the hard one and logs the figures at start)",
		egressIdleConns, fdMargin)
	maxConnectionsPerIPUsage = "most connections one client address (an IPv6 /64) holds open on the public listener; more are answered 429 and closed at once. 0: no limit. " +
		"Behind a reverse proxy or load balancer every client comes from its few addresses: raise it or set 0 there, and cap clients at the proxy"
	adminMaxConnectionsUsage = "most connections the admin listener holds open at once, a budget of its own that the public listener's connections cannot take; at the cap the connection idle longest is closed to admit a new one"
	idleTimeoutUsage         = "how long a keep-alive connection may wait for its next request on either listener; behind a load balancer that reuses its connections to nanohook, keep it above the balancer's own idle timeout"
)

// addConnectionFlags declares the connection flags on fs, bound to c.
func addConnectionFlags(fs *flag.FlagSet, c *serveConfig) {
	fs.IntVar(&c.MaxConnections, "max-connections", 0, maxConnectionsUsage)
	fs.IntVar(&c.MaxConnectionsPerIP, "max-connections-per-ip", defaultMaxConnectionsPerIP, maxConnectionsPerIPUsage)
	fs.IntVar(&c.AdminMaxConnections, "admin-max-connections", defaultAdminMaxConnections, adminMaxConnectionsUsage)
	fs.DurationVar(&c.IdleTimeout, "idle-timeout", defaultIdleTimeout, idleTimeoutUsage)
}

// checkConnectionFlags checks what addConnectionFlags parsed.
func checkConnectionFlags(c *serveConfig) error {
	if c.MaxConnections < 0 || c.MaxConnectionsPerIP < 0 {
		return errors.New("--max-connections and --max-connections-per-ip must be 0 or positive")
	}
	if c.AdminMaxConnections <= 0 {
		return errors.New("--admin-max-connections must be positive")
	}
	if c.IdleTimeout <= 0 {
		return errors.New("--idle-timeout must be positive")
	}
	return nil
}

// connBudget is what each listener may hold, as planConnections sized it.
type connBudget struct {
	Public    int    // public listener, in total
	PerIP     int    // public listener, per client address; 0: no limit
	Admin     int    // admin listener
	FileLimit uint64 // the open-file limit sized from; 0: unknown
	Reserved  int    // descriptors kept from the public listener
}

// planConnections sizes the listeners' caps from the soft open-file limit
// files (0: unknown) and the configuration. Everything the process needs
// beside the public listener is reserved first: an outbound connection per
// delivery attempt in flight (--delivery-workers), the delivery client's
// idle connections, the admin listener's budget and a margin for the
// database and the rest. The public listener gets what is left, or
// --max-connections if that is less. When the limit leaves too little,
// the public cap is lowered and the returned warnings say what to change.
func planConnections(files uint64, cfg serveConfig) (connBudget, []string) {
	b := connBudget{PerIP: max(cfg.MaxConnectionsPerIP, 0), Admin: cfg.AdminMaxConnections}
	if b.Admin <= 0 {
		b.Admin = defaultAdminMaxConnections
	}
	b.Reserved = max(cfg.DeliveryWorkers, 0) + egressIdleConns + b.Admin + fdMargin
	if files == 0 {
		b.Public = cfg.MaxConnections
		if b.Public <= 0 {
			b.Public = fallbackMaxConnections
		}
		return b, nil
	}
	b.FileLimit = files
	limit := int(min(files, maxFileLimit))
	left := limit - b.Reserved
	var warnings []string
	switch {
	case left < minPublicConnections:
		b.Public = max(min(minPublicConnections, limit/4), 1)
		if cfg.MaxConnections > 0 {
			b.Public = min(b.Public, cfg.MaxConnections)
		}
		warnings = append(warnings, fmt.Sprintf("the open-file limit (%d) is too small for this configuration: "+
			"%d descriptors are kept for --delivery-workers %d, %d idle delivery connections, --admin-max-connections %d and %d for the database and the rest, "+
			"which leaves %d for the public listener; it is capped at %d connections instead, and deliveries or the admin listener may still run out of files. "+
			"Raise the limit (ulimit -n, systemd LimitNOFILE=) or lower --delivery-workers",
			limit, b.Reserved, cfg.DeliveryWorkers, egressIdleConns, b.Admin, fdMargin, max(left, 0), b.Public))
	case cfg.MaxConnections > left:
		b.Public = left
		warnings = append(warnings, fmt.Sprintf("--max-connections %d is more than the open-file limit (%d) leaves for the public listener "+
			"after %d descriptors kept for deliveries, the admin listener and the database: lowered to %d", cfg.MaxConnections, limit, b.Reserved, left))
	case cfg.MaxConnections > 0:
		b.Public = cfg.MaxConnections
	default:
		b.Public = left
	}
	return b, warnings
}

// logConnectionLimits logs the open-file limit and the caps at start, and
// why they are lower than asked if they are.
func logConnectionLimits(ctx context.Context, log *slog.Logger, files rlimit.Files, ferr error, b connBudget, idle time.Duration, warnings []string) {
	if ferr != nil && !errors.Is(ferr, rlimit.ErrUnknown) {
		log.WarnContext(ctx, "could not raise the open-file limit to its hard limit", slog.Any("error", ferr))
	}
	attrs := []slog.Attr{
		slog.Int("public_max", b.Public),
		slog.Int("public_max_per_ip", b.PerIP),
		slog.Int("admin_max", b.Admin),
		slog.Duration("idle_timeout", idle),
	}
	if b.FileLimit > 0 {
		attrs = append(attrs,
			slog.Uint64("open_file_limit", files.Soft),
			slog.Uint64("open_file_limit_at_start", files.Before),
			slog.Uint64("open_file_limit_hard", files.Hard),
			slog.Int("reserved_files", b.Reserved))
	}
	log.LogAttrs(ctx, slog.LevelInfo, "connection limits", attrs...)
	for _, w := range warnings {
		log.WarnContext(ctx, w)
	}
}
