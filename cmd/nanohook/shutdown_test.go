package main

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// shutdownTestConfig is a small serve on a fresh SQLite file and loopback
// ports, with a 3 s shutdown timeout.
func shutdownTestConfig(t *testing.T) serveConfig {
	return serveConfig{
		DB: filepath.Join(t.TempDir(), "s.db"), Addr: "127.0.0.1:0", AdminAddr: "127.0.0.1:0",
		AdminToken: testAdminToken, RetrySchedule: []time.Duration{time.Second}, DeliveryTimeout: time.Second,
		DeliveryWorkers: 4, EndpointConcurrency: 4, BreakerThreshold: 5, BreakerCooldown: time.Second,
		ShutdownTimeout: 3 * time.Second,
	}
}

// TestShutdownIsNotHeldByUnusedConnections: a client that opened a
// connection and sent nothing must not hold a graceful stop until its
// deadline (net/http waits up to 5 s for a fresh connection's first
// request), which would also leave the delivery engine no time to finish.
func TestShutdownIsNotHeldByUnusedConnections(t *testing.T) {
	t.Parallel()
	cfg := shutdownTestConfig(t)
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

// TestFailedListenerStopsServe: when one listener's Serve fails (here its
// listener is closed from outside, as a failing accept would end it),
// run shuts the rest down in order and returns the failure, naming the
// listener, instead of serving on with one API gone until a signal.
func TestFailedListenerStopsServe(t *testing.T) {
	t.Parallel()
	cfg := shutdownTestConfig(t)
	logs := newWatchWriter("a listener failed; shutting down")
	srv, err := startServer(t.Context(), cfg, newLogger(logs, "text", slog.LevelInfo))
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.adminLn.Close(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- srv.run(t.Context(), cfg.ShutdownTimeout) }() // t.Context() is not cancelled meanwhile
	select {
	case err = <-done:
	case <-time.After(10 * time.Second):
		// Stop it, so that the test ends with what it saw.
		t.Error("run went on serving after the admin listener failed")
		ctx, cancel := context.WithTimeout(context.Background(), cfg.ShutdownTimeout)
		defer cancel()
		_ = srv.shutdown(ctx)
		return
	}
	if err == nil || !strings.Contains(err.Error(), "admin listener failed") || !errors.Is(err, net.ErrClosed) {
		t.Fatalf("run = %v, want the admin listener's failure", err)
	}
	if strings.Contains(err.Error(), "public listener") {
		t.Fatalf("run = %v: the public listener was shut down, it did not fail", err)
	}
	if out := logs.String(); !strings.Contains(out, "a listener failed; shutting down") || !strings.Contains(out, "admin listener failed") {
		t.Fatalf("the failure was not logged:\n%s", out)
	}
}

// TestFailedListenerStopsDemo: the demo stops as serve does when one of its
// listeners (the server's or its receiver's) fails mid-tour: the tour's
// context is cancelled at once, instead of the tour waiting out its
// timeout for a delivery that cannot come, and the failure is returned,
// naming the listener.
func TestFailedListenerStopsDemo(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		name string
		fail func(*server, *demoReceiver) error
		want string
	}{
		{"admin", func(s *server, _ *demoReceiver) error { return s.adminLn.Close() }, "admin listener failed"},
		{"receiver", func(_ *server, r *demoReceiver) error { return r.ln.Close() }, "demo receiver's listener failed"},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			srv, err := startServer(t.Context(), shutdownTestConfig(t), slog.New(slog.DiscardHandler))
			if err != nil {
				t.Fatal(err)
			}
			rcv, err := startDemoReceiver(func(string, ...any) {})
			if err != nil {
				t.Fatal(err)
			}
			done := make(chan error, 1)
			go func() {
				done <- runTour(t.Context(), srv, rcv, func(ctx context.Context) error {
					if err := c.fail(srv, rcv); err != nil {
						return err
					}
					<-ctx.Done() // as waiting for a delivery would
					return ctx.Err()
				})
			}()
			select {
			case err = <-done:
			case <-time.After(10 * time.Second):
				t.Fatalf("the tour went on after the %s listener failed", c.name)
			}
			if err == nil || !strings.Contains(err.Error(), c.want) || !errors.Is(err, net.ErrClosed) {
				t.Fatalf("demo = %v, want the %s listener's failure", err, c.name)
			}
			if errors.Is(err, context.Canceled) {
				t.Fatalf("demo = %v: the tour's cancellation hides the failure", err)
			}
		})
	}
}
