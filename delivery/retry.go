package delivery

import (
	"fmt"
	"strings"
	"time"
)

// DefaultSchedule returns the documented wait after each failed attempt:
// after the first failure 5 s, then 5 min, 30 min, 2 h, 5 h, 10 h, 10 h;
// after the eighth failed attempt the delivery is failed. It is a function
// so that no caller can change another engine's schedule.
func DefaultSchedule() []time.Duration {
	return []time.Duration{
		5 * time.Second, 5 * time.Minute, 30 * time.Minute,
		2 * time.Hour, 5 * time.Hour, 10 * time.Hour, 10 * time.Hour,
	}
}

// Jitter is the relative spread applied to each scheduled wait (±10 %), so
// that deliveries that failed together do not all retry in the same second.
const Jitter = 0.10

// RetryPolicy decides when a failed delivery is tried again. It is a pure
// function of its inputs: the caller passes the random number, so tests can
// pin it.
type RetryPolicy struct {
	Schedule []time.Duration
}

// Next returns how long to wait after failed attempt number attempt (1-based)
// and whether another attempt is due at all. rnd is uniform in [0, 1) and
// picks the jitter. retryAfter is the receiver's Retry-After (0 when absent):
// it is honoured up to the next step of the schedule, so a receiver can ask
// for more time than the current step but cannot stall the delivery beyond
// the step after it.
func (p RetryPolicy) Next(attempt int, retryAfter time.Duration, rnd float64) (time.Duration, bool) {
	if attempt < 1 || attempt > len(p.Schedule) {
		return 0, false
	}
	step := p.Schedule[attempt-1]
	delay := time.Duration(float64(step) * (1 + Jitter*(2*rnd-1)))
	if retryAfter > delay {
		ceiling := step
		if attempt < len(p.Schedule) {
			ceiling = max(step, p.Schedule[attempt])
		}
		// Never sooner than the schedule: a capped Retry-After below the
		// jittered step leaves the step in place.
		delay = max(delay, min(retryAfter, ceiling))
	}
	return max(delay, 0), true
}

// ParseSchedule reads a comma-separated list of Go durations ("5s,5m,30m").
// Every step must be positive; an empty list means "never retry".
func ParseSchedule(s string) ([]time.Duration, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return nil, nil
	}
	parts := strings.Split(s, ",")
	out := make([]time.Duration, 0, len(parts))
	for i, part := range parts {
		d, err := time.ParseDuration(strings.TrimSpace(part))
		if err != nil {
			return nil, fmt.Errorf("retry schedule step %d: %w", i+1, err)
		}
		if d <= 0 {
			return nil, fmt.Errorf("retry schedule step %d: %s is not positive", i+1, part)
		}
		out = append(out, d)
	}
	return out, nil
}
