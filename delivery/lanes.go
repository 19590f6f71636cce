package delivery

import (
	"sync"
	"time"
)

// lanes keeps this node's per-endpoint and per-account state that isolates
// tenants from each other:
//
//   - how many attempts are in flight to each endpoint, under its adaptive
//     limit (limiter): a slow endpoint gets few slots, a hanging one fewer,
//     a fast one up to the cap;
//   - how many are in flight for each account, under the account cap, so no
//     customer takes more than its share of the node however many
//     endpoints it has;
//   - a circuit breaker per endpoint that stops sending to an endpoint that
//     keeps failing and lets one probe through after a cooldown instead.
//
// The breaker opens when an endpoint's last threshold attempts all failed
// and those failures span long enough: breakerMinSpan when any of them got
// no answer (a timeout, a refused or reset connection) or an explicit
// 429/503, or was a retry, breakerMinSpanAnswered when the endpoint
// answered every one with another error status on a first attempt. The
// span keeps it shut for an endpoint that fails often but not
// persistently, say every first attempt that its retry then delivers:
// under concurrency such failures come in runs of hundreds, all before the
// first retry is due. An endpoint that is down or asks for less fails for
// longer than a second, and so does one whose retries fail too; one that
// only fails first attempts may be working, so the breaker waits longer
// before holding it back (each of its deliveries still follows its retry
// schedule).
type lanes struct {
	mu         sync.Mutex
	cap        int           // most attempts in flight to one endpoint
	accountCap int           // most attempts in flight for one account
	threshold  int           // consecutive failures that can open the breaker
	cooldown   time.Duration // how long an open breaker stays open
	m          map[int64]*lane
	accounts   map[int64]int // attempts in flight per account (absent: none)
	lastSweep  time.Time
}

// breakerMinSpan and breakerMinSpanAnswered are how long a run of failures
// must last before it opens the breaker (see lanes).
const (
	breakerMinSpan         = time.Second
	breakerMinSpanAnswered = 10 * time.Second
)

// laneIdleTTL is how long an idle, healthy endpoint's lane (its learnt
// limit and latency) is kept: long enough to remember an endpoint that gets
// an event every few minutes, short enough that the map holds only recently
// busy endpoints. sweepEvery is how often idle lanes are looked for.
const (
	laneIdleTTL = 10 * time.Minute
	sweepEvery  = time.Minute
)

type lane struct {
	account  int64
	inflight int       // attempts in flight, test calls included
	busy     time.Time // when the endpoint last made progress while busy (see stalled)
	used     time.Time // last admission or completion, for the idle sweep
	lim      limiter
	breaker
}

// breaker is one endpoint's circuit breaker (see lanes); its zero value is
// closed, with no failures counted.
type breaker struct {
	failures     int       // consecutive failed attempts
	failingSince time.Time // when the first of them started
	unanswered   bool      // one of them got no answer, or a 429/503, or was a retry
	open         bool      // tripped: no attempts until openUntil, then one probe
	openUntil    time.Time // when an open breaker lets a probe through
}

func newLanes(cap, accountCap, threshold int, cooldown time.Duration) *lanes {
	return &lanes{cap: cap, accountCap: accountCap, threshold: threshold, cooldown: cooldown,
		m: map[int64]*lane{}, accounts: map[int64]int{}}
}

// stalled is how long the endpoint has had attempts in flight without one
// finishing: the latency it shows before any attempt ends.
func (l *lane) stalled(now time.Time) time.Duration {
	if l.inflight == 0 {
		return 0
	}
	return max(0, now.Sub(l.busy))
}

// limit is how many attempts may be in flight to an endpoint: its adaptive
// limit when the breaker is closed, one probe when it is half open (cooled
// down after opening), none while it is open.
func (ls *lanes) limit(l *lane, now time.Time) int {
	switch {
	case !l.open:
		return l.lim.limit(ls.cap, l.stalled(now))
	case now.Before(l.openUntil):
		return 0
	default:
		return 1
	}
}

// burstLimit is limit's counterpart while the node has room to spare: the
// endpoint's AIMD window instead of its fair share.
func (ls *lanes) burstLimit(l *lane, now time.Time) int {
	if !l.open {
		return l.lim.burst(ls.cap)
	}
	return ls.limit(l, now)
}

// laneOf returns the lane of endpoint id, making it if need be.
func (ls *lanes) laneOf(id, account int64, now time.Time) *lane {
	l := ls.m[id]
	if l == nil {
		l = &lane{account: account, lim: newLimiter(ls.cap), used: now}
		ls.m[id] = l
	}
	return l
}

// rooms is what a claim may still take now, per due endpoint (in the order
// given) and per account.
type rooms struct {
	fair    []int         // free slots under each endpoint's fair share
	burst   []int         // free slots under each endpoint's burst limit
	account map[int64]int // free slots under each account's cap
	// reopen is the earliest time an endpoint with an open breaker lets a
	// probe through (zero if none).
	reopen time.Time
}

