package dashboard_test

import (
	"io"
	"io/fs"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"go.uber.org/goleak"

	"github.com/nanohook/nanohook/api"
	"github.com/nanohook/nanohook/dashboard"
	"github.com/nanohook/nanohook/internal/skipnote"
	"github.com/nanohook/nanohook/store/sqlite"
)

// TestMain also proves the browser test leaves nothing running behind it.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m, goleak.Cleanup(func(code int) {
		skipnote.Report("github.com/nanohook/nanohook/dashboard")
		os.Exit(code)
	}))
}

// publicServer serves the real public API, dashboard included, on a fresh
// SQLite database: the dashboard is tested where customers reach it.
func publicServer(t *testing.T) *httptest.Server {
	t.Helper()
	st, err := sqlite.Open(t.Context(), filepath.Join(t.TempDir(), "nanohook.db"))
	if err != nil {
		t.Fatalf("open store: %v", err)
	}
	t.Cleanup(func() { _ = st.Close() })
	srv := httptest.NewServer(api.NewPublic(api.Config{Store: st}))
	t.Cleanup(srv.Close)
	return srv
}

// get fetches path without following redirects.
func get(t *testing.T, srv *httptest.Server, path string, header http.Header) (*http.Response, []byte) {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), http.MethodGet, srv.URL+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range header {
		req.Header[k] = v
	}
	client := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	res, err := client.Do(req)
	if err != nil {
		t.Fatalf("GET %s: %v", path, err)
	}
	defer res.Body.Close()
	body, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatalf("GET %s: read body: %v", path, err)
	}
	return res, body
}

// checkSecurityHeaders asserts what every dashboard answer must carry.
func checkSecurityHeaders(t *testing.T, path string, h http.Header) {
	t.Helper()
	csp := h.Get("Content-Security-Policy")
	for _, directive := range []string{
		"default-src 'self'", "script-src 'self'", "style-src 'self'", "connect-src 'self'", "frame-ancestors 'none'",
	} {
		if !strings.Contains(csp, directive) {
			t.Errorf("GET %s: Content-Security-Policy %q lacks %q", path, csp, directive)
		}
	}
	if strings.Contains(csp, "unsafe-") {
		t.Errorf("GET %s: Content-Security-Policy %q allows unsafe sources", path, csp)
	}
	if got := h.Get("X-Content-Type-Options"); got != "nosniff" {
		t.Errorf("GET %s: X-Content-Type-Options = %q, want nosniff", path, got)
	}
	if got := h.Get("Referrer-Policy"); got != "no-referrer" {
		t.Errorf("GET %s: Referrer-Policy = %q, want no-referrer", path, got)
	}
}

func TestServesAssetsWithTypesAndHeaders(t *testing.T) {
	t.Parallel()
	srv := publicServer(t)
	for _, tc := range []struct {
		path, file, contentType string
	}{
		{"/dashboard/", "index.html", "text/html; charset=utf-8"},
		{"/dashboard/index.html", "index.html", "text/html; charset=utf-8"},
		{"/dashboard/app.js", "app.js", "text/javascript; charset=utf-8"},
		{"/dashboard/style.css", "style.css", "text/css; charset=utf-8"},
	} {
		res, body := get(t, srv, tc.path, nil)
		if res.StatusCode != http.StatusOK {
			t.Errorf("GET %s: status %d, want 200", tc.path, res.StatusCode)
			continue
		}
		if got := res.Header.Get("Content-Type"); got != tc.contentType {
			t.Errorf("GET %s: Content-Type = %q, want %q", tc.path, got, tc.contentType)
		}
		checkSecurityHeaders(t, tc.path, res.Header)
		want, err := os.ReadFile(filepath.Join("assets", tc.file))
		if err != nil {
			t.Fatal(err)
		}
		if string(body) != string(want) {
			t.Errorf("GET %s: body is not assets/%s (%d bytes, want %d)", tc.path, tc.file, len(body), len(want))
		}

		// The ETag lets browsers revalidate instead of downloading again.
		etag := res.Header.Get("ETag")
		if etag == "" {
			t.Errorf("GET %s: no ETag", tc.path)
			continue
		}
		again, _ := get(t, srv, tc.path, http.Header{"If-None-Match": {etag}})
		if again.StatusCode != http.StatusNotModified {
			t.Errorf("GET %s with If-None-Match %s: status %d, want 304", tc.path, etag, again.StatusCode)
		}
	}
}

func TestDashboardWithoutSlashRedirects(t *testing.T) {
	t.Parallel()
	srv := publicServer(t)
	res, _ := get(t, srv, "/dashboard", nil)
	if res.StatusCode != http.StatusMovedPermanently {
		t.Fatalf("GET /dashboard: status %d, want 301", res.StatusCode)
	}
	if loc := res.Header.Get("Location"); loc != "/dashboard/" {
		t.Errorf("GET /dashboard: Location = %q, want /dashboard/", loc)
	}
	checkSecurityHeaders(t, "/dashboard", res.Header)
}

