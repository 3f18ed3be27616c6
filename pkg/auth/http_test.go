package auth_test

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strconv"
	"testing"
	"time"

	"github.com/kitshop/kitshop/pkg/auth"
	"github.com/kitshop/kitshop/pkg/errs"
)

func TestMiddleware(t *testing.T) {
	signer, _ := newSigner(t)
	v := auth.NewVerifier(auth.StaticKeys{signer.KeyID(): signer.PublicKey()}, auth.DefaultIssuer, auth.DefaultAudience, signer.TTL())
	token, _, err := signer.Sign(auth.Caller{UserID: "u7", Email: "u7@example.com", Role: auth.RoleCustomer}, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	h := auth.Middleware(v)(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, _ := auth.CallerFrom(r.Context())
		raw, _ := auth.TokenFrom(r.Context())
		_ = json.NewEncoder(w).Encode(map[string]string{"user": c.UserID, "role": c.Role, "token_forwarded": strconv.FormatBool(raw == token)})
	}))

	tests := []struct {
		name       string
		header     map[string]string
		wantStatus int
		wantCode   string
	}{
		{"valid", map[string]string{"Authorization": "Bearer " + token}, 200, ""},
		{"lower-case scheme", map[string]string{"Authorization": "bearer " + token}, 200, ""},
		{"no header", nil, 401, "missing_token"},
		{"basic auth", map[string]string{"Authorization": "Basic dTpw"}, 401, "missing_token"},
		{"bare X-User-ID is not trusted", map[string]string{"X-User-ID": "u7"}, 401, "missing_token"},
		{"garbage token", map[string]string{"Authorization": "Bearer nope"}, 401, "invalid_token"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req := httptest.NewRequest(http.MethodGet, "/v1/cart", nil)
			for k, v := range tt.header {
				req.Header.Set(k, v)
			}
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, req)
			if rec.Code != tt.wantStatus {
				t.Fatalf("status = %d, want %d (%s)", rec.Code, tt.wantStatus, rec.Body)
			}
			if tt.wantStatus == 200 {
				var got map[string]string
				_ = json.Unmarshal(rec.Body.Bytes(), &got)
				if got["user"] != "u7" || got["role"] != auth.RoleCustomer || got["token_forwarded"] != "true" {
					t.Fatalf("context = %v", got)
				}
				return
			}
			var body errs.Body
			if err := json.Unmarshal(rec.Body.Bytes(), &body); err != nil || body.Error.Code != tt.wantCode {
				t.Fatalf("body = %s, want code %s", rec.Body, tt.wantCode)
			}
		})
	}
}

func TestAuthenticatedEndpoint(t *testing.T) {
	signer, _ := newSigner(t)
	v := auth.NewVerifier(auth.StaticKeys{signer.KeyID(): signer.PublicKey()}, auth.DefaultIssuer, auth.DefaultAudience, signer.TTL())
	customer, _, _ := signer.Sign(auth.Caller{UserID: "c1", Role: auth.RoleCustomer}, time.Now())
	admin, _, _ := signer.Sign(auth.Caller{UserID: "a1", Role: auth.RoleAdmin}, time.Now())
	next := func(ctx context.Context, _ any) (any, error) {
		c, _ := auth.CallerFrom(ctx)
		return c.UserID, nil
	}
	withToken := func(tok string) context.Context {
		r := httptest.NewRequest(http.MethodGet, "/", nil)
		r.Header.Set("Authorization", "Bearer "+tok)
		return auth.HTTPToContext()(context.Background(), r)
	}
	tests := []struct {
		name    string
		admin   bool
		ctx     context.Context
		want    any
		wantErr error
	}{
		{"customer on a 🔒 route", false, withToken(customer), "c1", nil},
		{"no token", false, context.Background(), nil, auth.ErrNoToken},
		{"bad token", false, withToken("x.y.z"), nil, auth.ErrInvalidToken},
		{"customer on an admin route", true, withToken(customer), nil, auth.ErrForbidden},
		{"admin on an admin route", true, withToken(admin), "a1", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			mw := auth.Authenticated(v)
			if tt.admin {
				mw = auth.Admin(v)
			}
			got, err := mw(next)(tt.ctx, nil)
			if err != tt.wantErr || got != tt.want {
				t.Fatalf("got %v, %v; want %v, %v", got, err, tt.want, tt.wantErr)
			}
		})
	}
}

// BenchmarkVerifyCachedJWKS measures token verifications with the key set already
// cached: the cost every 🔒 request pays in every service.
func BenchmarkVerifyCachedJWKS(b *testing.B) {
	signer, _ := newSigner(b)
	set := auth.JWKS{Keys: []auth.JWK{auth.PublicJWK(signer.KeyID(), signer.PublicKey())}}
	src := newSource(b, func(context.Context) (auth.JWKS, time.Duration, error) { return set, time.Hour, nil }, auth.JWKSConfig{})
	v := auth.NewVerifier(src, auth.DefaultIssuer, auth.DefaultAudience, signer.TTL())
	token, _, err := signer.Sign(auth.Caller{UserID: "u1", Email: "ada@example.com", Role: auth.RoleCustomer}, time.Now())
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	if _, err := v.Verify(ctx, token); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, err := v.Verify(ctx, token); err != nil {
				b.Fatal(err)
			}
		}
	})
}
