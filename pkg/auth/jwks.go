package auth

import (
	"context"
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/go-kit/kit/endpoint"
	"github.com/go-kit/kit/sd"

	keyspb "github.com/kitshop/kitshop/pkg/auth/pb"
	"github.com/kitshop/kitshop/pkg/client"
)

// UserService is the Consul name of the service that issues tokens and serves their
// keys.
const UserService = "user"

// JWKSPath is where the user service serves its public keys.
const JWKSPath = "/.well-known/jwks.json"

// Fetcher fetches an issuer's key set and says how long it may be used: the max-age of
// its Cache-Control header, zero when it gives none.
type Fetcher func(ctx context.Context) (set JWKS, maxAge time.Duration, err error)

// JWKSConfig tunes a JWKSSource; zero fields take the defaults below.
type JWKSConfig struct {
	// MinRefresh is the least time between two fetches. A kid the cached set lacks makes
	// the source fetch again, at most this often, so a token signed with a freshly
	// rotated key verifies within MinRefresh while made-up kids cannot make it hammer
	// the issuer; no max-age refreshes faster either.
	MinRefresh time.Duration
	// MaxRefresh is the longest a key set is used before it is fetched again, whatever
	// its max-age says. A set without max-age is fetched again after MinRefresh.
	MaxRefresh time.Duration
	// FetchTimeout bounds one fetch.
	FetchTimeout time.Duration
}

// Defaults of JWKSConfig.
const (
	DefaultJWKSMinRefresh   = 10 * time.Second
	DefaultJWKSMaxRefresh   = 5 * time.Minute
	DefaultJWKSFetchTimeout = 5 * time.Second
)

// retryFailedFetch is how soon a fetch may follow one that failed: a user service that
// is down is asked again within a second, not after MinRefresh (its breaker keeps the
// asking cheap).
const retryFailedFetch = time.Second

func (c JWKSConfig) withDefaults() JWKSConfig {
	if c.MinRefresh <= 0 {
		c.MinRefresh = DefaultJWKSMinRefresh
	}
	if c.MaxRefresh < c.MinRefresh {
		c.MaxRefresh = max(DefaultJWKSMaxRefresh, c.MinRefresh)
	}
	if c.FetchTimeout <= 0 {
		c.FetchTimeout = DefaultJWKSFetchTimeout
	}
	return c
}

// JWKSSource is a KeySource over an issuer's key set. It fetches the set when made and
// again whenever its max-age runs out, in the background, replacing the keys it holds:
// a key the issuer withdrew stops verifying within one max-age. A kid it does not hold
// makes it fetch at once (at most once per MinRefresh). Fetches run apart from the
// requests that want them, with their own timeout, so a caller that hangs up neither
// fails the fetch nor leaves a failure behind for the next; while the issuer cannot be
// reached, the keys of the last good set stay in use. Close stops the refreshing.
type JWKSSource struct {
	fetch Fetcher
	cfg   JWKSConfig

	ctx  context.Context // ends with Close, and with it any fetch under way
	stop context.CancelFunc
	done sync.WaitGroup // the refresh loop and the fetches

	keys atomic.Pointer[map[string]ed25519.PublicKey] // read by every verification, without a lock

	mu       sync.Mutex
	closed   bool
	inflight *keyFetch
	// noFetchUntil holds back fetches for unknown kids: MinRefresh after a good fetch,
	// retryFailedFetch after a failed one (lastErr). Until a first set has been fetched
	// (fetched), a call needing a key fetches at once: with no key at all, every
	// verification fails anyway, and an instance that has just started often fails its
	// first fetch (its client has not yet learned the issuer's instances).
	noFetchUntil time.Time
	lastErr      error
	fetched      bool
}

// keyFetch is one fetch, which every caller that needs it waits for.
type keyFetch struct {
	done   chan struct{}
	maxAge time.Duration
	err    error
}

// NewJWKSSource returns a source that gets its keys from fetch and starts keeping them
// fresh.
func NewJWKSSource(fetch Fetcher, cfg JWKSConfig) *JWKSSource {
	ctx, stop := context.WithCancel(context.Background())
	s := &JWKSSource{fetch: fetch, cfg: cfg.withDefaults(), ctx: ctx, stop: stop}
	s.keys.Store(&map[string]ed25519.PublicKey{})
	s.mu.Lock()
	first := s.startFetch()
	s.mu.Unlock()
	s.done.Add(1)
	go s.refreshLoop(first)
	return s
}

