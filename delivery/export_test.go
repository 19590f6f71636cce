package delivery

import "github.com/nanohook/nanohook/internal/testsignal"

// InitTestSignals turns the engine's test signals on; call it before
// Start.
func (e *Engine) InitTestSignals() { e.stored.Init() }

// Stored is the engine's test signal that it wrote to the store in the
// background; waiting on it needs InitTestSignals first.
func (e *Engine) Stored() *testsignal.Signal { return &e.stored }
