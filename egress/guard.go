package egress

import (
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
)

// ErrForbiddenAddress is wrapped by every refusal of the guard, at dial time
// and in CheckURL, so callers can tell "the customer pointed us at an internal
// address" (a validation problem to report) from a network failure (something
// to retry). The refusal is a *ForbiddenError. Its text starts the
// refusal's message, which customers read, so it names no package.
var ErrForbiddenAddress = errors.New("forbidden address")

// ForbiddenError is a refusal of the guard: a host that is, or resolves to,
// a Forbidden address. Its message reaches customers (an endpoint URL
// refused, an attempt's error), so for a name it never says what the name
// resolved to, only "a private address" (private standing for every
// Forbidden range): otherwise anyone could register names and read the
// answers of our internal DNS from the refusals. The address stays in the
// error for the operator's log, which LogValue writes.
type ForbiddenError struct {
	Host   string     // as the URL names it
	Addr   netip.Addr // the forbidden address; invalid for localhost names
	Reason string     // why Addr is forbidden: "loopback", "private", …
	// Resolved is set when Addr is what the name Host resolved to, and
	// not something the URL itself spells.
	Resolved bool
}

// Error names the host and, when the URL spells the address itself (an IP
// literal, a numeric form, localhost), the address and why it is
// forbidden; those the customer wrote, so saying them tells nothing new.
func (e *ForbiddenError) Error() string {
	switch {
	case e.Resolved:
		return fmt.Sprintf("%v: host %q resolves to a private address", ErrForbiddenAddress, e.Host)
	case !e.Addr.IsValid() || e.Addr.String() == e.Host:
		return fmt.Sprintf("%v: host %q is %s", ErrForbiddenAddress, e.Host, e.Reason)
	default: // a numeric form such as "2130706433"
		return fmt.Sprintf("%v: host %q is %s (%s)", ErrForbiddenAddress, e.Host, e.Addr, e.Reason)
	}
}

// Unwrap makes errors.Is(err, ErrForbiddenAddress) hold.
func (e *ForbiddenError) Unwrap() error { return ErrForbiddenAddress }

// LogValue is what slog writes for the error: the message and, for the
// operator, the address and the reason that the message leaves out.
func (e *ForbiddenError) LogValue() slog.Value {
	attrs := []slog.Attr{slog.String("msg", e.Error()), slog.String("host", e.Host)}
	if e.Addr.IsValid() {
		attrs = append(attrs, slog.String("address", e.Addr.String()))
	}
	return slog.GroupValue(append(attrs, slog.String("reason", e.Reason))...)
}

// Forbidden reports whether a delivery may never reach addr, because the
// address belongs to this host, to a private or otherwise non-public network,
// or is not a unicast address at all. IPv6 forms that carry an IPv4 address
// (IPv4-mapped, IPv4-compatible, IPv4-translated, NAT64, 6to4) are judged by
// the IPv4 address they carry, so 64:ff9b::10.0.0.1 is as forbidden as
// 10.0.0.1. A zone is ignored; an invalid Addr is forbidden.
func Forbidden(addr netip.Addr) bool {
	return forbiddenReason(addr) != ""
}

// namedPrefix is one forbidden range and the word that explains it in error
// messages.
type namedPrefix struct {
	prefix netip.Prefix
	name   string
}

func p(cidr, name string) namedPrefix {
	return namedPrefix{netip.MustParsePrefix(cidr), name}
}

// forbiddenV4 lists the IPv4 ranges that are not publicly routable unicast
// (IANA IPv4 Special-Purpose Address Registry, RFC 6890 and successors).
var forbiddenV4 = []namedPrefix{
	p("0.0.0.0/8", "this network"),
	p("10.0.0.0/8", "private"),
	p("100.64.0.0/10", "shared address space (CGNAT)"),
	p("127.0.0.0/8", "loopback"),
	p("169.254.0.0/16", "link-local (cloud metadata)"),
	p("172.16.0.0/12", "private"),
	p("192.0.0.0/24", "IETF protocol assignments"),
	p("192.0.2.0/24", "documentation"),
	p("192.168.0.0/16", "private"),
	p("198.18.0.0/15", "benchmarking"),
	p("198.51.100.0/24", "documentation"),
	p("203.0.113.0/24", "documentation"),
	p("224.0.0.0/4", "multicast"),
	p("240.0.0.0/4", "reserved"), // includes the broadcast address, named below
}

