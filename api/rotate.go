package api

import (
	"net/http"
	"time"

	"github.com/nanohook/nanohook"
	"github.com/nanohook/nanohook/store"
)

// rotateSecretRequest is the optional body of a rotation.
type rotateSecretRequest struct {
	SecretKey      *string `json:"secret_key"`      // absent: a new one is generated
	OverlapSeconds *int64  `json:"overlap_seconds"` // how long the old secret stays valid; default 24 h
}

// rotatedJSON is the rotation answer: the endpoint, the new secret (shown
// this once) and until when the previous secret still signs deliveries.
type rotatedJSON struct {
	endpointJSON
	SecretKey               string  `json:"secret_key"`
	PreviousSecretExpiresAt *string `json:"previous_secret_expires_at"`
}

// rotateSecret replaces an endpoint's signing secret. During the overlap
// every delivery carries X-Nano-Signature (new secret) and
// X-Nano-Signature-Previous (old secret), so receivers can switch secrets
// whenever they like within it. An empty body takes the defaults.
func (s *server) rotateSecret(w http.ResponseWriter, r *http.Request) error {
	id, err := pathID(r, "id")
	if err != nil {
		return err
	}
	var req rotateSecretRequest
	if r.ContentLength != 0 || len(r.TransferEncoding) > 0 {
		if _, err := decodeBody(w, r, s.maxBody, &req); err != nil {
			return err
		}
	}
	secret := nanohook.NewSecret()
	if req.SecretKey != nil {
		if err := nanohook.ValidateSecret("secret_key", *req.SecretKey); err != nil {
			return err
		}
		secret = *req.SecretKey
	}
	overlap := nanohook.DefaultSecretOverlap
	if req.OverlapSeconds != nil {
		sec := *req.OverlapSeconds
		if sec < 0 || sec > int64(nanohook.MaxSecretOverlap/time.Second) {
			return nanohook.Invalid("overlap_seconds", "must be 0 to %d (7 days)", int64(nanohook.MaxSecretOverlap/time.Second))
		}
		overlap = time.Duration(sec) * time.Second
	}
	now := s.now()
	e, err := s.store.RotateSecret(r.Context(), store.RotateSecretParams{
		AccountID:          accountID(r.Context()),
		ID:                 id,
		Secret:             secret,
		PreviousValidUntil: now.Add(overlap),
		Now:                now,
	})
	if err != nil {
		return err
	}
	out := rotatedJSON{endpointJSON: toEndpointJSON(e), SecretKey: secret}
	if !e.PreviousSecretExpiresAt.IsZero() {
		t := formatTime(e.PreviousSecretExpiresAt)
		out.PreviousSecretExpiresAt = &t
	}
	s.respond(w, r, http.StatusOK, out)
	return nil
}
