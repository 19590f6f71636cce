package delivery

// InitTestSignals turns the engine's test signals on; call it before
// Start.
func (e *Engine) InitTestSignals() { e.signals.stored.init() }

// Stored is notified each time the engine has written to the store in the
// background (see testSignals). It panics unless InitTestSignals was
// called: waiting on a signal that never comes would only time out.
func (e *Engine) Stored() <-chan struct{} {
	if e.signals.stored.c == nil {
		panic("delivery: Stored without InitTestSignals")
	}
	return e.signals.stored.c
}