// forbiddenV6 lists the IPv6 ranges that are not publicly routable unicast.
// The embedding forms are handled before this list is consulted, and every
// address outside 2000::/3 (the only range IANA allocates global unicast
// from) is refused after it.
var forbiddenV6 = []namedPrefix{
	p("::/128", "unspecified"),
	p("::1/128", "loopback"),
	p("100::/64", "discard-only"),
	p("2001::/32", "Teredo"),
	p("2001::/23", "IETF protocol assignments"),
	p("2001:db8::/32", "documentation"),
	p("3fff::/20", "documentation"),
	p("fc00::/7", "unique local"),
	p("fe80::/10", "link-local"),
	p("fec0::/10", "site-local"),
	p("ff00::/8", "multicast"),
}

var (
	broadcastV4   = netip.AddrFrom4([4]byte{255, 255, 255, 255})
	globalUnicast = netip.MustParsePrefix("2000::/3")
	nat64         = netip.MustParsePrefix("64:ff9b::/96")    // RFC 6052 well-known prefix
	nat64Local    = netip.MustParsePrefix("64:ff9b:1::/48")  // RFC 8215 local-use prefix
	sixToFour     = netip.MustParsePrefix("2002::/16")       // RFC 3056
	v4Compatible  = netip.MustParsePrefix("::/96")           // RFC 4291, deprecated
	v4Translated  = netip.MustParsePrefix("::ffff:0:0:0/96") // RFC 2765 (SIIT)
)

// forbiddenReason returns why addr is forbidden, or "" when it may be dialed.
// It is Forbidden with an explanation for error messages.
func forbiddenReason(addr netip.Addr) string {
	if !addr.IsValid() {
		return "invalid address"
	}
	addr = addr.WithZone("")
	if addr.Is4In6() {
		return embedded("IPv4-mapped", addr.Unmap())
	}
	if addr.Is4() {
		return v4Reason(addr)
	}
	// The two special addresses inside ::/96 keep their own names.
	if addr.IsUnspecified() {
		return "unspecified"
	}
	if addr.IsLoopback() {
		return "loopback"
	}
	b := addr.As16()
	switch {
	case v4Compatible.Contains(addr):
		return embedded("IPv4-compatible", netip.AddrFrom4([4]byte(b[12:16])))
	case v4Translated.Contains(addr):
		return embedded("IPv4-translated", netip.AddrFrom4([4]byte(b[12:16])))
	case nat64.Contains(addr):
		return embedded("NAT64", netip.AddrFrom4([4]byte(b[12:16])))
	case nat64Local.Contains(addr):
		// A local-use NAT64 prefix may be /48, /56, /64 or /96 long, and each
		// length puts the IPv4 address somewhere else (RFC 6052 §2.2). We
		// cannot know which one the network uses, so every reading must be
		// public.
		for _, v4 := range nat64LocalReadings(b) {
			if r := embedded("NAT64 (local-use)", v4); r != "" {
				return r
			}
		}
		return ""
	case sixToFour.Contains(addr):
		return embedded("6to4", netip.AddrFrom4([4]byte(b[2:6])))
	}
	for _, np := range forbiddenV6 {
		if np.prefix.Contains(addr) {
			return np.name
		}
	}
	if !globalUnicast.Contains(addr) {
		return "reserved (outside global unicast 2000::/3)"
	}
	return ""
}

// v4Reason judges a plain IPv4 address.
func v4Reason(addr netip.Addr) string {
	if addr == broadcastV4 {
		return "broadcast"
	}
	if addr.IsUnspecified() {
		return "unspecified"
	}
	for _, np := range forbiddenV4 {
		if np.prefix.Contains(addr) {
			return np.name
		}
	}
	return ""
}

// embedded judges an IPv6 address by the IPv4 address it carries and says so
// in the reason.
func embedded(form string, v4 netip.Addr) string {
	r := v4Reason(v4)
	if r == "" {
		return ""
	}
	return fmt.Sprintf("%s, via %s %s", r, form, v4)
}

// nat64LocalReadings returns the IPv4 address an address in 64:ff9b:1::/48
// carries under each prefix length that fits the /48 (RFC 6052 §2.2: bits
// 64–71 are the reserved "u" octet and never hold address bits).
func nat64LocalReadings(b [16]byte) [4]netip.Addr {
	return [4]netip.Addr{
		netip.AddrFrom4([4]byte{b[6], b[7], b[9], b[10]}),    // /48
		netip.AddrFrom4([4]byte{b[7], b[9], b[10], b[11]}),   // /56
		netip.AddrFrom4([4]byte{b[9], b[10], b[11], b[12]}),  // /64
		netip.AddrFrom4([4]byte{b[12], b[13], b[14], b[15]}), // /96
	}
}
