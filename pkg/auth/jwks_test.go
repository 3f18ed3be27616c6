package auth_test

import (
	"context"
	"encoding/json"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	consulsd "github.com/go-kit/kit/sd/consul"
	"github.com/go-kit/log"
	consul "github.com/hashicorp/consul/api"

	"github.com/kitshop/kitshop/pkg/auth"
	"github.com/kitshop/kitshop/pkg/client"
	"github.com/kitshop/kitshop/pkg/testenv"
)

// keyServer is an issuer's key set that a test can change, counting fetches.
type keyServer struct {
	mu      sync.Mutex
	set     auth.JWKS
	maxAge  time.Duration
	fetches atomic.Int32
	fail    error
}

func (k *keyServer) publish(signers ...*auth.Signer) {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.set = auth.JWKS{}
	for _, s := range signers {
		k.set.Keys = append(k.set.Keys, auth.PublicJWK(s.KeyID(), s.PublicKey()))
	}
}

func (k *keyServer) failWith(err error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.fail = err
}

func (k *keyServer) fetch(context.Context) (auth.JWKS, time.Duration, error) {
	k.fetches.Add(1)
	k.mu.Lock()
	defer k.mu.Unlock()
	return k.set, k.maxAge, k.fail
}

// newSource returns a source over srv, closed when the test ends.
func newSource(t testing.TB, fetch auth.Fetcher, cfg auth.JWKSConfig) *auth.JWKSSource {
	src := auth.NewJWKSSource(fetch, cfg)
	t.Cleanup(func() { _ = src.Close() })
	return src
}

func TestJWKSSourceCachesAndRefetchesForUnknownKids(t *testing.T) {
	old, _ := newSigner(t)
	rotated, _ := newSigner(t)
	srv := &keyServer{maxAge: time.Hour} // no background refresh during the test
	srv.publish(old)
	// Long enough that a loaded machine runs the lookups below within it.
	const minRefresh = 500 * time.Millisecond
	src := newSource(t, srv.fetch, auth.JWKSConfig{MinRefresh: minRefresh, MaxRefresh: time.Hour})
	ctx := context.Background()

	for range 100 {
		if _, err := src.Key(ctx, old.KeyID()); err != nil {
			t.Fatal(err)
		}
	}
	if n := srv.fetches.Load(); n != 1 {
		t.Fatalf("fetches after 100 lookups of a known kid = %d, want 1", n)
	}
	for range 100 {
		if _, err := src.Key(ctx, "made-up"); !errors.Is(err, auth.ErrUnknownKey) {
			t.Fatalf("unknown kid: err = %v", err)
		}
	}
	if n := srv.fetches.Load(); n != 1 {
		t.Fatalf("fetches after unknown kids within MinRefresh = %d, want 1", n)
	}

	// Rotation: the issuer publishes the new key beside the old one.
	srv.publish(rotated, old)
	if _, err := src.Key(ctx, rotated.KeyID()); !errors.Is(err, auth.ErrUnknownKey) {
		t.Fatalf("new kid within MinRefresh: err = %v, want ErrUnknownKey", err)
	}
	time.Sleep(minRefresh)
	if _, err := src.Key(ctx, rotated.KeyID()); err != nil {
		t.Fatalf("new kid after MinRefresh: %v", err)
	}
	if _, err := src.Key(ctx, old.KeyID()); err != nil {
		t.Fatalf("old kid still published: %v", err)
	}

	// The issuer goes away: known keys still verify, unknown ones are unavailable, and
	// the failure is not asked again at once.
	srv.failWith(errors.New("connection refused"))
	time.Sleep(minRefresh)
	if _, err := src.Key(ctx, "made-up"); !errors.Is(err, auth.ErrKeysUnavailable) {
		t.Fatalf("fetch failing: err = %v, want ErrKeysUnavailable", err)
	}
	n := srv.fetches.Load()
	if _, err := src.Key(ctx, "made-up-2"); !errors.Is(err, auth.ErrKeysUnavailable) {
		t.Fatalf("right after a failed fetch: err = %v, want ErrKeysUnavailable", err)
	}
	if srv.fetches.Load() != n {
		t.Fatal("a failed fetch was repeated at once")
	}
	if _, err := src.Key(ctx, rotated.KeyID()); err != nil {
		t.Fatalf("cached kid while the issuer is down: %v", err)
	}
	// It is back: a second later, an unknown kid is fetched again.
	srv.failWith(nil)
	srv.publish(rotated)
	testenv.Eventually(t, 3*time.Second, "the rotated kid known", func() bool { _, err := src.Key(ctx, rotated.KeyID()); return err == nil })
	testenv.Eventually(t, 3*time.Second, "the issuer back, and an unknown kid unknown rather than unavailable", func() bool {
		_, err := src.Key(ctx, "made-up-3")
		return errors.Is(err, auth.ErrUnknownKey)
	})
}

