package nanohook

import (
	"strings"
	"time"
	"unicode"
)

// The rules below decide what happens to endpoints and deliveries when they
// change. Storage drivers read the rows a rule needs, call the rule and write
// what it returns; they decide nothing themselves, so the drivers cannot
// drift apart and every rule is tested once, here, without a database.

// Messages of the conflicts a retry or recovery is refused with. They say
// what the state is, not how to change it through any one interface: the
// API adds its own hint.
const (
	EndpointDeletedMessage  = "the endpoint was deleted"
	EndpointDisabledMessage = "the endpoint is disabled"
)

// DeletedEndpointError is the last_error of deliveries cancelled because
// their endpoint was deleted.
const DeletedEndpointError = "endpoint deleted"

// DisabledEndpointError is the last_error of deliveries failed because
// their endpoint was disabled, with the reason given (none: by its owner):
// DisabledErrorPrefix, then the reason or OwnerDisabledReason.
func DisabledEndpointError(reason string) string {
	if reason == "" {
		reason = OwnerDisabledReason
	}
	return DisabledErrorPrefix + reason
}

// The parts of DisabledEndpointError, for a statement that builds it from
// an endpoint's row in SQL (the fan-out of a publish, which must stay one
// statement).
const (
	DisabledErrorPrefix = "endpoint disabled: "
	OwnerDisabledReason = "by its owner"
)

// FailingReason is the disabled reason of an endpoint disabled because it
// has been failing since since: prefix, then " since " and the time in
// RFC 3339 (UTC).
func FailingReason(prefix string, since time.Time) string {
	return prefix + " since " + since.UTC().Format(time.RFC3339)
}

// EndpointPatch is a change to an endpoint: its non-nil fields replace the
// endpoint's.
type EndpointPatch struct {
	URL            *string
	Events         []EventType // nil: unchanged
	Status         *EndpointStatus
	Description    *string
	DisabledReason *string
}

// DisableFailing is the patch that disables an endpoint failing since
// since, for the reason prefix (e.g. "failing for 120h0m0s") and the time
// it began failing (FailingReason).
func DisableFailing(prefix string, since time.Time) EndpointPatch {
	disabled, reason := EndpointDisabled, FailingReason(prefix, since)
	return EndpointPatch{Status: &disabled, DisabledReason: &reason}
}

// EndpointChange is an endpoint with a patch applied, and what the patch
// implies for what is stored beside it.
type EndpointChange struct {
	Endpoint Endpoint
	// URLChanged: the patch gave a URL; otherwise the stored one stays as
	// it is (sealed at rest, it is not sealed afresh for nothing).
	URLChanged bool
	// Reenabled: the endpoint went from disabled to active, so its failure
	// clock starts afresh.
	Reenabled bool
	// FailPending: the patch disables the endpoint, so its pending
	// deliveries fail, with last error PendingError: nothing will send them.
	FailPending  bool
	PendingError string
}

// ApplyEndpointPatch applies p to e at now. Setting the status to active
// clears the disabled reason unless the patch gives one; setting it to
// disabled fails the endpoint's pending deliveries.
func ApplyEndpointPatch(e Endpoint, p EndpointPatch, now time.Time) EndpointChange {
	c := EndpointChange{URLChanged: p.URL != nil}
	if p.URL != nil {
		e.URL = *p.URL
	}
	if p.Events != nil {
		e.Events = p.Events
	}
	if p.Description != nil {
		e.Description = *p.Description
	}
	if p.Status != nil {
		c.Reenabled = *p.Status == EndpointActive && e.Status != EndpointActive
		e.Status = *p.Status
		if e.Status == EndpointActive {
			e.DisabledReason = ""
		}
	}
	if p.DisabledReason != nil {
		e.DisabledReason = *p.DisabledReason
	}
	e.UpdatedAt = now
	if p.Status != nil && *p.Status == EndpointDisabled {
		c.FailPending = true
		c.PendingError = DisabledEndpointError(e.DisabledReason)
	}
	c.Endpoint = e
	return c
}

// EndpointState is what a rule about deliveries needs to know of their
// endpoint.
type EndpointState struct {
	Status         EndpointStatus
	Deleted        bool
	DisabledReason string
}

// EndUndeliverable says how a pending delivery ends when its endpoint can
// no longer take it: cancelled when the endpoint was deleted, failed with
// DisabledEndpointError when it is disabled. ok is false when the endpoint
// is live and active: the delivery goes ahead.
func EndUndeliverable(ep EndpointState) (status DeliveryStatus, lastError string, ok bool) {
	switch {
	case ep.Deleted:
		return DeliveryCancelled, DeletedEndpointError, true
	case ep.Status != EndpointActive:
		return DeliveryFailed, DisabledEndpointError(ep.DisabledReason), true
	}
	return "", "", false
}

// StartDelivery is how a delivery of a new event starts at an endpoint
// that subscribes to the event's type: pending at an active endpoint; at a
// disabled one already failed, with no attempt, as EndUndeliverable ends
// a pending one, so that nothing is dropped silently and a recovery after
// re-enabling replays it. Deleted endpoints get no delivery.
func StartDelivery(ep EndpointState) (status DeliveryStatus, lastError string) {
	if status, lastError, ok := EndUndeliverable(ep); ok {
		return status, lastError
	}
	return DeliveryPending, ""
}