// Close stops the background refresh and any fetch under way.
func (s *JWKSSource) Close() error {
	s.mu.Lock()
	s.closed = true // no fetch starts from now on
	s.mu.Unlock()
	s.stop()
	s.done.Wait()
	return nil
}

// Key implements KeySource. It fails with ErrUnknownKey for a kid the issuer does not
// publish and with ErrKeysUnavailable when the keys could not be fetched (or ctx ended
// while they were being fetched).
func (s *JWKSSource) Key(ctx context.Context, kid string) (ed25519.PublicKey, error) {
	if k, ok := (*s.keys.Load())[kid]; ok {
		return k, nil
	}
	s.mu.Lock()
	if k, ok := (*s.keys.Load())[kid]; ok { // fetched while this call took the lock
		s.mu.Unlock()
		return k, nil
	}
	f := s.inflight
	if f == nil && !s.closed && (!s.fetched || !time.Now().Before(s.noFetchUntil)) {
		f = s.startFetch()
	}
	lastErr := s.lastErr
	s.mu.Unlock()

	if f == nil { // fetched lately: its outcome stands
		if lastErr != nil {
			return nil, fmt.Errorf("%w: %v", ErrKeysUnavailable, lastErr)
		}
		return nil, ErrUnknownKey
	}
	select {
	case <-f.done:
	case <-ctx.Done():
		return nil, fmt.Errorf("%w: %v", ErrKeysUnavailable, ctx.Err())
	}
	if f.err != nil {
		return nil, fmt.Errorf("%w: %v", ErrKeysUnavailable, f.err)
	}
	k, ok := (*s.keys.Load())[kid]
	if !ok {
		return nil, ErrUnknownKey
	}
	return k, nil
}

// startFetch starts a fetch on the source's own context; s.mu is held and the source
// is not closed.
func (s *JWKSSource) startFetch() *keyFetch {
	f := &keyFetch{done: make(chan struct{})}
	s.inflight = f
	s.done.Add(1)
	go func() {
		defer s.done.Done()
		ctx, cancel := context.WithTimeout(s.ctx, s.cfg.FetchTimeout)
		set, maxAge, err := s.fetch(ctx)
		cancel()
		s.finish(f, set, maxAge, err)
	}()
	return f
}

// finish records the outcome of f. A good set replaces the keys, so keys the issuer
// retired stop verifying; keys of another kind are skipped (only Ed25519 is ever
// accepted). A fetch ended by Close is no failure of the issuer and is not remembered.
func (s *JWKSSource) finish(f *keyFetch, set JWKS, maxAge time.Duration, err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.inflight = nil
	f.maxAge, f.err = maxAge, err
	defer close(f.done)
	now := time.Now()
	switch {
	case err == nil:
		keys := make(map[string]ed25519.PublicKey, len(set.Keys))
		for _, jwk := range set.Keys {
			if pub, err := jwk.PublicKey(); err == nil {
				keys[jwk.Kid] = pub
			}
		}
		s.keys.Store(&keys)
		s.lastErr, s.fetched = nil, true
		s.noFetchUntil = now.Add(s.cfg.MinRefresh)
	case s.ctx.Err() != nil || errors.Is(err, context.Canceled):
	default:
		s.lastErr = err
		s.noFetchUntil = now.Add(retryFailedFetch)
	}
}

// refreshLoop fetches the set, then again when its max-age, bounded by MinRefresh and
// MaxRefresh, runs out; after a failure, again within a second, backing off to
// MinRefresh while the issuer stays away.
func (s *JWKSSource) refreshLoop(f *keyFetch) {
	defer s.done.Done()
	backoff := time.Duration(0)
	for {
		select {
		case <-f.done:
		case <-s.ctx.Done():
			return
		}
		wait := min(max(f.maxAge, s.cfg.MinRefresh), s.cfg.MaxRefresh)
		if f.err != nil {
			backoff = min(max(2*backoff, retryFailedFetch), s.cfg.MinRefresh)
			wait = backoff
		} else {
			backoff = 0
		}
		t := time.NewTimer(wait)
		select {
		case <-t.C:
		case <-s.ctx.Done():
			t.Stop()
			return
		}
		s.mu.Lock()
		if s.closed {
			s.mu.Unlock()
			return
		}
		if f = s.inflight; f == nil {
			f = s.startFetch()
		}
		s.mu.Unlock()
	}
}