// TestJWKSSourceDropsWithdrawnKeys: a key taken out of the issuer's set (rotated out
// because it leaked) stops verifying within the set's max-age, without any request
// naming an unknown kid.
func TestJWKSSourceDropsWithdrawnKeys(t *testing.T) {
	leaked, _ := newSigner(t)
	current, _ := newSigner(t)
	srv := &keyServer{maxAge: 100 * time.Millisecond}
	srv.publish(leaked, current)
	src := newSource(t, srv.fetch, auth.JWKSConfig{MinRefresh: 20 * time.Millisecond, MaxRefresh: time.Hour})
	ctx := context.Background()
	if _, err := src.Key(ctx, leaked.KeyID()); err != nil {
		t.Fatal(err)
	}
	srv.publish(current)
	took := testenv.Eventually(t, 2*time.Second, "the withdrawn key no longer trusted (max-age 100 ms)", func() bool {
		_, err := src.Key(ctx, leaked.KeyID())
		return errors.Is(err, auth.ErrUnknownKey)
	})
	t.Logf("withdrawn key dropped after %v (max-age 100ms)", took.Round(time.Millisecond))
	if _, err := src.Key(ctx, current.KeyID()); err != nil {
		t.Fatalf("the key still published: %v", err)
	}
}

// TestJWKSSourceRefreshInterval: the background refresh follows the set's max-age,
// never faster than MinRefresh nor slower than MaxRefresh.
func TestJWKSSourceRefreshInterval(t *testing.T) {
	const window = 500 * time.Millisecond
	tests := []struct {
		name             string
		maxAge, min, max time.Duration
		atLeast, atMost  int32
	}{
		{"max-age honoured", 100 * time.Millisecond, 10 * time.Millisecond, time.Hour, 2, 7},
		{"max-age above MaxRefresh", time.Hour, 10 * time.Millisecond, 100 * time.Millisecond, 2, 7},
		{"max-age below MinRefresh", time.Millisecond, 100 * time.Millisecond, time.Hour, 2, 7},
		{"no max-age: MinRefresh", 0, 100 * time.Millisecond, time.Hour, 2, 7},
		{"long max-age", time.Hour, 10 * time.Millisecond, time.Hour, 1, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, _ := newSigner(t)
			srv := &keyServer{maxAge: tt.maxAge}
			srv.publish(s)
			src := newSource(t, srv.fetch, auth.JWKSConfig{MinRefresh: tt.min, MaxRefresh: tt.max})
			time.Sleep(window)
			_ = src.Close()
			n := srv.fetches.Load()
			if n < tt.atLeast || n > tt.atMost {
				t.Fatalf("%d fetches in %v, want %d to %d", n, window, tt.atLeast, tt.atMost)
			}
			time.Sleep(50 * time.Millisecond)
			if srv.fetches.Load() != n {
				t.Fatal("fetched after Close")
			}
		})
	}
}

// TestJWKSSourceCallerHangsUp: a request that gives up while the keys are being
// fetched neither cancels the fetch nor leaves a failure behind: the next request is
// served by that same fetch.
func TestJWKSSourceCallerHangsUp(t *testing.T) {
	s, _ := newSigner(t)
	release := make(chan struct{})
	var fetches atomic.Int32
	fetch := func(ctx context.Context) (auth.JWKS, time.Duration, error) {
		fetches.Add(1)
		select {
		case <-ctx.Done():
			return auth.JWKS{}, 0, ctx.Err()
		case <-release:
		}
		return auth.JWKS{Keys: []auth.JWK{auth.PublicJWK(s.KeyID(), s.PublicKey())}}, time.Hour, nil
	}
	src := newSource(t, fetch, auth.JWKSConfig{MinRefresh: 10 * time.Second, MaxRefresh: time.Hour})
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if _, err := src.Key(ctx, "made-up"); !errors.Is(err, auth.ErrKeysUnavailable) {
		t.Fatalf("caller gone mid-fetch: err = %v, want ErrKeysUnavailable", err)
	}
	close(release)
	if _, err := src.Key(context.Background(), s.KeyID()); err != nil {
		t.Fatalf("after a caller hung up mid-fetch: %v", err)
	}
	if n := fetches.Load(); n != 1 {
		t.Fatalf("fetches = %d, want 1", n)
	}
}

