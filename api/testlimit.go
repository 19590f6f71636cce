package api

import (
	"math"
	"sync"
	"time"

	"golang.org/x/time/rate"

	"github.com/nanohook/nanohook"
)

// Defaults of the per-account limit on test calls (Config.TestCallBurst and
// Config.TestCallRefill): 10 at once, then one every 6 s (10 a minute).
//
// A test call is a person (the dashboard's button, a CLI) or a deploy
// script checking that an endpoint answers: it sends a real request from
// this server and stores a delivery with its attempt, and it bypasses the
// queue. Ten at once lets a script check each of an account's usual few
// endpoints after a deploy, and ten a minute is more than anyone clicks;
// Svix and Stripe likewise treat test sends as occasional manual checks,
// never as a way to send traffic. The limit bounds what one account makes
// this server send and store through them: at most 14,400 pings a day.
const (
	DefaultTestCallBurst  = 10
	DefaultTestCallRefill = 6 * time.Second
)

// testLimitSweepEvery is how often, at most, the limiter drops the buckets
// of accounts that have their whole allowance back.
const testLimitSweepEvery = time.Minute

// accountLimiter is a token bucket per account: each call takes a token,
// a call that finds none is refused. Accounts are authenticated and made
// by the operator, so their number bounds the buckets; a bucket that has
// refilled carries no information and is dropped at the next sweep.
//
// Buckets live in this process: with several nodes an account has an
// allowance on each, which still bounds it by the number of nodes.
//
// A nil *accountLimiter limits nothing.
type accountLimiter struct {
	refill time.Duration // one token comes back per refill
	burst  int           // calls at once
	now    func() time.Time

	mu        sync.Mutex
	buckets   map[int64]*rate.Limiter
	lastSweep time.Time
}

// newTestCallLimiter builds the test-call limiter from the configuration,
// or nil when it is turned off.
func newTestCallLimiter(cfg Config, now func() time.Time) *accountLimiter {
	l := &accountLimiter{burst: cfg.TestCallBurst, refill: cfg.TestCallRefill, now: now, buckets: map[int64]*rate.Limiter{}}
	switch {
	case l.burst < 0:
		return nil
	case l.burst == 0:
		l.burst = DefaultTestCallBurst
	}
	if l.refill <= 0 {
		l.refill = DefaultTestCallRefill
	}
	return l
}

// take takes one of account's tokens. When none is left it takes nothing
// and reports in how many whole seconds (at least 1) one will be back.
func (l *accountLimiter) take(account int64) (retryAfter int, ok bool) {
	if l == nil {
		return 0, true
	}
	now := l.now()
	l.mu.Lock()
	defer l.mu.Unlock()
	if now.Sub(l.lastSweep) >= testLimitSweepEvery {
		l.lastSweep = now
		for a, b := range l.buckets {
			if b.TokensAt(now) >= float64(l.burst) {
				delete(l.buckets, a)
			}
		}
	}
	b, found := l.buckets[account]
	if !found {
		b = rate.NewLimiter(rate.Every(l.refill), l.burst)
		l.buckets[account] = b
	}
	if b.AllowN(now, 1) {
		return 0, true
	}
	wait := time.Duration((1 - b.TokensAt(now)) * float64(l.refill))
	return max(int(math.Ceil(wait.Seconds())), 1), false
}

// refusal is the answer to a call beyond the limit: 429 rate_limited.
func (l *accountLimiter) refusal() error {
	return nanohook.Errorf(nanohook.CodeRateLimited, "",
		"too many test calls for this account: %d at once, then one every %v; retry after the Retry-After header's seconds",
		l.burst, l.refill)
}
