package egress

import (
	"context"
	"errors"
	"log/slog"
	"strings"
	"testing"
)

func TestCheckURL(t *testing.T) {
	t.Parallel()

	res := newFakeResolver().
		set("public.example", []string{"93.184.215.14", "2606:2800:21f:cb07:6820:80da:af6b:8b2c"}).
		set("internal.example", []string{"10.0.0.5", "fd00::5"}).
		set("metadata.example", []string{"169.254.169.254"}).
		set("mixed.example", []string{"93.184.215.14", "127.0.0.1"}).
		set("empty.example", []string{})

	tests := []struct {
		url       string
		forbidden bool   // wraps ErrForbiddenAddress
		errHas    string // "" means no error expected
		errHasNot string // e.g. the address a name resolved to
	}{
		{url: "https://public.example/hook"},
		{url: "https://public.example:8443/hook?x=1"},
		{url: "https://1.1.1.1/hook"},
		{url: "https://[2606:4700:4700::1111]/hook"},
		// Mixed answers pass at creation; the dialer refuses them later.
		{url: "https://mixed.example/hook"},

		{url: "http://127.0.0.1/", forbidden: true, errHas: `"127.0.0.1" is loopback`},
		{url: "http://10.1.2.3:8080/", forbidden: true, errHas: "private"},
		{url: "http://169.254.169.254/latest/meta-data/", forbidden: true, errHas: "cloud metadata"},
		{url: "http://[::1]:9000/", forbidden: true, errHas: "loopback"},
		{url: "http://[::ffff:127.0.0.1]/", forbidden: true, errHas: "loopback"},
		{url: "http://[fe80::1%25eth0]/", forbidden: true, errHas: "link-local"},
		{url: "http://0.0.0.0/", forbidden: true, errHas: "unspecified"},
		{url: "http://[64:ff9b::a00:1]/", forbidden: true, errHas: "NAT64"},
		{url: "http://2130706433/", forbidden: true, errHas: "127.0.0.1"},
		{url: "http://0x7f.1/", forbidden: true, errHas: "127.0.0.1"},
		{url: "http://0x7f000001/", forbidden: true, errHas: "127.0.0.1"},
		{url: "http://017700000001/", forbidden: true, errHas: "127.0.0.1"},
		{url: "http://127.1/", forbidden: true, errHas: "127.0.0.1"},
		{url: "http://127.0.0.1./", forbidden: true, errHas: "127.0.0.1"},
		{url: "http://3232235777/", forbidden: true, errHas: "192.168.1.1"},
		{url: "http://134744072/", errHas: "write it as 8.8.8.8"},
		{url: "http://1.2.3.4.5/", errHas: "not a valid host name"},
		{url: "http://localhost:8080/", forbidden: true, errHas: `"localhost"`},
		{url: "http://LOCALHOST./", forbidden: true, errHas: "localhost"},
		{url: "http://api.localhost/", forbidden: true, errHas: "localhost"},
		// A name's refusal never says what it resolved to: that would let
		// customers read our internal DNS (issue 13, item 8).
		{url: "http://internal.example/", forbidden: true, errHas: `"internal.example" resolves to a private address`, errHasNot: "10.0.0.5"},
		{url: "http://metadata.example/", forbidden: true, errHas: "resolves to a private address", errHasNot: "169.254"},
		{url: "https://user:pass@public.example/", errHas: "user info"},
		{url: "https://user@public.example/", errHas: "user info"},
		{url: "https://nowhere.example/", errHas: `"nowhere.example" does not resolve`},
		{url: "https://empty.example/", errHas: `"empty.example" does not resolve`},
		{url: "https:///path", errHas: "no host"},
		{url: "://bad", errHas: "invalid URL"},
	}
	for _, tt := range tests {
		err := CheckURL(context.Background(), res, tt.url)
		switch {
		case tt.errHas == "" && err != nil:
			t.Errorf("CheckURL(%q) = %v, want nil", tt.url, err)
		case tt.errHas == "":
		case err == nil:
			t.Errorf("CheckURL(%q) = nil, want error containing %q", tt.url, tt.errHas)
		default:
			if !strings.Contains(err.Error(), tt.errHas) {
				t.Errorf("CheckURL(%q) = %q, want it to contain %q", tt.url, err, tt.errHas)
			}
			// The API shows these messages to customers as they are
			// (issue 15, item 9): no package name in them.
			if strings.Contains(err.Error(), "egress") {
				t.Errorf("CheckURL(%q) = %q, want a message without the package name", tt.url, err)
			}
			if tt.errHasNot != "" && strings.Contains(err.Error(), tt.errHasNot) {
				t.Errorf("CheckURL(%q) = %q, want it not to contain %q", tt.url, err, tt.errHasNot)
			}
			if got := errors.Is(err, ErrForbiddenAddress); got != tt.forbidden {
				t.Errorf("CheckURL(%q): errors.Is(ErrForbiddenAddress) = %v, want %v (%v)", tt.url, got, tt.forbidden, err)
			}
		}
	}
}

func TestCheckURLNoLookupForLiteralsAndLocalhost(t *testing.T) {
	t.Parallel()

	res := newFakeResolver().set("localhost", []string{"93.184.215.14"})
	for _, u := range []string{"https://1.1.1.1/", "http://10.0.0.1/", "http://localhost/", "http://2130706433/"} {
		_ = CheckURL(context.Background(), res, u)
	}
	res.mu.Lock()
	defer res.mu.Unlock()
	if len(res.calls) != 0 {
		t.Errorf("resolver was asked %v, want no lookups", res.calls)
	}
}

func TestParseLegacyIPv4(t *testing.T) {
	t.Parallel()

	for in, want := range map[string]string{
		"2130706433":   "127.0.0.1",
		"0x7f.1":       "127.0.0.1",
		"0177.0.0.1":   "127.0.0.1",
		"127.1":        "127.0.0.1",
		"10.1.256":     "10.1.1.0",
		"0x":           "0.0.0.0",
		"4294967295":   "255.255.255.255",
		"1.2.3.4":      "1.2.3.4",
		"4294967296":   "",
		"256.1.1.1":    "",
		"1.2.3.4.5":    "",
		"08.1.1.1":     "",
		"1..2":         "",
		"0b1.1.1.1":    "",
		"example.1234": "",
	} {
		a, ok := parseLegacyIPv4(in)
		got := ""
		if ok {
			got = a.String()
		}
		if got != want {
			t.Errorf("parseLegacyIPv4(%q) = %q, want %q", in, got, want)
		}
	}
}

// TestForbiddenErrorLogsTheAddress checks that what the customer's message
// leaves out reaches the operator's log: slog writes the refusal with the
// address and the reason.
func TestForbiddenErrorLogsTheAddress(t *testing.T) {
	t.Parallel()
	res := newFakeResolver().set("db.internal.test", []string{"::ffff:10.20.30.40"})
	err := CheckURL(context.Background(), res, "https://db.internal.test/hook")
	if err == nil || strings.Contains(err.Error(), "10.20.30.40") {
		t.Fatalf("CheckURL = %v, want a refusal without the address", err)
	}
	var buf strings.Builder
	slog.New(slog.NewJSONHandler(&buf, nil)).Info("endpoint URL refused", slog.Any("error", err))
	for _, want := range []string{`"host":"db.internal.test"`, `"address":"::ffff:10.20.30.40"`, `"reason":"private, via IPv4-mapped 10.20.30.40"`} {
		if !strings.Contains(buf.String(), want) {
			t.Errorf("log line %s\nwant it to contain %s", buf.String(), want)
		}
	}
}
