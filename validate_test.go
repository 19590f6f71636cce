package nanohook_test

import (
	"errors"
	"net/url"
	"strings"
	"testing"
	"unicode"
	"unicode/utf8"

	"go.uber.org/goleak"

	"github.com/nanohook/nanohook"
)

// TestMain fails the package if a test leaves goroutines behind.
func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// hostileStrings are inputs that have broken other services' validation:
// header injection, NUL truncation, invalid UTF-8, SQL and path tricks.
var hostileStrings = []string{
	"https://example.com/hook\r\nX-Injected: 1",
	"https://example.com/hook\nX-Injected: 1",
	"https://example.com/hook\rX-Injected: 1",
	"https://example.com/h\x00ook",
	"https://example.com/\x7fhook",
	"https://example.com/hook\xff\xfe",
	"https://example.com/hook\u2028",
	"https://example.com/hook\u0085", // NEL, a C1 control
	"https://example.com/\u009bhook", // CSI, a C1 control
	"https://exa mple.com/hook",
	"https://example.com/hook#frag",
	"https://user:pass@example.com/hook",
	"javascript:alert(1)",
	"file:///etc/passwd",
	"//example.com/hook",
	"https:///hook",
	"https://example.com/'; DROP TABLE endpoints;--",
	"whsec_abc\r\nX-Injected: 1",
	"whsec_abc\x00def",
	"whsec_\xc3\x28invalid",
	"whsec_\u200babc\u200bdef", // zero-width spaces: format characters, not printable
	"' OR 1=1 --  ",
	"nhenc1:0123abcd:AAAA", // looks like a secret encrypted at rest
}

// TestValidatorsRefuseHostileInput checks that no URL or secret accepted by
// the validators can carry a line break, a NUL or invalid UTF-8 into a
// header, a log line or the database, and that every refusal names its field.
func TestValidatorsRefuseHostileInput(t *testing.T) {
	for _, s := range hostileStrings {
		if err := nanohook.ValidateURL("url", s, true); err == nil {
			if !acceptableURL(s, true) {
				t.Errorf("ValidateURL accepted %q", s)
			}
		} else {
			wantField(t, err, "url", s)
		}
		if err := nanohook.ValidateSecret("secret_key", s); err == nil {
			if !acceptableSecret(s) {
				t.Errorf("ValidateSecret accepted %q", s)
			}
		} else {
			wantField(t, err, "secret_key", s)
		}
		if err := nanohook.ValidateDescription("description", s); err == nil && strings.ContainsAny(s, "\r\n\x00") {
			t.Errorf("ValidateDescription accepted %q", s)
		}
	}
	// SQL-looking text is data: where it is otherwise valid it is accepted
	// as is (the stores bind parameters; the store tests read it back).
	if err := nanohook.ValidateURL("url", "https://example.com/hook?q=';DROP%20TABLE%20endpoints;--", false); err != nil {
		t.Errorf("a URL with SQL-looking text in its path was refused: %v", err)
	}
	if err := nanohook.ValidateSecret("secret_key", "' OR 1=1 --  "); err != nil {
		t.Errorf("a printable secret with SQL-looking text was refused: %v", err)
	}
}

