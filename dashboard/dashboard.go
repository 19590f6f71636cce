// Package dashboard serves the customers' web dashboard: a few static files,
// embedded in the binary, that run in the browser and call the public API
// (/api/v1/...) with the customer's own API key. The server side holds no
// session and no state; everything the page shows comes from the API, so the
// dashboard can do nothing a customer could not do with curl.
//
// The files are plain HTML, CSS and JavaScript with no build step and no
// external resources, so the dashboard works where the service runs even
// without internet access. Every answer carries a strict Content-Security-
// Policy: only the dashboard's own script and style run, and the page can
// only talk to its own origin.
package dashboard

import (
	"bytes"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"fmt"
	"io/fs"
	"net/http"
	"path"
	"strings"
	"time"
)

// Path is where the dashboard lives on the public listener. Requests for
// Path without its trailing slash are redirected to it, so that the page's
// relative asset links resolve under it.
const Path = "/dashboard/"

// ContentSecurityPolicy is sent with every dashboard answer. It allows only
// same-origin scripts, styles and fetches, and no framing (clickjacking):
// an injected string in API data can never become code, even if a bug put
// it into markup.
const ContentSecurityPolicy = "default-src 'self'; script-src 'self'; style-src 'self'; " +
	"connect-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"

//go:embed assets
var assets embed.FS

// file is one embedded asset, ready to serve.
type file struct {
	body        []byte
	contentType string
	etag        string
}

// contentTypes are the only kinds of file the dashboard serves; an asset of
// another kind is a build mistake that Handler reports at once.
var contentTypes = map[string]string{
	".html": "text/html; charset=utf-8",
	".js":   "text/javascript; charset=utf-8",
	".css":  "text/css; charset=utf-8",
}

// Handler serves the dashboard: Path is the page, Path+"app.js" and
// Path+"style.css" its assets, and anything else under Path is 404. Mount
// it on "GET /dashboard" and "GET /dashboard/".
func Handler() http.Handler {
	files, err := load(assets)
	if err != nil {
		// The assets are compiled in; a broken set cannot be fixed at run time.
		panic(err)
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		setSecurityHeaders(w.Header())
		if r.URL.Path == strings.TrimSuffix(Path, "/") {
			http.Redirect(w, r, Path, http.StatusMovedPermanently)
			return
		}
		name, ok := strings.CutPrefix(r.URL.Path, Path)
		if !ok {
			http.NotFound(w, r)
			return
		}
		if name == "" {
			name = "index.html"
		}
		f, ok := files[name]
		if !ok {
			http.NotFound(w, r)
			return
		}
		h := w.Header()
		h.Set("Content-Type", f.contentType)
		h.Set("ETag", f.etag)
		// The page is tiny and changes with every release: revalidate each
		// time (a 304 thanks to the ETag) rather than run a stale script
		// against a newer API.
		h.Set("Cache-Control", "no-cache")
		http.ServeContent(w, r, name, time.Time{}, bytes.NewReader(f.body))
	})
}

// setSecurityHeaders sets what every dashboard answer carries, 404s and
// redirects included.
func setSecurityHeaders(h http.Header) {
	h.Set("Content-Security-Policy", ContentSecurityPolicy)
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "no-referrer")
	h.Set("X-Frame-Options", "DENY") // for browsers that predate frame-ancestors
}

// load reads every file under assets/ into memory with its content type and
// a strong ETag.
func load(fsys fs.FS) (map[string]file, error) {
	sub, err := fs.Sub(fsys, "assets")
	if err != nil {
		return nil, err
	}
	files := map[string]file{}
	err = fs.WalkDir(sub, ".", func(name string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		ct, ok := contentTypes[path.Ext(name)]
		if !ok {
			return fmt.Errorf("dashboard: asset %s: no content type for its extension", name)
		}
		body, err := fs.ReadFile(sub, name)
		if err != nil {
			return err
		}
		sum := sha256.Sum256(body)
		files[name] = file{body: body, contentType: ct, etag: `"` + hex.EncodeToString(sum[:8]) + `"`}
		return nil
	})
	return files, err
}
