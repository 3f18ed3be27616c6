package auth

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"time"
)

// Token defaults shared by the user service, which issues tokens, and every service
// that verifies them.
const (
	DefaultIssuer   = "kitshop-user"
	DefaultAudience = "kitshop"
	// DefaultTokenTTL is how long the user service's tokens live, and so the longest
	// lifetime (exp − iat) the other services accept, unless both are told otherwise
	// (-token-ttl, KITSHOP_TOKEN_TTL).
	DefaultTokenTTL = 15 * time.Minute
	// Algorithm is the only JWS algorithm kitshop signs with or accepts.
	Algorithm = "EdDSA"
)

// KeySource finds the public key a token names in its kid header.
type KeySource interface {
	Key(ctx context.Context, kid string) (ed25519.PublicKey, error)
}

// ErrUnknownKey is a KeySource's answer for a kid it does not hold.
var ErrUnknownKey = errors.New("auth: unknown signing key")

// StaticKeys is a KeySource over a fixed set of keys by kid: for tests of services that
// verify tokens, and for the user service's own keys.
type StaticKeys map[string]ed25519.PublicKey

// Key implements KeySource.
func (s StaticKeys) Key(_ context.Context, kid string) (ed25519.PublicKey, error) {
	if k, ok := s[kid]; ok {
		return k, nil
	}
	return nil, ErrUnknownKey
}

// GenerateKey makes a fresh signing key and its key ID.
func GenerateKey() (kid string, key ed25519.PrivateKey, err error) {
	pub, key, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return "", nil, err
	}
	return KeyID(pub), key, nil
}

// KeyID is the RFC 7638 thumbprint of pub: the same key always gets the same ID, on
// every instance, without coordination.
func KeyID(pub ed25519.PublicKey) string {
	// RFC 7638 hashes the required members in lexicographic order, without spaces.
	canonical := `{"crv":"Ed25519","kty":"OKP","x":"` + base64.RawURLEncoding.EncodeToString(pub) + `"}`
	sum := sha256.Sum256([]byte(canonical))
	return base64.RawURLEncoding.EncodeToString(sum[:])
}

// JWK is a public key in the RFC 8037 form for Ed25519.
type JWK struct {
	Kty string `json:"kty"`
	Crv string `json:"crv"`
	X   string `json:"x"`
	Kid string `json:"kid"`
	Alg string `json:"alg,omitempty"`
	Use string `json:"use,omitempty"`
}

// JWKS is a JSON Web Key Set, as served at GET /.well-known/jwks.json.
type JWKS struct {
	Keys []JWK `json:"keys"`
}

// PublicJWK is pub as a signature-verification JWK named kid.
func PublicJWK(kid string, pub ed25519.PublicKey) JWK {
	return JWK{Kty: "OKP", Crv: "Ed25519", X: base64.RawURLEncoding.EncodeToString(pub), Kid: kid, Alg: Algorithm, Use: "sig"}
}

// PublicKey returns the Ed25519 key k describes, refusing any other kind of key or use.
func (k JWK) PublicKey() (ed25519.PublicKey, error) {
	switch {
	case k.Kty != "OKP" || k.Crv != "Ed25519":
		return nil, fmt.Errorf("auth: jwk %q: not an Ed25519 key (kty %q, crv %q)", k.Kid, k.Kty, k.Crv)
	case k.Alg != "" && k.Alg != Algorithm:
		return nil, fmt.Errorf("auth: jwk %q: algorithm %q, want %s", k.Kid, k.Alg, Algorithm)
	case k.Use != "" && k.Use != "sig":
		return nil, fmt.Errorf("auth: jwk %q: use %q, want sig", k.Kid, k.Use)
	case k.Kid == "":
		return nil, errors.New("auth: jwk without kid")
	}
	x, err := base64.RawURLEncoding.DecodeString(k.X)
	if err != nil || len(x) != ed25519.PublicKeySize {
		return nil, fmt.Errorf("auth: jwk %q: x is not a base64url Ed25519 public key", k.Kid)
	}
	return ed25519.PublicKey(x), nil
}