// TestJWKSSourceFetchTimeout: a hung issuer is given up on after FetchTimeout (a real
// failure, remembered briefly), whatever the caller's own deadline.
func TestJWKSSourceFetchTimeout(t *testing.T) {
	fetch := func(ctx context.Context) (auth.JWKS, time.Duration, error) {
		<-ctx.Done()
		return auth.JWKS{}, 0, ctx.Err()
	}
	src := newSource(t, fetch, auth.JWKSConfig{FetchTimeout: 50 * time.Millisecond})
	start := time.Now()
	if _, err := src.Key(context.Background(), "any"); !errors.Is(err, auth.ErrKeysUnavailable) || !strings.Contains(err.Error(), "deadline") {
		t.Fatalf("hung issuer: err = %v, want ErrKeysUnavailable after the fetch timeout", err)
	}
	if took := time.Since(start); took > 2*time.Second {
		t.Fatalf("took %v with a fetch timeout of 50ms", took)
	}
}

func TestJWKSSourceConcurrentMisses(t *testing.T) {
	s, _ := newSigner(t)
	srv := &keyServer{maxAge: time.Hour}
	srv.publish(s)
	src := newSource(t, srv.fetch, auth.JWKSConfig{MinRefresh: time.Minute, MaxRefresh: time.Hour})
	var wg sync.WaitGroup
	for range 50 {
		wg.Go(func() {
			if _, err := src.Key(context.Background(), s.KeyID()); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	if n := srv.fetches.Load(); n != 1 {
		t.Fatalf("fetches = %d, want 1", n)
	}
}

func TestMaxAge(t *testing.T) {
	tests := []struct {
		header []string
		want   time.Duration
	}{
		{nil, 0},
		{[]string{"public, max-age=60"}, time.Minute},
		{[]string{"MAX-AGE=5"}, 5 * time.Second},
		{[]string{`max-age="30"`}, 30 * time.Second},
		{[]string{"public", "max-age=7"}, 7 * time.Second},
		{[]string{"max-age=0"}, 0},
		{[]string{"max-age=-5"}, 0},
		{[]string{"max-age=soon"}, 0},
		{[]string{"no-store, max-age=60"}, 0},
		{[]string{"max-age=60, no-cache"}, 0},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.header, "|"), func(t *testing.T) {
			if got := auth.MaxAge(http.Header{"Cache-Control": tt.header}); got != tt.want {
				t.Fatalf("MaxAge = %v, want %v", got, tt.want)
			}
		})
	}
}

func TestJWKPublicKey(t *testing.T) {
	s, _ := newSigner(t)
	good := auth.PublicJWK(s.KeyID(), s.PublicKey())
	tests := []struct {
		name string
		edit func(*auth.JWK)
		ok   bool
	}{
		{"ed25519", func(*auth.JWK) {}, true},
		{"no alg or use", func(k *auth.JWK) { k.Alg, k.Use = "", "" }, true},
		{"RSA", func(k *auth.JWK) { k.Kty = "RSA" }, false},
		{"X25519", func(k *auth.JWK) { k.Crv = "X25519" }, false},
		{"HS256 alg", func(k *auth.JWK) { k.Alg = "HS256" }, false},
		{"encryption key", func(k *auth.JWK) { k.Use = "enc" }, false},
		{"no kid", func(k *auth.JWK) { k.Kid = "" }, false},
		{"short x", func(k *auth.JWK) { k.X = k.X[:10] }, false},
		{"x not base64url", func(k *auth.JWK) { k.X = "!!!" }, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			k := good
			tt.edit(&k)
			pub, err := k.PublicKey()
			if tt.ok != (err == nil) {
				t.Fatalf("err = %v, want ok %v", err, tt.ok)
			}
			if tt.ok && !pub.Equal(s.PublicKey()) {
				t.Fatal("decoded key differs")
			}
		})
	}
}

func TestKeyIDIsThumbprint(t *testing.T) {
	// RFC 8037 appendix A.3: the thumbprint of its example Ed25519 key.
	jwk := auth.JWK{Kty: "OKP", Crv: "Ed25519", X: "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo", Kid: "x"}
	pub, err := jwk.PublicKey()
	if err != nil {
		t.Fatal(err)
	}
	if got, want := auth.KeyID(pub), "kPrK_qmxVWaYVA9wwBF6Iuo3vVzz7TxHCTwXBygrS4k"; got != want {
		t.Fatalf("KeyID = %s, want %s", got, want)
	}
}