// AttemptHealth is what an attempt tells of its endpoint's health, by the
// status its delivery moves to: told is false for a status no attempt
// leads to; else ok says whether the endpoint answered well. A success
// clears the endpoint's failing mark; a failure (final or to be retried)
// starts it at the attempt, when none is set. Every attempt counts, even
// one whose lease went stale meanwhile.
func AttemptHealth(status DeliveryStatus) (ok, told bool) {
	switch status {
	case DeliverySucceeded:
		return true, true
	case DeliveryPending, DeliveryFailed:
		return false, true
	}
	return false, false
}

// RetryAction is what a customer's retry does to one delivery.
type RetryAction int

const (
	// RetryNothing leaves the delivery as it is: an attempt is in flight,
	// and that attempt is the retry.
	RetryNothing RetryAction = iota
	// RetryRequeue makes a finished delivery pending again, due now,
	// unleased, its attempt count kept so that attempt numbers continue.
	RetryRequeue
	// RetryDueNow makes a queued delivery due now (its next attempt time
	// becomes now unless it is already earlier).
	RetryDueNow
)

// PlanRetry decides what a retry at now does to a delivery in status,
// leased until leasedUntil (zero: not leased), of an endpoint in state ep.
// A delivery of a deleted endpoint, or a cancelled one, and one of a
// disabled endpoint are refused with a conflict. An expired lease counts
// as none: a claim takes the delivery over anyway.
func PlanRetry(status DeliveryStatus, leasedUntil time.Time, ep EndpointState, now time.Time) (RetryAction, error) {
	switch {
	case ep.Deleted || status == DeliveryCancelled:
		return RetryNothing, Errorf(CodeConflict, "", "%s", EndpointDeletedMessage)
	case ep.Status != EndpointActive:
		return RetryNothing, Errorf(CodeConflict, "", "%s", EndpointDisabledMessage)
	}
	switch status {
	case DeliveryFailed, DeliverySucceeded:
		return RetryRequeue, nil
	case DeliveryPending:
		if !leasedUntil.After(now) {
			return RetryDueNow, nil
		}
	}
	return RetryNothing, nil
}

// CheckRecover is nil when an endpoint's failed deliveries may be
// re-queued: only a live, active endpoint's may. A deleted endpoint is the
// caller's to report as not found.
func CheckRecover(status EndpointStatus) error {
	if status != EndpointActive {
		return Errorf(CodeConflict, "", "%s", EndpointDisabledMessage)
	}
	return nil
}

// NewTestDelivery is the delivery a customer's test makes to one endpoint,
// whatever it subscribes to and whether or not it is disabled: a ping
// (EventPing) of the event eventID, pending, no attempt made yet, due at
// now, when it is created.
func NewTestDelivery(accountID, endpointID int64, eventID string, now time.Time) Delivery {
	return Delivery{AccountID: accountID, EndpointID: endpointID, EventID: eventID, EventType: EventPing,
		Status: DeliveryPending, NextAttemptAt: now, CreatedAt: now, UpdatedAt: now}
}

// NewAccount is a new account named name with its first API key (the
// key's hash), both made at now: an account never exists without a way
// to use it.
func NewAccount(name string, keyHash []byte, now time.Time) (Account, APIKey) {
	return Account{Name: name, CreatedAt: now}, APIKey{Hash: keyHash, CreatedAt: now}
}

// NewAccountKey is a new API key (its hash) of an account, made at now.
func NewAccountKey(accountID int64, keyHash []byte, now time.Time) APIKey {
	return APIKey{AccountID: accountID, Hash: keyHash, CreatedAt: now}
}

// CheckEndpointLimit is nil while an account with live endpoints may have
// one more under max (0: no limit), else the refusal, a conflict naming the
// limit.
func CheckEndpointLimit(live, max int) error {
	if max <= 0 || live < max {
		return nil
	}
	return Errorf(CodeConflict, "",
		"the account already has %d endpoints, the most it may have; delete one before creating another", max)
}

// PreviousSecretValid reports whether a rotated-out secret valid until
// until is still used at now.
func PreviousSecretValid(until, now time.Time) bool { return until.After(now) }

// ValidateLine checks a required one-line text field: 1 to maxLen bytes and
// no control characters.
func ValidateLine(field, s string, maxLen int) error {
	if s == "" {
		return Invalid(field, "is required")
	}
	if len(s) > maxLen {
		return Invalid(field, "must be at most %d bytes", maxLen)
	}
	if strings.ContainsFunc(s, unicode.IsControl) {
		return Invalid(field, "must not contain control characters")
	}
	return nil
}

// ValidateAccountName checks an account's name, wherever it comes from: a
// line (ValidateLine) of at most MaxAccountNameLen bytes that does not
// start or end with spaces. Names are taken as given, never trimmed, so
// that what is stored is what was asked for.
func ValidateAccountName(field, name string) error {
	if err := ValidateLine(field, name, MaxAccountNameLen); err != nil {
		return err
	}
	if strings.TrimSpace(name) != name {
		return Invalid(field, "must not start or end with spaces")
	}
	return nil
}
