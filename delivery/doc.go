// Package delivery is nanohook's engine: it claims due deliveries from the
// store in batches, makes one signed HTTP attempt for each on a fixed pool of
// workers, and writes the outcomes back in batches (group commit), scheduling
// retries with the retry policy or marking deliveries finished.
//
// The shape, in one picture:
//
//	publish ──Wake()──▶ claimer ──jobs──▶ workers (N) ──results──▶ completer
//	                      ▲  one claim query per batch        one write per batch │
//	                      └──────────── freed slots ◀──────────────────────────────┘
//
// The claimer never leases more deliveries than there are free slots, so a
// lease is only held while a worker is about to use it; leases that outlive a
// crashed node simply expire and the deliveries are claimed again (at least
// once). The engine declares the small Store interface it needs and knows
// nothing about SQL.
package delivery
