package delivery

import (
	"net/http"
	"time"
)

// limiter is one endpoint's adaptive concurrency limit on this node: how
// many attempts may be in flight to it at once. It follows what the
// endpoint does, in two ways that bound each other:
//
//   - AIMD on outcomes, as TCP's window and Netflix's concurrency-limits
//     AIMDLimit do: every success while the limit is in use adds one slot
//     (so a fast endpoint goes from initialLimit to the cap within a few
//     round trips, and a burst flows), every failure takes a share away
//     (half for an endpoint that did not answer or asked for less with
//     429/503, a tenth for one that answered another error).
//   - a ceiling from latency: an endpoint answering within latencyTarget
//     may use the whole cap; a slower one gets slots in inverse proportion
//     to its latency, so each endpoint holds about the same "slot-seconds"
//     (at the default cap of 64: 64 slots up to 500 ms, about 10 at 3 s, 2
//     for one that hangs until a 15 s timeout). The latency is the larger
//     of a moving average of attempt durations and how long the endpoint
//     has had attempts in flight without finishing any, so an endpoint
//     that starts hanging stops getting slots within seconds, before the
//     first of its attempts even times out.
//
// The latency ceiling is the endpoint's fair share, what it is held to when
// the node is busy. While the node has room to spare, an endpoint may burst
// to its AIMD window (which only successes grow): a slow endpoint that
// works keeps up with its own traffic on an idle node, and one that hangs
// or fails stays at its small window either way.
//
// The limit never drops below one: a slow endpoint keeps making progress at
// its own pace, never parked. Stopping an endpoint that keeps failing is the
// circuit breaker's job (lanes), not the limiter's.
type limiter struct {
	window  float64       // the AIMD limit, in [1, cap]
	latency time.Duration // moving average of attempt durations; 0: none yet
}

const (
	// initialLimit is a new endpoint's window: enough for a slow endpoint
	// to make progress from the first second, few enough that a hanging one
	// holds little before its latency shows.
	initialLimit = 8
	// latencyTarget is the latency up to which an endpoint may use the
	// whole per-endpoint cap.
	latencyTarget = 500 * time.Millisecond
	// latencyWeight is the weight of a new duration in the moving average.
	latencyWeight = 0.2
	// backoffUnanswered and backoffAnswered multiply the window on a
	// failed attempt.
	backoffUnanswered = 0.5
	backoffAnswered   = 0.9
)

func newLimiter(cap int) limiter {
	return limiter{window: float64(min(initialLimit, cap))}
}

// limit is the endpoint's fair share: how many attempts may be in flight
// now while the node is busy, given the per-endpoint cap and stalled: how
// long the endpoint has had attempts in flight without one finishing (0
// when none are in flight).
func (l limiter) limit(cap int, stalled time.Duration) int {
	lat := max(l.latency, stalled)
	n := int(l.window)
	if lat > latencyTarget {
		// cap × target / latency, rounded down, in integer nanoseconds.
		n = min(n, int(int64(cap)*int64(latencyTarget)/int64(lat)))
	}
	return max(1, min(n, cap))
}

// burst is how many attempts may be in flight while the node has room to
// spare: the AIMD window, whatever the latency.
func (l limiter) burst(cap int) int {
	return max(1, min(int(l.window), cap))
}

// verdict is what one finished attempt says about its endpoint, which is
// all the limiter and the breaker read of its outcome.
type verdict uint8

const (
	// verdictOK: the endpoint answered 2xx.
	verdictOK verdict = iota
	// verdictError: the endpoint answered with an error status other than
	// 429 and 503, a failure it did not ask us to back off from.
	verdictError
	// verdictNoAnswer: no answer (a timeout, a refused or reset
	// connection), or an explicit 429 or 503: the endpoint is down or asks
	// for less.
	verdictNoAnswer
)

// verdictOf reads the verdict of an attempt that succeeded or not and got
// the response status status (0: none).
func verdictOf(succeeded bool, status int) verdict {
	switch {
	case succeeded:
		return verdictOK
	case status != 0 && status != http.StatusTooManyRequests && status != http.StatusServiceUnavailable:
		return verdictError
	default:
		return verdictNoAnswer
	}
}

// observe records one finished attempt: how long it took, its verdict,
// and how many attempts were in flight to the endpoint when it finished
// (itself included).
func (l *limiter) observe(cap int, took time.Duration, v verdict, inflight int) {
	if l.latency == 0 {
		l.latency = took
	} else {
		l.latency = time.Duration(latencyWeight*float64(took) + (1-latencyWeight)*float64(l.latency))
	}
	switch v {
	case verdictOK:
		// Grow only while the window is in use: an endpoint that gets one
		// event a minute has shown nothing about what it can take at once.
		if float64(inflight) >= l.window/2 {
			l.window = min(l.window+1, float64(cap))
		}
	case verdictError:
		l.window = max(1, l.window*backoffAnswered)
	default:
		l.window = max(1, l.window*backoffUnanswered)
	}
}
