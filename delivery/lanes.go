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
// and those failures span long enough: breakerMinSpan when any of them got
// no answer (a timeout, a refused or reset connection) or an explicit
// 429/503, breakerMinSpanAnswered when the endpoint answered every one
// with another error status. The span keeps it shut for an endpoint that
// fails often but not persistently, say every first attempt that its
// retry then delivers: under concurrency such failures come in runs of
// hundreds, all before the first retry is due. An endpoint that is down
// or asks for less fails for longer than a second; one that answers fast
// costs little to try, and each of its deliveries still follows its retry
// schedule, so the breaker waits longer before holding it back.
type lanes struct {
	mu        sync.Mutex
	cap       int           // most attempts in flight to one endpoint
	threshold int           // consecutive failures that can open the breaker
	cooldown  time.Duration // how long an open breaker stays open
	m         map[int64]*lane
}

// breakerMinSpan and breakerMinSpanAnswered are how long a run of failures
// must last before it opens the breaker (see lanes).
const (
	breakerMinSpan         = time.Second
	breakerMinSpanAnswered = 10 * time.Second
)

type lane struct {
	inflight     int
	failures     int       // consecutive failed attempts
	failingSince time.Time // when the first of them started
	unanswered   bool      // one of them got no answer, or a 429/503
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
// started when it began, and ok whether it succeeded; answered tells that
// a failed attempt got an HTTP status other than 429 and 503. A success
// closes the breaker, a failure counts towards opening it (and re-opens a
// half-open one at once).
func (ls *lanes) done(id int64, attempted, ok, answered bool, started, now time.Time) {
	ls.mu.Lock()
	defer ls.mu.Unlock()
	l := ls.m[id]
	if l == nil {
		return
	}
	l.inflight--
	if attempted {
		if ok {
			l.failures, l.failingSince, l.unanswered, l.open, l.openUntil = 0, time.Time{}, false, false, time.Time{}
		} else {
			if l.failures == 0 {
				l.failingSince = started
			}
			l.failures++
			l.unanswered = l.unanswered || !answered
			span := breakerMinSpanAnswered
			if l.unanswered {
				span = breakerMinSpan
			}
			if l.open || (l.failures >= ls.threshold && now.Sub(l.failingSince) >= span) {
				l.open, l.openUntil = true, now.Add(ls.cooldown)
			}
		}
	}
	if l.inflight == 0 && l.failures == 0 {
		delete(ls.m, id) // keep the map as small as the set of busy or failing endpoints
	}
}
