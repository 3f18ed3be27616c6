package connect

import (
	"context"
	"strings"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/peer"

	"github.com/kitshop/kitshop/pkg/errs"
)

// UnaryServerInterceptor is Middleware for a gRPC server: the caller's certificate is
// authorised against the intentions, and the path rules apply to the full method name
// ("/kitshop.inventory.v1.Reservations/Reserve"), so that a rule on a gRPC service's
// prefix restricts its methods as one under /internal/ restricts HTTP routes. Methods
// under an open prefix (the health service) skip it.
func (a *Authorizer) UnaryServerInterceptor(open ...string) grpc.UnaryServerInterceptor {
	return func(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
		for _, prefix := range open {
			if strings.HasPrefix(info.FullMethod, prefix) {
				return handler(ctx, req)
			}
		}
		remote := ""
		var tlsInfo credentials.TLSInfo
		if p, ok := peer.FromContext(ctx); ok {
			remote = p.Addr.String()
			tlsInfo, _ = p.AuthInfo.(credentials.TLSInfo)
		}
		state := &tlsInfo.State
		if !tlsInfo.State.HandshakeComplete {
			state = nil
		}
		caller, refusal, err := a.check(ctx, state, info.FullMethod)
		switch {
		case err != nil:
			return nil, errs.GRPCStatus(err)
		case refusal != "":
			a.logRefusal(caller.URI, remote, "grpc", info.FullMethod, refusal)
			return nil, errs.GRPCStatus(ErrForbidden)
		}
		return handler(WithPeer(ctx, caller), req)
	}
}
