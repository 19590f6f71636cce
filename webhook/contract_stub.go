package webhook

// CONTRACT STUB — the helper writing this package replaces this file with the
// real implementation split across files (canonical.go, payload.go, sign.go,
// verify.go, middleware.go). The exported names and signatures below are
// relied on by other packages and must stay exactly as written.

import (
	"encoding/json"
	"net/http"
	"time"
)

// Header names of a delivery.
const (
	HeaderTimestamp         = "X-Nano-Timestamp"
	HeaderSignature         = "X-Nano-Signature"
	HeaderSignaturePrevious = "X-Nano-Signature-Previous"
	HeaderEventID           = "X-Nano-Event-Id"
	HeaderEvent             = "X-Nano-Event"
	HeaderDeliveryAttempt   = "X-Nano-Delivery-Attempt"
)

// CanonicalError says why a JSON value cannot be delivered byte-exactly.
// Path is the dotted/indexed path inside the value ("" for the root,
// "items[3].id", "a.b"), Reason the explanation.
type CanonicalError struct {
	Path   string
	Reason string
}

func (e *CanonicalError) Error() string { panic("stub") }

// Canonicalize returns exactly what JavaScript's JSON.stringify(JSON.parse(raw))
// returns (as UTF-8), or a *CanonicalError.
func Canonicalize(raw []byte) ([]byte, error) { panic("stub") }

// AppendCanonical appends the canonical form of raw to dst.
func AppendCanonical(dst, raw []byte) ([]byte, error) { panic("stub") }

// Payload is the body every endpoint receives, fields in wire order.
type Payload struct {
	Event     string          `json:"event"`
	TaskID    string          `json:"task_id"`
	TaskType  string          `json:"task_type"`
	Status    string          `json:"status"`
	Data      json.RawMessage `json:"data"`
	Timestamp string          `json:"timestamp"`
}

// EncodePayload builds the canonical body of p.
func EncodePayload(p Payload) ([]byte, error) { panic("stub") }

// Sign returns "v1=" + lowercase hex HMAC-SHA256(secret, "<timestamp>.<body>").
func Sign(secret string, timestamp int64, body []byte) string { panic("stub") }

// Verifier checks deliveries.
type Verifier struct {
	Secrets   []string
	Tolerance time.Duration
	Now       func() time.Time
}

// Verify checks the headers and body of one delivery.
func (v *Verifier) Verify(h http.Header, body []byte) error { panic("stub") }

// Middleware verifies each request before passing it to next.
func Middleware(v *Verifier, next http.Handler) http.Handler { panic("stub") }
