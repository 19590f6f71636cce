package delivery

import (
	"testing"
	"time"
)

// TestLimiterFollowsLatency: the limit an endpoint gets depends on how fast
// it answers: a fast endpoint grows from the initial window to the cap, a
// slow one is held to its latency's share, one that stops answering loses
// its slots while its attempts are still hanging, and none goes below one.
func TestLimiterFollowsLatency(t *testing.T) {
	const cap = 64
	succeed := func(l *limiter, took time.Duration, n int) {
		for range n {
			l.observe(cap, took, verdictOK, cap) // in use: the window may grow
		}
	}
	t.Run("fast endpoint bursts to the cap", func(t *testing.T) {
		l := newLimiter(cap)
		if got := l.limit(cap, 0); got != initialLimit {
			t.Fatalf("a new endpoint's limit is %d, want %d", got, initialLimit)
		}
		succeed(&l, 5*time.Millisecond, 100)
		if got := l.limit(cap, 0); got != cap {
			t.Fatalf("after 100 fast successes the limit is %d, want the cap %d", got, cap)
		}
	})
	t.Run("slow endpoint gets its latency's share", func(t *testing.T) {
		l := newLimiter(cap)
		succeed(&l, 3*time.Second, 100)
		if got := l.limit(cap, 0); got < 9 || got > 11 {
			t.Fatalf("an endpoint answering in 3 s has limit %d, want about %d", got, cap/6)
		}
		if got := l.burst(cap); got != cap {
			t.Fatalf("a slow endpoint that succeeds may burst to %d, want the cap %d on an idle node", got, cap)
		}
	})
	t.Run("hanging endpoint loses its slots before a timeout", func(t *testing.T) {
		l := newLimiter(cap)
		succeed(&l, 5*time.Millisecond, 100)
		if got := l.limit(cap, 8*time.Second); got > 4 {
			t.Fatalf("8 s without an answer, the limit is still %d", got)
		}
		for range 64 { // then its attempts time out
			l.observe(cap, 15*time.Second, verdictNoAnswer, cap)
		}
		if got, b := l.limit(cap, 0), l.burst(cap); got != 1 || b != 1 {
			t.Fatalf("after 64 timeouts the limit is %d and the burst %d, want 1 and 1", got, b)
		}
	})
	t.Run("an idle endpoint does not grow", func(t *testing.T) {
		l := newLimiter(cap)
		for range 100 {
			l.observe(cap, time.Millisecond, verdictOK, 1) // one at a time
		}
		if got := l.limit(cap, 0); got != initialLimit {
			t.Fatalf("one delivery at a time grew the limit to %d", got)
		}
	})
	t.Run("errors shrink it, answered ones less", func(t *testing.T) {
		a, u := newLimiter(cap), newLimiter(cap)
		succeed(&a, time.Millisecond, 100)
		succeed(&u, time.Millisecond, 100)
		a.observe(cap, time.Millisecond, verdictError, cap)
		u.observe(cap, time.Millisecond, verdictNoAnswer, cap)
		if ga, gu := a.limit(cap, 0), u.limit(cap, 0); !(gu < ga && ga < cap) {
			t.Fatalf("after one failure: answered %d, unanswered %d, cap %d", ga, gu, cap)
		}
	})
}
