package auth

import (
	"context"
	"crypto/ed25519"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"sync"
	"time"

	"github.com/go-kit/kit/sd"

	"github.com/kitshop/kitshop/pkg/client"
)

// UserService is the Consul name of the service that issues tokens and serves their
// keys.
const UserService = "user"

// JWKSPath is where the user service serves its public keys.
const JWKSPath = "/.well-known/jwks.json"

// JWKSSource is a KeySource that caches the keys of a JWKS by kid. A kid it does not
// hold makes it fetch the set again, at most once per minRefresh, so a token signed with
// a freshly rotated key verifies within minRefresh while tokens with made-up kids cannot
// make it hammer the issuer.
type JWKSSource struct {
	fetch      func(context.Context) (JWKS, error)
	minRefresh time.Duration

	mu   sync.RWMutex
	keys map[string]ed25519.PublicKey

	fetchMu   sync.Mutex // one fetch at a time; waiters then read its result
	lastFetch time.Time
	lastErr   error
}

// NewJWKSSource returns a source that gets its keys from fetch.
func NewJWKSSource(fetch func(context.Context) (JWKS, error), minRefresh time.Duration) *JWKSSource {
	return &JWKSSource{fetch: fetch, minRefresh: minRefresh, keys: map[string]ed25519.PublicKey{}}
}

// Key implements KeySource. It fails with ErrUnknownKey for a kid the issuer does not
// publish and with ErrKeysUnavailable when the keys could not be fetched.
func (s *JWKSSource) Key(ctx context.Context, kid string) (ed25519.PublicKey, error) {
	if k, ok := s.cached(kid); ok {
		return k, nil
	}
	s.fetchMu.Lock()
	defer s.fetchMu.Unlock()
	if k, ok := s.cached(kid); ok { // fetched while this call waited
		return k, nil
	}
	if !s.lastFetch.IsZero() && time.Since(s.lastFetch) < s.minRefresh {
		if s.lastErr != nil {
			return nil, fmt.Errorf("%w: %v", ErrKeysUnavailable, s.lastErr)
		}
		return nil, ErrUnknownKey
	}
	s.lastFetch = time.Now()
	s.lastErr = s.refresh(ctx)
	if s.lastErr != nil {
		return nil, fmt.Errorf("%w: %v", ErrKeysUnavailable, s.lastErr)
	}
	if k, ok := s.cached(kid); ok {
		return k, nil
	}
	return nil, ErrUnknownKey
}

func (s *JWKSSource) cached(kid string) (ed25519.PublicKey, bool) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	k, ok := s.keys[kid]
	return k, ok
}

// refresh replaces the cached keys by the fetched set, so keys the issuer retired stop
// verifying too. Keys of another kind are skipped: only Ed25519 is ever accepted.
func (s *JWKSSource) refresh(ctx context.Context) error {
	set, err := s.fetch(ctx)
	if err != nil {
		return err
	}
	keys := make(map[string]ed25519.PublicKey, len(set.Keys))
	for _, jwk := range set.Keys {
		if pub, err := jwk.PublicKey(); err == nil {
			keys[jwk.Kid] = pub
		}
	}
	s.mu.Lock()
	s.keys = keys
	s.mu.Unlock()
	return nil
}

// maxJWKS bounds the key set read from the user service.
const maxJWKS = 64 << 10

// NewUserJWKSFetcher returns a fetch function for NewJWKSSource that reads the key set
// of a user service instance found through instancer, through the client chain of
// pkg/client (round robin, retries, breaker, tracing).
func NewUserJWKSFetcher(instancer sd.Instancer, opts client.Options) func(context.Context) (JWKS, error) {
	e := client.New(UserService, instancer, opts).Endpoint(client.Route{
		Name:   "jwks",
		Method: http.MethodGet,
		Encode: func(_ context.Context, r *http.Request, _ any) error {
			r.URL.Path = JWKSPath
			return nil
		},
		Decode: func(_ context.Context, resp *http.Response) (any, error) {
			var set JWKS
			if err := json.NewDecoder(io.LimitReader(resp.Body, maxJWKS)).Decode(&set); err != nil {
				return nil, fmt.Errorf("auth: decode jwks: %w", err)
			}
			return set, nil
		},
		Idempotent: true,
	})
	return func(ctx context.Context) (JWKS, error) {
		resp, err := e(ctx, nil)
		if err != nil {
			return JWKS{}, err
		}
		return resp.(JWKS), nil
	}
}

// NewUserVerifier is the Verifier every service but user builds for its 🔒 routes:
// tokens of DefaultIssuer for DefaultAudience, keys fetched from the user instances
// instancer finds and refetched at most every minRefresh for an unknown kid.
func NewUserVerifier(instancer sd.Instancer, opts client.Options, minRefresh time.Duration) Verifier {
	return NewVerifier(NewJWKSSource(NewUserJWKSFetcher(instancer, opts), minRefresh), DefaultIssuer, DefaultAudience)
}
