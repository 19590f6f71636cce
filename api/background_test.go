package api_test

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nanohook/nanohook/api"
)

type ctxKey struct{}

// TestBackgroundStopWaitsAndCancels: Stop cancels a running job's context
// and returns only once the job has returned. The job keeps the values of
// the context it was submitted with, but not its cancellation: a request
// that ends must not end the work it started.
func TestBackgroundStopWaitsAndCancels(t *testing.T) {
	t.Parallel()
	b := api.NewBackground()
	b.Start(t.Context())
	submit, endRequest := context.WithCancel(context.WithValue(t.Context(), ctxKey{}, "request-1"))
	started := make(chan context.Context, 1)
	var returned atomic.Bool
	if !b.Go(submit, func(ctx context.Context) {
		started <- ctx
		<-ctx.Done()
		time.Sleep(50 * time.Millisecond) // Stop must wait for this too
		returned.Store(true)
	}) {
		t.Fatal("a started Background refused a job")
	}
	ctx := <-started
	if v := ctx.Value(ctxKey{}); v != "request-1" {
		t.Fatalf("the job's context carries %v, want the submitter's value", v)
	}
	endRequest()
	select {
	case <-ctx.Done():
		t.Fatal("the job was cancelled with the request that submitted it")
	case <-time.After(20 * time.Millisecond):
	}
	sctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	if err := b.Stop(sctx); err != nil {
		t.Fatalf("Stop: %v", err)
	}
	if !returned.Load() {
		t.Fatal("Stop returned before the job did")
	}
	if ctx.Err() == nil {
		t.Fatal("Stop did not cancel the job's context")
	}
}

// TestBackgroundStopBoundedByCtx: a job that ignores its cancellation
// holds Stop only until Stop's own context ends.
func TestBackgroundStopBoundedByCtx(t *testing.T) {
	t.Parallel()
	b := api.NewBackground()
	b.Start(t.Context())
	release := make(chan struct{})
	done := make(chan struct{})
	b.Go(t.Context(), func(context.Context) {
		defer close(done)
		<-release
	})
	sctx, cancel := context.WithTimeout(t.Context(), 50*time.Millisecond)
	defer cancel()
	if err := b.Stop(sctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Stop = %v, want its context's deadline", err)
	}
	close(release)
	<-done
	// Now that the job has returned, a second Stop finds nothing to wait for.
	if err := b.Stop(t.Context()); err != nil {
		t.Fatalf("second Stop: %v", err)
	}
}

// TestBackgroundStopBeforeStartAndTwice: Stop needs no Start and may be
// called again; a stopped Background runs nothing, even if started later.
func TestBackgroundStopBeforeStartAndTwice(t *testing.T) {
	t.Parallel()
	ran := make(chan struct{}, 3)
	job := func(context.Context) { ran <- struct{}{} }

	unstarted := api.NewBackground()
	if unstarted.Go(t.Context(), job) {
		t.Fatal("a Background that was never started took a job")
	}
	if err := unstarted.Stop(t.Context()); err != nil {
		t.Fatalf("Stop before Start: %v", err)
	}
	if err := unstarted.Stop(t.Context()); err != nil {
		t.Fatalf("second Stop: %v", err)
	}
	unstarted.Start(t.Context())
	if unstarted.Go(t.Context(), job) {
		t.Fatal("Start after Stop let a job run")
	}

	b := api.NewBackground()
	b.Start(t.Context())
	if err := b.Stop(t.Context()); err != nil {
		t.Fatalf("Stop: %v", err)
	}
	if b.Go(t.Context(), job) {
		t.Fatal("a stopped Background took a job")
	}
	if err := b.Stop(t.Context()); err != nil {
		t.Fatalf("second Stop: %v", err)
	}
	select {
	case <-ran:
		t.Fatal("a refused job ran")
	case <-time.After(50 * time.Millisecond):
	}
}
