package api

import (
	"crypto/sha256"
	_ "embed"
	"encoding/hex"
	"net/http"
	"strconv"
	"strings"
)

// openAPIDocument is the OpenAPI 3.1 description of the public and admin
// APIs. It is written by hand and served byte for byte, so what clients
// download is exactly what the tests validate every answer against.
//
//go:embed openapi.json
var openAPIDocument []byte

// openAPIETag names this build's document, so that clients and caches can
// revalidate it with If-None-Match instead of downloading it again.
var openAPIETag = func() string {
	sum := sha256.Sum256(openAPIDocument)
	return `"` + hex.EncodeToString(sum[:16]) + `"`
}()

// openAPI serves the document. It needs no credentials: it describes the
// API, it does not expose anything of an account. It changes only with a
// new release, so caches may keep it for a while and then revalidate.
func (s *server) openAPI(w http.ResponseWriter, r *http.Request) error {
	h := w.Header()
	h.Set("ETag", openAPIETag)
	h.Set("Cache-Control", "public, max-age=300")
	if etagMatches(r.Header.Get("If-None-Match"), openAPIETag) {
		w.WriteHeader(http.StatusNotModified)
		return nil
	}
	h.Set("Content-Type", "application/json")
	h.Set("Content-Length", strconv.Itoa(len(openAPIDocument)))
	h.Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(openAPIDocument)
	return nil
}

// etagMatches reports whether an If-None-Match header names etag. The
// comparison is weak (RFC 9110 §13.1.2), as it must be for If-None-Match.
func etagMatches(header, etag string) bool {
	for tag := range strings.SplitSeq(header, ",") {
		tag = strings.TrimSpace(tag)
		if tag == "*" || strings.TrimPrefix(tag, "W/") == etag {
			return true
		}
	}
	return false
}
