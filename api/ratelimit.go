package api

import (
	"context"
	"crypto/sha256"
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
// cause. 10,000 tracked clients cost about 1.6 MiB (TestAuthLimiterMemory).
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
// find one to drop when it is at its cap.
const authEvictProbe = 8

// Bounds of the set of proven credentials (authLimiter.proven). An hour
// covers any client that calls more than once an hour, and 10,000
// credentials (under 1 MiB, TestAuthLimiterMemory) is more keys than a
// deployment of this size has in use at once.
const (
	authProvenTTL = time.Hour
	authProvenMax = 10_000
)

var errAuthRateLimited = nanohook.Errorf(nanohook.CodeRateLimited, "",
	"too many failed authentications from this address; retry after the Retry-After header's seconds")

// errAuthAborted settles an authentication that ended in a panic: it
// counts as neither a success nor a failure.
var errAuthAborted = errors.New("api: authentication did not finish")

// authLimiter counts failed authentications (answers 401) per client
// address in token buckets: each failure takes a token, and a client whose
// bucket is empty has its credentials refused with 429 before they are
// looked at, so that it cannot keep guessing. Successful requests cost
// nothing.
//
// A lookup holds one of its client's tokens while it runs, and gives it
// back unless the answer is 401: the check and the charge are one step,
// so requests sent all at once cannot all pass the check before the first
// failure is charged (TestAuthLimitConcurrentGuesses).
//
// Clients are told apart by the connection's remote address only:
// X-Forwarded-For is written by the client and would let it pick a fresh
// identity per request. Behind a reverse proxy every client therefore
// shares the proxy's bucket, and one guesser (or one cron job with a
// revoked key) would lock every customer out. So the limiter remembers
// the credentials that authenticated recently, from any address (at most
// authProvenMax, for authProvenTTL after their last success): a limited
// address still has those looked up and served, since they were proven
// valid and a guesser learns nothing from them. Anything else from a
// limited address, including a right key that never authenticated, waits.
// A remembered credential that answers 401 (a revoked key) is forgotten.
//
// A bucket that has refilled completely carries no information, so it is
// dropped; the number of buckets is capped, so a flood from many addresses
// cannot grow memory without bound. A bucket that has not refilled is
// never dropped, or an attacker with more addresses than the cap could
// start afresh with each visit: when every tracked client still has
// failures on record, new clients share one overflow bucket, which limits
// the flood as a whole.
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
	overflow  *authBucket // shared by new clients when clients is full; nil until then
	lastSweep time.Time
	proven    provenSet
}

// authBucket is one client's failures.
type authBucket struct {
	lim *rate.Limiter
	// inflight is how many of its authentications are running; each holds
	// one token until its answer is known.
	inflight int
	// warned: the client was reported in the log when it became limited,
	// once per episode: from a full bucket to an empty one.
	warned bool
}

// credential is the SHA-256 of a bearer token: what the store keeps of an
// API key, and what requireAdmin compares of the admin token. The zero
// value stands for no usable token.
type credential [sha256.Size]byte

