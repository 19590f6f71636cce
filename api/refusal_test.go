package api_test

import (
	"context"
	"net/http"
	"net/netip"
	"strings"
	"testing"

	"github.com/nanohook/nanohook/api"
	"github.com/nanohook/nanohook/egress"
)

// loopbackDNS answers names under internal.test with 127.0.0.1, as an
// internal name pointed at a service on the host would, and every other
// name with a public address.
type loopbackDNS struct{}

func (loopbackDNS) LookupNetIP(_ context.Context, _, host string) ([]netip.Addr, error) {
	if strings.HasSuffix(host, ".internal.test") {
		return []netip.Addr{netip.MustParseAddr("127.0.0.1")}, nil
	}
	return []netip.Addr{netip.MustParseAddr("93.184.215.14")}, nil
}

// TestRefusalDoesNotNameResolvedAddress registers, through the real host
// check, a name that resolves to loopback: the 422 says the name resolves
// to a private address and not which (issue 13, item 8: the refusals were
// a resolver oracle for the internal DNS), while the operator's log keeps
// the address.
func TestRefusalDoesNotNameResolvedAddress(t *testing.T) {
	t.Parallel()
	b := setup(t, func(c *api.Config) {
		c.CheckURL = func(ctx context.Context, u string) error { return egress.CheckURL(ctx, loopbackDNS{}, u) }
	})
	_, key := b.newAccount(t, "acme")
	for _, tt := range []struct{ method, path, body string }{
		{"POST", "/api/v1/webhooks", `{"url":"https://db.internal.test/hook","events":["job.completed"]}`},
		{"PATCH", "/api/v1/webhooks/%d", `{"url":"https://cache.internal.test/hook"}`},
	} {
		path := tt.path
		if tt.method == "PATCH" {
			path = strings.Replace(path, "%d", "1", 1)
			b.newWebhook(t, key, "https://hooks.example.com/a") // id 1
		}
		r := b.pub(t, tt.method, path, key, tt.body)
		msg := r.wantError(t, http.StatusUnprocessableEntity, "validation_error", "url")
		if !strings.Contains(msg, "resolves to a private address") || strings.Contains(string(r.raw), "127.0.0.1") {
			t.Errorf("%s %s: %s, want the refusal without the address", tt.method, path, r.raw)
		}
	}
	logs := b.logs.String()
	for _, want := range []string{`host=db.internal.test`, `host=cache.internal.test`, `address=127.0.0.1`, `reason=loopback`} {
		if !strings.Contains(logs, want) {
			t.Errorf("log:\n%s\nwant it to contain %s", logs, want)
		}
	}
}
