package nanohook_test

import (
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/nanohook/nanohook"
)

func TestCutText(t *testing.T) {
	t.Parallel()
	long := strings.Repeat("x", 262144)
	tests := []struct {
		name, in string
		max      int
		want     string
	}{
		{"short text is kept", "HTTP 503", 1024, "HTTP 503"},
		{"exactly max is kept", strings.Repeat("a", 64), 64, strings.Repeat("a", 64)},
		{"long text ends in its length", long, 64, strings.Repeat("x", 64-len("…[262144 bytes]")) + "…[262144 bytes]"},
		{"one byte over", strings.Repeat("b", 65), 64, strings.Repeat("b", 64-len("…[65 bytes]")) + "…[65 bytes]"},
		{"invalid UTF-8 becomes U+FFFD", "a\xffb", 64, "a\uFFFDb"},
		{"NUL becomes U+FFFD", "a\x00b", 64, "a\uFFFDb"},
		// A character that does not fit whole is left out, not split.
		{"never splits a character", strings.Repeat("é", 40), 32, strings.Repeat("é", 9) + "…[80 bytes]"},
		{"a run of invalid bytes is one U+FFFD", strings.Repeat("\xff", 30), 32, "\uFFFD"},
		{"cleaning that grows the text past max cuts it", strings.Repeat("\x00", 30), 32,
			strings.Repeat("\uFFFD", 6) + "…[30 bytes]"},
	}
	for _, tt := range tests {
		got := nanohook.CutText(tt.in, tt.max)
		if got != tt.want {
			t.Errorf("%s: CutText(%.40q, %d) = %q, want %q", tt.name, tt.in, tt.max, got, tt.want)
		}
		if len(got) > tt.max {
			t.Errorf("%s: %d bytes, over max %d", tt.name, len(got), tt.max)
		}
		if !utf8.ValidString(got) || strings.ContainsRune(got, 0) {
			t.Errorf("%s: %q is not clean text", tt.name, got)
		}
	}
}

// TestCutTextNeverExceedsMax tries every length around each bound with
// text that cleaning grows (invalid bytes between multi-byte characters).
func TestCutTextNeverExceedsMax(t *testing.T) {
	t.Parallel()
	unit := "é\xff€\x00a"
	for _, max := range []int{nanohook.MaxStoredError, nanohook.MaxStoredLocation, nanohook.MaxStoredRemoteAddr} {
		for n := max - 8; n < 3*max; n++ {
			in := strings.Repeat(unit, n/len(unit)+1)[:n]
			got := nanohook.CutText(in, max)
			if len(got) > max || !utf8.ValidString(got) || strings.ContainsRune(got, 0) {
				t.Fatalf("CutText(%d bytes, %d) = %d bytes %q", n, max, len(got), got)
			}
		}
	}
}

func TestAttemptBounded(t *testing.T) {
	t.Parallel()
	a := nanohook.Attempt{
		Number:       3,
		Error:        strings.Repeat("e", 300000),
		Location:     "https://example.com/" + strings.Repeat("l", 200000),
		RemoteAddr:   strings.Repeat("r", 1000),
		ResponseBody: strings.Repeat("\x00", 10000),
	}
	b := a.Bounded()
	if b.Number != 3 {
		t.Errorf("Number = %d, want it kept", b.Number)
	}
	for _, f := range []struct {
		name string
		got  string
		max  int
	}{
		{"Error", b.Error, nanohook.MaxStoredError},
		{"Location", b.Location, nanohook.MaxStoredLocation},
		{"RemoteAddr", b.RemoteAddr, nanohook.MaxStoredRemoteAddr},
		{"ResponseBody", b.ResponseBody, nanohook.MaxStoredResponseBody},
	} {
		if len(f.got) > f.max {
			t.Errorf("%s: %d bytes, want at most %d", f.name, len(f.got), f.max)
		}
	}
	if !strings.HasSuffix(b.Error, "…[300000 bytes]") || !strings.HasPrefix(b.Location, "https://example.com/lll") {
		t.Errorf("Error = …%q, Location = %.30q…", b.Error[len(b.Error)-20:], b.Location)
	}
	if b.ResponseBody != a.ResponseBody[:nanohook.MaxStoredResponseBody] {
		t.Error("ResponseBody: want its first bytes kept as they are")
	}
}
