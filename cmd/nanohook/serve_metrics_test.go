package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/nanohook/nanohook"
	"github.com/nanohook/nanohook/api"
	"github.com/nanohook/nanohook/store/sqlite"
)

// startLoggedServer is startTestServer with debug-level JSON logs kept in
// the returned writer, and retries an hour apart so that a failed attempt
// stays scheduled for the whole test.
func startLoggedServer(t *testing.T) (*server, *watchWriter) {
	t.Helper()
	logs := newWatchWriter("delivery failed")
	cfg := serveConfig{
		DB: filepath.Join(t.TempDir(), "nanohook.db"), Addr: "127.0.0.1:0", AdminAddr: "127.0.0.1:0",
		AdminToken: testAdminToken, AllowHTTP: true, AllowPrivateTargets: true,
		RetrySchedule:   []time.Duration{time.Hour},
		DeliveryTimeout: 5 * time.Second, DeliveryWorkers: 8, ShutdownTimeout: 5 * time.Second,
	}
	srv, err := startServer(context.Background(), cfg, newLogger(logs, "json", slog.LevelDebug))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := srv.shutdown(ctx); err != nil {
			t.Errorf("shutdown: %v", err)
		}
	})
	return srv, logs
}

// logLines decodes JSON log lines whose msg is msg.
func logLines(t *testing.T, logs *watchWriter, msg string) []map[string]any {
	t.Helper()
	var out []map[string]any
	sc := bufio.NewScanner(strings.NewReader(logs.String()))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		var m map[string]any
		if err := json.Unmarshal(sc.Bytes(), &m); err != nil {
			t.Fatalf("log line is not JSON: %s", sc.Text())
		}
		if m["msg"] == msg {
			out = append(out, m)
		}
	}
	return out
}

