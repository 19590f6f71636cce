package api

import (
	"fmt"
	"net/http"
	"path"
	"runtime/debug"
	"strings"

	"github.com/nanohook/nanohook"
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

// root wraps a mux with what every request gets: panic recovery and
// envelope answers for what the mux would otherwise answer in plain text
// (unknown routes, wrong methods, non-canonical paths).
func (s *server) root(mux *http.ServeMux) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		tw := &trackingWriter{ResponseWriter: w}
		defer s.recoverPanic(tw, r)
		// ServeMux redirects unclean paths ("/api//v1") with a text body; an
		// API has no use for that, so they are simply not found.
		if p := r.URL.EscapedPath(); p != cleanPath(p) {
			s.writeError(tw, r, errNoRoute)
			return
		}
		h, pattern := mux.Handler(r)
		if pattern == "" {
			s.noRoute(tw, r, h)
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
// under other methods (405 with Allow) or not at all (404).
func (s *server) noRoute(w http.ResponseWriter, r *http.Request, fallback http.Handler) {
	scratch := &scratchWriter{header: http.Header{}}
	fallback.ServeHTTP(scratch, r)
	allow := scratch.header.Get("Allow")
	if scratch.status != http.StatusMethodNotAllowed || allow == "" {
		s.writeError(w, r, errNoRoute)
		return
	}
	w.Header().Set("Allow", allow)
	s.writeError(w, r, nanohook.Errorf(codeMethodNotAllowed, "", "method %s is not allowed here (allowed: %s)", r.Method, allow))
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
// after it does not try to write a second answer.
type trackingWriter struct {
	http.ResponseWriter
	wrote bool
}

func (w *trackingWriter) WriteHeader(code int) {
	w.wrote = true
	w.ResponseWriter.WriteHeader(code)
}

func (w *trackingWriter) Write(b []byte) (int, error) {
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
