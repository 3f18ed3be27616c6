package auth

import (
	"context"
	"crypto/ed25519"
	"errors"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/kitshop/kitshop/pkg/errs"
)

// Leeway is the clock skew tolerated between the issuer and a verifier.
const Leeway = 30 * time.Second

// maxTokenLen bounds what a verifier parses; kitshop's tokens are about 400 bytes.
const maxTokenLen = 4096

// ErrKeysUnavailable means the verifier could not fetch the issuer's keys, so it cannot
// tell whether a token is valid: a 503, not a 401, so clients retry rather than log in
// again.
var ErrKeysUnavailable = errs.E(errs.Unavailable, "auth_unavailable", "the keys to check the access token cannot be fetched now; try again shortly")

// Claims are the claims of a kitshop access token.
type Claims struct {
	Email string `json:"email"`
	Role  string `json:"role"`
	jwt.RegisteredClaims
}

// Signer issues access tokens with one Ed25519 key. The user service signs with it, and
// tests of other services use it to mint tokens for a verifier built on
// StaticKeys{s.KeyID(): s.PublicKey()}.
type Signer struct {
	kid      string
	key      ed25519.PrivateKey
	issuer   string
	audience string
	ttl      time.Duration
}

// NewSigner returns a signer of tokens valid for ttl, named by kid in their header.
func NewSigner(kid string, key ed25519.PrivateKey, issuer, audience string, ttl time.Duration) *Signer {
	return &Signer{kid: kid, key: key, issuer: issuer, audience: audience, ttl: ttl}
}

// KeyID is the kid the signer puts in the token header.
func (s *Signer) KeyID() string { return s.kid }

// PublicKey is the key that verifies the signer's tokens.
func (s *Signer) PublicKey() ed25519.PublicKey { return s.key.Public().(ed25519.PublicKey) }

// TTL is how long the signer's tokens are valid.
func (s *Signer) TTL() time.Duration { return s.ttl }

// Sign issues a token for c, issued at now, and says when it expires.
func (s *Signer) Sign(c Caller, now time.Time) (token string, expiresAt time.Time, err error) {
	now = now.UTC().Truncate(time.Second)
	expiresAt = now.Add(s.ttl)
	t := jwt.NewWithClaims(jwt.SigningMethodEdDSA, Claims{
		Email: c.Email,
		Role:  c.Role,
		RegisteredClaims: jwt.RegisteredClaims{
			Subject:   c.UserID,
			Issuer:    s.issuer,
			Audience:  jwt.ClaimStrings{s.audience},
			IssuedAt:  jwt.NewNumericDate(now),
			ExpiresAt: jwt.NewNumericDate(expiresAt),
		},
	})
	t.Header["kid"] = s.kid
	token, err = t.SignedString(s.key)
	return token, expiresAt, err
}

// tokenVerifier checks kitshop access tokens against the keys of a KeySource.
type tokenVerifier struct {
	keys        KeySource
	parser      *jwt.Parser
	maxLifetime time.Duration
}

// NewVerifier returns a Verifier of EdDSA tokens from issuer for audience whose keys
// come from keys, issued for at most maxLifetime (the issuer's token TTL). The
// algorithm is pinned (alg "none", HS256 and the rest are refused before any key is
// looked up); exp and iat are required, and exp may not lie further than maxLifetime
// past iat, so a token minted with a key that later leaked cannot outlive the key's
// withdrawal by more than the issuer's own TTL; iss, aud, exp and iat are checked with
// Leeway. Every invalid token is ErrInvalidToken; ErrKeysUnavailable means the keys
// could not be fetched.
func NewVerifier(keys KeySource, issuer, audience string, maxLifetime time.Duration) Verifier {
	return &tokenVerifier{
		keys:        keys,
		maxLifetime: maxLifetime,
		parser: jwt.NewParser(
			jwt.WithValidMethods([]string{Algorithm}),
			jwt.WithExpirationRequired(),
			jwt.WithIssuedAt(),
			jwt.WithIssuer(issuer),
			jwt.WithAudience(audience),
			jwt.WithLeeway(Leeway),
		),
	}
}

// Verify implements Verifier.
func (v *tokenVerifier) Verify(ctx context.Context, token string) (Caller, error) {
	if len(token) > maxTokenLen {
		return Caller{}, ErrInvalidToken
	}
	var claims Claims
	_, err := v.parser.ParseWithClaims(token, &claims, func(t *jwt.Token) (any, error) {
		kid, _ := t.Header["kid"].(string)
		if kid == "" {
			return nil, ErrUnknownKey
		}
		key, err := v.keys.Key(ctx, kid)
		if err != nil {
			return nil, err
		}
		return key, nil
	})
	switch {
	case errors.Is(err, ErrKeysUnavailable):
		return Caller{}, ErrKeysUnavailable
	case err != nil:
		return Caller{}, ErrInvalidToken
	case claims.IssuedAt == nil || claims.ExpiresAt.Sub(claims.IssuedAt.Time) > v.maxLifetime+Leeway:
		return Caller{}, ErrInvalidToken
	case claims.Subject == "" || (claims.Role != RoleCustomer && claims.Role != RoleAdmin):
		return Caller{}, ErrInvalidToken
	}
	return Caller{UserID: claims.Subject, Email: claims.Email, Role: claims.Role}, nil
}
