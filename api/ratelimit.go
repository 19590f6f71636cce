package api

import (
	"context"
	"errors"
	"log/slog"
	"math"
	"net"
	"net/http"
	"net/netip"
	"strconv"
	"sync"
	"time"

	"golang.org/x/time/rate"

	"github.com/nanohook/nanohook"
)

// Defaults of the failed-authentication limit (Config.AuthFailureLimit and
// its neighbours).
//
// A client may fail 20 times in a row, then once a second. Twenty is well
// above what a person or a script with a mistyped or freshly revoked key
// produces before noticing, and once a second is slow enough that guessing
// a weak admin token (the operator chooses it) becomes hopeless, while a
// real client that fixed its key waits at most a second. API keys are 32
// random bytes and cannot be guessed at any rate; for them the limit bounds
// the key lookups (one database read each) that an anonymous client can
// cause. 10,000 tracked clients cost about 1.5 MiB (TestAuthLimiterMemory).
const (
	DefaultAuthFailureLimit   = 20
	DefaultAuthFailureRefill  = time.Second
	DefaultAuthFailureClients = 10_000
)

// authSweepEvery is how often, at most, the limiter walks its clients to
// drop the ones that are no longer limited. Between walks it only grows up
// to its cap, so the walk's cost is spread thin.
const authSweepEvery = time.Minute

// authEvictProbe is how many clients, at most, the limiter looks at to
// pick one to drop when it is at its cap.
const authEvictProbe = 8

var errAuthRateLimited = nanohook.Errorf(nanohook.CodeRateLimited, "",
	"too many failed authentications from this address; retry after the Retry-After header's seconds")

// authLimiter counts failed authentications (answers 401) per client
// address in token buckets: each failure takes a token, and a client whose
// bucket is empty has its credentials refused with 429 before they are
// looked at, so that it cannot keep guessing. Successful requests cost
// nothing. A bucket that has refilled completely carries no information,
// so it is dropped; the number of buckets is capped, so a flood from many
// addresses cannot grow memory without bound.
//
// Clients are told apart by the connection's remote address only:
// X-Forwarded-For is written by the client and would let it pick a fresh
// identity per request. Behind a reverse proxy every client therefore
// shares the proxy's bucket.
//
// A nil *authLimiter limits nothing.
type authLimiter struct {
	refill time.Duration // one failure is forgiven per refill
	burst  int           // failures in a row before the client is limited
	max    int           // most clients tracked at once
	now    func() time.Time
	log    *slog.Logger

	mu        sync.Mutex
	clients   map[string]*authBucket
	lastSweep time.Time
}

// authBucket is one client's failures.
type authBucket struct {
	lim *rate.Limiter
	// warned: the client was reported in the log when it became limited,
	// once per episode: from a full bucket to an empty one.
	warned bool
}

// newAuthLimiter resolves the Config's limit; nil when it is turned off.
func newAuthLimiter(cfg Config, now func() time.Time, log *slog.Logger) *authLimiter {
	l := &authLimiter{
		refill:  cfg.AuthFailureRefill,
		burst:   cfg.AuthFailureLimit,
		max:     cfg.AuthFailureClients,
		now:     now,
		log:     log,
		clients: map[string]*authBucket{},
	}
	switch {
	case l.burst < 0:
		return nil
	case l.burst == 0:
		l.burst = DefaultAuthFailureLimit
	}
	if l.refill <= 0 {
		l.refill = DefaultAuthFailureRefill
	}
	if l.max <= 0 {
		l.max = DefaultAuthFailureClients
	}
	return l
}

// retryAfter reports whether client is limited now and, if so, in how many
// whole seconds (at least 1) it may fail once more.
func (l *authLimiter) retryAfter(client string) (int, bool) {
	if l == nil {
		return 0, false
	}
	now := l.now()
	l.mu.Lock()
	defer l.mu.Unlock()
	b, ok := l.clients[client]
	if !ok {
		return 0, false
	}
	tokens := b.lim.TokensAt(now)
	if tokens >= 1 {
		return 0, false
	}
	wait := time.Duration((1 - tokens) * float64(l.refill))
	secs := int(math.Ceil(wait.Seconds()))
	return max(secs, 1), true
}

