package nanohook

import (
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"golang.org/x/net/idna"
)

// EndpointStatus is whether an endpoint receives deliveries.
type EndpointStatus string

// Endpoint states. A disabled endpoint keeps its history; events published
// while it is disabled are not delivered to it.
const (
	EndpointActive   EndpointStatus = "active"
	EndpointDisabled EndpointStatus = "disabled"
)

// ParseEndpointStatus checks s against the known states.
func ParseEndpointStatus(field, s string) (EndpointStatus, error) {
	switch EndpointStatus(s) {
	case EndpointActive, EndpointDisabled:
		return EndpointStatus(s), nil
	}
	return "", Invalid(field, "unknown status %q (want active or disabled)", s)
}

// Endpoint is a customer's webhook URL and what it subscribes to.
type Endpoint struct {
	ID             int64
	AccountID      int64
	URL            string
	Events         []EventType
	Status         EndpointStatus
	Description    string
	DisabledReason string
	Secret         string // the signing secret; never listed, shown once at creation
	// PreviousSecretExpiresAt is when the secret replaced by the last
	// rotation stops being used (X-Nano-Signature-Previous); zero when no
	// previous secret is valid.
	PreviousSecretExpiresAt time.Time
	CreatedAt               time.Time
	UpdatedAt               time.Time
}

// Subscribes reports whether e wants events of type t.
func (e *Endpoint) Subscribes(t EventType) bool { return slices.Contains(e.Events, t) }

// Limits of endpoint fields.
const (
	MaxURLLen         = 2048
	MinSecretLen      = 8
	MaxSecretLen      = 256
	MaxDescriptionLen = 512
)

// MaxSecretOverlap is the longest a rotated-out secret stays valid, and
// DefaultSecretOverlap how long it stays when the caller does not say.
const (
	DefaultSecretOverlap = 24 * time.Hour
	MaxSecretOverlap     = 7 * 24 * time.Hour
)

// ValidateURL checks a webhook URL: absolute, https (or http when allowHTTP),
// a host, a port (when given) from 1 to 65535, no user info, at most
// MaxURLLen bytes, no control characters. Whether the host is a private
// address is the egress guard's decision. NormalizeURL also gives the form
// to store.
func ValidateURL(field, raw string, allowHTTP bool) error {
	_, err := NormalizeURL(field, raw, allowHTTP)
	return err
}

// NormalizeURL checks a webhook URL as ValidateURL does and returns the form
// that is stored, delivered to and shown back: its ASCII form, so that the
// answer is a URI (RFC 3986) that every client and schema validator takes.
// An internationalized host name ("bücher.example") becomes its IDNA
// (punycode) form ("xn--bcher-kva.example"), as browsers and DNS spell it,
// and any other non-ASCII byte (in the path or query) is percent-encoded,
// as browsers send it. A URL that is ASCII already is returned unchanged,
// byte for byte. A host that IDNA refuses is a validation error on field.
func NormalizeURL(field, raw string, allowHTTP bool) (string, error) {
	u, err := checkURL(field, raw, allowHTTP)
	if err != nil {
		return "", err
	}
	if isASCII(raw) {
		return raw, nil
	}
	// User info is refused, so the authority is the host and port: it runs
	// from after "scheme://" to the first '/' or '?' (a fragment is refused).
	start := len(u.Scheme) + len("://")
	end := len(raw)
	if i := strings.IndexAny(raw[start:], "/?"); i >= 0 {
		end = start + i
	}
	authority := raw[start:end]
	if host := u.Hostname(); !isASCII(host) {
		if strings.HasPrefix(u.Host, "[") {
			return "", Invalid(field, "host %q is not a valid host name or IP address", host)
		}
		if authority, err = idna.Lookup.ToASCII(host); err != nil {
			return "", Invalid(field, "host %q is not a valid internationalized domain name", host)
		}
		if port := u.Port(); port != "" {
			authority += ":" + port
		}
	}
	ascii := raw[:start] + authority + percentEncodeNonASCII(raw[end:])
	// The ASCII form is checked again: it may be longer, and IDNA maps some
	// names to something else entirely ("１２７.０.０.１" is 127.0.0.1).
	if _, err := checkURL(field, ascii, allowHTTP); err != nil {
		return "", err
	}
	return ascii, nil
}

