package delivery

import (
	"sync"
	"time"
)

// lanes keeps per-endpoint state that isolates endpoints from each other:
// how many of this node's attempts are in flight to each (capped, so a slow
// endpoint cannot take every worker) and a circuit breaker that stops
// sending to an endpoint that keeps failing and lets one probe through
// after a cooldown instead.
//
// The breaker opens when an endpoint's last threshold attempts all failed
// and those failures span at least breakerMinSpan. The span keeps it shut
// for an endpoint that fails often but not persistently, say every first
// attempt that its retry then delivers: under concurrency such failures
// come in runs of many within moments, and a breaker on a count alone
// would hold back an endpoint that works. An endpoint that is down fails
// for longer than that.
type lanes struct {
	mu        sync.Mutex
	cap       int           // most attempts in flight to one endpoint
	threshold int           // consecutive failures that can open the breaker
	cooldown  time.Duration // how long an open breaker stays open
	m         map[int64]*lane
}

// breakerMinSpan is how long a run of failures must last before it opens
// the breaker.
const breakerMinSpan = time.Second

type lane struct {
	inflight     int
	failures     int       // consecutive failed attempts
	failingSince time.Time // when the first of them started
	open         bool      // tripped: no attempts until openUntil, then one probe
	openUntil    time.Time // when an open breaker lets a probe through
}

func newLanes(cap, threshold int, cooldown time.Duration) *lanes {
	return &lanes{cap: cap, threshold: threshold, cooldown: cooldown, m: map[int64]*lane{}}
}

// limit is how many attempts may be in flight to an endpoint: the cap when
// the breaker is closed, one probe when it is half open (cooled down after
// opening), none while it is open.
func (ls *lanes) limit(l *lane, now time.Time) int {
	switch {
	case !l.open:
		return ls.cap
	case now.Before(l.openUntil):
		return 0
	default:
		return 1
	}
}

// skip lists the endpoints a claim must leave alone now.
func (ls *lanes) skip(now time.Time) []int64 {
	ls.mu.Lock()
	defer ls.mu.Unlock()
	var out []int64
	for id, l := range ls.m {
		if l.inflight >= ls.limit(l, now) {
			out = append(out, id)
		}
	}
	return out
}

// admit takes a slot for one claimed delivery of endpoint id, or reports
// that the endpoint is at its limit (the claim raced the skip list).
func (ls *lanes) admit(id int64, now time.Time) bool {
	ls.mu.Lock()
	defer ls.mu.Unlock()
	l := ls.m[id]
	if l == nil {
		l = &lane{}
		ls.m[id] = l
	}
	if l.inflight >= ls.limit(l, now) {
		return false
	}
	l.inflight++
	return true
}

// done gives a slot back. attempted tells whether an attempt was made,
// started when it began, and ok whether it succeeded; a success closes the
// breaker, a failure counts towards opening it (and re-opens a half-open
// one at once).
func (ls *lanes) done(id int64, attempted, ok bool, started, now time.Time) {
	ls.mu.Lock()
	defer ls.mu.Unlock()
	l := ls.m[id]
	if l == nil {
		return
	}
	l.inflight--
	if attempted {
		if ok {
			l.failures, l.failingSince, l.open, l.openUntil = 0, time.Time{}, false, time.Time{}
		} else {
			if l.failures == 0 {
				l.failingSince = started
			}
			l.failures++
			if l.open || (l.failures >= ls.threshold && now.Sub(l.failingSince) >= breakerMinSpan) {
				l.open, l.openUntil = true, now.Add(ls.cooldown)
			}
		}
	}
	if l.inflight == 0 && l.failures == 0 {
		delete(ls.m, id) // keep the map as small as the set of busy or failing endpoints
	}
}
