package nanohook

import (
	"errors"
	"fmt"
)

// Error codes carried in the public error envelope. Callers branch on the code,
// never on the message, so codes are stable and messages can improve.
const (
	CodeValidation       = "validation_error"       // 422: a field breaks a rule
	CodeInvalidJSON      = "invalid_json"           // 400: the body is not JSON
	CodeUnknownField     = "unknown_field"          // 400: a field we do not know
	CodeInvalidRequest   = "invalid_request"        // 400: anything else malformed
	CodeUnauthorized     = "unauthorized"           // 401: missing or wrong key
	CodeNotFound         = "not_found"              // 404: absent or another account's
	CodeConflict         = "conflict"               // 409: state does not allow it
	CodePayloadTooLarge  = "payload_too_large"      // 413
	CodeUnsupportedMedia = "unsupported_media_type" // 415
	CodeRateLimited      = "rate_limited"           // 429
	CodeInternal         = "internal_error"         // 500: details are logged, not sent
	CodeUnavailable      = "storage_unavailable"    // 503: storage cannot commit now
)

// Error is a failure that is safe to show to the caller: Code says what kind,
// Message says what went wrong in words, Field names the offending input
// field (dotted path) when there is one.
type Error struct {
	Code    string
	Message string
	Field   string
}

func (e *Error) Error() string { return e.Message }

// Errorf builds an *Error with a formatted message.
func Errorf(code, field, format string, args ...any) *Error {
	return &Error{Code: code, Field: field, Message: fmt.Sprintf(format, args...)}
}

// Invalid is shorthand for a validation error on one field; the message is
// prefixed with the field name so that it reads well on its own.
func Invalid(field, format string, args ...any) *Error {
	msg := fmt.Sprintf(format, args...)
	if field != "" {
		msg = field + ": " + msg
	}
	return &Error{Code: CodeValidation, Field: field, Message: msg}
}

// ErrorCode returns the code of err if it is (or wraps) an *Error, and
// CodeInternal otherwise.
func ErrorCode(err error) string {
	var e *Error
	if errors.As(err, &e) {
		return e.Code
	}
	return CodeInternal
}
