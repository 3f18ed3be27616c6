package user

import (
	"context"
	"crypto/ed25519"
	"encoding/base64"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/go-kit/kit/sd"
	kithttp "github.com/go-kit/kit/transport/http"
	"github.com/go-kit/log"
	"github.com/golang-jwt/jwt/v5"

	"github.com/kitshop/kitshop/pkg/auth"
	"github.com/kitshop/kitshop/pkg/client"
	"github.com/kitshop/kitshop/pkg/connect"
	"github.com/kitshop/kitshop/pkg/observe"
	"github.com/kitshop/kitshop/pkg/testenv"
)

// newTestServer serves e over HTTP, logging into e.logs, believing the X-Forwarded-For
// of the gateway. Calls carrying X-Test-Peer come from that service, as the connect
// authorizer would say after an mTLS handshake.
func newTestServer(t *testing.T, e *testEnv) *httptest.Server {
	t.Helper()
	obs := observe.Observer{Logger: log.NewJSONLogger(e.logs), Metrics: observe.NewMetrics("user")}
	h := MakeHTTPHandler(MakeServerEndpoints(e.svc, obs, e.verifier), nil, ForwardedBy("gateway"))
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if peer := r.Header.Get("X-Test-Peer"); peer != "" {
			r = r.WithContext(connect.WithPeer(r.Context(), connect.Peer{Service: peer}))
		}
		h.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	return srv
}