// checkURL is the checks of ValidateURL, and the URL as parsed.
func checkURL(field, raw string, allowHTTP bool) (*url.URL, error) {
	if raw == "" {
		return nil, Invalid(field, "is required")
	}
	if len(raw) > MaxURLLen {
		return nil, Invalid(field, "is longer than %d bytes", MaxURLLen)
	}
	for _, r := range raw {
		// C0, DEL, C1 and the two Unicode line separators: none may reach a
		// request line or a log line.
		if unicode.IsControl(r) || r == ' ' || r == '\u2028' || r == '\u2029' {
			return nil, Invalid(field, "contains a control character or space")
		}
	}
	u, err := url.Parse(raw)
	if err != nil || !u.IsAbs() || u.Opaque != "" {
		return nil, Invalid(field, "must be an absolute URL")
	}
	switch u.Scheme {
	case "https":
	case "http":
		if !allowHTTP {
			return nil, Invalid(field, "must use https (plain http is refused on this server)")
		}
	default:
		if allowHTTP {
			return nil, Invalid(field, "must use http or https")
		}
		return nil, Invalid(field, "must use https")
	}
	if u.User != nil {
		return nil, Invalid(field, "must not contain user info")
	}
	if u.Hostname() == "" {
		return nil, Invalid(field, "must name a host")
	}
	// url.Parse takes any run of digits as a port; one that no TCP port can
	// be would only fail at delivery, so it is refused here, before any
	// lookup of the host.
	if port := u.Port(); port != "" {
		if n, err := strconv.ParseUint(port, 10, 16); err != nil || n == 0 {
			return nil, Invalid(field, "port %s is out of range (a port is 1 to 65535)", port)
		}
	}
	if u.Fragment != "" {
		return nil, Invalid(field, "must not contain a fragment")
	}
	return u, nil
}

func isASCII(s string) bool {
	for i := range len(s) {
		if s[i] >= utf8.RuneSelf {
			return false
		}
	}
	return true
}

// percentEncodeNonASCII percent-encodes every byte of s outside ASCII, as
// the WHATWG URL standard does for a path or a query.
func percentEncodeNonASCII(s string) string {
	const hex = "0123456789ABCDEF"
	var b strings.Builder
	for i := range len(s) {
		if c := s[i]; c >= utf8.RuneSelf {
			b.WriteByte('%')
			b.WriteByte(hex[c>>4])
			b.WriteByte(hex[c&15])
		} else {
			b.WriteByte(c)
		}
	}
	return b.String()
}

// NormalizeEvents validates an event list: non-empty, every entry known,
// duplicates folded, order kept as given.
func NormalizeEvents(field string, in []string) ([]EventType, error) {
	if len(in) == 0 {
		return nil, Invalid(field, "must list at least one event")
	}
	out := make([]EventType, 0, len(in))
	for _, s := range in {
		t, err := ParseEventType(field, s)
		if err != nil {
			return nil, err
		}
		if !slices.Contains(out, t) {
			out = append(out, t)
		}
	}
	return out, nil
}

// ValidateSecret checks a caller-chosen signing secret: 8 to 256 printable
// characters (letters, marks, numbers, punctuation, symbols and the ASCII
// space, as unicode.IsPrint has it), counted as characters, not bytes. The
// HMAC key is the secret's UTF-8 bytes, which is also what Node's createHmac
// uses for a string key, so any printable secret verifies the same on both
// sides. Control characters are refused: they do not survive configuration
// files and could never be typed back.
func ValidateSecret(field, s string) error {
	if !utf8.ValidString(s) {
		return Invalid(field, "must be valid UTF-8")
	}
	n := utf8.RuneCountInString(s)
	if n < MinSecretLen || n > MaxSecretLen {
		return Invalid(field, "must be %d to %d characters (got %d)", MinSecretLen, MaxSecretLen, n)
	}
	for _, r := range s {
		if !unicode.IsPrint(r) {
			return Invalid(field, "must contain only printable characters")
		}
	}
	if strings.HasPrefix(s, ReservedSecretPrefix) {
		return Invalid(field, "must not start with %q (reserved for secrets encrypted at rest)", ReservedSecretPrefix)
	}
	return nil
}

// ReservedSecretPrefix starts every secret as stored encrypted at rest
// (store.Keyring). A caller's plaintext secret may not start with it, or it
// would be taken for an encrypted one when read back.
const ReservedSecretPrefix = "nhenc"

// ValidateDescription checks the free-text description of an endpoint.
func ValidateDescription(field, s string) error {
	if len(s) > MaxDescriptionLen {
		return Invalid(field, "is longer than %d bytes", MaxDescriptionLen)
	}
	if strings.ContainsFunc(s, func(r rune) bool { return r < 0x20 && r != '\t' || r == 0x7f }) {
		return Invalid(field, "contains a control character")
	}
	return nil
}
