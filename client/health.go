package client

import (
	"context"
	"net/http"
)

// The probes answer on both listeners without authentication.

// Healthy returns nil when the listener is up and serving (GET /healthz); it
// says nothing about storage.
func (c *Client) Healthy(ctx context.Context) error {
	_, err := c.do(ctx, http.MethodGet, "/healthz", nil, nil, nil)
	return err
}

// Ready returns nil when the server's storage answers (GET /readyz), that is
// when a publish or an update can be committed now; otherwise an *Error with
// status 503.
func (c *Client) Ready(ctx context.Context) error {
	_, err := c.do(ctx, http.MethodGet, "/readyz", nil, nil, nil)
	return err
}