func do(t *testing.T, method, url, body string, header map[string]string) (*http.Response, string) {
	t.Helper()
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	for k, v := range header {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	return resp, string(data)
}

// badTokens are access tokens /v1/users/me must refuse, one per attack or mistake.
func badTokens(t *testing.T, e *testEnv, userID string) map[string]string {
	t.Helper()
	signer, _ := e.keys.Signer()
	caller := auth.Caller{UserID: userID, Email: "ada@example.com", Role: auth.RoleCustomer}
	now := time.Now()
	sign := func(s *auth.Signer, at time.Time) string {
		tok, _, err := s.Sign(caller, at)
		if err != nil {
			t.Fatal(err)
		}
		return tok
	}
	// Signers with the service's own key but the wrong claims: another keyring over
	// the same file.
	withClaims := func(issuer, audience string) *auth.Signer {
		k, err := OpenKeyring(e.keyFile, issuer, audience, 15*time.Minute, time.Now)
		if err != nil {
			t.Fatal(err)
		}
		s, _ := k.Signer()
		return s
	}
	_, otherKey, _ := auth.GenerateKey()
	forge := func(method jwt.SigningMethod, key any) string {
		tok := jwt.NewWithClaims(method, jwt.MapClaims{
			"sub": userID, "role": auth.RoleAdmin, "iss": auth.DefaultIssuer, "aud": auth.DefaultAudience,
			"iat": now.Unix(), "exp": now.Add(time.Hour).Unix(),
		})
		tok.Header["kid"] = signer.KeyID()
		s, err := tok.SignedString(key)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	valid := sign(signer, now)
	parts := strings.Split(valid, ".")
	payload, _ := base64.RawURLEncoding.DecodeString(parts[1])
	tampered := parts[0] + "." + base64.RawURLEncoding.EncodeToString([]byte(strings.Replace(string(payload), `"customer"`, `"admin"`, 1))) + "." + parts[2]

	return map[string]string{
		"expired":                             sign(signer, now.Add(-time.Hour)),
		"signed with another key, our kid":    forge(jwt.SigningMethodEdDSA, otherKey),
		"signed with another key, its kid":    sign(auth.NewSigner(auth.KeyID(otherKey.Public().(ed25519.PublicKey)), otherKey, auth.DefaultIssuer, auth.DefaultAudience, time.Hour), now),
		"alg none":                            forge(jwt.SigningMethodNone, jwt.UnsafeAllowNoneSignatureType),
		"HS256 with the public key as secret": forge(jwt.SigningMethodHS256, []byte(signer.PublicKey())),
		"tampered payload":                    tampered,
		"wrong aud":                           sign(withClaims(auth.DefaultIssuer, "elsewhere"), now),
		"wrong iss":                           sign(withClaims("mallory", auth.DefaultAudience), now),
		"garbage":                             "not.a.token",
	}
}

func TestHTTPRoutes(t *testing.T) {
	e := newTestEnv(t, fastArgon2, 100, 100)
	srv := newTestServer(t, e)
	ada := e.register(t, "ada@example.com", "correct horse")
	tok, err := e.svc.Login(context.Background(), "ada@example.com", "correct horse")
	if err != nil {
		t.Fatal(err)
	}
	register := func(email, password, name string) string {
		b, _ := json.Marshal(map[string]string{"email": email, "password": password, "name": name})
		return string(b)
	}

	tests := []testenv.Step{
		{Name: "register", Method: "POST", Path: "/v1/users", Body: register(" Bob@Example.com", "bob's password", "Bob"), Status: 201, Want: `"email":"bob@example.com","name":"Bob","role":"customer","created_at":"`},
		{Name: "register taken", Method: "POST", Path: "/v1/users", Body: register("ADA@example.com", "correct horse", "Ada"), Status: 409, Want: "email_taken"},
		{Name: "register malformed email", Method: "POST", Path: "/v1/users", Body: register("ada", "correct horse", "Ada"), Status: 400, Want: "invalid_email"},
		{Name: "register short password", Method: "POST", Path: "/v1/users", Body: register("c@example.com", "short", "C"), Status: 400, Want: "invalid_password"},
		{Name: "register oversize password", Method: "POST", Path: "/v1/users", Body: register("c@example.com", strings.Repeat("p", 129), "C"), Status: 400, Want: "invalid_password"},
		{Name: "register oversize name", Method: "POST", Path: "/v1/users", Body: register("c@example.com", "correct horse", strings.Repeat("n", 101)), Status: 400, Want: "invalid_name"},
		{Name: "register choosing a role", Method: "POST", Path: "/v1/users", Body: `{"email":"c@example.com","password":"correct horse","name":"C","role":"admin"}`, Status: 400, Want: "unknown_field"},
		{Name: "register wrong type", Method: "POST", Path: "/v1/users", Body: `{"email":"c@example.com","password":12345678,"name":"C"}`, Status: 400, Want: "invalid_field"},
		{Name: "register malformed JSON", Method: "POST", Path: "/v1/users", Body: `{"email":`, Status: 400, Want: "malformed_json"},
		{Name: "register two values", Method: "POST", Path: "/v1/users", Body: register("c@example.com", "correct horse", "C") + "{}", Status: 400, Want: "malformed_json"},
		{Name: "register empty body", Method: "POST", Path: "/v1/users", Status: 400, Want: "malformed_json"},
		{Name: "register form body", Method: "POST", Path: "/v1/users", Body: "email=c", Header: map[string]string{"Content-Type": "application/x-www-form-urlencoded"}, Status: 400, Want: "unsupported_content_type"},
		{Name: "register huge body", Method: "POST", Path: "/v1/users", Body: `{"name":"` + strings.Repeat("x", 1<<20) + `"}`, Status: 413, Want: "body_too_large"},
		{Name: "login", Method: "POST", Path: "/v1/auth/login", Body: `{"email":"ada@example.com","password":"correct horse"}`, Status: 200, Want: `"token_type":"Bearer","expires_in":900}`},
		{Name: "login wrong password", Method: "POST", Path: "/v1/auth/login", Body: `{"email":"ada@example.com","password":"wrong horse"}`, Status: 401, Want: "invalid_credentials"},
		{Name: "login unknown user", Method: "POST", Path: "/v1/auth/login", Body: `{"email":"zed@example.com","password":"correct horse"}`, Status: 401, Want: "invalid_credentials"},
		{Name: "login malformed email", Method: "POST", Path: "/v1/auth/login", Body: `{"email":"ada@","password":"correct horse"}`, Status: 400, Want: "invalid_email"},
		{Name: "login oversize password", Method: "POST", Path: "/v1/auth/login", Body: `{"email":"ada@example.com","password":"` + strings.Repeat("p", 5000) + `"}`, Status: 400, Want: "invalid_password"},
		{Name: "login extra field", Method: "POST", Path: "/v1/auth/login", Body: `{"email":"ada@example.com","password":"correct horse","remember":true}`, Status: 400, Want: "unknown_field"},
		{Name: "me", Method: "GET", Path: "/v1/users/me", Token: tok.AccessToken, Status: 200, Want: `"id":"` + ada.ID + `","email":"ada@example.com","name":"Ada","role":"customer"`},
		{Name: "me without token", Method: "GET", Path: "/v1/users/me", Status: 401, Want: "missing_token"},
		{Name: "me with a bare X-User-ID", Method: "GET", Path: "/v1/users/me", Header: map[string]string{"X-User-ID": ada.ID}, Status: 401, Want: "missing_token"},
		{Name: "jwks", Method: "GET", Path: "/.well-known/jwks.json", Status: 200, Want: `{"keys":[{"kty":"OKP","crv":"Ed25519","x":"`},
		{Name: "unknown route", Method: "GET", Path: "/v1/nothing", Status: 404, Want: "not_found"},
		{Name: "wrong method", Method: "DELETE", Path: "/v1/users", Status: 405, Want: "method_not_allowed"},
		{Name: "wrong method on login", Method: "GET", Path: "/v1/auth/login", Status: 405, Want: "method_not_allowed"},
		{Name: "wrong method on me", Method: "POST", Path: "/v1/users/me", Status: 405, Want: "method_not_allowed"},
		{Name: "wrong method on jwks", Method: "POST", Path: "/.well-known/jwks.json", Status: 405, Want: "method_not_allowed"},
	}
	for name, token := range badTokens(t, e, ada.ID) {
		tests = append(tests, testenv.Step{Name: "me with token " + name, Method: "GET", Path: "/v1/users/me", Token: token, Status: 401, Want: "invalid_token"})
	}
	for _, tt := range tests {
		t.Run(tt.Name, func(t *testing.T) {
			body := tt.Do(t, srv.URL)
			for _, secret := range []string{"correct horse", "bob's password", "$argon2id$"} {
				if strings.Contains(body, secret) {
					t.Fatalf("response contains %q: %s", secret, body)
				}
			}
		})
	}
	for _, secret := range []string{"correct horse", "wrong horse", "bob's password", "$argon2id$"} {
		if strings.Contains(e.logs.String(), secret) {
			t.Fatalf("a log line contains %q:\n%s", secret, e.logs)
		}
	}
}

// TestHTTPLoginRateLimit: the failed-login budget of a client address counts the
// address the gateway forwards, and only when the gateway (proven by its certificate)
// forwards it; anyone else's X-Forwarded-For is ignored, with TLS off too. An IPv6
// client is one /64.
func TestHTTPLoginRateLimit(t *testing.T) {
	tests := []struct {
		name          string
		peer          string // the caller's service, proven by mTLS; "" for none (TLS off)
		first, second string // X-Forwarded-For of two clients
		wantSecond    int
	}{
		{"behind the gateway", "gateway", "198.51.100.7", "203.0.113.9", http.StatusUnauthorized},
		{"behind the gateway, client's own entries", "gateway", "198.51.100.7, 10.0.0.1", "203.0.113.9", http.StatusUnauthorized},
		{"forwarded by another service", "order", "198.51.100.7", "203.0.113.9", http.StatusTooManyRequests},
		{"no certificate (TLS off)", "", "198.51.100.7", "203.0.113.9", http.StatusTooManyRequests},
		{"IPv6, one /64", "gateway", "2001:db8:5:6::1", "2001:db8:5:6:ffff::9", http.StatusTooManyRequests},
		{"IPv6, two /64s", "gateway", "2001:db8:5:6::1", "2001:db8:5:7::1", http.StatusUnauthorized},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newTestEnv(t, fastArgon2, 100, 2)
			srv := newTestServer(t, e)
			body := `{"email":"ada@example.com","password":"wrong horse"}`
			from := func(xff string) map[string]string {
				return map[string]string{"X-Forwarded-For": xff, "X-Test-Peer": tt.peer}
			}
			for range 2 {
				if resp, b := do(t, "POST", srv.URL+"/v1/auth/login", body, from(tt.first)); resp.StatusCode != 401 {
					t.Fatalf("status %d: %s", resp.StatusCode, b)
				}
			}
			resp, b := do(t, "POST", srv.URL+"/v1/auth/login", body, from(tt.first))
			if resp.StatusCode != http.StatusTooManyRequests || !strings.Contains(b, "rate_limited") {
				t.Fatalf("3rd failure from one address: %d %s", resp.StatusCode, b)
			}
			if ra := resp.Header.Get("Retry-After"); ra != "30" {
				t.Fatalf("Retry-After %q, want 30", ra)
			}
			if resp, b := do(t, "POST", srv.URL+"/v1/auth/login", body, from(tt.second)); resp.StatusCode != tt.wantSecond {
				t.Fatalf("another forwarded address: %d %s, want %d", resp.StatusCode, b, tt.wantSecond)
			}
		})
	}
}

