package api_test

import (
	"fmt"
	"net/http"
	"strings"
	"testing"

	"github.com/nanohook/nanohook/api"
)

// exchangeLog is every answer of a test with what it may show.
type exchangeLog struct {
	b       *bundle
	answers []loggedAnswer
	sent    []string // every credential and secret a request carried
}

type loggedAnswer struct {
	what  string
	r     response
	shown string // the one secret this answer shows ("shown once"), or ""
}

// call makes one call with an Authorization header as given ("" sends
// none) and keeps its answer; shown is the secret the answer is documented
// to show, if any.
func (x *exchangeLog) call(t *testing.T, srv string, method, path, auth, body, shown string) response {
	t.Helper()
	s := x.b.public
	if srv == "admin" {
		s = x.b.admin
	}
	req, err := http.NewRequestWithContext(t.Context(), method, s.URL+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if body == "" {
		req.Body, req.GetBody, req.ContentLength = http.NoBody, nil, 0
	} else {
		req.Header.Set("Content-Type", "application/json")
	}
	if auth != "" {
		req.Header.Set("Authorization", auth)
		x.sent = append(x.sent, strings.TrimPrefix(auth, "Bearer "))
	}
	r := send(t, s, req)
	x.answers = append(x.answers, loggedAnswer{what: method + " " + path, r: r, shown: shown})
	return r
}

// TestSecretsNeverShown creates accounts, keys and endpoints with known
// secrets, rotates secrets, provokes errors with secrets in bodies, query
// strings and near-miss keys (until the rate limit answers 429), with the
// server logging at debug level. Then no log line, no list or error answer
// holds an API key, the admin token or a webhook secret, current or
// previous; the answers that create or rotate one show that one only.
func TestSecretsNeverShown(t *testing.T) {
	t.Parallel()
	b := setup(t, func(c *api.Config) { c.Tester = okTester{} })
	x := &exchangeLog{b: b}
	admin := "Bearer " + testAdminToken

	// Accounts and keys; their keys are shown once, in these answers.
	d := x.call(t, "admin", "POST", "/admin/v1/accounts", admin, `{"name":"holder"}`, "").wantData(t, http.StatusCreated)
	acct, keyA := int64(d["id"].(float64)), d["api_key"].(string)
	x.answers[len(x.answers)-1].shown = keyA
	newKey := func() (string, int64) {
		d := x.call(t, "admin", "POST", fmt.Sprintf("/admin/v1/accounts/%d/keys", acct), admin, "", "").wantData(t, http.StatusCreated)
		key := d["api_key"].(string)
		x.answers[len(x.answers)-1].shown = key
		return key, int64(d["id"].(float64))
	}
	key2, _ := newKey()
	revoked, revokedID := newKey()
	x.call(t, "admin", "DELETE", fmt.Sprintf("/admin/v1/accounts/%d/keys/%d", acct, revokedID), admin, "", "").wantData(t, http.StatusOK)
	auth := "Bearer " + keyA

	// Endpoints: one with a chosen secret, one generated; both rotated,
	// the first to a chosen secret with the old one still valid.
	const alpha, beta = "known-secret-alpha-3f9a1c", "known-secret-beta-8d2e0f"
	e1 := int64(x.call(t, "public", "POST", "/api/v1/webhooks", auth,
		`{"url":"https://hooks.example.com/a?token=query-token-77ab","events":["job.completed"],"secret_key":"`+alpha+`"}`, alpha).
		wantData(t, http.StatusCreated)["id"].(float64))
	d = x.call(t, "public", "POST", "/api/v1/webhooks", "Bearer "+key2, `{"url":"https://hooks.example.com/b","events":["job.failed"]}`, "").
		wantData(t, http.StatusCreated)
	e2, gen1 := int64(d["id"].(float64)), d["secret_key"].(string)
	x.answers[len(x.answers)-1].shown = gen1
	x.call(t, "public", "POST", fmt.Sprintf("/api/v1/webhooks/%d/rotate-secret", e1), auth,
		`{"secret_key":"`+beta+`","overlap_seconds":3600}`, beta).wantData(t, http.StatusOK)
	d = x.call(t, "public", "POST", fmt.Sprintf("/api/v1/webhooks/%d/rotate-secret", e2), auth, "", "").wantData(t, http.StatusOK)
	gen2 := d["secret_key"].(string)
	x.answers[len(x.answers)-1].shown = gen2

	// History to list: an event, a test delivery.
	x.call(t, "admin", "POST", "/admin/v1/events", admin, fmt.Sprintf(
		`{"account_id":%d,"event":"job.completed","task_id":"task_s","task_type":"image","data":{"ok":true}}`, acct), "").
		wantData(t, http.StatusAccepted)
	x.call(t, "public", "POST", fmt.Sprintf("/api/v1/webhooks/%d/test", e1), auth, "", "").wantData(t, http.StatusOK)

	// Lists and reads of everything.
	x.call(t, "public", "GET", "/api/v1/webhooks", auth, "", "").wantSuccess(t, http.StatusOK)
	for _, e := range []int64{e1, e2} {
		x.call(t, "public", "GET", fmt.Sprintf("/api/v1/webhooks/%d", e), auth, "", "").wantSuccess(t, http.StatusOK)
		r := x.call(t, "public", "GET", fmt.Sprintf("/api/v1/webhooks/%d/deliveries", e), auth, "", "")
		for _, id := range dataIDs(t, r) {
			x.call(t, "public", "GET", fmt.Sprintf("/api/v1/deliveries/%d", id), auth, "", "").wantSuccess(t, http.StatusOK)
		}
	}
	x.call(t, "public", "PATCH", fmt.Sprintf("/api/v1/webhooks/%d", e1), auth, `{"description":"renamed"}`, "").wantSuccess(t, http.StatusOK)

	// Errors whose requests carry secrets.
	const userinfo, queryToken = "url-password-5521", "query-token-internal-9911"
	for _, c := range []struct {
		method, path, body string
		status             int
	}{
		{"POST", "/api/v1/webhooks", `{"url":"not a url","events":["job.completed"],"secret_key":"` + beta + `"}`, 422},
		{"POST", "/api/v1/webhooks", `{"url":"https://x.example.com/","events":["job.completed"],"secret_key":"` + beta + `\u0007"}`, 422},
		{"POST", "/api/v1/webhooks", `{"url":"https://x.example.com/","events":["job.completed"],"secret_key":"` + strings.Repeat(alpha, 12) + `"}`, 422},
		{"POST", "/api/v1/webhooks", `{"url":"https://x.example.com/","events":["job.completed"],"secret_key":"` + alpha, 400},
		{"POST", "/api/v1/webhooks", `{"url":"https://x.example.com/","events":["job.completed"],"secret_key":["` + alpha + `"]}`, 422},
		{"POST", "/api/v1/webhooks", `{"url":"https://x.example.com/","events":["job.completed"],"secret":"` + alpha + `"}`, 400},
		{"POST", "/api/v1/webhooks", `{"url":"https://user:` + userinfo + `@hooks.example.com/","events":["job.completed"]}`, 422},
		{"POST", "/api/v1/webhooks", `{"url":"https://internal.example/hook?token=` + queryToken + `","events":["job.completed"]}`, 422},
		{"PATCH", fmt.Sprintf("/api/v1/webhooks/%d", e1), `{"secret_key":"` + beta + `"}`, 400},
		{"POST", fmt.Sprintf("/api/v1/webhooks/%d/rotate-secret", e1), `{"secret_key":"` + gen2 + `\n"}`, 422},
		{"GET", "/api/v1/webhooks?cursor=" + alpha, "", 400},
		{"GET", "/api/v1/webhooks?limit=" + beta, "", 400},
	} {
		r := x.call(t, "public", c.method, c.path, auth, c.body, "")
		if r.status != c.status {
			t.Fatalf("%s %s %s: %d %s, want %d", c.method, c.path, c.body, r.status, r.raw, c.status)
		}
	}
	r := x.call(t, "admin", "POST", "/admin/v1/events", admin, `{"account_id":"`+testAdminToken+`"}`, "")
	if r.status != 400 && r.status != 422 {
		t.Fatalf("publish with a token for an id: %d %s", r.status, r.raw)
	}

	// Keys and tokens that nearly match, on both listeners, until the
	// rate limit refuses them.
	near := func(s string) []string {
		last := "A"
		if strings.HasSuffix(s, "A") {
			last = "B"
		}
		return []string{s[:len(s)-1] + last, s + "x", s[:len(s)-1], strings.ToUpper(s), "x" + s}
	}
	misses, limited := 0, 0
	for _, l := range []struct{ srv, path, real string }{
		{"public", "/api/v1/webhooks", keyA},
		{"public", "/api/v1/webhooks", revoked},
		{"admin", "/admin/v1/events", testAdminToken},
		{"admin", "/admin/v1/events", keyA},
	} {
		for i, refused := 0, 0; refused < 2; i++ {
			miss := near(l.real)[i%5]
			if i >= 5 {
				miss = fmt.Sprintf("%s%d", miss, i)
			}
			method := "GET"
			if l.srv == "admin" {
				method = "POST"
			}
			r := x.call(t, l.srv, method, l.path, "Bearer "+miss, "", "")
			misses++
			switch r.status {
			case http.StatusUnauthorized:
				r.wantError(t, http.StatusUnauthorized, "unauthorized", "")
			case http.StatusTooManyRequests:
				r.wantError(t, http.StatusTooManyRequests, "rate_limited", "")
				refused++
				limited++
			default:
				t.Fatalf("near miss %d: %d %s", i, r.status, r.raw)
			}
			if i > 3*api.DefaultAuthFailureLimit {
				t.Fatalf("%d near misses on the %s listener and no 429", i, l.srv)
			}
		}
	}

	secrets := map[string]string{
		"API key": keyA, "second API key": key2, "revoked API key": revoked, "admin token": testAdminToken,
		"chosen secret (previous)": alpha, "chosen secret (current)": beta,
		"generated secret (previous)": gen1, "generated secret (current)": gen2,
		"URL password": userinfo, "refused URL's query token": queryToken,
	}
	shownOnce := 0
	for _, a := range x.answers {
		for name, s := range secrets {
			if s != a.shown && strings.Contains(string(a.r.raw), s) {
				t.Errorf("%s answered %d with the %s: %s", a.what, a.r.status, name, a.r.raw)
			}
		}
		if a.shown != "" {
			shownOnce++
			if !strings.Contains(string(a.r.raw), a.shown) {
				t.Errorf("%s does not show the secret it made", a.what)
			}
		}
	}
	logs := b.logs.String()
	for name, s := range secrets {
		if strings.Contains(logs, s) {
			t.Errorf("the log holds the %s", name)
		}
	}
	for _, s := range x.sent {
		if len(s) >= 8 && strings.Contains(logs, s) {
			t.Errorf("the log holds the credential %q that a request sent", s)
		}
	}
	// The log really was captured at debug level: one line per request.
	if n := strings.Count(logs, "api: request"); n != len(x.answers) {
		t.Fatalf("%d request lines in the log for %d requests", n, len(x.answers))
	}
	if t.Failed() {
		t.Logf("log:\n%s", logs)
	}
	t.Logf("secrets: %d requests (%d answers allowed to show the one secret they made; %d near-miss credentials, %d of them refused with 429), %d credentials sent, %d log bytes, %d secrets grepped",
		len(x.answers), shownOnce, misses, limited, len(x.sent), len(logs), len(secrets))
}
