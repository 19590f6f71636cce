package api

import "net/http"

// NewPublic returns the customers' API: /api/v1/... authenticated by API
// key, plus unauthenticated health probes. Serve it on the public listener.
func NewPublic(cfg Config) http.Handler {
	s := newServer(cfg)
	mux := http.NewServeMux()
	for _, rt := range []struct {
		pattern string
		h       apiFunc
	}{
		{"GET /healthz", s.healthz},
		{"GET /readyz", s.readyz},

		{"GET /api/v1/webhooks", s.requirePublic(s.listWebhooks)},
		{"POST /api/v1/webhooks", s.requirePublic(s.createWebhook)},
		{"GET /api/v1/webhooks/{id}", s.requirePublic(s.getWebhook)},
		{"PATCH /api/v1/webhooks/{id}", s.requirePublic(s.updateWebhook)},
		{"DELETE /api/v1/webhooks/{id}", s.requirePublic(s.deleteWebhook)},

		// Delivery history, retry and recovery (api/deliveries.go).
		{"GET /api/v1/webhooks/{id}/deliveries", s.requirePublic(s.listDeliveries)},
		{"POST /api/v1/webhooks/{id}/recover", s.requirePublic(s.recoverWebhook)},
		{"GET /api/v1/deliveries/{id}", s.requirePublic(s.getDelivery)},
		{"POST /api/v1/deliveries/{id}/retry", s.requirePublic(s.retryDelivery)},
		{"POST /api/v1/webhooks/{id}/rotate-secret", s.requirePublic(s.rotateSecret)},
		{"POST /api/v1/webhooks/{id}/test", s.requirePublic(s.testWebhook)},
	} {
		mux.Handle(rt.pattern, s.handle(rt.h))
	}
	return s.root(mux)
}

// NewAdmin returns the platform's API: /admin/v1/... authenticated by the
// admin token, plus unauthenticated health probes. Serve it on the admin
// listener, which should not be reachable from the internet.
func NewAdmin(cfg Config) http.Handler {
	s := newServer(cfg)
	mux := http.NewServeMux()
	for _, rt := range []struct {
		pattern string
		h       apiFunc
	}{
		{"GET /healthz", s.healthz},
		{"GET /readyz", s.readyz},

		{"POST /admin/v1/accounts", s.requireAdmin(s.createAccount)},
		{"POST /admin/v1/accounts/{id}/keys", s.requireAdmin(s.createAPIKey)},
		{"DELETE /admin/v1/accounts/{id}/keys/{key_id}", s.requireAdmin(s.deleteAPIKey)},
		{"POST /admin/v1/events", s.requireAdmin(s.publishEvent)},
		{"POST /admin/v1/events/batch", s.requireAdmin(s.publishBatch)},
	} {
		mux.Handle(rt.pattern, s.handle(rt.h))
	}
	return s.root(mux)
}
