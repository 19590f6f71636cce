package webhook

import (
	"bytes"
	"errors"
	"io"
	"net/http"
)

// MaxPayloadBytes is the largest body a nanohook server ever delivers: its
// --max-payload-bytes (default 64 KiB) cannot be set higher, and events
// whose canonical body would exceed the setting are refused at publish.
const MaxPayloadBytes = 1 << 20

// DefaultMaxBodyBytes is the largest body Middleware reads when
// Verifier.MaxBodyBytes is zero: MaxPayloadBytes, so that the default
// accepts every delivery whatever the server's --max-payload-bytes, while
// an unauthenticated client still cannot make the receiver buffer
// arbitrary amounts before the signature can be checked.
const DefaultMaxBodyBytes = MaxPayloadBytes

// Middleware verifies each request before passing it to next, so handlers only
// ever see authentic, fresh deliveries. It reads the whole body (up to the
// cap) because the signature covers it, then gives next a fresh r.Body with
// the same bytes. Rejected requests get a short plain-text answer: 400 for
// missing or malformed signature headers or an unreadable body, 413 for a body
// over the cap, 401 for a wrong signature or a timestamp out of tolerance, and
// 500 when v has no secrets. It panics if v or next is nil, at setup time
// rather than on the first request.
func Middleware(v *Verifier, next http.Handler) http.Handler {
	if v == nil || next == nil {
		panic("webhook: Middleware needs a Verifier and a next handler")
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		limit := v.MaxBodyBytes
		if limit <= 0 {
			limit = DefaultMaxBodyBytes
		}
		if r.ContentLength > limit {
			http.Error(w, "body too large", http.StatusRequestEntityTooLarge)
			return
		}
		body, err := io.ReadAll(io.LimitReader(r.Body, limit+1))
		if err != nil {
			http.Error(w, "cannot read body", http.StatusBadRequest)
			return
		}
		if int64(len(body)) > limit {
			http.Error(w, "body too large", http.StatusRequestEntityTooLarge)
			return
		}
		if err := v.Verify(r.Header, body); err != nil {
			status, msg := rejection(err)
			http.Error(w, msg, status)
			return
		}
		r.Body = io.NopCloser(bytes.NewReader(body))
		r.GetBody = func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(body)), nil }
		r.ContentLength = int64(len(body))
		next.ServeHTTP(w, r)
	})
}

// rejection maps a Verify error to the status and text Middleware answers.
func rejection(err error) (int, string) {
	switch {
	case errors.Is(err, ErrMissingSignature):
		return http.StatusBadRequest, "missing signature"
	case errors.Is(err, ErrMissingTimestamp):
		return http.StatusBadRequest, "missing timestamp"
	case errors.Is(err, ErrInvalidTimestamp):
		return http.StatusBadRequest, "invalid timestamp"
	case errors.Is(err, ErrTimestampOutOfTolerance):
		return http.StatusUnauthorized, "timestamp out of tolerance"
	case errors.Is(err, ErrSignatureMismatch):
		return http.StatusUnauthorized, "invalid signature"
	default:
		return http.StatusInternalServerError, "webhook verification is not configured"
	}
}
