package api

import (
	"context"
	"log/slog"
	"net/http"
	"sync"
	"time"

	"github.com/nanohook/nanohook"
)

// HealthStore is what /readyz needs: storage answers, and takes a write.
type HealthStore interface {
	Ping(ctx context.Context) error
	ProbeWrite(ctx context.Context) error
}

// statusJSON is the answer of the health probes.
type statusJSON struct {
	Status string `json:"status"`
}

// readyTimeout bounds /readyz's storage checks (the ping and the write
// probe together), so that a hung database makes the probe fail rather
// than hang.
const readyTimeout = 2 * time.Second

// writeProbeTTL is how long /readyz reuses the outcome of a write probe.
// Every probe is a real commit on the store's one writer (SQLite) or
// shared row (PostgreSQL); reusing the outcome for a second bounds what a
// flood of /readyz requests costs the writer at one write a second per
// listener, while a load balancer polling every few seconds still sees
// each change within a second of it.
const writeProbeTTL = time.Second

// healthz says the process is up and serving HTTP (liveness). It touches no
// storage, so a database outage does not get the process restarted.
func (s *server) healthz(w http.ResponseWriter, r *http.Request) error {
	s.respond(w, r, http.StatusOK, statusJSON{Status: "ok"})
	return nil
}

// readyz says whether storage can take the work this process acknowledges
// (readiness), so that a load balancer stops sending publishes that could
// not be committed: storage must answer a ping, and a small write must
// commit (HealthStore.ProbeWrite), since a full disk or a read-only
// database still answers reads.
func (s *server) readyz(w http.ResponseWriter, r *http.Request) error {
	ctx, cancel := context.WithTimeout(r.Context(), readyTimeout)
	defer cancel()
	if err := s.store.Ping(ctx); err != nil {
		s.logError(r, "api: readiness ping failed", err)
		return nanohook.Errorf(nanohook.CodeUnavailable, "", "storage is unavailable")
	}
	if err := s.ready.check(ctx, s); err != nil {
		return nanohook.Errorf(nanohook.CodeUnavailable, "", "storage does not take writes")
	}
	s.respond(w, r, http.StatusOK, statusJSON{Status: "ok"})
	return nil
}

// writeProbe runs the store's write probe for /readyz at most once per
// writeProbeTTL: requests within that time get the last outcome, and
// requests that arrive while a probe runs wait for that one instead of
// starting their own. Its zero value is ready to use.
type writeProbe struct {
	mu      sync.Mutex
	at      time.Time     // when the last probe ended; zero: never
	err     error         // its outcome
	running chan struct{} // non-nil while a probe runs, closed when it ends
}

// check returns the outcome of a write probe that ended less than
// writeProbeTTL ago, or of the next one, waiting for it at most as long as
// ctx allows. A probe runs on a context of its own, bounded by
// readyTimeout, so that a caller giving up does not cut it short for the
// others waiting; its failure is logged once, with the context of the
// request that started it.
func (p *writeProbe) check(ctx context.Context, s *server) error {
	p.mu.Lock()
	if p.running == nil && !p.at.IsZero() && s.now().Sub(p.at) < writeProbeTTL {
		err := p.err
		p.mu.Unlock()
		return err
	}
	if p.running == nil {
		done := make(chan struct{})
		p.running = done
		go func() {
			pctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), readyTimeout)
			defer cancel()
			err := s.store.ProbeWrite(pctx)
			if err != nil {
				s.log.LogAttrs(pctx, slog.LevelError, "api: readiness write probe failed", slog.Any("error", err))
			}
			p.mu.Lock()
			p.at, p.err, p.running = s.now(), err, nil
			p.mu.Unlock()
			close(done)
		}()
	}
	done := p.running
	p.mu.Unlock()
	select {
	case <-done:
		p.mu.Lock()
		defer p.mu.Unlock()
		return p.err
	case <-ctx.Done():
		return ctx.Err()
	}
}
