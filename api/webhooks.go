package api

import (
	"context"
	"log/slog"
	"net/http"
	"strconv"
	"time"

	"github.com/nanohook/nanohook"
	"github.com/nanohook/nanohook/store"
)

// EndpointStore is what the webhook routes need: an account's endpoints,
// their secrets rotated (rotate.go) included.
type EndpointStore interface {
	CreateEndpoint(ctx context.Context, p store.CreateEndpointParams) (nanohook.Endpoint, error)
	GetEndpoint(ctx context.Context, accountID, id int64) (nanohook.Endpoint, error)
	ListEndpoints(ctx context.Context, p store.ListEndpointsParams) ([]nanohook.Endpoint, error)
	UpdateEndpoint(ctx context.Context, p store.UpdateEndpointParams) (nanohook.Endpoint, error)
	RotateSecret(ctx context.Context, p store.RotateSecretParams) (nanohook.Endpoint, error)
	DeleteEndpoint(ctx context.Context, accountID, id int64, now time.Time) error
}

// endpointJSON is the public form of an endpoint. The secret is not a field
// here, so no handler can leak it by accident; only the create answer adds
// it, through createdEndpointJSON.
type endpointJSON struct {
	ID             int64                   `json:"id"`
	URL            string                  `json:"url"`
	Events         []nanohook.EventType    `json:"events"`
	Status         nanohook.EndpointStatus `json:"status"`
	Description    string                  `json:"description"`
	DisabledReason *string                 `json:"disabled_reason"`
	CreatedAt      string                  `json:"created_at"`
	UpdatedAt      string                  `json:"updated_at"`
}

// createdEndpointJSON is the create answer: the endpoint and, this once, its
// signing secret.
type createdEndpointJSON struct {
	endpointJSON
	SecretKey string `json:"secret_key"`
}

func toEndpointJSON(e nanohook.Endpoint) endpointJSON {
	out := endpointJSON{
		ID:          e.ID,
		URL:         e.URL,
		Events:      e.Events,
		Status:      e.Status,
		Description: e.Description,
		CreatedAt:   formatTime(e.CreatedAt),
		UpdatedAt:   formatTime(e.UpdatedAt),
	}
	if out.Events == nil {
		out.Events = []nanohook.EventType{}
	}
	if e.DisabledReason != "" {
		out.DisabledReason = &e.DisabledReason
	}
	return out
}

// formatTime is the one time format of answers: RFC 3339, UTC, seconds.
func formatTime(t time.Time) string {
	return t.UTC().Truncate(time.Second).Format(time.RFC3339)
}

// errNotFound answers ids that cannot exist, worded like the store's
// not-found so that a malformed id and another account's id look the same.
var errNotFound = nanohook.Errorf(nanohook.CodeNotFound, "", "not found")

// pathID reads a positive integer path value in canonical decimal form.
// Anything else cannot name an object, so it is 404, not 400.
func pathID(r *http.Request, name string) (int64, error) {
	s := r.PathValue(name)
	id, err := strconv.ParseInt(s, 10, 64)
	if err != nil || id <= 0 || strconv.FormatInt(id, 10) != s {
		return 0, errNotFound
	}
	return id, nil
}

// listWebhooks answers the account's endpoints by ascending id, one page.
func (s *server) listWebhooks(w http.ResponseWriter, r *http.Request) error {
	scope := webhookScope(accountID(r.Context()))
	p, err := parsePage(r.URL.Query(), scope)
	if err != nil {
		return err
	}
	eps, err := s.store.ListEndpoints(r.Context(), store.ListEndpointsParams{
		AccountID: accountID(r.Context()),
		AfterID:   p.afterID,
		Limit:     p.limit + 1, // one more tells whether another page follows
	})
	if err != nil {
		return err
	}
	out, next := pageOf(eps, p.limit, scope, func(e nanohook.Endpoint) int64 { return e.ID }, toEndpointJSON)
	s.respondPage(w, r, out, next)
	return nil
}

// createWebhookRequest is the body of POST /api/v1/webhooks.
type createWebhookRequest struct {
	URL         string   `json:"url"`
	Events      []string `json:"events"`
	SecretKey   *string  `json:"secret_key"` // nil (absent): generate one
	Description string   `json:"description"`
}

// createWebhook registers an endpoint and answers it with its secret, the
// only time the secret is ever shown.
func (s *server) createWebhook(w http.ResponseWriter, r *http.Request) error {
	var req createWebhookRequest
	if _, err := decodeBody(w, r, s.maxBody, &req); err != nil {
		return err
	}
	// The URL is stored, checked and answered in its ASCII form (an IDN
	// host as punycode).
	rawURL, err := nanohook.NormalizeURL("url", req.URL, s.allowHTTP)
	if err != nil {
		return err
	}
	events, err := nanohook.NormalizeEvents("events", req.Events)
	if err != nil {
		return err
	}
	secret := nanohook.NewSecret()
	if req.SecretKey != nil {
		if err := nanohook.ValidateSecret("secret_key", *req.SecretKey); err != nil {
			return err
		}
		secret = *req.SecretKey
	}
	if err := nanohook.ValidateDescription("description", req.Description); err != nil {
		return err
	}
	// The host check resolves names, so it runs last, after the cheap checks.
	if err := s.checkHost(r.Context(), rawURL); err != nil {
		return err
	}
	e, err := s.store.CreateEndpoint(r.Context(), store.CreateEndpointParams{
		AccountID:   accountID(r.Context()),
		URL:         rawURL,
		Events:      events,
		Secret:      secret,
		Description: req.Description,
		Now:         s.now(),
		// A conflict beyond it: the request is sound, the account's state
		// refuses it until an endpoint is deleted (as a retry of a
		// delivery whose endpoint is disabled is refused).
		MaxEndpoints: s.maxEndpoints,
	})
	if err != nil {
		return err
	}
	s.respond(w, r, http.StatusCreated, createdEndpointJSON{endpointJSON: toEndpointJSON(e), SecretKey: secret})
	return nil
}

