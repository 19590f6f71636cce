package nanohook

import (
	"strconv"
	"strings"
	"unicode/utf8"
)

// Sizes of the text a receiver controls that nanohook keeps. A receiver
// chooses its status line, its headers and how its connection fails, and
// each attempt stores what came back (in the attempt, and again in its
// delivery's last_error) and logs it; without a bound one answer costs what
// the receiver likes, in the database, in every history page that shows it
// and in every log line. The response body has its own bound,
// MaxStoredResponseBody.
const (
	// MaxStoredError bounds an attempt's error, and so its delivery's
	// last_error and the log line of the attempt: every message nanohook
	// writes itself fits, and so does the start of what a receiver made Go
	// quote (a malformed status line) or sent back (a Location).
	MaxStoredError = 1 << 10
	// MaxStoredLocation bounds the Location kept of a 3xx answer: the
	// longest endpoint URL (MaxURLLen), so that any URL the customer could
	// register instead is kept whole.
	MaxStoredLocation = MaxURLLen
	// MaxStoredRemoteAddr bounds an attempt's remote address. An "ip:port"
	// is at most 47 bytes and an IPv6 zone 16 more; the bound only matters
	// should something else ever end up there.
	MaxStoredRemoteAddr = 128
)

// CutText returns s as nanohook keeps and logs text that a receiver
// controls: valid UTF-8 without NUL (other bytes become U+FFFD, as
// PostgreSQL text columns and JSON need them anyway, so both drivers store
// the same bytes), and at most max bytes. Longer text keeps its start and
// ends in an ellipsis and the length of s in bytes, as in
// `malformed HTTP status code "xxxx…[262170 bytes]`, so that a reader sees
// both that it was cut and by how much. max must leave room for that ending
// (it is at most 30 bytes); every bound above does.
//
// Text that is already clean and short enough is returned as it is, without
// copying: the common case costs one scan.
func CutText(s string, max int) string {
	if len(s) <= max && cleanText(s) {
		return s
	}
	n := len(s)
	if n > max {
		// Only the part that can be kept is cleaned, however long s is.
		end := max
		for i := 0; i < utf8.UTFMax-1 && end > 0 && !utf8.RuneStart(s[end]); i++ {
			end-- // do not split a character: its start would become U+FFFD
		}
		s = s[:end]
	}
	if !cleanText(s) {
		s = strings.ReplaceAll(strings.ToValidUTF8(s, "\uFFFD"), "\x00", "\uFFFD")
	}
	if n <= max && len(s) <= max {
		return s // cleaned, and still within max
	}
	suffix := "…[" + strconv.Itoa(n) + " bytes]"
	keep := max - len(suffix)
	if keep >= len(s) {
		return s + suffix
	}
	if keep < 0 {
		keep = 0
	}
	for keep > 0 && !utf8.RuneStart(s[keep]) {
		keep-- // s is valid UTF-8 by now: at most three steps
	}
	return s[:keep] + suffix
}

// cleanText reports whether s is valid UTF-8 without NUL.
func cleanText(s string) bool {
	return utf8.ValidString(s) && strings.IndexByte(s, 0) < 0
}

// Bounded returns a with every field a receiver controls cut to its
// documented size: Error, Location and RemoteAddr by CutText, and
// ResponseBody to its first MaxStoredResponseBody bytes (kept as bytes: a
// body need not be text). The delivery engine bounds every attempt it makes
// before anything logs or returns it, and the stores bound every attempt
// they write again, so that no caller can store more.
func (a Attempt) Bounded() Attempt {
	a.Error = CutText(a.Error, MaxStoredError)
	a.Location = CutText(a.Location, MaxStoredLocation)
	a.RemoteAddr = CutText(a.RemoteAddr, MaxStoredRemoteAddr)
	if len(a.ResponseBody) > MaxStoredResponseBody {
		a.ResponseBody = a.ResponseBody[:MaxStoredResponseBody]
	}
	return a
}
