package auth_test

import (
	"context"
	"encoding/json"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
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

func (k *keyServer) fetch(context.Context) (auth.JWKS, error) {
	k.fetches.Add(1)
	k.mu.Lock()
	defer k.mu.Unlock()
	return k.set, k.fail
}

func TestJWKSSourceCachesAndRefreshes(t *testing.T) {
	old, _ := newSigner(t)
	rotated, _ := newSigner(t)
	srv := &keyServer{}
	srv.publish(old)
	const minRefresh = 50 * time.Millisecond
	src := auth.NewJWKSSource(srv.fetch, minRefresh)
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
		t.Fatalf("fetches after unknown kids within minRefresh = %d, want 1", n)
	}

	// Rotation: the issuer publishes the new key beside the old one.
	srv.publish(rotated, old)
	if _, err := src.Key(ctx, rotated.KeyID()); !errors.Is(err, auth.ErrUnknownKey) {
		t.Fatalf("new kid within minRefresh: err = %v, want ErrUnknownKey", err)
	}
	time.Sleep(minRefresh)
	if _, err := src.Key(ctx, rotated.KeyID()); err != nil {
		t.Fatalf("new kid after minRefresh: %v", err)
	}
	if _, err := src.Key(ctx, old.KeyID()); err != nil {
		t.Fatalf("old kid still published: %v", err)
	}

	// The old key retires; the next refetch drops it.
	srv.publish(rotated)
	time.Sleep(minRefresh)
	if _, err := src.Key(ctx, "made-up"); !errors.Is(err, auth.ErrUnknownKey) {
		t.Fatal(err)
	}
	if _, err := src.Key(ctx, old.KeyID()); !errors.Is(err, auth.ErrUnknownKey) {
		t.Fatalf("retired kid: err = %v, want ErrUnknownKey", err)
	}

	// The issuer goes away: known keys still verify, unknown ones are unavailable.
	srv.fail = errors.New("connection refused")
	time.Sleep(minRefresh)
	if _, err := src.Key(ctx, "made-up"); !errors.Is(err, auth.ErrKeysUnavailable) {
		t.Fatalf("fetch failing: err = %v, want ErrKeysUnavailable", err)
	}
	if _, err := src.Key(ctx, rotated.KeyID()); err != nil {
		t.Fatalf("cached kid while the issuer is down: %v", err)
	}
}

func TestJWKSSourceConcurrentMisses(t *testing.T) {
	s, _ := newSigner(t)
	srv := &keyServer{}
	srv.publish(s)
	src := auth.NewJWKSSource(srv.fetch, time.Minute)
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
	v := auth.NewVerifier(auth.NewJWKSSource(fetch, 100*time.Millisecond), auth.DefaultIssuer, auth.DefaultAudience)
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
}
