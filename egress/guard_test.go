package egress

import (
	"net/netip"
	"testing"
)

func TestForbidden(t *testing.T) {
	t.Parallel()

	forbidden := []string{
		// IPv4
		"0.0.0.0", "0.1.2.3", // unspecified, "this network"
		"127.0.0.1", "127.255.255.254", // loopback
		"10.0.0.1", "10.255.255.255", "172.16.0.1", "172.31.255.255", "192.168.0.1", "192.168.255.255", // RFC 1918
		"100.64.0.1", "100.127.255.255", // CGNAT
		"169.254.0.1", "169.254.169.254", // link-local, cloud metadata
		"224.0.0.1", "239.255.255.255", // multicast
		"255.255.255.255",          // broadcast
		"192.0.0.1", "192.0.0.170", // IETF protocol assignments
		"192.0.2.1", "198.51.100.7", "203.0.113.200", // documentation
		"198.18.0.1", "198.19.255.255", // benchmarking
		"240.0.0.1", "250.1.2.3", // reserved
		// IPv6
		"::", "::1",
		"fe80::1", "fe80::1%eth0", "febf::1", // link-local, with and without zone
		"ff02::1", "ff0e::1", // multicast
		"fc00::1", "fd12:3456::1", // ULA
		"fec0::1",                              // site-local
		"2001:db8::1",                          // documentation
		"3fff::1",                              // documentation (RFC 9637)
		"100::1",                               // discard
		"2001::1",                              // Teredo
		"2001:0:4136:e378:8000:63bf:3fff:fdd2", // Teredo, real-looking
		"2001:2::1",                            // IETF protocol assignments (benchmarking)
		"4000::1", "5f00::1", "e000::1",        // outside 2000::/3
		// IPv4 embedded in IPv6, private or special v4 inside
		"::ffff:127.0.0.1", "::ffff:10.0.0.1", "::ffff:169.254.169.254", "::ffff:0.0.0.0",
		"::127.0.0.1", "::10.0.0.1", "::169.254.169.254", // IPv4-compatible
		"::ffff:0:127.0.0.1", "::ffff:0:192.168.1.1", // IPv4-translated
		"64:ff9b::127.0.0.1", "64:ff9b::10.1.2.3", "64:ff9b::a9fe:a9fe", // NAT64 well-known
		"64:ff9b:1::127.0.0.1", "64:ff9b:1::8.8.8.8", // NAT64 local-use: a /48 reading is 0.0.0.0
		"64:ff9b:1:7f00:1::",                                                      // NAT64 local-use /48 reading is 127.0.0.1
		"2002:7f00:1::1", "2002:a00:1::", "2002:a9fe:a9fe::1", "2002:c0a8:101::1", // 6to4
	}
	allowed := []string{
		"1.1.1.1", "8.8.8.8", "9.9.9.9", "93.184.215.14",
		"100.63.255.255", "100.128.0.0", // around CGNAT
		"172.15.255.255", "172.32.0.0", // around 172.16/12
		"192.0.1.1", "192.0.3.1", "198.17.255.255", "198.20.0.0", "223.255.255.255",
		"2606:4700:4700::1111", "2001:4860:4860::8888", "2a00:1450:4001::1",
		"::ffff:1.1.1.1", "::8.8.8.8", "::ffff:0:8.8.8.8",
		"64:ff9b::1.1.1.1", "64:ff9b::808:808",
		"64:ff9b:1:808:8:808:808:808",          // 8.8.8.8 under every local-use NAT64 reading
		"2002:808:808::1", "2002:101:101:1::1", // 6to4 of public v4
		"2001:200::1", // just past 2001::/23
	}

	for _, s := range forbidden {
		a := netip.MustParseAddr(s)
		if !Forbidden(a) {
			t.Errorf("Forbidden(%s) = false, want true", s)
		}
		if forbiddenReason(a) == "" {
			t.Errorf("forbiddenReason(%s) is empty", s)
		}
	}
	for _, s := range allowed {
		if a := netip.MustParseAddr(s); Forbidden(a) {
			t.Errorf("Forbidden(%s) = true (%s), want false", s, forbiddenReason(a))
		}
	}
	if !Forbidden(netip.Addr{}) {
		t.Error("Forbidden(invalid) = false, want true")
	}
}

func TestForbiddenReasonNamesEmbeddedAddress(t *testing.T) {
	t.Parallel()

	for addr, want := range map[string]string{
		"169.254.169.254":   "link-local (cloud metadata)",
		"64:ff9b::10.0.0.1": "private, via NAT64 10.0.0.1",
		"::ffff:127.0.0.1":  "loopback, via IPv4-mapped 127.0.0.1",
		"2002:a9fe:a9fe::":  "link-local (cloud metadata), via 6to4 169.254.169.254",
		"2001::1":           "Teredo",
		"255.255.255.255":   "broadcast",
		"fe80::1%eth0":      "link-local",
	} {
		if got := forbiddenReason(netip.MustParseAddr(addr)); got != want {
			t.Errorf("forbiddenReason(%s) = %q, want %q", addr, got, want)
		}
	}
}
