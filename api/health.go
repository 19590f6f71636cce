package api

import (
	"context"
	"net/http"
	"time"

	"github.com/nanohook/nanohook"
)

// statusJSON is the answer of the health probes.
type statusJSON struct {
	Status string `json:"status"`
}

// readyTimeout bounds the storage ping of /readyz, so that a hung database
// makes the probe fail rather than hang.
const readyTimeout = 2 * time.Second

// healthz says the process is up and serving HTTP (liveness). It touches no
// storage, so a database outage does not get the process restarted.
func (s *server) healthz(w http.ResponseWriter, r *http.Request) error {
	s.respond(w, r, http.StatusOK, statusJSON{Status: "ok"})
	return nil
}

// readyz says whether storage answers (readiness), so a load balancer can
// stop sending traffic that could not be committed.
func (s *server) readyz(w http.ResponseWriter, r *http.Request) error {
	ctx, cancel := context.WithTimeout(r.Context(), readyTimeout)
	defer cancel()
	if err := s.store.Ping(ctx); err != nil {
		s.logError(r, "api: readiness ping failed", err)
		return nanohook.Errorf(nanohook.CodeUnavailable, "", "storage is unavailable")
	}
	s.respond(w, r, http.StatusOK, statusJSON{Status: "ok"})
	return nil
}
