// Package delivery is nanohook's engine: it claims due deliveries from the
// store in fair shares, makes one signed HTTP attempt for each in a
// goroutine of its own, and writes the outcomes back in batches (group
// commit), scheduling retries with the retry policy or marking deliveries
// finished.
//
// The shape, in one picture:
//
//	publish ──Wake()──▶ claimer ──go──▶ attempts (≤ MaxInFlight) ──results──▶ completer
//	                      ▲  queue heads → plan → one claim           one write per batch │
//	                      └──────────────────── freed slots ◀─────────────────────────────┘
//
// Tenants are isolated on three levels, all on this node (lanes):
//
//   - each endpoint has an adaptive concurrency limit (limiter) that follows
//     its latency and errors, under --endpoint-concurrency, and a circuit
//     breaker that stops hammering an endpoint that keeps failing;
//   - each account has a cap on its attempts in flight (--account-concurrency);
//   - each claim round shares the free room across the accounts with due
//     work, fewest in flight first, then across each account's endpoints
//     (plan), from the store's per-endpoint queue heads, so a deep backlog
//     of one customer neither delays another's claims nor makes them
//     slower.
//
// Attempts wait on the network, not the CPU, so the engine holds thousands
// in flight (an idle goroutine and a connection each) rather than a small
// pool of workers.
//
// The claimer never leases more deliveries than there is room for, so a
// lease is only held while an attempt is about to use it; leases that
// outlive a crashed node simply expire and the deliveries are claimed again
// (at least once). The engine declares the small Store interface it needs
// and knows nothing about SQL.
package delivery
