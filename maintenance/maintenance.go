// Package maintenance runs nanohook's background housekeeping — the pruning
// of old delivery history and the disabling of endpoints that have been
// failing for too long — on exactly one node at a time.
//
// Every node runs a Service; the services compete for a named leadership
// term in the shared store (a row with a holder and an expiry). The holder
// renews its term well before it ends and runs the tasks; when it dies its
// term runs out and another node takes over within one term. Lease rescue
// needs no leader: a claim whose lease expired is simply claimable again.
package maintenance

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nanohook/nanohook/internal/testsignal"
	"github.com/nanohook/nanohook/store"
)

// Store is what maintenance needs from storage.
type Store interface {
	AcquireLeadership(ctx context.Context, p store.LeadershipParams) (bool, error)
	ResignLeadership(ctx context.Context, name, holder string) error
	PruneHistory(ctx context.Context, p store.PruneParams) (int, error)
	DisableFailingEndpoints(ctx context.Context, p store.DisableFailingParams) ([]int64, error)
}

// LeadershipName names the term the maintenance services compete for.
const LeadershipName = "maintenance"

// Config configures a Service; zero values take the defaults.
type Config struct {
	Store  Store
	Logger *slog.Logger
	NodeID string // unique per process
	// Term is how long a leadership lasts without renewal: the longest a
	// dead leader's tasks stay unrun. Renewal happens every Term/3.
	Term time.Duration // default 30 s
	// Retention is how long finished deliveries and their attempts are
	// kept. Default 30 days.
	Retention time.Duration
	// PruneEvery is how often the leader prunes. Default 10 minutes.
	PruneEvery time.Duration
	PruneBatch int // deliveries deleted per transaction; default 1000
	// DisableAfter is how long an endpoint may keep failing (no success
	// since its first failed attempt) before the leader disables it. The
	// check runs every round. Default 5 days.
	DisableAfter time.Duration
	Now          func() time.Time // default time.Now
}

// Service competes for leadership and, while it leads, runs the tasks.
type Service struct {
	cfg       Config
	log       *slog.Logger
	leader    atomic.Bool
	lastPrune time.Time

	cancel context.CancelFunc
	done   chan struct{}
	once   sync.Once
	// rounds is a test-only hook (off, a no-op, in production): a round
	// of the background loop ended.
	rounds testsignal.Signal
}

// New returns a Service; call Start to run it.
func New(cfg Config) *Service {
	if cfg.Term <= 0 {
		cfg.Term = 30 * time.Second
	}
	if cfg.Retention <= 0 {
		cfg.Retention = 30 * 24 * time.Hour
	}
	if cfg.PruneEvery <= 0 {
		cfg.PruneEvery = 10 * time.Minute
	}
	if cfg.DisableAfter <= 0 {
		cfg.DisableAfter = 5 * 24 * time.Hour
	}
	if cfg.PruneBatch <= 0 {
		cfg.PruneBatch = 1000
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	return &Service{cfg: cfg, log: cfg.Logger}
}

// IsLeader reports whether this node held the leadership at its last check.
func (s *Service) IsLeader() bool { return s.leader.Load() }

// Start runs the service in the background until Stop.
func (s *Service) Start(ctx context.Context) {
	ctx, s.cancel = context.WithCancel(context.WithoutCancel(ctx))
	s.done = make(chan struct{})
	go func() {
		defer close(s.done)
		tick := time.NewTicker(s.cfg.Term / 3)
		defer tick.Stop()
		for {
			if err := s.RunOnce(ctx); err != nil && ctx.Err() == nil {
				s.log.WarnContext(ctx, "maintenance round failed", slog.Any("error", err))
			}
			s.rounds.Notify()
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
			}
		}
	}()
}

// Stop ends the loop and, if this node leads, resigns so that another node
// takes over at once instead of after the term.
func (s *Service) Stop(ctx context.Context) error {
	var err error
	s.once.Do(func() {
		if s.cancel == nil {
			return
		}
		s.cancel()
		<-s.done
		if s.leader.Swap(false) {
			err = s.cfg.Store.ResignLeadership(ctx, LeadershipName, s.cfg.NodeID)
		}
	})
	return err
}

// RunOnce takes or renews the leadership and, when it leads, runs the tasks
// that are due. Tests call it directly.
func (s *Service) RunOnce(ctx context.Context) error {
	now := s.cfg.Now()
	leads, err := s.cfg.Store.AcquireLeadership(ctx, store.LeadershipParams{
		Name: LeadershipName, Holder: s.cfg.NodeID, Now: now, Until: now.Add(s.cfg.Term),
	})
	if err != nil {
		s.leader.Store(false)
		return err
	}
	if was := s.leader.Swap(leads); was != leads {
		s.log.InfoContext(ctx, "maintenance leadership changed", slog.Bool("leader", leads), slog.String("node", s.cfg.NodeID))
	}
	if !leads {
		return nil
	}
	_, disableErr := s.DisableFailing(ctx)
	if now.Sub(s.lastPrune) < s.cfg.PruneEvery {
		return disableErr
	}
	s.lastPrune = now
	_, err = s.Prune(ctx)
	return errors.Join(disableErr, err)
}

// DisableFailing disables the endpoints that have been failing for longer
// than DisableAfter (their pending deliveries fail with the reason) and
// returns their ids. A small index range: cheap enough for every round.
func (s *Service) DisableFailing(ctx context.Context) ([]int64, error) {
	now := s.cfg.Now()
	ids, err := s.cfg.Store.DisableFailingEndpoints(ctx, store.DisableFailingParams{
		FailingSince: now.Add(-s.cfg.DisableAfter),
		Now:          now,
		Reason:       "failing for " + humanDuration(s.cfg.DisableAfter),
	})
	if err != nil {
		return nil, err
	}
	if len(ids) > 0 {
		s.log.WarnContext(ctx, "disabled failing endpoints", slog.Any("endpoints", ids),
			slog.Duration("failing_for", s.cfg.DisableAfter))
	}
	return ids, nil
}

// humanDuration is d in whole days when it is some ("5 days"), else as
// time.Duration prints it.
func humanDuration(d time.Duration) string {
	const day = 24 * time.Hour
	switch {
	case d == day:
		return "1 day"
	case d%day == 0:
		return fmt.Sprintf("%d days", d/day)
	}
	return d.String()
}

// Prune deletes finished history older than the retention, one bounded
// transaction at a time so deliveries are never held up behind it.
func (s *Service) Prune(ctx context.Context) (int, error) {
	before := s.cfg.Now().Add(-s.cfg.Retention)
	total := 0
	for {
		n, err := s.cfg.Store.PruneHistory(ctx, store.PruneParams{Before: before, Limit: s.cfg.PruneBatch})
		total += n
		if err != nil {
			return total, err
		}
		if n < s.cfg.PruneBatch {
			break
		}
	}
	if total > 0 {
		s.log.InfoContext(ctx, "pruned delivery history", slog.Int("deliveries", total), slog.Time("before", before))
	}
	return total, nil
}
