package auth

import (
	"context"
	"net/http"

	kithttp "github.com/go-kit/kit/transport/http"
)

// ContextToHTTP is a go-kit ClientBefore function that passes on the caller's bearer
// token: a call made for a user carries that user's credentials, and the upstream
// checks them itself.
func ContextToHTTP() kithttp.RequestFunc {
	return func(ctx context.Context, r *http.Request) context.Context {
		if token, ok := TokenFrom(ctx); ok {
			r.Header.Set("Authorization", "Bearer "+token)
		}
		return ctx
	}
}
