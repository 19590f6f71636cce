package main

import (
	"context"
	"log/slog"
	"net"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestShutdownIsNotHeldByUnusedConnections: a client that opened a
// connection and sent nothing must not hold a graceful stop until its
// deadline (net/http waits up to 5 s for a fresh connection's first
// request), which would also leave the delivery engine no time to finish.
func TestShutdownIsNotHeldByUnusedConnections(t *testing.T) {
	t.Parallel()
	cfg := serveConfig{
		DB: filepath.Join(t.TempDir(), "s.db"), Addr: "127.0.0.1:0", AdminAddr: "127.0.0.1:0",
		AdminToken: testAdminToken, RetrySchedule: []time.Duration{time.Second}, DeliveryTimeout: time.Second,
		DeliveryWorkers: 4, EndpointConcurrency: 4, BreakerThreshold: 5, BreakerCooldown: time.Second,
		ShutdownTimeout: 3 * time.Second,
	}
	srv, err := startServer(t.Context(), cfg, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	for _, u := range []string{srv.publicURL(), srv.adminURL()} {
		c, err := net.Dial("tcp", strings.TrimPrefix(u, "http://"))
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
	}
	time.Sleep(50 * time.Millisecond) // let both servers accept them
	ctx, cancel := context.WithTimeout(context.Background(), cfg.ShutdownTimeout)
	defer cancel()
	start := time.Now()
	if err := srv.shutdown(ctx); err != nil {
		t.Fatalf("shutdown with idle connections open: %v", err)
	}
	if took := time.Since(start); took > time.Second {
		t.Fatalf("shutdown took %v with only unused connections open, want well under a second", took)
	}
}
