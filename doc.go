// Package nanohook is the domain of the nanohook webhook service: accounts,
// endpoints, job events, deliveries and their attempts, the states they move
// through, the validation rules of the public contract (see DESIGN.md), and the
// error type every layer returns to callers.
//
// It imports nothing of this module, so storage, the delivery engine and the
// HTTP API can all speak the same types without depending on each other.
package nanohook