// scrapeMetrics GETs /metrics and parses it as Prometheus does.
func scrapeMetrics(t *testing.T, url string) map[string]*dto.MetricFamily {
	t.Helper()
	resp, err := http.Get(url + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(resp.Body)
		t.Fatalf("GET /metrics: %d %s", resp.StatusCode, b)
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(resp.Body)
	if err != nil {
		t.Fatalf("/metrics is not valid exposition text: %v", err)
	}
	return fams
}

// sample is the value of a counter or gauge series, the sample count of a
// histogram, or -1 when the series is absent. labels are name, value pairs.
func sample(fams map[string]*dto.MetricFamily, name string, labels ...string) float64 {
	for _, m := range fams[name].GetMetric() {
		match := true
		for i := 0; i < len(labels); i += 2 {
			found := false
			for _, l := range m.GetLabel() {
				found = found || (l.GetName() == labels[i] && l.GetValue() == labels[i+1])
			}
			match = match && found
		}
		if !match {
			continue
		}
		switch {
		case m.Counter != nil:
			return m.Counter.GetValue()
		case m.Gauge != nil:
			return m.Gauge.GetValue()
		case m.Histogram != nil:
			return float64(m.Histogram.GetSampleCount())
		}
	}
	return -1
}

type series struct {
	name   string
	labels []string
	want   float64
}

// waitForMetrics scrapes until every series has its value (the gauges are
// cached for a second, the counters follow the commits) and returns the
// last scrape.
func waitForMetrics(t *testing.T, url string, want []series) map[string]*dto.MetricFamily {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		fams := scrapeMetrics(t, url)
		var off []string
		for _, s := range want {
			if got := sample(fams, s.name, s.labels...); got != s.want {
				off = append(off, fmt.Sprintf("%s%v = %v, want %v", s.name, s.labels, got, s.want))
			}
		}
		if len(off) == 0 {
			return fams
		}
		if time.Now().After(deadline) {
			t.Fatalf("metrics never matched:\n%s", strings.Join(off, "\n"))
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// send makes a request with a bearer token and an optional X-Request-Id and
// returns the answer with its body read.
func send(t *testing.T, method, url, token, requestID, body string) (*http.Response, map[string]any) {
	t.Helper()
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+token)
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	if requestID != "" {
		req.Header.Set(api.HeaderRequestID, requestID)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var env map[string]any
	raw, _ := io.ReadAll(resp.Body)
	_ = json.Unmarshal(raw, &env)
	return resp, env
}

// TestServeMetrics delivers one event to an endpoint that accepts it, one
// that fails (a retry is scheduled) and one that is gone (the delivery
// fails and the endpoint is disabled), then checks /metrics and the
// delivery log lines.
func TestServeMetrics(t *testing.T) {
	t.Parallel()
	srv, logs := startLoggedServer(t)
	receiver := func(status int) string {
		r := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(status) }))
		t.Cleanup(r.Close)
		return r.URL
	}
	okURL, failingURL, goneURL := receiver(http.StatusOK), receiver(http.StatusInternalServerError), receiver(http.StatusGone)

	_, env := apiCall(t, "POST", srv.adminURL()+"/admin/v1/accounts", testAdminToken, `{"name":"metrics"}`)
	acct := dataOf(t, env)
	key := acct["api_key"].(string)
	const secret = "whsec_metrics-test-secret"
	endpoints := map[string]float64{} // url → endpoint id
	for _, u := range []string{okURL, failingURL, goneURL} {
		status, env := apiCall(t, "POST", srv.publicURL()+"/api/v1/webhooks", key,
			fmt.Sprintf(`{"url":%q,"events":["job.completed"],"secret_key":%q}`, u+"/hook?token=url-secret", secret))
		if status != 201 {
			t.Fatalf("create endpoint: %d %v", status, env)
		}
		endpoints[u] = dataOf(t, env)["id"].(float64)
	}

	resp, env := send(t, "POST", srv.adminURL()+"/admin/v1/events", testAdminToken, "publish-1",
		fmt.Sprintf(`{"account_id":%v,"event":"job.completed","task_id":"task_m","task_type":"image","data":{}}`, acct["id"]))
	if resp.StatusCode != 202 || resp.Header.Get(api.HeaderRequestID) != "publish-1" {
		t.Fatalf("publish: %d, X-Request-Id %q, %v", resp.StatusCode, resp.Header.Get(api.HeaderRequestID), env)
	}
	eventID := dataOf(t, env)["event_id"].(string)

	fams := waitForMetrics(t, srv.adminURL(), []series{
		{"nanohook_deliveries_total", []string{"outcome", "succeeded"}, 1},
		{"nanohook_deliveries_total", []string{"outcome", "retry_scheduled"}, 1},
		{"nanohook_deliveries_total", []string{"outcome", "failed"}, 1},
		{"nanohook_queue_depth", []string{"state", "scheduled"}, 1},
		{"nanohook_endpoints", []string{"state", "disabled"}, 1},
	})
	for _, s := range []series{
		{"nanohook_delivery_attempts_total", []string{"result", "2xx"}, 1},
		{"nanohook_delivery_attempts_total", []string{"result", "4xx"}, 1},
		{"nanohook_delivery_attempts_total", []string{"result", "5xx"}, 1},
		{"nanohook_delivery_attempts_total", []string{"result", "timeout"}, 0},
		{"nanohook_delivery_attempts_total", []string{"result", "network"}, 0},
		{"nanohook_delivery_duration_seconds", nil, 3},
		{"nanohook_events_published_total", nil, 1},
		{"nanohook_publish_duration_seconds", nil, 1},
		{"nanohook_queue_depth", []string{"state", "due"}, 0},
		{"nanohook_oldest_pending_delivery_age_seconds", nil, 0},
		{"nanohook_endpoints", []string{"state", "active"}, 2},
		{"nanohook_build_info", []string{"version", version}, 1},
	} {
		if got := sample(fams, s.name, s.labels...); got != s.want {
			t.Errorf("%s%v = %v, want %v", s.name, s.labels, got, s.want)
		}
	}
	if sample(fams, "go_goroutines") <= 0 || sample(fams, "process_open_fds") <= 0 {
		t.Error("the Go runtime and process collectors are missing")
	}

	// /metrics lives on the admin listener only, and only for GET.
	if resp, _ := send(t, "GET", srv.publicURL()+"/metrics", "", "", ""); resp.StatusCode != http.StatusNotFound {
		t.Errorf("GET /metrics on the public listener: %d", resp.StatusCode)
	}
	if resp, _ := send(t, "POST", srv.adminURL()+"/metrics", testAdminToken, "", "{}"); resp.StatusCode == http.StatusOK {
		t.Errorf("POST /metrics answered %d", resp.StatusCode)
	}

	// One line per committed attempt, naming the delivery, endpoint, event
	// and attempt; the failure that ends a delivery is a warning.
	byEndpoint := map[float64]map[string]any{}
	for _, msg := range []string{"delivery attempt", "delivery failed"} {
		for _, l := range logLines(t, logs, msg) {
			if l["event_id"] != eventID || l["attempt"] != float64(1) || l["delivery_id"] == nil {
				t.Errorf("delivery log line lacks its ids: %v", l)
			}
			byEndpoint[l["endpoint_id"].(float64)] = l
		}
	}
	for u, want := range map[string]struct{ level, outcome string }{
		okURL:      {"DEBUG", "succeeded"},
		failingURL: {"DEBUG", "retry_scheduled"},
		goneURL:    {"WARN", "failed"},
	} {
		l := byEndpoint[endpoints[u]]
		if l == nil || l["level"] != want.level || l["outcome"] != want.outcome {
			t.Errorf("log line of endpoint %v: %v, want level %s outcome %s", endpoints[u], l, want.level, want.outcome)
		}
	}
	if l := byEndpoint[endpoints[goneURL]]; l["endpoint_disabled"] == nil || l["response_status"] != float64(410) {
		t.Errorf("the 410's line: %v", l)
	}

	// The publish's request id is on its request line.
	var published bool
	for _, l := range logLines(t, logs, "api: request") {
		if l["request_id"] == "publish-1" && l["path"] == "/admin/v1/events" && l["status"] == float64(202) {
			published = true
		}
	}
	if !published {
		t.Errorf("no request line with request_id publish-1:\n%s", logs.String())
	}
	for _, secretText := range []string{secret, key, testAdminToken, "url-secret"} {
		if strings.Contains(logs.String(), secretText) {
			t.Errorf("the logs contain %q", secretText)
		}
	}
}

