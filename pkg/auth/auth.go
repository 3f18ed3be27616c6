// Package auth carries the authenticated caller through a request: the transport puts
// the bearer token in the context, an endpoint middleware verifies it and replaces it
// with the Caller. Services never trust a user ID sent in a header or a body.
package auth

import (
	"context"
	"net/http"
	"strings"

	"github.com/go-kit/kit/endpoint"
	kithttp "github.com/go-kit/kit/transport/http"

	"github.com/kitshop/kitshop/pkg/errs"
)

// Roles.
const (
	RoleCustomer = "customer"
	RoleAdmin    = "admin"
)

// Caller is who is making the request, as proven by their token.
type Caller struct {
	UserID string
	Email  string
	Role   string
}

// Verifier checks an access token and says whose it is.
type Verifier interface {
	Verify(ctx context.Context, token string) (Caller, error)
}

// Errors.
var (
	ErrNoToken      = errs.E(errs.Unauthenticated, "missing_token", "this route needs an Authorization: Bearer token")
	ErrInvalidToken = errs.E(errs.Unauthenticated, "invalid_token", "the access token is invalid or expired")
	ErrForbidden    = errs.E(errs.Forbidden, "forbidden", "this route needs the admin role")
)

type contextKey int

const (
	tokenKey contextKey = iota
	callerKey
)

// HTTPToContext is a go-kit ServerBefore function that moves the bearer token of the
// Authorization header into the context.
func HTTPToContext() kithttp.RequestFunc {
	return func(ctx context.Context, r *http.Request) context.Context {
		if token, ok := BearerToken(r.Header.Get("Authorization")); ok {
			return context.WithValue(ctx, tokenKey, token)
		}
		return ctx
	}
}

// BearerToken extracts the token of an "Authorization: Bearer <token>" header value.
func BearerToken(header string) (string, bool) {
	scheme, token, ok := strings.Cut(header, " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return "", false
	}
	token = strings.TrimSpace(token)
	return token, token != ""
}

// TokenFrom returns the raw token HTTPToContext stored, to forward it downstream.
func TokenFrom(ctx context.Context) (string, bool) {
	token, ok := ctx.Value(tokenKey).(string)
	return token, ok
}

// NewContext returns ctx carrying c.
func NewContext(ctx context.Context, c Caller) context.Context {
	return context.WithValue(ctx, callerKey, c)
}

// CallerFrom returns the verified caller of the request.
func CallerFrom(ctx context.Context) (Caller, bool) {
	c, ok := ctx.Value(callerKey).(Caller)
	return c, ok
}

// Authenticated refuses requests without a valid token (401) and puts the Caller in
// the context of the rest.
func Authenticated(v Verifier) endpoint.Middleware {
	return func(next endpoint.Endpoint) endpoint.Endpoint {
		return func(ctx context.Context, request any) (any, error) {
			token, ok := TokenFrom(ctx)
			if !ok {
				return nil, ErrNoToken
			}
			caller, err := v.Verify(ctx, token)
			if err != nil {
				return nil, err
			}
			return next(NewContext(ctx, caller), request)
		}
	}
}

// Admin is Authenticated plus a 403 for callers without the admin role.
func Admin(v Verifier) endpoint.Middleware {
	authenticated := Authenticated(v)
	return func(next endpoint.Endpoint) endpoint.Endpoint {
		return authenticated(func(ctx context.Context, request any) (any, error) {
			if c, _ := CallerFrom(ctx); c.Role != RoleAdmin {
				return nil, ErrForbidden
			}
			return next(ctx, request)
		})
	}
}
