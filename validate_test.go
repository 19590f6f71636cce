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