// TestJWKSVerifiesTokens logs in over HTTP and verifies the token with the keys
// fetched over each transport.
func TestJWKSVerifiesTokens(t *testing.T) {
	for _, transport := range []string{"http", "grpc"} {
		t.Run(transport, func(t *testing.T) { testJWKSVerifiesTokens(t, transport) })
	}
}

func testJWKSVerifiesTokens(t *testing.T, transport string) {
	e := newTestEnv(t, fastArgon2, 100, 100)
	srv := newTestServer(t, e)
	e.register(t, "ada@example.com", "correct horse")
	resp, body := do(t, "POST", srv.URL+"/v1/auth/login", `{"email":"ada@example.com","password":"correct horse"}`, nil)
	if resp.StatusCode != 200 {
		t.Fatalf("login: %d %s", resp.StatusCode, body)
	}
	var login struct {
		AccessToken string `json:"access_token"`
	}
	_ = json.Unmarshal([]byte(body), &login)

	// Another service verifies with nothing but the published keys, kept as long as
	// their Cache-Control says.
	fetch := auth.NewUserJWKSFetcher(sd.FixedInstancer{strings.TrimPrefix(srv.URL, "http://")}, client.Options{Caller: "jwks-test"})
	if transport == "grpc" {
		fetch = auth.NewUserGRPCJWKSFetcher(sd.FixedInstancer{newTestGRPCServer(t, e)}, client.Options{Caller: "jwks-test-grpc"})
	}
	// go-kit's endpointer takes the instance in the background: the first calls may
	// find none yet.
	var (
		maxAge time.Duration
		err    error
	)
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		if _, maxAge, err = fetch(context.Background()); err == nil || time.Now().After(deadline) {
			break
		}
	}
	if err != nil || maxAge != time.Minute {
		t.Fatalf("fetching the keys: max-age %v, %v; want 1m", maxAge, err)
	}
	keys := auth.NewJWKSSource(fetch, auth.JWKSConfig{})
	defer keys.Close()
	v := auth.NewVerifier(keys, auth.DefaultIssuer, auth.DefaultAudience, 15*time.Minute)
	c, err := v.Verify(context.Background(), login.AccessToken)
	if err != nil || c.Email != "ada@example.com" || c.Role != auth.RoleCustomer {
		t.Fatalf("verify through JWKS: %+v, %v", c, err)
	}
	if strings.Contains(body, "private") || strings.Contains(body, `"d"`) {
		t.Fatalf("login body mentions private material: %s", body)
	}
}

