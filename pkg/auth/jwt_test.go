package auth_test

import (
	"context"
	"crypto/ed25519"
	"encoding/base64"
	"errors"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/kitshop/kitshop/pkg/auth"
)

// newSigner returns a signer of 15-minute tokens and its private key.
func newSigner(t testing.TB) (*auth.Signer, ed25519.PrivateKey) {
	t.Helper()
	kid, key, err := auth.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	return auth.NewSigner(kid, key, auth.DefaultIssuer, auth.DefaultAudience, 15*time.Minute), key
}

// forge signs claims with method and key, with header kid; it is how an attacker or a
// misconfigured issuer would make a token.
func forge(t *testing.T, method jwt.SigningMethod, key any, kid string, claims jwt.MapClaims) string {
	t.Helper()
	tok := jwt.NewWithClaims(method, claims)
	if kid != "" {
		tok.Header["kid"] = kid
	}
	s, err := tok.SignedString(key)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestVerifier(t *testing.T) {
	signer, key := newSigner(t)
	_, otherKey, err := auth.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	keys := auth.StaticKeys{signer.KeyID(): signer.PublicKey()}
	v := auth.NewVerifier(keys, auth.DefaultIssuer, auth.DefaultAudience, signer.TTL())
	caller := auth.Caller{UserID: "u1", Email: "ada@example.com", Role: auth.RoleCustomer}
	now := time.Now()

	valid, _, err := signer.Sign(caller, now)
	if err != nil {
		t.Fatal(err)
	}
	claims := func(edit func(jwt.MapClaims)) jwt.MapClaims {
		c := jwt.MapClaims{
			"sub": "u1", "email": "ada@example.com", "role": "customer",
			"iss": auth.DefaultIssuer, "aud": []string{auth.DefaultAudience},
			"iat": now.Unix(), "exp": now.Add(time.Minute).Unix(),
		}
		if edit != nil {
			edit(c)
		}
		return c
	}
	expired, _, err := signer.Sign(caller, now.Add(-time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	withinLeeway, _, err := signer.Sign(caller, now.Add(-15*time.Minute-10*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	parts := strings.Split(valid, ".")
	tamperedPayload := base64.RawURLEncoding.EncodeToString([]byte(
		`{"sub":"u1","email":"ada@example.com","role":"admin","iss":"kitshop-user","aud":["kitshop"],"iat":` +
			strconv.FormatInt(now.Unix(), 10) + `,"exp":` + strconv.FormatInt(now.Add(time.Hour).Unix(), 10) + `}`))
	tampered := parts[0] + "." + tamperedPayload + "." + parts[2]

	tests := []struct {
		name  string
		token string
		want  error
	}{
		{"valid", valid, nil},
		{"valid forged with the right key", forge(t, jwt.SigningMethodEdDSA, key, signer.KeyID(), claims(nil)), nil},
		{"expired within leeway", withinLeeway, nil},
		{"expired", expired, auth.ErrInvalidToken},
		{"signed with another key under the right kid", forge(t, jwt.SigningMethodEdDSA, otherKey, signer.KeyID(), claims(nil)), auth.ErrInvalidToken},
		{"signed with another key and its own kid", forge(t, jwt.SigningMethodEdDSA, otherKey, auth.KeyID(otherKey.Public().(ed25519.PublicKey)), claims(nil)), auth.ErrInvalidToken},
		{"no kid", forge(t, jwt.SigningMethodEdDSA, key, "", claims(nil)), auth.ErrInvalidToken},
		{"alg none", forge(t, jwt.SigningMethodNone, jwt.UnsafeAllowNoneSignatureType, signer.KeyID(), claims(nil)), auth.ErrInvalidToken},
		{"HS256 with the public key as secret", forge(t, jwt.SigningMethodHS256, []byte(signer.PublicKey()), signer.KeyID(), claims(nil)), auth.ErrInvalidToken},
		{"HS256 with the JWK x as secret", forge(t, jwt.SigningMethodHS256, []byte(auth.PublicJWK(signer.KeyID(), signer.PublicKey()).X), signer.KeyID(), claims(nil)), auth.ErrInvalidToken},
		{"tampered payload", tampered, auth.ErrInvalidToken},
		{"signature stripped", parts[0] + "." + parts[1] + ".", auth.ErrInvalidToken},
		{"wrong aud", forge(t, jwt.SigningMethodEdDSA, key, signer.KeyID(), claims(func(c jwt.MapClaims) { c["aud"] = "elsewhere" })), auth.ErrInvalidToken},
		{"no aud", forge(t, jwt.SigningMethodEdDSA, key, signer.KeyID(), claims(func(c jwt.MapClaims) { delete(c, "aud") })), auth.ErrInvalidToken},
		{"wrong iss", forge(t, jwt.SigningMethodEdDSA, key, signer.KeyID(), claims(func(c jwt.MapClaims) { c["iss"] = "mallory" })), auth.ErrInvalidToken},
		{"no exp", forge(t, jwt.SigningMethodEdDSA, key, signer.KeyID(), claims(func(c jwt.MapClaims) { delete(c, "exp") })), auth.ErrInvalidToken},
		{"no iat", forge(t, jwt.SigningMethodEdDSA, key, signer.KeyID(), claims(func(c jwt.MapClaims) { delete(c, "iat") })), auth.ErrInvalidToken},
		{"lifetime of the issuer's TTL plus leeway", forge(t, jwt.SigningMethodEdDSA, key, signer.KeyID(), claims(func(c jwt.MapClaims) { c["exp"] = now.Add(signer.TTL() + auth.Leeway).Unix() })), nil},
		{"lifetime beyond the issuer's TTL plus leeway", forge(t, jwt.SigningMethodEdDSA, key, signer.KeyID(), claims(func(c jwt.MapClaims) { c["exp"] = now.Add(signer.TTL() + auth.Leeway + time.Second).Unix() })), auth.ErrInvalidToken},
		{"exp a year away", forge(t, jwt.SigningMethodEdDSA, key, signer.KeyID(), claims(func(c jwt.MapClaims) { c["exp"] = now.AddDate(1, 0, 0).Unix() })), auth.ErrInvalidToken},
		{"exp a year away, iat backdated to match", forge(t, jwt.SigningMethodEdDSA, key, signer.KeyID(), claims(func(c jwt.MapClaims) {
			c["exp"], c["iat"] = now.AddDate(1, 0, 0).Unix(), now.AddDate(1, 0, 0).Add(-signer.TTL()).Unix()
		})), auth.ErrInvalidToken},
		{"issued in the future", forge(t, jwt.SigningMethodEdDSA, key, signer.KeyID(), claims(func(c jwt.MapClaims) { c["iat"] = now.Add(time.Hour).Unix() })), auth.ErrInvalidToken},
		{"no sub", forge(t, jwt.SigningMethodEdDSA, key, signer.KeyID(), claims(func(c jwt.MapClaims) { delete(c, "sub") })), auth.ErrInvalidToken},
		{"unknown role", forge(t, jwt.SigningMethodEdDSA, key, signer.KeyID(), claims(func(c jwt.MapClaims) { c["role"] = "root" })), auth.ErrInvalidToken},
		{"not a JWT", "hello", auth.ErrInvalidToken},
		{"empty", "", auth.ErrInvalidToken},
		{"oversize", valid + strings.Repeat("A", 5000), auth.ErrInvalidToken},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := v.Verify(context.Background(), tt.token)
			if tt.want == nil {
				if err != nil {
					t.Fatalf("Verify: %v", err)
				}
				if got != caller {
					t.Fatalf("caller = %+v, want %+v", got, caller)
				}
				return
			}
			if err != tt.want {
				t.Fatalf("err = %v, want exactly %v", err, tt.want)
			}
		})
	}
}

func TestVerifierKeysUnavailable(t *testing.T) {
	signer, _ := newSigner(t)
	down := errors.New("connection refused")
	src := newSource(t, func(context.Context) (auth.JWKS, time.Duration, error) { return auth.JWKS{}, 0, down }, auth.JWKSConfig{})
	v := auth.NewVerifier(src, auth.DefaultIssuer, auth.DefaultAudience, signer.TTL())
	tok, _, err := signer.Sign(auth.Caller{UserID: "u1", Role: auth.RoleCustomer}, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := v.Verify(context.Background(), tok); err != auth.ErrKeysUnavailable {
		t.Fatalf("err = %v, want ErrKeysUnavailable", err)
	}
}
