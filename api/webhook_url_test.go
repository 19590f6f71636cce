package api_test

import (
	"context"
	"fmt"
	"net/http"
	"net/netip"
	"strings"
	"sync"
	"testing"

	"github.com/nanohook/nanohook/api"
	"github.com/nanohook/nanohook/egress"
)

// recordingDNS answers every name with a public address and keeps the
// names it was asked, so a test can tell whether a refusal came before any
// lookup.
type recordingDNS struct {
	mu    sync.Mutex
	names []string
}

func (d *recordingDNS) LookupNetIP(_ context.Context, _, host string) ([]netip.Addr, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.names = append(d.names, host)
	return []netip.Addr{netip.MustParseAddr("93.184.215.14")}, nil
}

func (d *recordingDNS) reset() {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.names = nil
}

func (d *recordingDNS) asked() []string {
	d.mu.Lock()
	defer d.mu.Unlock()
	return append([]string(nil), d.names...)
}

// setupRealHostCheck is setup with the real egress host check over dns.
func setupRealHostCheck(t *testing.T, dns egress.Resolver, opts ...func(*api.Config)) *bundle {
	t.Helper()
	return setup(t, append([]func(*api.Config){func(c *api.Config) {
		c.CheckURL = func(ctx context.Context, u string) error { return egress.CheckURL(ctx, dns, u) }
	}}, opts...)...)
}

// TestWebhookURLPortRange: a port outside 1–65535 is a 422 on url at create
// and update, for IP literals and host names alike, and a name is refused
// before it is looked up (issue 15, item 1: these were accepted with 201,
// or for a name reported as "does not resolve", and failed only at
// delivery with "invalid port").
func TestWebhookURLPortRange(t *testing.T) {
	t.Parallel()
	dns := &recordingDNS{}
	b := setupRealHostCheck(t, dns)
	_, key := b.newAccount(t, "acme")
	id := b.newWebhook(t, key, "https://hooks.example.com:8443/a")
	dns.reset()
	for _, u := range []string{
		"https://8.8.8.8:99999/hook",
		"https://8.8.8.8:0/hook",
		"https://[2001:4860:4860::8888]:70000/hook",
		"https://hooks.example.com:99999/hook",
		"https://hooks.example.com:0/hook",
		"https://hooks.example.com:65536/hook",
	} {
		for _, req := range []struct{ method, path, body string }{
			{"POST", "/api/v1/webhooks", `{"url":` + quote(u) + `,"events":["job.completed"]}`},
			{"PATCH", fmt.Sprintf("/api/v1/webhooks/%d", id), `{"url":` + quote(u) + `}`},
		} {
			msg := b.pub(t, req.method, req.path, key, req.body).wantError(t, http.StatusUnprocessableEntity, "validation_error", "url")
			if !strings.Contains(msg, "port") || !strings.Contains(msg, "1 to 65535") {
				t.Errorf("%s %s: %q, want it to name the port range", req.method, u, msg)
			}
		}
	}
	if got := dns.asked(); len(got) != 0 {
		t.Errorf("the host check looked up %v, want the port refused before any lookup", got)
	}
	if ids := b.listIDs(t, key); len(ids) != 1 {
		t.Fatalf("endpoints %v, want only the first", ids)
	}
	for _, u := range []string{"https://hooks.example.com:1/hook", "https://hooks.example.com:65535/hook", "https://[2001:4860:4860::8888]:443/hook"} {
		if d := b.pub(t, "POST", "/api/v1/webhooks", key, `{"url":`+quote(u)+`,"events":["job.completed"]}`).wantData(t, 201); d["url"] != u {
			t.Errorf("url %v, want %s", d["url"], u)
		}
	}
}

