// Package testsignal is a hook that tests wait on for something a
// component does in the background (the delivery engine's writes, a
// maintenance round, a background job), instead of sleeping and polling.
//
// A component holds a Signal and calls Notify where the thing happens. Its
// zero value, which production runs with, does nothing: Notify is one nil
// check and never allocates or blocks. Only a test turns it on, with Init
// before the component starts (usually through the component's
// export_test.go), and then waits with Await.
//
// Notices coalesce: a waiting test learns that at least one happened since
// it last looked and then checks the state it waits for, so that none is
// lost (one sent while the test checks stays buffered) and none has to be
// counted.
package testsignal

import "time"

// Signal is one test hook; see the package documentation.
type Signal struct{ c chan struct{} }

// Init turns the signal on. Call it before anything may Notify.
func (s *Signal) Init() { s.c = make(chan struct{}, 1) }

// Notify records that the thing happened. Without Init it does nothing.
func (s *Signal) Notify() {
	if s.c == nil {
		return
	}
	select {
	case s.c <- struct{}{}:
	default: // a notice is already waiting
	}
}

// Await waits for what done checks: it calls done at once and again after
// each notice, until done reports true or timeout passes, and reports
// whether done did. It panics without Init: waiting on a signal that never
// comes would only time out.
func (s *Signal) Await(timeout time.Duration, done func() bool) bool {
	if s.c == nil {
		panic("testsignal: Await on a signal that Init did not turn on")
	}
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	for !done() {
		select {
		case <-s.c:
		case <-deadline.C:
			return done()
		}
	}
	return true
}
