package delivery

import (
	"testing"
	"time"
)

// TestBreakerSpans drives one endpoint's lane through the breaker's rules
// with made-up times: how long a run of failures must last depends on
// whether the endpoint answered them.
func TestBreakerSpans(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	const threshold, cooldown = 5, 30 * time.Second
	fail := func(ls *lanes, v verdict, at time.Time) {
		t.Helper()
		if !ls.admit(1, 7, at) {
			t.Fatalf("at +%v: an attempt was refused", at.Sub(t0))
		}
		ls.done(1, attemptResult{verdict: v, started: at}, at)
	}
	isOpen := func(ls *lanes, at time.Time) bool { return ls.limit(ls.m[1], at) == 0 }

	t.Run("answered failures open it after ten seconds", func(t *testing.T) {
		ls := newLanes(64, 1024, threshold, cooldown)
		for i := range 10 { // ten 500s over 9 s
			fail(ls, verdictError, t0.Add(time.Duration(i)*time.Second))
		}
		if isOpen(ls, t0.Add(9*time.Second)) {
			t.Fatal("open after 9 s of answered failures")
		}
		fail(ls, verdictError, t0.Add(10*time.Second))
		if !isOpen(ls, t0.Add(10*time.Second)) {
			t.Fatal("still closed after 10 s of answered failures")
		}
	})
	t.Run("unanswered failures open it after a second", func(t *testing.T) {
		ls := newLanes(64, 1024, threshold, cooldown)
		for i := range 4 {
			fail(ls, verdictNoAnswer, t0.Add(time.Duration(i)*300*time.Millisecond))
		}
		fail(ls, verdictError, t0.Add(1200*time.Millisecond)) // fifth, spanning 1.2 s; one unanswered is enough
		if !isOpen(ls, t0.Add(1200*time.Millisecond)) {
			t.Fatal("still closed after five failures over 1.2 s, four unanswered")
		}
	})
	t.Run("failed retries open it after a second", func(t *testing.T) {
		ls := newLanes(64, 1024, threshold, cooldown)
		for i := range 5 { // 500s to retries over 1.2 s: the endpoint fails, it is not flaky
			at := t0.Add(time.Duration(i) * 300 * time.Millisecond)
			if !ls.admit(1, 7, at) {
				t.Fatal("an attempt was refused")
			}
			ls.done(1, attemptResult{verdict: verdictError, retry: true, started: at}, at)
		}
		if !isOpen(ls, t0.Add(1200*time.Millisecond)) {
			t.Fatal("still closed after five failed retries over 1.2 s")
		}
	})
	t.Run("a quick run does not open it", func(t *testing.T) {
		ls := newLanes(64, 1024, threshold, cooldown)
		for i := range 100 { // a hundred timeouts within 0.5 s
			fail(ls, verdictNoAnswer, t0.Add(time.Duration(i)*5*time.Millisecond))
		}
		if isOpen(ls, t0.Add(500*time.Millisecond)) {
			t.Fatal("open after a run of 0.5 s")
		}
	})
	t.Run("half open lets one probe through; a failure reopens, a success closes", func(t *testing.T) {
		ls := newLanes(64, 1024, threshold, cooldown)
		for i := range 5 {
			fail(ls, verdictNoAnswer, t0.Add(time.Duration(i)*time.Second))
		}
		opened := t0.Add(4 * time.Second)
		if ls.admit(1, 7, opened.Add(cooldown-time.Millisecond)) {
			t.Fatal("an attempt was admitted while the breaker was open")
		}
		probeAt := opened.Add(cooldown)
		if !ls.admit(1, 7, probeAt) || ls.admit(1, 7, probeAt) {
			t.Fatal("half open must admit exactly one probe")
		}
		ls.done(1, attemptResult{verdict: verdictError, started: probeAt}, probeAt) // the probe failed
		if !isOpen(ls, probeAt.Add(time.Second)) {
			t.Fatal("a failed probe did not reopen the breaker")
		}
		probeAt = probeAt.Add(cooldown)
		if !ls.admit(1, 7, probeAt) {
			t.Fatal("no probe after the second cooldown")
		}
		ls.done(1, attemptResult{verdict: verdictOK, started: probeAt}, probeAt)
		if l := ls.m[1]; l.open || ls.limit(l, probeAt) < 1 {
			t.Fatal("a successful probe did not close the breaker")
		}
		// Each admit takes one attempt, so the two calls are two attempts.
		first, second := ls.admit(1, 7, probeAt), ls.admit(1, 7, probeAt)
		if !first || !second {
			t.Fatal("a closed breaker must admit more than one attempt")
		}
	})
}
