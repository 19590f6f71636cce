package egress

// CONTRACT STUB — the helper writing this package replaces this file with the
// real implementation (guard.go, client.go, read.go …). The exported names and
// signatures below are relied on by other packages and must stay as written.

import (
	"context"
	"io"
	"net/http"
	"net/netip"
	"time"
)

// Resolver looks up host names; *net.Resolver satisfies it.
type Resolver interface {
	LookupNetIP(ctx context.Context, network, host string) ([]netip.Addr, error)
}

// Options configure the outbound client.
type Options struct {
	AllowPrivate bool          // --allow-private-targets
	Timeout      time.Duration // whole request, default 15s
	Resolver     Resolver      // nil: net.DefaultResolver
	UserAgent    string
}

// ErrForbiddenAddress is wrapped by every refusal of the guard.
var ErrForbiddenAddress error

// Forbidden reports whether a delivery may never reach addr.
func Forbidden(addr netip.Addr) bool { panic("stub") }

// NewClient returns the http.Client for deliveries.
func NewClient(o Options) *http.Client { panic("stub") }

// CheckURL is the creation-time check of a webhook URL's host.
func CheckURL(ctx context.Context, r Resolver, rawURL string) error { panic("stub") }

// ReadCapped reads r to EOF or max bytes, keeping the first keep bytes.
func ReadCapped(r io.Reader, keep int, max int64) (kept []byte, n int64, err error) {
	panic("stub")
}

var _ = http.Client{}
