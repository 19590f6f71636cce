package delivery

// testSignal is a hook that tests wait on for something the engine does in
// the background, instead of sleeping and polling the store. Its zero
// value, which production runs with, does nothing: notify is one nil check
// and never allocates. Only a test turns it on (export_test.go), before
// Start.
//
// Notices coalesce: a waiting test learns that at least one happened since
// it last looked, and then checks the state it waits for, so none is lost
// and none has to be counted.
type testSignal struct{ c chan struct{} }

func (s *testSignal) init() { s.c = make(chan struct{}, 1) }

func (s *testSignal) notify() {
	if s.c == nil {
		return
	}
	select {
	case s.c <- struct{}{}:
	default: // a notice is already waiting
	}
}

// testSignals are the engine's test-only hooks.
type testSignals struct {
	// stored: the engine wrote to the store in the background, so that
	// a delivery's state may have moved: a claim round ended (claiming
	// also fails the due deliveries of disabled endpoints), or the
	// completer committed a batch of outcomes and releases.
	stored testSignal
}
