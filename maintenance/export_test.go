package maintenance

import "github.com/nanohook/nanohook/internal/testsignal"

// InitTestSignals turns the service's test signals on; call it before
// Start.
func (s *Service) InitTestSignals() { s.rounds.Init() }

// Rounds is the service's test signal that a background round ended;
// waiting on it needs InitTestSignals first.
func (s *Service) Rounds() *testsignal.Signal { return &s.rounds }
