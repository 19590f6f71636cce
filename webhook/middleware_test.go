package webhook

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"
)

func TestMiddleware(t *testing.T) {
	t.Parallel()
	now := time.Unix(1734948000, 0)
	v := &Verifier{Secrets: []string{"whsec_test"}, Now: func() time.Time { return now }, MaxBodyBytes: 1 << 10}
	body := `{"event":"job.completed","task_id":"task_1","task_type":"image","status":"completed","data":{},"timestamp":"2024-12-23T10:00:00Z"}`
	ts := strconv.FormatInt(now.Unix(), 10)

	var seen string
	h := Middleware(v, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, err := io.ReadAll(r.Body)
		if err != nil {
			t.Errorf("next could not read the body: %v", err)
		}
		seen = string(b)
		w.WriteHeader(http.StatusNoContent)
	}))

	request := func(body string, headers map[string]string) *httptest.ResponseRecorder {
		r := httptest.NewRequest(http.MethodPost, "/hook", strings.NewReader(body))
		for k, v := range headers {
			r.Header.Set(k, v)
		}
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		return w
	}
	good := map[string]string{HeaderTimestamp: ts, HeaderSignature: Sign("whsec_test", now.Unix(), []byte(body))}

	w := request(body, good)
	if w.Code != http.StatusNoContent || seen != body {
		t.Fatalf("good delivery: status %d, next saw %q", w.Code, seen)
	}

	big := strings.Repeat(" ", 2<<10) + body
	tests := []struct {
		name    string
		body    string
		headers map[string]string
		status  int
		text    string
	}{
		{"bad signature", body, map[string]string{HeaderTimestamp: ts, HeaderSignature: Sign("other", now.Unix(), []byte(body))}, 401, "invalid signature"},
		{"tampered body", body + " ", good, 401, "invalid signature"},
		{"stale", body, map[string]string{HeaderTimestamp: "1734947000", HeaderSignature: Sign("whsec_test", 1734947000, []byte(body))}, 401, "timestamp out of tolerance"},
		{"no signature", body, map[string]string{HeaderTimestamp: ts}, 400, "missing signature"},
		{"no timestamp", body, map[string]string{HeaderSignature: good[HeaderSignature]}, 400, "missing timestamp"},
		{"bad timestamp", body, map[string]string{HeaderTimestamp: "soon", HeaderSignature: good[HeaderSignature]}, 400, "invalid timestamp"},
		{"oversize", big, map[string]string{HeaderTimestamp: ts, HeaderSignature: Sign("whsec_test", now.Unix(), []byte(big))}, 413, "body too large"},
	}
	for _, tc := range tests {
		seen = ""
		w := request(tc.body, tc.headers)
		if w.Code != tc.status || strings.TrimSpace(w.Body.String()) != tc.text || seen != "" {
			t.Errorf("%s: status %d %q (next saw %q), want %d %q", tc.name, w.Code, w.Body.String(), seen, tc.status, tc.text)
		}
	}
}

// TestMiddlewareChunkedOversize covers a body whose size is not announced.
func TestMiddlewareChunkedOversize(t *testing.T) {
	t.Parallel()
	v := &Verifier{Secrets: []string{"s"}, MaxBodyBytes: 8}
	h := Middleware(v, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		t.Error("next called for an oversize body")
	}))
	r := httptest.NewRequest(http.MethodPost, "/", io.MultiReader(strings.NewReader("0123456789")))
	r.ContentLength = -1
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	if w.Code != http.StatusRequestEntityTooLarge {
		t.Fatalf("status %d, want 413", w.Code)
	}
}

func TestMiddlewareMisconfigured(t *testing.T) {
	t.Parallel()
	h := Middleware(&Verifier{}, http.NotFoundHandler())
	w := httptest.NewRecorder()
	r := httptest.NewRequest(http.MethodPost, "/", strings.NewReader("{}"))
	r.Header.Set(HeaderTimestamp, "1")
	r.Header.Set(HeaderSignature, "v1=00")
	h.ServeHTTP(w, r)
	if w.Code != http.StatusInternalServerError {
		t.Fatalf("status %d, want 500", w.Code)
	}
	defer func() {
		if recover() == nil {
			t.Error("Middleware(nil, …) did not panic")
		}
	}()
	Middleware(nil, http.NotFoundHandler())
}

// TestMiddlewareDefaultTakesLargestDelivery: with no MaxBodyBytes the
// middleware accepts the largest body a server may deliver
// (MaxPayloadBytes) and refuses one byte more.
func TestMiddlewareDefaultTakesLargestDelivery(t *testing.T) {
	t.Parallel()
	now := time.Unix(1734948000, 0)
	v := &Verifier{Secrets: []string{"whsec_test"}, Now: func() time.Time { return now }}
	h := Middleware(v, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusNoContent) }))
	send := func(size int) int {
		head := `{"event":"job.completed","data":{"s":"`
		tail := `"}}`
		body := head + strings.Repeat("x", size-len(head)-len(tail)) + tail
		r := httptest.NewRequest(http.MethodPost, "/hook", strings.NewReader(body))
		r.Header.Set(HeaderTimestamp, strconv.FormatInt(now.Unix(), 10))
		r.Header.Set(HeaderSignature, Sign("whsec_test", now.Unix(), []byte(body)))
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		return w.Code
	}
	if got := send(MaxPayloadBytes); got != http.StatusNoContent {
		t.Errorf("a delivery of MaxPayloadBytes: status %d, want 204", got)
	}
	if got := send(MaxPayloadBytes + 1); got != http.StatusRequestEntityTooLarge {
		t.Errorf("a body of MaxPayloadBytes+1: status %d, want 413", got)
	}
}
