package api

import (
	"context"
	"crypto/rand"
	"fmt"
	"log/slog"
	"net/http"
	"path"
	"runtime/debug"
	"strings"
	"time"

	"github.com/nanohook/nanohook"
	"github.com/nanohook/nanohook/store"
)

// apiFunc is a handler that returns its failure instead of writing it, so
// that every error reaches writeError and is answered the same way.
type apiFunc func(w http.ResponseWriter, r *http.Request) error

// handle adapts an apiFunc to http.Handler.
func (s *server) handle(h apiFunc) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if err := h(w, r); err != nil {
			s.writeError(w, r, err)
		}
	})
}

// root wraps a mux with what every request gets: a request id, panic
// recovery, a debug log line, and envelope answers for what the mux would
// otherwise answer in plain text (unknown routes, wrong methods,
// non-canonical paths).
func (s *server) root(mux *http.ServeMux) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		info := requestInfo{id: requestID(r.Header.Get(HeaderRequestID)), start: s.now()}
		w.Header().Set(HeaderRequestID, info.id)
		r = r.WithContext(context.WithValue(r.Context(), requestKey{}, info))
		tw := &trackingWriter{ResponseWriter: w}
		defer s.logRequest(tw, r, info)
		defer s.recoverPanic(tw, r)
		// ServeMux redirects unclean paths ("/api//v1") with a text body; an
		// API has no use for that, so they are simply not found.
		if p := r.URL.EscapedPath(); p != cleanPath(p) {
			s.writeError(tw, r, errNoRoute)
			return
		}
		h, pattern := mux.Handler(r)
		if pattern == "" {
			s.noRoute(tw, r, mux, h)
			return
		}
		mux.ServeHTTP(tw, r)
	})
}

// errNoRoute answers paths that no route serves.
var errNoRoute = nanohook.Errorf(nanohook.CodeNotFound, "", "no such route")

// codeMethodNotAllowed is the code of a 405. The domain has no code for it
// because only routing produces it.
const codeMethodNotAllowed = "method_not_allowed"

// noRoute answers a request that matched no pattern. The mux's own fallback
// handler is run into a scratch writer only to learn whether the path exists
// under other methods (405 with Allow) or not at all (404). A path that is a
// route but for a trailing slash ("/api/v1/webhooks/") is not redirected,
// which would make clients resend bodies and credentials, but its 404 names
// the route.
func (s *server) noRoute(w http.ResponseWriter, r *http.Request, mux *http.ServeMux, fallback http.Handler) {
	allow := allowedMethods(r, fallback)
	if allow == "" {
		if trimmed, ok := strings.CutSuffix(r.URL.Path, "/"); ok && trimmed != "" && isRoute(mux, r, trimmed) {
			s.writeError(w, r, nanohook.Errorf(nanohook.CodeNotFound, "",
				"no such route: %s ends with a slash; the route is %s", r.URL.Path, trimmed))
			return
		}
		s.writeError(w, r, errNoRoute)
		return
	}
	w.Header().Set("Allow", allow)
	s.writeError(w, r, nanohook.Errorf(codeMethodNotAllowed, "", "method %s is not allowed here (allowed: %s)", r.Method, allow))
}

// allowedMethods runs the mux's fallback handler for r into a scratch
// writer and returns the Allow header of its 405, or "" when the path is
// served under no method.
func allowedMethods(r *http.Request, fallback http.Handler) string {
	scratch := &scratchWriter{header: http.Header{}}
	fallback.ServeHTTP(scratch, r)
	if scratch.status != http.StatusMethodNotAllowed {
		return ""
	}
	return scratch.header.Get("Allow")
}

// isRoute reports whether the mux serves path under r's method or another.
func isRoute(mux *http.ServeMux, r *http.Request, path string) bool {
	r2 := r.Clone(r.Context())
	r2.URL.Path, r2.URL.RawPath = path, ""
	h, pattern := mux.Handler(r2)
	return pattern != "" || allowedMethods(r2, h) != ""
}

// recoverPanic turns a handler panic into a logged 500 envelope, so that a
// bug answers like any other internal error instead of dropping the
// connection. http.ErrAbortHandler keeps its meaning.
func (s *server) recoverPanic(w *trackingWriter, r *http.Request) {
	v := recover()
	if v == nil {
		return
	}
	if v == http.ErrAbortHandler {
		panic(v)
	}
	err := fmt.Errorf("api: panic in handler: %v\n%s", v, debug.Stack())
	if w.wrote {
		// Too late for a clean answer: log, and abort so the client sees a
		// broken response rather than a truncated one that looks complete.
		s.logError(r, "api: internal error", err)
		panic(http.ErrAbortHandler)
	}
	w.Header().Del("Allow")
	s.writeError(w, r, err)
}

