package auth

import (
	"context"
	"net/http"

	kitgrpc "github.com/go-kit/kit/transport/grpc"
	kithttp "github.com/go-kit/kit/transport/http"
	"google.golang.org/grpc/metadata"
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

// ContextToGRPC is ContextToHTTP for a gRPC call: the token goes in the
// "authorization" metadata.
func ContextToGRPC() kitgrpc.ClientRequestFunc {
	return func(ctx context.Context, md *metadata.MD) context.Context {
		if token, ok := TokenFrom(ctx); ok {
			md.Set("authorization", "Bearer "+token)
		}
		return ctx
	}
}

// GRPCToContext is HTTPToContext for a gRPC server: the bearer token of the
// "authorization" metadata goes into the context.
func GRPCToContext() kitgrpc.ServerRequestFunc {
	return func(ctx context.Context, md metadata.MD) context.Context {
		for _, v := range md.Get("authorization") {
			if token, ok := BearerToken(v); ok {
				return context.WithValue(ctx, tokenKey, token)
			}
		}
		return ctx
	}
}