// TestUserJWKSFetcherThroughConsul registers an httptest server serving a key set as a
// user instance in the real Consul and verifies a token with keys fetched through it.
func TestUserJWKSFetcherThroughConsul(t *testing.T) {
	consulClient, _ := testenv.Consul(t)
	signer, _ := newSigner(t)
	var fetches atomic.Int32
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/health":
			w.WriteHeader(http.StatusOK)
		case auth.JWKSPath:
			fetches.Add(1)
			w.Header().Set("Content-Type", "application/json")
			w.Header().Set("Cache-Control", "public, max-age=60")
			_ = json.NewEncoder(w).Encode(auth.JWKS{Keys: []auth.JWK{auth.PublicJWK(signer.KeyID(), signer.PublicKey())}})
		default:
			http.NotFound(w, r)
		}
	}))
	defer ts.Close()
	host, portStr, _ := net.SplitHostPort(ts.Listener.Addr().String())
	port, _ := strconv.Atoi(portStr)

	// A test-only service name keeps the real user instances of a running demo out.
	service := testenv.Name("user-jwks-test")
	id := service + "-1"
	reg := &consul.AgentServiceRegistration{
		ID: id, Name: service, Address: host, Port: port,
		Check: &consul.AgentServiceCheck{HTTP: ts.URL + "/health", Interval: "1s", Timeout: "1s", DeregisterCriticalServiceAfter: "1m"},
	}
	if err := consulClient.Agent().ServiceRegister(reg); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = consulClient.Agent().ServiceDeregister(id) })

	instancer := consulsd.NewInstancer(consulsd.NewClient(consulClient), log.NewNopLogger(), service, nil, true)
	defer instancer.Stop()
	fetch := auth.NewUserJWKSFetcher(instancer, client.Options{Caller: "auth-test"})
	v := auth.NewVerifier(newSource(t, fetch, auth.JWKSConfig{MinRefresh: 100 * time.Millisecond}), auth.DefaultIssuer, auth.DefaultAudience, auth.DefaultTokenTTL)
	token, _, err := signer.Sign(auth.Caller{UserID: "u1", Email: "a@b.c", Role: auth.RoleAdmin}, time.Now())
	if err != nil {
		t.Fatal(err)
	}

	// The instance becomes visible once Consul has seen its check pass.
	deadline := time.Now().Add(15 * time.Second)
	for {
		caller, err := v.Verify(context.Background(), token)
		if err == nil {
			if caller.UserID != "u1" || caller.Role != auth.RoleAdmin {
				t.Fatalf("caller = %+v", caller)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("token not verified through Consul: %v", err)
		}
		time.Sleep(150 * time.Millisecond)
	}
	for range 10 {
		if _, err := v.Verify(context.Background(), token); err != nil {
			t.Fatal(err)
		}
	}
	if n := fetches.Load(); n != 1 {
		t.Fatalf("jwks fetched %d times, want 1 (cached)", n)
	}
	_, maxAge, err := fetch(context.Background())
	if err != nil || maxAge != time.Minute {
		t.Fatalf("fetch: max-age %v, %v; want the server's 1m", maxAge, err)
	}
}

// TestJWKSSourceFirstFetchFails: an instance's first fetch often fails (its client has
// not yet learned where the issuer is); a call needing a key right after fetches
// again rather than answering unavailable for the next second.
func TestJWKSSourceFirstFetchFails(t *testing.T) {
	s, _ := newSigner(t)
	keys := &keyServer{}
	keys.publish(s)
	keys.failWith(errors.New("no healthy user instance"))
	src := newSource(t, keys.fetch, auth.JWKSConfig{MinRefresh: 10 * time.Second, MaxRefresh: time.Hour})
	testenv.Eventually(t, time.Second, "the first fetch", func() bool { return keys.fetches.Load() == 1 })
	time.Sleep(20 * time.Millisecond) // its failure is recorded
	keys.failWith(nil)
	if _, err := src.Key(context.Background(), s.KeyID()); err != nil {
		t.Fatalf("right after a failed first fetch: %v", err)
	}
	// Once a set was fetched, a failure holds back fetches for unknown kids again.
	keys.failWith(errors.New("user service down"))
	if _, err := src.Key(context.Background(), "made-up"); !errors.Is(err, auth.ErrUnknownKey) && !errors.Is(err, auth.ErrKeysUnavailable) {
		t.Fatalf("made-up kid: %v", err)
	}
	before := keys.fetches.Load()
	_, _ = src.Key(context.Background(), "made-up-too")
	if keys.fetches.Load() != before {
		t.Fatal("a made-up kid fetched again within MinRefresh")
	}
}