// TestServeRequestIDs: a sane caller id is kept, anything else replaced by
// a fresh one, on both listeners, and every request line carries it.
func TestServeRequestIDs(t *testing.T) {
	t.Parallel()
	srv, logs := startLoggedServer(t)
	generated := regexp.MustCompile(`^[A-Z2-7]{26}$`)
	seen := map[string]bool{}
	for _, c := range []struct {
		url, given string
		keep       bool
	}{
		{srv.publicURL() + "/healthz", "abc-DEF_123.x", true},
		{srv.adminURL() + "/healthz", strings.Repeat("a", 64), true},
		{srv.publicURL() + "/api/v1/webhooks", "", false}, // a 401 gets one too
		{srv.publicURL() + "/healthz", strings.Repeat("a", 65), false},
		{srv.publicURL() + "/healthz", "has space", false},
		{srv.publicURL() + "/healthz", `x" level=ERROR msg="forged`, false},
		{srv.adminURL() + "/no/such/route", "", false},
	} {
		resp, _ := send(t, "GET", c.url, "wrong-key", c.given, "")
		got := resp.Header.Get(api.HeaderRequestID)
		switch {
		case c.keep && got != c.given:
			t.Errorf("%s with X-Request-Id %q: answered %q, want it kept", c.url, c.given, got)
		case !c.keep && !generated.MatchString(got):
			t.Errorf("%s with X-Request-Id %q: answered %q, want a generated id", c.url, c.given, got)
		}
		if seen[got] {
			t.Errorf("request id %q handed out twice", got)
		}
		seen[got] = true
	}
	lines := logLines(t, logs, "api: request")
	if len(lines) != len(seen) {
		t.Fatalf("%d request lines for %d requests", len(lines), len(seen))
	}
	for _, l := range lines {
		if !seen[fmt.Sprint(l["request_id"])] {
			t.Errorf("request line with an id never answered: %v", l)
		}
	}
}

// TestServeReadyzWithStorageDown: /readyz answers 503 once storage is
// closed (while /healthz stays 200), and the logged cause carries the
// request id.
func TestServeReadyzWithStorageDown(t *testing.T) {
	t.Parallel()
	st, err := sqlite.Open(t.Context(), filepath.Join(t.TempDir(), "nanohook.db"))
	if err != nil {
		t.Fatal(err)
	}
	logs := newWatchWriter("readiness ping failed")
	cfg := api.Config{Store: st, Logger: newLogger(logs, "json", slog.LevelInfo), AdminToken: testAdminToken}
	urls := map[string]string{}
	for name, h := range map[string]http.Handler{"public": api.NewPublic(cfg), "admin": api.NewAdmin(cfg)} {
		ts := httptest.NewServer(h)
		t.Cleanup(ts.Close)
		urls[name] = ts.URL
		if resp, _ := send(t, "GET", ts.URL+"/readyz", "", "", ""); resp.StatusCode != http.StatusOK {
			t.Fatalf("%s /readyz with storage up: %d", name, resp.StatusCode)
		}
	}
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}
	for name, u := range urls {
		resp, env := send(t, "GET", u+"/readyz", "", "ready-"+name, "")
		errBody, _ := env["error"].(map[string]any)
		if resp.StatusCode != http.StatusServiceUnavailable || env["success"] != false || errBody["code"] != nanohook.CodeUnavailable {
			t.Errorf("%s /readyz with storage closed: %d %v", name, resp.StatusCode, env)
		}
		if resp, _ := send(t, "GET", u+"/healthz", "", "", ""); resp.StatusCode != http.StatusOK {
			t.Errorf("%s /healthz with storage closed: %d (liveness must not depend on storage)", name, resp.StatusCode)
		}
	}
	got := map[string]bool{}
	for _, l := range logLines(t, logs, "api: readiness ping failed") {
		got[fmt.Sprint(l["request_id"])] = true
	}
	if !got["ready-public"] || !got["ready-admin"] {
		t.Errorf("the readiness failures were not logged with their request ids:\n%s", logs.String())
	}
}