// cleanPath is the canonical form ServeMux routes on: rooted, no "." or ".."
// elements, no repeated slashes, trailing slash kept.
func cleanPath(p string) string {
	if p == "" {
		return "/"
	}
	if p[0] != '/' {
		p = "/" + p
	}
	np := path.Clean(p)
	if strings.HasSuffix(p, "/") && np != "/" {
		np += "/"
	}
	return np
}

// trackingWriter remembers whether the header went out, so that a panic
// after it does not try to write a second answer, and which status it
// carried, for the request's log line.
type trackingWriter struct {
	http.ResponseWriter
	wrote  bool
	status int
}

func (w *trackingWriter) WriteHeader(code int) {
	if !w.wrote {
		w.status = code
	}
	w.wrote = true
	w.ResponseWriter.WriteHeader(code)
}

func (w *trackingWriter) Write(b []byte) (int, error) {
	if !w.wrote {
		w.status = http.StatusOK
	}
	w.wrote = true
	return w.ResponseWriter.Write(b)
}

// Unwrap lets http.ResponseController and http.MaxBytesReader reach the
// server's writer.
func (w *trackingWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// scratchWriter records a status and headers and discards the body.
type scratchWriter struct {
	header http.Header
	status int
}

func (w *scratchWriter) Header() http.Header { return w.header }

func (w *scratchWriter) WriteHeader(code int) {
	if w.status == 0 {
		w.status = code
	}
}

func (w *scratchWriter) Write(b []byte) (int, error) {
	w.WriteHeader(http.StatusOK)
	return len(b), nil
}

// HeaderRequestID carries a request's id: taken from the caller when it is
// sane (see requestID), generated otherwise, and always echoed in the
// answer, so a caller can quote it and an operator find every log line of
// the request.
const HeaderRequestID = "X-Request-Id"

// maxRequestIDLen bounds a caller's request id, so that it cannot bloat
// every log line of its request.
const maxRequestIDLen = 64

// requestKey is the context key of a request's requestInfo.
type requestKey struct{}

// requestInfo is what root knows about a request that later code needs:
// its id for the log lines and its arrival for latency.
type requestInfo struct {
	id    string
	start time.Time
}

// requestID returns the caller's id when it is 1 to maxRequestIDLen
// characters of [A-Za-z0-9._-], which cannot forge log fields or carry
// markup, and a fresh random one otherwise.
func requestID(given string) string {
	if given != "" && len(given) <= maxRequestIDLen && strings.Trim(given,
		"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_.") == "" {
		return given
	}
	return rand.Text()
}

// logRequest writes the request's debug line: method, path (never the
// query, which may carry cursors, nor any header, which may carry keys),
// status and duration.
func (s *server) logRequest(w *trackingWriter, r *http.Request, info requestInfo) {
	s.log.LogAttrs(r.Context(), slog.LevelDebug, "api: request",
		slog.String("method", r.Method), slog.String("path", r.URL.Path),
		slog.Int("status", w.status), slog.Duration("duration", s.now().Sub(info.start)))
}

// requestIDHandler adds the request id of the record's context to every
// record. Handlers log with their request's context, so each line of a
// request carries its id without the logger being passed around per request.
type requestIDHandler struct{ slog.Handler }

func (h requestIDHandler) Handle(ctx context.Context, rec slog.Record) error {
	if info, ok := ctx.Value(requestKey{}).(requestInfo); ok {
		rec.AddAttrs(slog.String("request_id", info.id))
	}
	return h.Handler.Handle(ctx, rec)
}

func (h requestIDHandler) WithAttrs(attrs []slog.Attr) slog.Handler {
	return requestIDHandler{h.Handler.WithAttrs(attrs)}
}

func (h requestIDHandler) WithGroup(name string) slog.Handler {
	return requestIDHandler{h.Handler.WithGroup(name)}
}

// observePublish reports a committed publish to the OnPublish hook: how
// many of its events were new, and how long the request took from its
// arrival until now, just after the commit.
func (s *server) observePublish(ctx context.Context, res []store.PublishResult) {
	if s.onPublish == nil {
		return
	}
	created := 0
	for _, r := range res {
		if !r.Duplicate {
			created++
		}
	}
	var took time.Duration
	if info, ok := ctx.Value(requestKey{}).(requestInfo); ok {
		took = s.now().Sub(info.start)
	}
	s.onPublish(created, took)
}
