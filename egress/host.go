package egress

import (
	"fmt"
	"net/netip"
	"strconv"
	"strings"
)

// checkHostName refuses, without any lookup, host names that can only mean
// this machine or that different resolvers read differently. host is a name,
// not an IP literal.
func checkHostName(host string) error {
	name := strings.ToLower(strings.TrimSuffix(host, "."))
	// RFC 6761 §6.3: localhost and everything under it is loopback, whatever
	// DNS says.
	if name == "localhost" || strings.HasSuffix(name, ".localhost") {
		return &ForbiddenError{Host: host, Reason: "loopback (localhost)"}
	}
	if !endsInNumber(name) {
		return nil
	}
	// "2130706433", "0x7f.1" or "127.1" are IPv4 addresses to inet_aton (and
	// so to a cgo or libc resolver and to browsers) but host names to Go's
	// resolver. Never let the two disagree about where a delivery goes.
	if a, ok := parseLegacyIPv4(name); ok {
		if r := forbiddenReason(a); r != "" {
			return &ForbiddenError{Host: host, Addr: a, Reason: r}
		}
		return fmt.Errorf("host %q is a numeric IPv4 address in a non-standard form; write it as %s", host, a)
	}
	return fmt.Errorf("host %q is not a valid host name or IP address", host)
}

// endsInNumber reports whether the last label of name is a number, which is
// how the WHATWG URL standard decides that a host is meant as an IPv4
// address. No top-level domain is numeric, so such a name is never a real
// DNS name.
func endsInNumber(name string) bool {
	last := name[strings.LastIndexByte(name, '.')+1:]
	if last == "" {
		return false
	}
	if isDigits(last, 10) {
		return true
	}
	return len(last) >= 2 && last[0] == '0' && (last[1] == 'x' || last[1] == 'X') && isDigits(last[2:], 16)
}

func isDigits(s string, base int) bool {
	for _, c := range s {
		if !(c >= '0' && c <= '9' || base == 16 && (c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F')) {
			return false
		}
	}
	return true
}

// parseLegacyIPv4 reads name the way inet_aton does: one to four parts, each
// decimal, octal (leading 0) or hexadecimal (leading 0x), the last part
// filling the remaining bytes.
func parseLegacyIPv4(name string) (netip.Addr, bool) {
	parts := strings.Split(name, ".")
	if len(parts) > 4 {
		return netip.Addr{}, false
	}
	var nums [4]uint64
	for i, part := range parts {
		n, ok := parseLegacyPart(part)
		if !ok {
			return netip.Addr{}, false
		}
		nums[i] = n
	}
	last := len(parts) - 1
	for i := range last {
		if nums[i] > 0xff {
			return netip.Addr{}, false
		}
	}
	if nums[last] >= 1<<(8*(4-last)) {
		return netip.Addr{}, false
	}
	var b [4]byte
	for i := range last {
		b[i] = byte(nums[i])
	}
	rest := nums[last]
	for i := 3; i >= last; i-- {
		b[i] = byte(rest)
		rest >>= 8
	}
	return netip.AddrFrom4(b), true
}

// parseLegacyPart reads one part of a legacy IPv4 address: 0x… hexadecimal
// ("0x" alone is 0, as in the WHATWG URL standard), 0… octal, else decimal.
func parseLegacyPart(part string) (uint64, bool) {
	base := 10
	switch {
	case len(part) >= 2 && part[0] == '0' && (part[1] == 'x' || part[1] == 'X'):
		part, base = part[2:], 16
		if part == "" {
			return 0, true
		}
	case len(part) >= 2 && part[0] == '0':
		part, base = part[1:], 8
	}
	if part == "" || !isDigits(part, base) {
		return 0, false
	}
	n, err := strconv.ParseUint(part, base, 32)
	return n, err == nil
}
