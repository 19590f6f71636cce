package api

import (
	"net/http"

	"github.com/nanohook/nanohook/dashboard"
)

// NewPublic returns the customers' API: /api/v1/... authenticated by API
// key, plus unauthenticated health probes. Serve it on the public listener.
func NewPublic(cfg Config) http.Handler {
	s := newServer(cfg)
	mux := http.NewServeMux()
	for _, rt := range s.publicRoutes() {
		mux.Handle(rt.pattern, s.handle(rt.h))
	}
	// The customers' dashboard: static pages that call the routes above.
	dash := dashboard.Handler()
	mux.Handle("GET /dashboard", dash)
	mux.Handle("GET /dashboard/", dash)
	return s.root(mux)
}

// NewAdmin returns the platform's API: /admin/v1/... authenticated by the
// admin token, plus unauthenticated health probes. Serve it on the admin
// listener, which should not be reachable from the internet.
func NewAdmin(cfg Config) http.Handler {
	s := newServer(cfg)
	mux := http.NewServeMux()
	for _, rt := range s.adminRoutes() {
		mux.Handle(rt.pattern, s.handle(rt.h))
	}
	return s.root(mux)
}

// route is one JSON route: a ServeMux pattern and its handler.
type route struct {
	pattern string
	h       apiFunc
}

// publicRoutes lists the JSON routes of the public listener. The OpenAPI
// test reads this list, so a route added here must be documented in
// openapi.json.
func (s *server) publicRoutes() []route {
	return []route{
		{"GET /healthz", s.healthz},
		{"GET /readyz", s.readyz},
		{"GET /api/v1/openapi.json", s.openAPI},

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

		// Published events and where they went (api/eventlist.go).
		{"GET /api/v1/events", s.requirePublic(s.listEvents)},
		{"GET /api/v1/events/{id}", s.requirePublic(s.getEvent)},
	}
}

// adminRoutes lists the JSON routes of the admin listener, documented in the
// same openapi.json.
func (s *server) adminRoutes() []route {
	return []route{
		{"GET /healthz", s.healthz},
		{"GET /readyz", s.readyz},
		{"GET /api/v1/openapi.json", s.openAPI},

		{"POST /admin/v1/accounts", s.requireAdmin(s.createAccount)},
		{"POST /admin/v1/accounts/{id}/keys", s.requireAdmin(s.createAPIKey)},
		{"DELETE /admin/v1/accounts/{id}/keys/{key_id}", s.requireAdmin(s.deleteAPIKey)},
		{"POST /admin/v1/events", s.requireAdmin(s.publishEvent)},
		{"POST /admin/v1/events/batch", s.requireAdmin(s.publishBatch)},
	}
}