func TestUnknownFilesAreNotFound(t *testing.T) {
	t.Parallel()
	srv := publicServer(t)
	for _, path := range []string{
		"/dashboard/nope.js",
		"/dashboard/assets/app.js", // the embed directory is not exposed
		"/dashboard/app.js/",
		"/dashboard/index.htm",
		"/dashboard/.well-known/security.txt",
	} {
		res, body := get(t, srv, path, nil)
		if res.StatusCode != http.StatusNotFound {
			t.Errorf("GET %s: status %d, want 404", path, res.StatusCode)
		}
		if strings.Contains(string(body), "<html") {
			t.Errorf("GET %s: a 404 served the page", path)
		}
		checkSecurityHeaders(t, path, res.Header)
	}
	// Everything else keeps answering as the API does.
	res, _ := get(t, srv, "/dashboardx", nil)
	if res.StatusCode != http.StatusNotFound || res.Header.Get("Content-Type") != "application/json" {
		t.Errorf("GET /dashboardx: status %d, type %q; want the API's JSON 404", res.StatusCode, res.Header.Get("Content-Type"))
	}
}

// servedAssets fetches every file of assets/ through the handler, so that
// the checks below read exactly what is embedded and served.
func servedAssets(t *testing.T) map[string]string {
	t.Helper()
	srv := httptest.NewServer(dashboard.Handler())
	t.Cleanup(srv.Close)
	out := map[string]string{}
	err := fs.WalkDir(os.DirFS("assets"), ".", func(name string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		res, body := get(t, srv, dashboard.Path+name, nil)
		if res.StatusCode != http.StatusOK {
			t.Errorf("assets/%s is not served: status %d", name, res.StatusCode)
		}
		out[name] = string(body)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"index.html", "app.js", "style.css"} {
		if _, ok := out[want]; !ok {
			t.Fatalf("assets/%s is missing", want)
		}
	}
	return out
}

// urlPattern finds absolute URLs (any host, localhost and addresses too)
// and protocol-relative ones with a dotted host, in attributes, CSS and
// script alike.
var urlPattern = regexp.MustCompile(`(?i)https?://[^\s"'<>)]+|//[a-z0-9][a-z0-9-]*\.[a-z0-9.-]*[^\s"'<>)]*`)

// placeholderHost is the one kind of host an asset may name: reserved
// example domains (RFC 2606), which can only be sample text, never a
// resource the browser fetches.
var placeholderHost = regexp.MustCompile(`(?i)^(?:https?:)?//(?:[a-z0-9-]+\.)*example\.(?:com|org|net)(?:[/:?#]|$)`)

func TestAssetsReferenceNothingExternal(t *testing.T) {
	t.Parallel()
	for name, body := range servedAssets(t) {
		for _, u := range urlPattern.FindAllString(body, -1) {
			if !placeholderHost.MatchString(u) {
				t.Errorf("assets/%s references %q: the dashboard must work without external network", name, u)
			}
		}
		for _, bad := range []string{"@import", "url(", "fonts.googleapis", "cdn."} {
			if strings.Contains(body, bad) {
				t.Errorf("assets/%s contains %q: nothing may be loaded from elsewhere", name, bad)
			}
		}
	}
}

// TestAssetsNeedNoUnsafeCSP checks the sources against what the policy
// forbids (inline script, inline style, handler attributes) and against
// ways of turning API data into markup.
func TestAssetsNeedNoUnsafeCSP(t *testing.T) {
	t.Parallel()
	assets := servedAssets(t)
	html := assets["index.html"]
	scripts := regexp.MustCompile(`(?is)<script\b([^>]*)>(.*?)</script>`).FindAllStringSubmatch(html, -1)
	if len(scripts) == 0 {
		t.Fatal("index.html loads no script")
	}
	for _, s := range scripts {
		if !strings.Contains(s[1], `src="app.js"`) || strings.TrimSpace(s[2]) != "" {
			t.Errorf("index.html has an inline or foreign script: %s", s[0])
		}
	}
	if !strings.Contains(html, `<link rel="stylesheet" href="style.css">`) {
		t.Error("index.html does not load style.css")
	}
	for _, re := range []string{`(?i)<style\b`, `(?i)\sstyle\s*=`, `(?i)\son[a-z]+\s*=`, `(?i)javascript:`} {
		if m := regexp.MustCompile(re).FindString(html); m != "" {
			t.Errorf("index.html contains %q, which the Content-Security-Policy blocks", m)
		}
	}
	js := assets["app.js"]
	for _, bad := range []string{"innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "eval(", "new Function", `"style"`, "localStorage", "document.cookie"} {
		if strings.Contains(js, bad) {
			t.Errorf("app.js uses %s: API data must reach the page as text only, and the key only sessionStorage", bad)
		}
	}
	if !strings.Contains(js, "sessionStorage") || !strings.Contains(js, "textContent") {
		t.Error("app.js keeps the key in sessionStorage and writes text with textContent; one of them is gone")
	}
}

func TestHandlerServesOnlyGETAndHEAD(t *testing.T) {
	t.Parallel()
	srv := publicServer(t)
	req, err := http.NewRequestWithContext(t.Context(), http.MethodHead, srv.URL+"/dashboard/app.js", nil)
	if err != nil {
		t.Fatal(err)
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusOK || res.Header.Get("Content-Type") != "text/javascript; charset=utf-8" {
		t.Errorf("HEAD /dashboard/app.js: status %d, type %q", res.StatusCode, res.Header.Get("Content-Type"))
	}
	res, err = http.Post(srv.URL+"/dashboard/", "text/plain", strings.NewReader("x"))
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusMethodNotAllowed || !slices.Contains(strings.Split(res.Header.Get("Allow"), ", "), "GET") {
		t.Errorf("POST /dashboard/: status %d, Allow %q; want 405 allowing GET", res.StatusCode, res.Header.Get("Allow"))
	}
}
