package api

import (
	"context"
	"sync"

	"github.com/nanohook/nanohook/internal/testsignal"
)

// Background owns work that outlives the request that started it, such as
// the steps of a large recover after the first: a goroutine of its own
// would run on, unowned, while the process closes the store beneath it.
// Its jobs run on the service's context, which Stop cancels before it waits
// for them, so the owner (cmd's serve) can end them before it closes the
// store.
//
// A Background is used once: Start, then Go any number of times, then
// Stop. Stop before Start and a second Stop are harmless; Go before Start
// or after Stop runs nothing, and Start after Stop does not restart it.
type Background struct {
	mu      sync.Mutex
	ctx     context.Context // cancelled by Stop; nil until Start
	cancel  context.CancelFunc
	stopped bool
	running sync.WaitGroup
	// ended is a test-only hook (off, a no-op, in production): a job
	// returned.
	ended testsignal.Signal
}

// NewBackground returns a Background that runs nothing until Start.
func NewBackground() *Background { return &Background{} }

// Start lets jobs run. They keep ctx's values but not its cancellation:
// the owner ends them with Stop, in its own order of shutdown, not when
// the signal that begins the shutdown arrives.
func (b *Background) Start(ctx context.Context) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.ctx != nil || b.stopped {
		return
	}
	b.ctx, b.cancel = context.WithCancel(context.WithoutCancel(ctx))
}

// Go runs job in a goroutine of its own and reports whether it did: it
// refuses before Start and after Stop. job's context carries the values of
// ctx (a request's, so that its log lines keep their request_id) and is
// cancelled when Stop is called, never when ctx is; job must return soon
// after.
func (b *Background) Go(ctx context.Context, job func(context.Context)) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.ctx == nil || b.stopped {
		return false
	}
	// Added under mu, which Stop takes to set stopped before it waits: no
	// job can be added once the wait has begun.
	b.running.Add(1)
	owner := b.ctx
	go func() {
		defer b.running.Done()
		defer b.ended.Notify()
		jctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
		defer cancel()
		defer context.AfterFunc(owner, cancel)()
		job(jctx)
	}()
	return true
}

// Stop refuses new jobs, cancels the running ones and waits for them to
// return, or until ctx ends, whose error it then returns (the jobs go on
// until they notice the cancellation).
func (b *Background) Stop(ctx context.Context) error {
	b.mu.Lock()
	b.stopped = true
	cancel := b.cancel
	b.mu.Unlock()
	if cancel != nil {
		cancel()
	}
	done := make(chan struct{})
	go func() {
		b.running.Wait()
		close(done)
	}()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