// maxJWKS bounds the key set read from the user service.
const maxJWKS = 64 << 10

// NewUserJWKSFetcher returns a Fetcher that reads the key set of a user service
// instance found through instancer, through the client chain of pkg/client (round
// robin, retries, breaker, tracing). The chain has a breaker of its own,
// "<caller>/jwks→user": a flood of logins that opens the caller's breaker to the user
// service must not stop it from learning a new key.
func NewUserJWKSFetcher(instancer sd.Instancer, opts client.Options) Fetcher {
	opts.Caller += "/jwks"
	e := client.New(UserService, instancer, opts).Endpoint(client.Route{
		Name:   "jwks",
		Method: http.MethodGet,
		Encode: func(_ context.Context, r *http.Request, _ any) error {
			r.URL.Path = JWKSPath
			return nil
		},
		Decode: func(_ context.Context, resp *http.Response) (any, error) {
			var f fetchedKeys
			if err := json.NewDecoder(io.LimitReader(resp.Body, maxJWKS)).Decode(&f.set); err != nil {
				return nil, fmt.Errorf("auth: decode jwks: %w", err)
			}
			f.maxAge = MaxAge(resp.Header)
			return f, nil
		},
		Idempotent: true,
	})
	return fetcherOf(e)
}

// NewUserGRPCJWKSFetcher is NewUserJWKSFetcher over gRPC: the Keys service (pkg/auth/pb)
// the user service serves, at the instances instancer finds (discovery.NewConsulGRPCInstancer),
// through pkg/client's gRPC chain, with the same breaker of its own.
func NewUserGRPCJWKSFetcher(instancer sd.Instancer, opts client.Options) Fetcher {
	opts.Caller += "/jwks"
	e := client.NewGRPC(UserService, instancer, opts).Endpoint(client.GRPCRoute{
		Name:    "jwks",
		Service: keyspb.Keys_ServiceDesc.ServiceName,
		Method:  "GetKeys",
		Encode:  func(context.Context, any) (any, error) { return &keyspb.GetKeysRequest{}, nil },
		Decode: func(_ context.Context, reply any) (any, error) {
			m := reply.(*keyspb.KeySet)
			set := JWKS{Keys: make([]JWK, len(m.Keys))}
			for i, k := range m.Keys {
				set.Keys[i] = JWK{Kty: k.Kty, Crv: k.Crv, X: k.X, Kid: k.Kid, Alg: k.Alg, Use: k.Use}
			}
			return fetchedKeys{set: set, maxAge: time.Duration(m.MaxAgeSeconds) * time.Second}, nil
		},
		Reply:      &keyspb.KeySet{},
		Read:       true,
		Idempotent: true,
	})
	return fetcherOf(e)
}

// fetchedKeys is a key set and how long it may be used, as a fetcher's endpoint
// returns them.
type fetchedKeys struct {
	set    JWKS
	maxAge time.Duration
}

// fetcherOf is the Fetcher calling e.
func fetcherOf(e endpoint.Endpoint) Fetcher {
	return func(ctx context.Context) (JWKS, time.Duration, error) {
		resp, err := e(ctx, nil)
		if err != nil {
			return JWKS{}, 0, err
		}
		f := resp.(fetchedKeys)
		return f.set, f.maxAge, nil
	}
}

// MaxAge is the max-age directive of h's Cache-Control; zero when there is none, or
// when no-store or no-cache forbid reusing the answer.
func MaxAge(h http.Header) time.Duration {
	var age time.Duration
	for _, v := range h.Values("Cache-Control") {
		for _, directive := range strings.Split(v, ",") {
			name, value, _ := strings.Cut(strings.TrimSpace(directive), "=")
			switch strings.ToLower(name) {
			case "no-store", "no-cache":
				return 0
			case "max-age":
				if n, err := strconv.Atoi(strings.Trim(value, `"`)); err == nil && n > 0 {
					age = time.Duration(n) * time.Second
				}
			}
		}
	}
	return age
}