// fail takes a token from client's bucket for one failed authentication.
func (l *authLimiter) fail(ctx context.Context, client string) {
	if l == nil {
		return
	}
	now := l.now()
	l.mu.Lock()
	defer l.mu.Unlock()
	b, ok := l.clients[client]
	if !ok {
		l.makeRoom(now)
		b = &authBucket{lim: rate.NewLimiter(rate.Every(l.refill), l.burst)}
		l.clients[client] = b
	}
	if b.lim.TokensAt(now) >= float64(l.burst) {
		b.warned = false // a new episode: the client had its whole allowance
	}
	b.lim.AllowN(now, 1)
	if !b.warned && b.lim.TokensAt(now) < 1 {
		b.warned = true
		// Once per episode, not per refused request, so that an attack
		// cannot flood the log either. The address is the only detail:
		// never the credentials that failed.
		l.log.LogAttrs(ctx, slog.LevelWarn, "api: too many failed authentications, refusing credentials from this client for a while",
			slog.String("client", client), slog.Int("failures", l.burst))
	}
}

// makeRoom is called before a new client is tracked. At most once per
// authSweepEvery it drops every client whose bucket has refilled. At the
// cap it drops one client: a refilled one among a few picked at random
// (map order), or else the first of them, still limited. Never a walk of
// every client per request: a flood from more addresses than the cap
// would make each of its requests pay for one. The cap is what bounds
// memory, and an attacker with that many addresses already has that many
// buckets of guesses.
func (l *authLimiter) makeRoom(now time.Time) {
	full := float64(l.burst)
	if now.Sub(l.lastSweep) >= authSweepEvery {
		l.lastSweep = now
		for c, b := range l.clients {
			if b.lim.TokensAt(now) >= full {
				delete(l.clients, c)
			}
		}
	}
	if len(l.clients) < l.max {
		return
	}
	var victim string
	seen := 0
	for c, b := range l.clients {
		refilled := b.lim.TokensAt(now) >= full
		if seen == 0 || refilled {
			victim = c
		}
		if seen++; refilled || seen == authEvictProbe {
			break
		}
	}
	delete(l.clients, victim)
}

// tracked is how many clients the limiter holds, for tests.
func (l *authLimiter) tracked() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.clients)
}

// clientOf names the client of a request for the limiter: the remote IP
// address, or its /64 network for IPv6, since one host usually owns a whole
// /64 and could otherwise use a new address for every guess.
func clientOf(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		host = r.RemoteAddr
	}
	ip, err := netip.ParseAddr(host)
	if err != nil {
		return host
	}
	ip = ip.Unmap().WithZone("")
	if ip.Is6() {
		p, _ := ip.Prefix(64)
		return p.String()
	}
	return ip.String()
}

// limitAuth runs an authentication step under the failed-authentication
// limit. A limited client that sends credentials is answered 429 with
// Retry-After before authenticate runs, so the credentials are not even
// looked up: a guesser learns nothing while limited, and a good key from a
// limited address waits like the rest (the address cannot be told from the
// attacker's). Requests without credentials are refused with 401 as usual.
// Every 401 of authenticate costs the client a token; its other outcomes
// (success, a storage outage) cost nothing.
func (s *server) limitAuth(authenticate func(r *http.Request) (*http.Request, error), next apiFunc) apiFunc {
	return func(w http.ResponseWriter, r *http.Request) error {
		client := clientOf(r)
		if _, sent := r.Header["Authorization"]; sent {
			if secs, limited := s.authLimit.retryAfter(client); limited {
				w.Header().Set("Retry-After", strconv.Itoa(secs))
				return errAuthRateLimited
			}
		}
		ar, err := authenticate(r)
		if errors.Is(err, errUnauthorized) {
			s.authLimit.fail(r.Context(), client)
		}
		if err != nil {
			return err
		}
		return next(w, ar)
	}
}