// room reads the free slots of the due endpoints and their accounts.
func (ls *lanes) room(due []dueEndpoint, now time.Time) rooms {
	ls.mu.Lock()
	defer ls.mu.Unlock()
	r := rooms{fair: make([]int, len(due)), burst: make([]int, len(due)), account: make(map[int64]int)}
	for i, d := range due {
		if _, seen := r.account[d.account]; !seen {
			r.account[d.account] = max(0, ls.accountCap-ls.accounts[d.account])
		}
		l := ls.m[d.endpoint]
		if l == nil {
			fresh := newLimiter(ls.cap)
			r.fair[i], r.burst[i] = fresh.limit(ls.cap, 0), fresh.burst(ls.cap)
			continue
		}
		r.fair[i] = max(0, ls.limit(l, now)-l.inflight)
		r.burst[i] = max(0, ls.burstLimit(l, now)-l.inflight)
		if l.open && now.Before(l.openUntil) && (r.reopen.IsZero() || l.openUntil.Before(r.reopen)) {
			r.reopen = l.openUntil
		}
	}
	return r
}

// admit takes a slot for one claimed delivery of endpoint id of account, or
// reports that the endpoint (at its burst limit) or the account is full:
// the claim raced a test call, or a limit shrank since it was planned. The
// plan decided between fair share and burst; admit only guards the bounds.
func (ls *lanes) admit(id, account int64, now time.Time) bool {
	ls.mu.Lock()
	defer ls.mu.Unlock()
	ls.sweep(now)
	l := ls.laneOf(id, account, now)
	if l.inflight >= ls.burstLimit(l, now) || ls.accounts[account] >= ls.accountCap {
		return false
	}
	ls.take(l, now)
	return true
}

// admitTest takes a slot for a test call (a customer's ping) to endpoint id
// of account. Test calls are held to the fixed cap, not the adaptive limit
// or the breaker: a customer checks a failing endpoint precisely when it
// fails. They still count against both, so pings cannot add load beyond
// the cap to an endpoint that deliveries already fill.
func (ls *lanes) admitTest(id, account int64, now time.Time) bool {
	ls.mu.Lock()
	defer ls.mu.Unlock()
	l := ls.laneOf(id, account, now)
	if l.inflight >= ls.cap {
		return false
	}
	ls.take(l, now)
	return true
}

func (ls *lanes) take(l *lane, now time.Time) {
	if l.inflight == 0 {
		l.busy = now
	}
	l.inflight++
	l.used = now
	ls.accounts[l.account]++
}

// release gives a slot back without an attempt's outcome: the delivery was
// handed back unattempted, or it was a test call (which teaches the limiter
// and breaker nothing about deliveries).
func (ls *lanes) release(id int64, now time.Time) {
	ls.mu.Lock()
	defer ls.mu.Unlock()
	if l := ls.m[id]; l != nil {
		ls.give(l, now)
	}
}

func (ls *lanes) give(l *lane, now time.Time) {
	l.inflight--
	l.used = now
	if n := ls.accounts[l.account] - 1; n > 0 {
		ls.accounts[l.account] = n
	} else {
		delete(ls.accounts, l.account)
	}
}

// attemptResult is what an attempt teaches an endpoint's lane.
type attemptResult struct {
	verdict verdict
	retry   bool // the attempt was not the delivery's first
	started time.Time
}

// done gives a slot back after an attempt. A success closes the breaker, a
// failure counts towards opening it (and re-opens a half-open one at once);
// either teaches the limiter.
func (ls *lanes) done(id int64, r attemptResult, now time.Time) {
	ls.mu.Lock()
	defer ls.mu.Unlock()
	l := ls.m[id]
	if l == nil {
		return
	}
	l.lim.observe(ls.cap, now.Sub(r.started), r.verdict, l.inflight)
	ls.give(l, now)
	l.busy = now // progress: the stall clock starts again
	if r.verdict == verdictOK {
		l.breaker = breaker{}
		return
	}
	if l.failures == 0 {
		l.failingSince = r.started
	}
	l.failures++
	l.unanswered = l.unanswered || r.verdict == verdictNoAnswer || r.retry
	span := breakerMinSpanAnswered
	if l.unanswered {
		span = breakerMinSpan
	}
	if l.open || (l.failures >= ls.threshold && now.Sub(l.failingSince) >= span) {
		l.open, l.openUntil = true, now.Add(ls.cooldown)
	}
}

// sweep forgets lanes idle for laneIdleTTL, unless their breaker is open,
// at most once per sweepEvery, so the map holds the endpoints that were
// recently busy, not every endpoint ever seen. A failing endpoint idle that
// long (its retries are minutes apart) relearns its breaker state from its
// next attempts. The caller holds mu.
func (ls *lanes) sweep(now time.Time) {
	if now.Sub(ls.lastSweep) < sweepEvery {
		return
	}
	ls.lastSweep = now
	for id, l := range ls.m {
		if l.inflight == 0 && now.Sub(l.used) >= laneIdleTTL && !(l.open && now.Before(l.openUntil)) {
			delete(ls.m, id)
		}
	}
}
