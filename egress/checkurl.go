package egress

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"net/url"
	"strings"
	"time"
)

// lookupTimeout bounds CheckURL's DNS lookup, so a slow resolver cannot hold
// an API request for long.
const lookupTimeout = 5 * time.Second

// CheckURL is the creation-time check of a webhook URL's host, so that a
// customer who registers an internal URL hears about it at once instead of
// through a stream of failed deliveries. It refuses URLs with user info,
// localhost names, numeric hosts that resolvers read differently
// ("2130706433", "0x7f.1"), IP literals that are Forbidden, names that do not
// resolve, and names whose every address is Forbidden. nil r means
// net.DefaultResolver. The scheme is not checked here; that is the caller's
// policy.
//
// A name that resolves to both public and forbidden addresses is accepted:
// DNS answers vary with time and vantage point, so this check only catches
// the obvious. The dial-time guard in NewClient is the enforcement, and it
// refuses a host as soon as any of its addresses is forbidden.
//
// Errors always name the host and are worded for the customer who typed
// the URL (the API shows them after the field name, as they are), so they
// do not name this package. When a forbidden address is the cause the
// error is a *ForbiddenError (it wraps ErrForbiddenAddress), which does not
// name what a name resolved to.
func CheckURL(ctx context.Context, r Resolver, rawURL string) error {
	u, err := url.Parse(rawURL)
	if err != nil {
		return fmt.Errorf("invalid URL: %w", err)
	}
	if u.User != nil {
		return errors.New("URL must not contain user info (user:password@)")
	}
	host := u.Hostname()
	if host == "" {
		return errors.New("URL has no host")
	}
	if a, err := netip.ParseAddr(host); err == nil {
		if why := forbiddenReason(a); why != "" {
			return &ForbiddenError{Host: host, Addr: a, Reason: why}
		}
		return nil
	}
	if strings.ContainsAny(host, "%[]") {
		// A zone or brackets on something that is not an IPv6 literal.
		return fmt.Errorf("host %q is not a valid host name or IP address", host)
	}
	if err := checkHostName(host); err != nil {
		return err
	}

	if r == nil {
		r = net.DefaultResolver
	}
	ctx, cancel := context.WithTimeout(ctx, lookupTimeout)
	defer cancel()
	addrs, err := r.LookupNetIP(ctx, "ip", host)
	if err != nil {
		// The resolver's own error names our DNS server; callers show this
		// message to customers, so it says only what they can act on.
		reason := "lookup failed"
		if dnsErr, ok := errors.AsType[*net.DNSError](err); ok && dnsErr.IsNotFound {
			reason = "no such host"
		} else if ctx.Err() != nil {
			reason = "lookup timed out"
		}
		return fmt.Errorf("host %q does not resolve: %s", host, reason)
	}
	if len(addrs) == 0 {
		return fmt.Errorf("host %q does not resolve: no addresses", host)
	}
	for _, a := range addrs {
		if !Forbidden(a) {
			return nil
		}
	}
	return &ForbiddenError{Host: host, Addr: addrs[0], Reason: forbiddenReason(addrs[0]), Resolved: true}
}
