package egress

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"strconv"
	"time"
)

// Resolver looks up host names; *net.Resolver satisfies it. It is an
// interface so tests (and operators with their own DNS) can decide what a
// name resolves to without touching the system resolver.
type Resolver interface {
	LookupNetIP(ctx context.Context, network, host string) ([]netip.Addr, error)
}

const (
	// dialTimeout bounds one dial, lookup included, across all addresses.
	dialTimeout = 5 * time.Second
	// minAttemptTimeout keeps one slow address from starving the next ones
	// of time, as net.Dialer does when it tries several addresses.
	minAttemptTimeout = 2 * time.Second
)

// guardedDialer resolves a host, checks every address it got and dials the
// addresses it checked, never the name. A second lookup by the dialer could
// answer differently (DNS rebinding); dialing the checked netip.AddrPort
// closes that gap.
type guardedDialer struct {
	resolver     Resolver
	allowPrivate bool
	log          *slog.Logger // refusals, with the address; nil: none
	net          net.Dialer
}

// DialContext has the signature http.Transport wants.
func (d *guardedDialer) DialContext(ctx context.Context, network, address string) (net.Conn, error) {
	ctx, cancel := context.WithTimeout(ctx, dialTimeout)
	defer cancel()

	host, portText, err := net.SplitHostPort(address)
	if err != nil {
		return nil, fmt.Errorf("egress: dial %q: %w", address, err)
	}
	port, err := strconv.ParseUint(portText, 10, 16)
	if err != nil {
		return nil, fmt.Errorf("egress: dial %q: invalid port %q", address, portText)
	}
	addrs, resolved, err := d.resolve(ctx, network, host)
	if err != nil {
		d.logRefusal(ctx, err)
		return nil, err
	}
	if !d.allowPrivate {
		// Any forbidden answer refuses the whole host, not just that address:
		// a name that resolves to both public and internal addresses is
		// either misconfigured or an attack, and skipping the bad address
		// would make the outcome depend on answer order.
		for _, a := range addrs {
			if r := forbiddenReason(a); r != "" {
				err := &ForbiddenError{Host: host, Addr: a, Reason: r, Resolved: resolved}
				d.logRefusal(ctx, err)
				return nil, err
			}
		}
	}

	var firstErr error
	for i, a := range addrs {
		conn, err := d.dialOne(ctx, network, netip.AddrPortFrom(a.Unmap(), uint16(port)), len(addrs)-i)
		if err == nil {
			return conn, nil
		}
		if firstErr == nil {
			firstErr = err
		}
		if ctx.Err() != nil {
			break
		}
	}
	return nil, firstErr
}

// logRefusal writes a refusal of the guard to the operator's log with the
// address it refused, which the error's message leaves out (see
// ForbiddenError); other errors are the caller's to report.
func (d *guardedDialer) logRefusal(ctx context.Context, err error) {
	if fe, ok := errors.AsType[*ForbiddenError](err); ok && d.log != nil {
		d.log.LogAttrs(ctx, slog.LevelWarn, "egress: refused a delivery to a forbidden address", slog.Any("refusal", fe))
	}
}

// resolve turns host into addresses: an IP literal as is, a name through the
// resolver (resolved is then true).
func (d *guardedDialer) resolve(ctx context.Context, network, host string) (addrs []netip.Addr, resolved bool, err error) {
	if a, err := netip.ParseAddr(host); err == nil {
		return []netip.Addr{a}, false, nil
	}
	if !d.allowPrivate {
		if err := checkHostName(host); err != nil {
			return nil, false, err
		}
	}
	ipNetwork := "ip"
	switch network {
	case "tcp4":
		ipNetwork = "ip4"
	case "tcp6":
		ipNetwork = "ip6"
	}
	addrs, err = d.resolver.LookupNetIP(ctx, ipNetwork, host)
	if err != nil {
		return nil, true, fmt.Errorf("egress: resolve %q: %w", host, err)
	}
	if len(addrs) == 0 {
		return nil, true, fmt.Errorf("egress: resolve %q: no addresses", host)
	}
	return addrs, true, nil
}

// dialOne connects to one checked address, giving it a fair share of the
// time left when more addresses wait behind it.
func (d *guardedDialer) dialOne(ctx context.Context, network string, ap netip.AddrPort, remaining int) (net.Conn, error) {
	if deadline, ok := ctx.Deadline(); ok && remaining > 1 {
		left := time.Until(deadline)
		share := max(left/time.Duration(remaining), min(minAttemptTimeout, left))
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, share)
		defer cancel()
	}
	// ap.String() is an IP literal, so net.Dialer performs no lookup of its
	// own.
	return d.net.DialContext(ctx, network, ap.String())
}