// authTicket is an authentication the limiter let through, to be settled
// with done.
type authTicket struct {
	client string
	cred   credential
	// b holds a token for this authentication; nil when the credential was
	// proven, which holds none.
	b *authBucket
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
		proven:  provenSet{ttl: authProvenTTL, max: authProvenMax, at: map[credential]int64{}},
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

// admit decides whether client may have cred authenticated now. A proven
// credential always may. Otherwise the client's bucket must have a token
// that no running authentication holds; admit takes it, or answers how
// many whole seconds (at least 1) to wait. cred is zero for a malformed
// Authorization header, which is admitted like a wrong key.
func (l *authLimiter) admit(client string, cred credential) (authTicket, int, bool) {
	t := authTicket{client: client, cred: cred}
	if l == nil {
		return t, 0, true
	}
	now := l.now()
	l.mu.Lock()
	defer l.mu.Unlock()
	if cred != (credential{}) && l.proven.has(cred, now) {
		return t, 0, true
	}
	b := l.bucket(client, now)
	if secs, limited := l.wait(b, now); limited {
		return authTicket{}, secs, false
	}
	b.inflight++
	t.b = b
	return t, 0, true
}

// done settles t with the outcome of its authentication: nil remembers
// the credential as proven, errUnauthorized charges the client a token and
// forgets the credential, anything else (a storage outage, a panic) only
// gives the token back.
func (l *authLimiter) done(ctx context.Context, t authTicket, outcome error) {
	if l == nil {
		return
	}
	now := l.now()
	l.mu.Lock()
	defer l.mu.Unlock()
	if t.b != nil {
		t.b.inflight--
	}
	switch {
	case outcome == nil:
		if t.cred != (credential{}) {
			l.proven.add(t.cred, now)
		}
	case errors.Is(outcome, errUnauthorized):
		if t.cred != (credential{}) {
			l.proven.forget(t.cred)
		}
		b := t.b
		if b == nil {
			b = l.bucket(t.client, now)
		}
		l.charge(ctx, b, t.client, now)
	}
}

// settle runs authenticate under t and settles t with its outcome, also
// when authenticate panics (the recovery middleware then answers 500), so
// that no token stays held.
func (l *authLimiter) settle(ctx context.Context, t authTicket, authenticate func() (*http.Request, error)) (*http.Request, error) {
	outcome := errAuthAborted
	defer func() { l.done(ctx, t, outcome) }()
	r, err := authenticate()
	outcome = err
	return r, err
}

// fail charges client a token for a failed authentication that needed no
// admission (a request without credentials: nothing is looked up).
func (l *authLimiter) fail(ctx context.Context, client string) {
	if l == nil {
		return
	}
	now := l.now()
	l.mu.Lock()
	defer l.mu.Unlock()
	l.charge(ctx, l.bucket(client, now), client, now)
}

// retryAfter reports whether client is limited now and, if so, in how many
// whole seconds (at least 1) it may fail once more. For tests: requests go
// through admit.
func (l *authLimiter) retryAfter(client string) (int, bool) {
	if l == nil {
		return 0, false
	}
	now := l.now()
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.wait(l.bucket(client, now), now)
}

// wait reports whether b has no token free now and, if so, in how many
// whole seconds (at least 1) one is, supposing the running authentications
// fail. l.mu is held.
func (l *authLimiter) wait(b *authBucket, now time.Time) (int, bool) {
	free := b.lim.TokensAt(now) - float64(b.inflight)
	if free >= 1 {
		return 0, false
	}
	wait := time.Duration((1 - free) * float64(l.refill))
	secs := int(math.Ceil(wait.Seconds()))
	return max(secs, 1), true
}

// charge takes a token from b for one failed authentication of client.
// l.mu is held.
func (l *authLimiter) charge(ctx context.Context, b *authBucket, client string, now time.Time) {
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
			slog.String("client", client), slog.Int("failures", l.burst), slog.Bool("overflow", b == l.overflow))
	}
}

// bucket returns client's bucket, tracking the client if it is new, or
// the overflow bucket when there is no room. l.mu is held.
func (l *authLimiter) bucket(client string, now time.Time) *authBucket {
	if b, ok := l.clients[client]; ok {
		return b
	}
	if l.makeRoom(now) {
		b := &authBucket{lim: rate.NewLimiter(rate.Every(l.refill), l.burst)}
		l.clients[client] = b
		return b
	}
	if l.overflow == nil {
		l.overflow = &authBucket{lim: rate.NewLimiter(rate.Every(l.refill), l.burst)}
	}
	return l.overflow
}

