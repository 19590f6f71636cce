package egress

import (
	"crypto/tls"
	"log/slog"
	"net"
	"net/http"
	"time"
)

// DefaultTimeout is the whole-request timeout when Options.Timeout is zero:
// the delivery contract's 15 seconds for an endpoint to answer.
const DefaultTimeout = 15 * time.Second

const tlsHandshakeTimeout = 5 * time.Second

// MaxResponseHeaderBytes caps what a receiver can make a delivery read and
// buffer before the body, status line included. Webhook answers carry a
// few small headers (and the proxies in front of many receivers refuse
// headers beyond 8 KiB or so). Under the former cap of 256 KiB, a hostile
// receiver that answered a 256 KiB status line or Location made every
// attempt parse it and quote it whole in an error before it was cut to
// nanohook.MaxStoredError: about 1 MiB of garbage per attempt, which with a
// few hundred attempts at once held up the whole process for a second
// (issue 13). Past the cap an attempt fails with "server response headers
// exceeded 32768 bytes; aborted".
const MaxResponseHeaderBytes = 32 << 10

// Options configure the outbound client. The zero value is the safe
// production setting.
type Options struct {
	// AllowPrivate switches the address guard off (--allow-private-targets),
	// for development against local receivers.
	AllowPrivate bool
	// Timeout bounds a whole request, from dial to the last body byte, and
	// the wait for response headers; zero means DefaultTimeout.
	Timeout time.Duration
	// Resolver resolves delivery hosts; nil means net.DefaultResolver.
	Resolver Resolver
	// UserAgent, when set, is sent by requests that carry no User-Agent of
	// their own, so every delivery identifies the service.
	UserAgent string
	// Logger, when set, gets a warning for every connection the guard
	// refuses, with the address it refused: the error the caller gets
	// leaves out what a name resolved to (see ForbiddenError), and the
	// operator may need it.
	Logger *slog.Logger
}

// NewClient returns the http.Client for deliveries. Its dialer resolves the
// host, refuses the connection if any resolved address is Forbidden (unless
// o.AllowPrivate) and dials the checked address itself. It never uses a proxy
// (HTTP_PROXY would otherwise redirect deliveries, and a proxy would resolve
// the name again, unchecked), never follows redirects (the 3xx response is
// returned as is, so the caller can record its Location) and verifies TLS
// certificates. Idle connections are pooled generously because deliveries go
// to many endpoints, often again and again.
//
// Close idle connections with Client.CloseIdleConnections when done.
func NewClient(o Options) *http.Client {
	timeout := o.Timeout
	if timeout <= 0 {
		timeout = DefaultTimeout
	}
	var resolver Resolver = net.DefaultResolver
	if o.Resolver != nil {
		resolver = o.Resolver
	}
	d := &guardedDialer{resolver: resolver, allowPrivate: o.AllowPrivate, log: o.Logger}

	var rt http.RoundTripper = &http.Transport{
		Proxy:                  nil, // never from the environment
		DialContext:            d.DialContext,
		TLSClientConfig:        &tls.Config{MinVersion: tls.VersionTLS12},
		TLSHandshakeTimeout:    tlsHandshakeTimeout,
		ResponseHeaderTimeout:  timeout,
		ExpectContinueTimeout:  time.Second,
		MaxResponseHeaderBytes: MaxResponseHeaderBytes,
		MaxIdleConns:           1024,
		// Many endpoints often share one host (a platform's ingress, a
		// customer's several endpoints): keep as many idle connections to it
		// as the engine runs attempts (256 workers by default), or every
		// attempt beyond the pool dials and closes a connection of its own.
		MaxIdleConnsPerHost: 256,
		IdleConnTimeout:     90 * time.Second,
		ForceAttemptHTTP2:   true,
		// Without Accept-Encoding the receiver answers uncompressed, so the
		// response body we store is the bytes it sent, and a compressed
		// bomb cannot inflate behind our read cap.
		DisableCompression: true,
	}
	if o.UserAgent != "" {
		rt = &userAgentTransport{base: rt, userAgent: o.UserAgent}
	}
	return &http.Client{
		Transport: rt,
		Timeout:   timeout,
		CheckRedirect: func(*http.Request, []*http.Request) error {
			return http.ErrUseLastResponse
		},
	}
}

// userAgentTransport adds a default User-Agent to requests that have none.
type userAgentTransport struct {
	base      http.RoundTripper
	userAgent string
}

// RoundTrip implements http.RoundTripper without modifying the caller's
// request. A User-Agent header that is present but empty is Go's way of
// asking for no User-Agent, and is respected.
func (t *userAgentTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	if _, ok := req.Header["User-Agent"]; !ok {
		req = req.Clone(req.Context())
		req.Header.Set("User-Agent", t.userAgent)
	}
	return t.base.RoundTrip(req)
}

// CloseIdleConnections lets http.Client.CloseIdleConnections reach the
// wrapped transport.
func (t *userAgentTransport) CloseIdleConnections() {
	if c, ok := t.base.(interface{ CloseIdleConnections() }); ok {
		c.CloseIdleConnections()
	}
}
