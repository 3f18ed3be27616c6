package auth

import (
	"context"
	"net/http"

	"github.com/kitshop/kitshop/pkg/errs"
)

// Middleware is Authenticated for plain net/http handlers (the gateway's proxy routes):
// a request without a valid bearer token is answered 401 (503 when the keys cannot be
// fetched); the others reach next with the Caller and the raw token in their context.
func Middleware(v Verifier) func(http.Handler) http.Handler {
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			token, ok := BearerToken(r.Header.Get("Authorization"))
			if !ok {
				errs.WriteHTTP(w, ErrNoToken)
				return
			}
			caller, err := v.Verify(r.Context(), token)
			if err != nil {
				errs.WriteHTTP(w, err)
				return
			}
			ctx := context.WithValue(r.Context(), tokenKey, token)
			next.ServeHTTP(w, r.WithContext(NewContext(ctx, caller)))
		})
	}
}