// FuzzValidateURL checks ValidateURL's promise on any input: what it accepts
// is a short absolute http(s) URL with a host, no user info, no fragment and
// no control character or space, so it can go into a request line and a log
// line as is. Refusals are *nanohook.Error values naming the field.
func FuzzValidateURL(f *testing.F) {
	f.Add("https://example.com/hook", true)
	f.Add("http://127.0.0.1:9000/hook?x=1", false)
	f.Add("https://bücher.example:8443/ü?q=ü", false)
	f.Add("https://example.com:99999/hook", true)
	f.Add("ftp://example.com/", true)
	for _, s := range hostileStrings {
		f.Add(s, true)
	}
	f.Fuzz(func(t *testing.T, s string, allowHTTP bool) {
		err := nanohook.ValidateURL("url", s, allowHTTP)
		if err != nil {
			wantField(t, err, "url", s)
			return
		}
		if !acceptableURL(s, allowHTTP) {
			t.Fatalf("ValidateURL accepted %q (allowHTTP %v)", s, allowHTTP)
		}
		// What is stored is ASCII, as valid as what was sent, the same
		// bytes when those were ASCII already, and stays as it is when
		// sent again.
		n, err := nanohook.NormalizeURL("url", s, allowHTTP)
		if err != nil {
			wantField(t, err, "url", s)
			return
		}
		if strings.ContainsFunc(n, func(r rune) bool { return r >= utf8.RuneSelf }) || !acceptableURL(n, allowHTTP) {
			t.Fatalf("NormalizeURL(%q) = %q, not an acceptable ASCII URL", s, n)
		}
		if again, err := nanohook.NormalizeURL("url", n, allowHTTP); err != nil || again != n {
			t.Fatalf("NormalizeURL(%q) = %q, but NormalizeURL(%q) = %q, %v", s, n, n, again, err)
		}
		if !strings.ContainsFunc(s, func(r rune) bool { return r >= utf8.RuneSelf }) && n != s {
			t.Fatalf("NormalizeURL changed the ASCII URL %q to %q", s, n)
		}
	})
}

// FuzzValidateSecret checks ValidateSecret's promise on any input: what it
// accepts is valid UTF-8 of 8 to 256 printable characters, so it has no line
// break that could split a header or a configuration line.
func FuzzValidateSecret(f *testing.F) {
	f.Add("whsec_quickstart_secret")
	f.Add(strings.Repeat("é", 256))
	for _, s := range hostileStrings {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		err := nanohook.ValidateSecret("secret_key", s)
		if err != nil {
			wantField(t, err, "secret_key", s)
			return
		}
		if !acceptableSecret(s) {
			t.Fatalf("ValidateSecret accepted %q", s)
		}
	})
}

func acceptableURL(s string, allowHTTP bool) bool {
	if len(s) > nanohook.MaxURLLen || strings.ContainsFunc(s, func(r rune) bool {
		return r <= ' ' || unicode.IsControl(r) || r == '\u2028' || r == '\u2029'
	}) {
		return false
	}
	u, err := url.Parse(s)
	if err != nil || u.User != nil || u.Fragment != "" || u.Hostname() == "" {
		return false
	}
	return u.Scheme == "https" || u.Scheme == "http" && allowHTTP
}

func acceptableSecret(s string) bool {
	n := utf8.RuneCountInString(s)
	return utf8.ValidString(s) && n >= nanohook.MinSecretLen && n <= nanohook.MaxSecretLen &&
		!strings.ContainsFunc(s, func(r rune) bool { return !unicode.IsPrint(r) }) &&
		!strings.HasPrefix(s, nanohook.ReservedSecretPrefix)
}

// wantField fails unless err is a validation error naming field.
func wantField(t *testing.T, err error, field, input string) {
	t.Helper()
	var ne *nanohook.Error
	if !errors.As(err, &ne) || ne.Field != field || ne.Message == "" {
		t.Fatalf("input %q: error %#v, want a *nanohook.Error naming %q", input, err, field)
	}
}

// TestValidateURLPortRange: a port no TCP connection can use is refused
// with the URL (issue 15, item 1), for IP literals and names alike, and
// every port from 1 to 65535 is taken.
func TestValidateURLPortRange(t *testing.T) {
	for _, s := range []string{
		"https://8.8.8.8:99999/hook",
		"https://8.8.8.8:0/hook",
		"https://example.com:0/hook",
		"https://example.com:65536/hook",
		"https://example.com:99999/hook",
		"https://example.com:00/hook",
		"https://example.com:18446744073709551617/hook",
		"https://[2001:db8::1]:70000/hook",
		"https://bücher.example:70000/hook",
	} {
		err := nanohook.ValidateURL("url", s, false)
		if err == nil {
			t.Errorf("ValidateURL(%q) = nil, want a refusal of the port", s)
			continue
		}
		wantField(t, err, "url", s)
		if !strings.Contains(err.Error(), "port") || !strings.Contains(err.Error(), "1 to 65535") {
			t.Errorf("ValidateURL(%q) = %q, want it to name the port range", s, err)
		}
	}
	for _, s := range []string{
		"https://example.com:1/hook",
		"https://example.com:443/hook",
		"https://example.com:065535/hook",
		"https://example.com:65535/hook",
		"https://[2001:db8::1]:8443/hook",
		"https://example.com:/hook", // an empty port is the scheme's
	} {
		if err := nanohook.ValidateURL("url", s, false); err != nil {
			t.Errorf("ValidateURL(%q) = %v, want nil", s, err)
		}
	}
}

