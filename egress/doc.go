// Package egress is nanohook's outbound HTTP client: everything that stands
// between a delivery and the network.
//
// Webhook URLs are chosen by customers, so every delivery is a request that a
// stranger aims from inside our network. The package keeps that safe and
// predictable:
//
//   - Forbidden says which addresses a delivery may never reach: loopback,
//     private, shared (CGNAT), link-local (cloud metadata), multicast,
//     unspecified, documentation and reserved ranges, and the IPv6 forms that
//     embed such an IPv4 address (mapped, compatible, NAT64, 6to4).
//   - NewClient builds the delivery client. Its dialer resolves the host,
//     checks every resolved address and then dials the checked address itself,
//     so a DNS answer that changes between the check and the connect (DNS
//     rebinding) cannot reach a forbidden address. It never uses a proxy,
//     never follows redirects (the 3xx is returned to the caller), keeps TLS
//     verification on and bounds every phase with a timeout.
//   - CheckURL is the early, friendlier check made when an endpoint's URL is
//     set (create or update): it refuses (422 in the API) user info, localhost
//     names, forbidden IP literals, names that do not resolve and names whose
//     every address is forbidden, so such a URL gets a clear message at once
//     instead of failing every delivery. It is not the safety guard: DNS can
//     change after creation, and a name with both public and forbidden
//     addresses passes it, so the dial-time check is what keeps every
//     delivery off forbidden addresses.
//   - Refusals (ForbiddenError) name the host and never what a name
//     resolved to, because their messages reach customers and would
//     otherwise map our internal DNS; the operator's log gets the address
//     (Options.Logger at dial time, the error's LogValue elsewhere).
//   - ReadCapped reads a response body with a hard cap on bytes read and on
//     bytes held in memory, so a receiver that streams forever costs nothing.
//
// The guard is switched off with Options.AllowPrivate (the
// --allow-private-targets flag) for development and tests.
package egress
