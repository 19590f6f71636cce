package webhook

import (
	"crypto/hmac"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// Header names of a delivery, shared by the sender and receivers so neither
// side spells them differently.
const (
	// HeaderTimestamp carries the Unix seconds of the attempt, signed with the
	// body so a captured request cannot be replayed later.
	HeaderTimestamp = "X-Nano-Timestamp"
	// HeaderSignature carries "v1=" and the hex HMAC-SHA256 of
	// "<timestamp>.<body>" under the endpoint's current secret.
	HeaderSignature = "X-Nano-Signature"
	// HeaderSignaturePrevious carries the same signature made with a secret
	// rotated out but still valid, so receivers can switch secrets without
	// dropping deliveries.
	HeaderSignaturePrevious = "X-Nano-Signature-Previous"
	// HeaderEventID is the event's id, the same on every attempt: the key
	// receivers de-duplicate on, since delivery is at least once.
	HeaderEventID = "X-Nano-Event-Id"
	// HeaderEvent is the event type, for routing without parsing the body.
	HeaderEvent = "X-Nano-Event"
	// HeaderDeliveryAttempt counts attempts from 1, for receivers' logs.
	HeaderDeliveryAttempt = "X-Nano-Delivery-Attempt"
)

// DefaultTolerance is how far a delivery's timestamp may be from the
// receiver's clock when Verifier.Tolerance is zero: wide enough for clock skew
// and slow networks, narrow enough that a captured request cannot be replayed
// much later.
const DefaultTolerance = 5 * time.Minute

// maxSignatureValues bounds how many signature values Verify tries, so a
// request stuffed with values cannot make it compute unbounded comparisons.
const maxSignatureValues = 16

// Errors Verify returns, wrapped with detail. Branch on them with errors.Is:
// Middleware answers 400 for the malformed-request ones, 401 for the
// unauthentic or stale ones and 500 for ErrNoSecrets.
var (
	// ErrMissingSignature: no v1 value in X-Nano-Signature or
	// X-Nano-Signature-Previous; the request did not come from nanohook.
	ErrMissingSignature = errors.New("webhook: missing signature")
	// ErrMissingTimestamp: no X-Nano-Timestamp, without which the signature
	// cannot be checked.
	ErrMissingTimestamp = errors.New("webhook: missing timestamp")
	// ErrInvalidTimestamp: X-Nano-Timestamp is not decimal Unix seconds.
	ErrInvalidTimestamp = errors.New("webhook: invalid timestamp")
	// ErrSignatureMismatch: no signature matches the body under any secret;
	// the body was altered, or the secret is wrong.
	ErrSignatureMismatch = errors.New("webhook: signature mismatch")
	// ErrTimestampOutOfTolerance: the signature is authentic but the
	// timestamp is too far from now, a replay or a skewed clock.
	ErrTimestampOutOfTolerance = errors.New("webhook: timestamp out of tolerance")
	// ErrNoSecrets: the Verifier has no non-empty secret, a configuration
	// mistake that must not be mistaken for a bad request.
	ErrNoSecrets = errors.New("webhook: no secrets configured")
)

// Verifier checks deliveries. The zero values of Tolerance, Now and
// MaxBodyBytes mean DefaultTolerance, time.Now and DefaultMaxBodyBytes. A
// Verifier is safe for concurrent use as long as its fields are not changed.
type Verifier struct {
	// Secrets are the endpoint's current secrets; during a rotation list the
	// new one and the old one, and a delivery signed with either passes.
	// Empty strings are ignored.
	Secrets []string
	// Tolerance is how far the timestamp may be from Now, either way.
	Tolerance time.Duration
	// Now is the receiver's clock, replaceable in tests.
	Now func() time.Time
	// MaxBodyBytes caps the body Middleware reads.
	MaxBodyBytes int64
}

// Verify checks the headers and body of one delivery: some v1 value of
// X-Nano-Signature or X-Nano-Signature-Previous must be the HMAC of
// "<X-Nano-Timestamp>.<body>" under some secret of v (compared in constant
// time), and the timestamp must be within the tolerance of now. body must be
// the raw request body, unparsed.
func (v *Verifier) Verify(h http.Header, body []byte) error {
	var secrets int
	for _, s := range v.Secrets {
		if s != "" {
			secrets++
		}
	}
	if secrets == 0 {
		return fmt.Errorf("%w: Verifier.Secrets holds no non-empty secret", ErrNoSecrets)
	}

	sigs := signatureValues(h)
	if len(sigs) == 0 {
		if h.Get(HeaderSignature) == "" && h.Get(HeaderSignaturePrevious) == "" {
			return fmt.Errorf("%w: no %s header", ErrMissingSignature, HeaderSignature)
		}
		return fmt.Errorf("%w: no %s value in %s", ErrMissingSignature, SignatureScheme, HeaderSignature)
	}
	raw := strings.TrimSpace(h.Get(HeaderTimestamp))
	if raw == "" {
		return fmt.Errorf("%w: no %s header", ErrMissingTimestamp, HeaderTimestamp)
	}
	ts, err := parseTimestamp(raw)
	if err != nil {
		return fmt.Errorf("%w: %s %q is not Unix seconds", ErrInvalidTimestamp, HeaderTimestamp, raw)
	}

	// The signature is checked before the clock so that "out of tolerance"
	// only ever describes an authentic delivery: the hint is then about the
	// receiver's clock or a replay, never a wrong secret.
	matched := 0
	var expected [len(SignatureScheme) + 64]byte
	for _, secret := range v.Secrets {
		if secret == "" {
			continue
		}
		want := NewSigner(secret).AppendSign(expected[:0], ts, body)
		for _, got := range sigs {
			if hmac.Equal(want, []byte(got)) {
				matched++
			}
		}
	}
	if matched == 0 {
		return fmt.Errorf("%w: no %s value matches the body under any of %d secrets", ErrSignatureMismatch, SignatureScheme, secrets)
	}

	tolerance := v.Tolerance
	if tolerance <= 0 {
		tolerance = DefaultTolerance
	}
	now := time.Now
	if v.Now != nil {
		now = v.Now
	}
	// Past about 2^40 seconds time.Unix would overflow Duration arithmetic;
	// such timestamps are out of any tolerance anyway.
	t := now()
	if ts > 1<<40 || ts < -(1<<40) {
		return fmt.Errorf("%w: timestamp %d is absurd", ErrTimestampOutOfTolerance, ts)
	}
	if skew := t.Sub(time.Unix(ts, 0)); skew > tolerance || skew < -tolerance {
		return fmt.Errorf("%w: timestamp %d is %s away from now (tolerance %s)", ErrTimestampOutOfTolerance, ts, skew.Abs().Round(time.Second), tolerance)
	}
	return nil
}

// parseTimestamp accepts decimal digits only (no sign, no spaces inside).
func parseTimestamp(s string) (int64, error) {
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return 0, strconv.ErrSyntax
		}
	}
	return strconv.ParseInt(s, 10, 64)
}

// signatureValues collects the v1= values of the signature headers. Each
// header normally holds one value, but several separated by spaces or commas
// are accepted, as are repeated headers; other schemes are skipped.
func signatureValues(h http.Header) []string {
	var sigs []string
	for _, name := range [...]string{HeaderSignature, HeaderSignaturePrevious} {
		for _, line := range h.Values(name) {
			for _, f := range strings.FieldsFunc(line, func(r rune) bool { return r == ' ' || r == ',' || r == '\t' }) {
				if strings.HasPrefix(f, SignatureScheme) && len(sigs) < maxSignatureValues {
					sigs = append(sigs, f)
				}
			}
		}
	}
	return sigs
}
