package api

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"net/http"
	"strings"

	"github.com/nanohook/nanohook"
	"github.com/nanohook/nanohook/store"
)

// KeyStore is what authenticating a customer needs: the live key with a
// given hash.
type KeyStore interface {
	APIKeyByHash(ctx context.Context, hash []byte) (nanohook.APIKey, error)
}

// accountKey is the context key of the authenticated account id.
type accountKey struct{}

// accountID returns the account authenticated by requirePublic. Handlers
// behind requirePublic can rely on it being set.
func accountID(ctx context.Context) int64 {
	id, _ := ctx.Value(accountKey{}).(int64)
	return id
}

// maxTokenLen bounds what is worth hashing; API keys are about 50 bytes and
// admin tokens are whatever the operator chose, within reason.
const maxTokenLen = 4096

var errUnauthorized = nanohook.Errorf(nanohook.CodeUnauthorized, "", "missing or invalid credentials (send Authorization: Bearer <key>)")

// bearer extracts the token of an "Authorization: Bearer <token>" header.
// The scheme is case-insensitive (RFC 9110 §11.1); the token is not.
func bearer(r *http.Request) (string, bool) {
	scheme, token, ok := strings.Cut(r.Header.Get("Authorization"), " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return "", false
	}
	if token == "" || len(token) > maxTokenLen || strings.ContainsAny(token, " \t") {
		return "", false
	}
	return token, true
}

// requirePublic authenticates a customer by API key and puts the key's
// account in the request context. Only the hash of the key is looked up and
// the key is never echoed. A storage outage answers 503, not 401, so clients
// do not throw away a good key. Failures count against the client's limit
// (limitAuth), and a key that authenticated is served even from a limited
// address.
func (s *server) requirePublic(next apiFunc) apiFunc {
	return s.limitAuth(s.authenticatePublic, next)
}

// authenticatePublic looks the key up by its hash. The limiter's SHA-256
// of it is not reused: the store's hash is HashAPIKey's to define.
func (s *server) authenticatePublic(r *http.Request, key string, _ credential) (*http.Request, error) {
	if !strings.HasPrefix(key, nanohook.APIKeyPrefix) {
		return nil, errUnauthorized
	}
	hash := nanohook.HashAPIKey(key)
	k, err := s.store.APIKeyByHash(r.Context(), hash)
	if errors.Is(err, store.ErrNotFound) {
		return nil, errUnauthorized
	}
	if err != nil {
		return nil, err
	}
	if subtle.ConstantTimeCompare(k.Hash, hash) != 1 || k.AccountID <= 0 {
		return nil, errUnauthorized
	}
	return r.WithContext(context.WithValue(r.Context(), accountKey{}, k.AccountID)), nil
}

// errAdminDisabled answers every admin call while no admin token is
// configured. It differs from errUnauthorized so that an operator who forgot
// the token is told what to set, instead of hunting for a typo in a token
// the server never had.
var errAdminDisabled = nanohook.Errorf(nanohook.CodeUnauthorized, "", "the admin API is disabled until an admin token is configured: set NANOHOOK_ADMIN_TOKEN on the server and restart it")

// requireAdmin authenticates the platform by the admin token. Both sides are
// hashed before the constant-time compare so that not even the token's length
// leaks through timing. With no token configured every call is refused
// (errAdminDisabled): an admin API that runs open would let anyone publish
// events. Failures count against the client's limit (limitAuth), which
// matters most here: the operator chooses the token, and it may be
// guessable. Without a token there is nothing to guess, so nothing counts.
func (s *server) requireAdmin(next apiFunc) apiFunc {
	if s.adminToken == "" {
		return func(http.ResponseWriter, *http.Request) error { return errAdminDisabled }
	}
	want := sha256.Sum256([]byte(s.adminToken))
	return s.limitAuth(func(r *http.Request, _ string, got credential) (*http.Request, error) {
		if subtle.ConstantTimeCompare(got[:], want[:]) != 1 {
			return nil, errUnauthorized
		}
		return r, nil
	}, next)
}