// TestWebhookURLIDN: an internationalized host is stored, checked and
// answered in its ASCII (punycode) form, on create, update, get and list,
// so every answer is the URI its schema says (issue 15, item 2: the URL came
// back as typed).
func TestWebhookURLIDN(t *testing.T) {
	t.Parallel()
	dns := &recordingDNS{}
	b := setupRealHostCheck(t, dns)
	_, key := b.newAccount(t, "acme")

	const want = "https://xn--bcher-kva.example/hook"
	d := b.pub(t, "POST", "/api/v1/webhooks", key, `{"url":"https://bücher.example/hook","events":["job.completed"]}`).wantData(t, 201)
	if d["url"] != want {
		t.Fatalf("create answered url %v, want %s", d["url"], want)
	}
	id := int64(d["id"].(float64))
	if got := b.pub(t, "GET", fmt.Sprintf("/api/v1/webhooks/%d", id), key, "").wantData(t, 200)["url"]; got != want {
		t.Fatalf("get answered url %v, want %s", got, want)
	}
	list := b.pub(t, "GET", "/api/v1/webhooks", key, "").wantSuccess(t, 200).([]any)
	if got := list[0].(map[string]any)["url"]; got != want {
		t.Fatalf("list answered url %v, want %s", got, want)
	}
	e, err := b.store.GetEndpoint(context.Background(), 1, id)
	if err != nil || e.URL != want {
		t.Fatalf("stored %q (%v), want %s", e.URL, err, want)
	}

	const patched = "https://xn--r8jz45g.xn--zckzah:8443/%E3%83%95%E3%83%83%E3%82%AF?q=%C3%BC"
	d = b.pub(t, "PATCH", fmt.Sprintf("/api/v1/webhooks/%d", id), key, `{"url":"https://例え.テスト:8443/フック?q=ü"}`).wantData(t, 200)
	if d["url"] != patched {
		t.Fatalf("update answered url %v, want %s", d["url"], patched)
	}
	// The host check resolved the names as DNS spells them.
	if got := strings.Join(dns.asked(), " "); got != "xn--bcher-kva.example xn--r8jz45g.xn--zckzah" {
		t.Errorf("looked up %q, want the punycode names", got)
	}

	// A host IDNA refuses is a 422 on url, and so is a name that maps to a
	// forbidden address once in ASCII.
	for _, u := range []string{"https://ü_x.example/hook", "https://-ü.example/hook", "https://１２７.０.０.１/hook"} {
		b.pub(t, "POST", "/api/v1/webhooks", key, `{"url":`+quote(u)+`,"events":["job.completed"]}`).wantError(t, 422, "validation_error", "url")
	}
}

// TestWebhookURLRefusalWording: refusals read as the API's own words: no
// internal package name ("egress: …") in the host check's messages, and a
// server that takes plain http does not say "must use https" of an ftp URL
// (issue 15, item 9).
func TestWebhookURLRefusalWording(t *testing.T) {
	t.Parallel()
	b := setupRealHostCheck(t, loopbackDNS{}, func(c *api.Config) { c.AllowHTTP = true })
	_, key := b.newAccount(t, "acme")
	for _, tt := range []struct{ url, want string }{
		{"ftp://hooks.example.com/", "url: must use http or https"},
		{"https://db.internal.test/hook", `url: forbidden address: host "db.internal.test" resolves to a private address`},
		{"https://10.0.0.1/hook", `url: forbidden address: host "10.0.0.1" is private`},
		{"https://2130706433/hook", `url: forbidden address: host "2130706433" is 127.0.0.1 (loopback)`},
		{"https://134744072/hook", `url: host "134744072" is a numeric IPv4 address in a non-standard form; write it as 8.8.8.8`},
		{"https://1.2.3.4.5/hook", `url: host "1.2.3.4.5" is not a valid host name or IP address`},
	} {
		msg := b.pub(t, "POST", "/api/v1/webhooks", key, `{"url":`+quote(tt.url)+`,"events":["job.completed"]}`).wantError(t, 422, "validation_error", "url")
		if msg != tt.want {
			t.Errorf("%s: message %q, want %q", tt.url, msg, tt.want)
		}
	}
}