// checkHost runs the configured host check of an endpoint URL. Any refusal
// (a private address, a name that does not resolve) is the caller's to fix,
// so it is a validation error on url.
func (s *server) checkHost(ctx context.Context, rawURL string) error {
	if s.checkURL == nil {
		return nil
	}
	checkCtx, cancel := context.WithTimeout(ctx, checkURLTimeout)
	defer cancel()
	if err := s.checkURL(checkCtx, rawURL); err != nil {
		if ctx.Err() != nil {
			return ctx.Err() // the request itself was cancelled
		}
		// The customer's message leaves out what a name resolved to
		// (egress.ForbiddenError); the operator's log gets it.
		s.log.LogAttrs(ctx, slog.LevelInfo, "api: endpoint URL refused",
			slog.Int64("account_id", accountID(ctx)), slog.Any("error", err))
		return nanohook.Invalid("url", "%v", err)
	}
	return nil
}

// getWebhook answers one endpoint of the account.
func (s *server) getWebhook(w http.ResponseWriter, r *http.Request) error {
	id, err := pathID(r, "id")
	if err != nil {
		return err
	}
	e, err := s.store.GetEndpoint(r.Context(), accountID(r.Context()), id)
	if err != nil {
		return err
	}
	s.respond(w, r, http.StatusOK, toEndpointJSON(e))
	return nil
}

// updateWebhookRequest is the body of PATCH /api/v1/webhooks/{id}; every
// field is optional and absent fields stay as they are (decodeObject refuses
// nulls, so a nil pointer means absent).
type updateWebhookRequest struct {
	URL         *string  `json:"url"`
	Events      []string `json:"events"`
	Status      *string  `json:"status"`
	Description *string  `json:"description"`
}

// reasonDisabledByAccount is the disabled_reason of an endpoint its owner
// disabled, so that it reads differently from one the service disabled.
const reasonDisabledByAccount = "disabled by the account"

// updateWebhook changes the fields given. Re-enabling clears the reason of
// an automatic disable.
func (s *server) updateWebhook(w http.ResponseWriter, r *http.Request) error {
	id, err := pathID(r, "id")
	if err != nil {
		return err
	}
	var req updateWebhookRequest
	members, err := decodeBody(w, r, s.maxBody, &req)
	if err != nil {
		return err
	}
	if len(members) == 0 {
		return nanohook.Errorf(nanohook.CodeValidation, "",
			"at least one of url, events, status, description is required")
	}
	p := store.UpdateEndpointParams{
		AccountID: accountID(r.Context()),
		ID:        id,
		Now:       s.now(),
	}
	if req.URL != nil {
		rawURL, err := nanohook.NormalizeURL("url", *req.URL, s.allowHTTP)
		if err != nil {
			return err
		}
		p.URL = &rawURL
	}
	if _, ok := members["events"]; ok {
		if p.Events, err = nanohook.NormalizeEvents("events", req.Events); err != nil {
			return err
		}
	}
	if req.Status != nil {
		st, err := nanohook.ParseEndpointStatus("status", *req.Status)
		if err != nil {
			return err
		}
		reason := ""
		if st == nanohook.EndpointDisabled {
			reason = reasonDisabledByAccount
		}
		p.Status, p.DisabledReason = &st, &reason
	}
	if req.Description != nil {
		if err := nanohook.ValidateDescription("description", *req.Description); err != nil {
			return err
		}
		p.Description = req.Description
	}
	if p.URL != nil {
		if err := s.checkHost(r.Context(), *p.URL); err != nil {
			return err
		}
	}
	e, err := s.store.UpdateEndpoint(r.Context(), p)
	if err != nil {
		return err
	}
	s.respond(w, r, http.StatusOK, toEndpointJSON(e))
	return nil
}

// deleteWebhook removes an endpoint; the store cancels its pending
// deliveries in the same transaction.
func (s *server) deleteWebhook(w http.ResponseWriter, r *http.Request) error {
	id, err := pathID(r, "id")
	if err != nil {
		return err
	}
	if err := s.store.DeleteEndpoint(r.Context(), accountID(r.Context()), id, s.now()); err != nil {
		return err
	}
	s.respond(w, r, http.StatusOK, idJSON{ID: id})
	return nil
}

// idJSON is the answer of deletes: the id of what is gone.
type idJSON struct {
	ID int64 `json:"id"`
}