// makeRoom is called before a new client is tracked and reports whether
// there is room. At most once per authSweepEvery it drops every idle
// client whose bucket has refilled. At the cap it drops one such client
// among a few picked at random (map order), if any. Never a walk of every
// client per request: a flood from more addresses than the cap would make
// each of its requests pay for one. A client whose bucket has not
// refilled, or whose authentication is running, is never dropped.
func (l *authLimiter) makeRoom(now time.Time) bool {
	full := float64(l.burst)
	idle := func(b *authBucket) bool { return b.inflight == 0 && b.lim.TokensAt(now) >= full }
	if now.Sub(l.lastSweep) >= authSweepEvery {
		l.lastSweep = now
		for c, b := range l.clients {
			if idle(b) {
				delete(l.clients, c)
			}
		}
	}
	if len(l.clients) < l.max {
		return true
	}
	seen := 0
	for c, b := range l.clients {
		if idle(b) {
			delete(l.clients, c)
			return true
		}
		if seen++; seen == authEvictProbe {
			break
		}
	}
	return false
}

// tracked is how many clients the limiter holds, for tests.
func (l *authLimiter) tracked() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.clients)
}

// provenSet is the credentials that authenticated recently, each with the
// time (Unix nanoseconds) of its last success. It holds at most max; at
// the cap it drops expired ones, else the oldest of a few picked at random.
// Only a right credential gets in, so an attacker cannot fill it without
// holding that many keys. Guarded by authLimiter.mu.
type provenSet struct {
	ttl       time.Duration
	max       int
	at        map[credential]int64
	lastSweep time.Time
}

// has reports whether c authenticated within the last ttl.
func (p *provenSet) has(c credential, now time.Time) bool {
	at, ok := p.at[c]
	return ok && now.UnixNano()-at < int64(p.ttl)
}

// add records a success of c.
func (p *provenSet) add(c credential, now time.Time) {
	if _, ok := p.at[c]; !ok && len(p.at) >= p.max {
		p.makeRoom(now)
	}
	p.at[c] = now.UnixNano()
}

// forget drops c, which failed.
func (p *provenSet) forget(c credential) {
	delete(p.at, c)
}

// makeRoom drops one credential or more when the set is full: every
// expired one, at most once per authSweepEvery, else the least recently
// successful of authEvictProbe picked at random (map order).
func (p *provenSet) makeRoom(now time.Time) {
	expired := now.UnixNano() - int64(p.ttl)
	if now.Sub(p.lastSweep) >= authSweepEvery {
		p.lastSweep = now
		for c, at := range p.at {
			if at <= expired {
				delete(p.at, c)
			}
		}
		if len(p.at) < p.max {
			return
		}
	}
	var victim credential
	oldest, seen := int64(math.MaxInt64), 0
	for c, at := range p.at {
		if at < oldest {
			victim, oldest = c, at
		}
		if seen++; seen == authEvictProbe {
			break
		}
	}
	delete(p.at, victim)
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
// looked up: a guesser learns nothing while limited. Credentials that
// authenticated recently are the exception (authLimiter): they are
// authenticated as usual, so that customers sharing a proxy's address are
// not locked out by one of them. Requests without credentials are refused
// with 401 as usual and cost nothing. Every other 401 costs the client a
// token; other outcomes (success, a storage outage) cost nothing. authenticate gets the bearer
// token and its SHA-256; a malformed Authorization header is a 401
// without calling it.
func (s *server) limitAuth(authenticate func(r *http.Request, token string, cred credential) (*http.Request, error), next apiFunc) apiFunc {
	return func(w http.ResponseWriter, r *http.Request) error {
		client := clientOf(r)
		if _, sent := r.Header["Authorization"]; !sent {
			// Nothing was guessed and nothing is looked up, so it costs
			// nothing: behind a shared proxy, a crawler without credentials
			// must not get every customer's new keys refused.
			return errUnauthorized
		}
		token, ok := bearer(r)
		var cred credential
		if ok {
			cred = sha256.Sum256([]byte(token))
		}
		ticket, secs, admitted := s.authLimit.admit(client, cred)
		if !admitted {
			w.Header().Set("Retry-After", strconv.Itoa(secs))
			return errAuthRateLimited
		}
		ar, err := s.authLimit.settle(r.Context(), ticket, func() (*http.Request, error) {
			if !ok {
				return nil, errUnauthorized
			}
			return authenticate(r, token, cred)
		})
		if err != nil {
			return err
		}
		return next(w, ar)
	}
}
