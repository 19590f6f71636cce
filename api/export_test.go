package api

import "github.com/nanohook/nanohook/internal/testsignal"

// ChunkRows exposes chunkRows to the external tests that size a batch to
// span several publish transactions.
const ChunkRows = chunkRows

// AccountCountsTTL exposes how long a publish reuses an account's endpoint
// count.
const AccountCountsTTL = accountCountsTTL

// InitTestSignals turns the Background's test signals on; call it before
// Start.
func (b *Background) InitTestSignals() { b.ended.Init() }

// Ended is the Background's test signal that a job returned; waiting on
// it needs InitTestSignals first.
func (b *Background) Ended() *testsignal.Signal { return &b.ended }