// TestHTTPClient runs the client against a live server: every Service method, and
// business errors coming back as the same domain errors.
func TestHTTPClient(t *testing.T) {
	e := newTestEnv(t, fastArgon2, 100, 100)
	srv := newTestServer(t, e)
	instancer := sd.FixedInstancer{strings.TrimPrefix(srv.URL, "http://")}
	opts := client.Options{Caller: "test", Before: []kithttp.RequestFunc{auth.ContextToHTTP()}}
	c := NewHTTPClient(instancer, opts.Defaults())
	ctx := context.Background()

	u, err := c.Register(ctx, Registration{Email: "Ada@example.com", Password: "correct horse", Name: "Ada"})
	if err != nil || u.Email != "ada@example.com" || u.ID == "" || u.CreatedAt.IsZero() {
		t.Fatalf("register: %+v %v", u, err)
	}
	if _, err := c.Register(ctx, Registration{Email: "ada@example.com", Password: "correct horse", Name: "Ada"}); !errors.Is(err, ErrEmailTaken) {
		t.Fatalf("register twice: %v", err)
	}
	if _, err := c.Login(ctx, "ada@example.com", "wrong horse"); !errors.Is(err, ErrInvalidCredentials) {
		t.Fatalf("login wrong password: %v", err)
	}
	tok, err := c.Login(ctx, "ada@example.com", "correct horse")
	if err != nil || tok.ExpiresIn != 15*time.Minute {
		t.Fatalf("login: %+v %v", tok, err)
	}
	if _, err := c.Me(ctx); !errors.Is(err, auth.ErrNoToken) {
		t.Fatalf("me without token: %v", err)
	}
	userCtx := auth.HTTPToContext()(ctx, &http.Request{Header: http.Header{"Authorization": {"Bearer " + tok.AccessToken}}})
	if me, err := c.Me(userCtx); err != nil || me != u {
		t.Fatalf("me: %+v %v, want %+v", me, err, u)
	}
	set, err := c.JWKS(ctx)
	signer, _ := e.keys.Signer()
	if err != nil || len(set.Keys) != 1 || set.Keys[0].Kid != signer.KeyID() {
		t.Fatalf("jwks: %+v %v", set, err)
	}
}