// TestNormalizeURLIDN: an internationalized host is stored and answered in
// its punycode form, other non-ASCII bytes percent-encoded, so the stored
// URL is an RFC 3986 URI (issue 15, item 2); an ASCII URL is kept byte for
// byte.
func TestNormalizeURLIDN(t *testing.T) {
	for in, want := range map[string]string{
		"https://bücher.example/hook":               "https://xn--bcher-kva.example/hook",
		"https://BÜCHER.example:8443/hook?x=1":      "https://xn--bcher-kva.example:8443/hook?x=1",
		"https://bücher.example":                    "https://xn--bcher-kva.example",
		"https://bücher.example?q=ü":                "https://xn--bcher-kva.example?q=%C3%BC",
		"https://例え.テスト/フック":                        "https://xn--r8jz45g.xn--zckzah/%E3%83%95%E3%83%83%E3%82%AF",
		"https://example.com/bücher":                "https://example.com/b%C3%BCcher",
		"https://Example.COM:443/Hook?A=b%20c":      "https://Example.COM:443/Hook?A=b%20c",
		"HTTPS://example.com/hook":                  "HTTPS://example.com/hook",
		"https://xn--bcher-kva.example/hook":        "https://xn--bcher-kva.example/hook",
		"https://b%C3%BCcher.example/hook":          "https://b%C3%BCcher.example/hook",
		"https://[2001:db8::1]:8443/ü":              "https://[2001:db8::1]:8443/%C3%BC",
		"https://public.example/a/ü/b?c=ü&d=%C3%BC": "https://public.example/a/%C3%BC/b?c=%C3%BC&d=%C3%BC",
	} {
		got, err := nanohook.NormalizeURL("url", in, false)
		if err != nil || got != want {
			t.Errorf("NormalizeURL(%q) = %q, %v, want %q", in, got, err, want)
			continue
		}
		if err := nanohook.ValidateURL("url", got, false); err != nil {
			t.Errorf("NormalizeURL(%q) = %q, which ValidateURL refuses: %v", in, got, err)
		}
	}
	for _, in := range []string{
		"https://ü_x.example/hook", // not a valid IDNA label
		"https://-ü.example/hook",
		"https://[fe80::1%25eü]/hook",
		"https://bücher.example:99999/hook",
		"https://example.com/" + strings.Repeat("ü", 1000), // too long once encoded
	} {
		if got, err := nanohook.NormalizeURL("url", in, false); err == nil {
			t.Errorf("NormalizeURL(%q) = %q, want a refusal", in, got)
		} else {
			wantField(t, err, "url", in)
		}
	}
}

// TestValidateURLSchemeMessage: a server that takes plain http says so when
// it refuses another scheme, instead of "must use https" (issue 15, item 9).
func TestValidateURLSchemeMessage(t *testing.T) {
	for _, tt := range []struct {
		allowHTTP bool
		url, want string
	}{
		{true, "ftp://example.com/", "url: must use http or https"},
		{false, "ftp://example.com/", "url: must use https"},
		{false, "http://example.com/", "url: must use https (plain http is refused on this server)"},
	} {
		err := nanohook.ValidateURL("url", tt.url, tt.allowHTTP)
		if err == nil || err.Error() != tt.want {
			t.Errorf("ValidateURL(%q, allowHTTP %v) = %v, want %q", tt.url, tt.allowHTTP, err, tt.want)
		}
	}
}
