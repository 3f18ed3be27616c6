package user

import (
	"context"

	kitgrpc "github.com/go-kit/kit/transport/grpc"
	"github.com/openzipkin/zipkin-go"
	"google.golang.org/grpc"

	"github.com/kitshop/kitshop/pkg/auth"
	"github.com/kitshop/kitshop/pkg/auth/pb"
	"github.com/kitshop/kitshop/pkg/grpcwire"
)

// RegisterGRPCServer serves what other services call on the user service, its public
// keys, on s as the Keys gRPC service (auth.NewUserGRPCJWKSFetcher is its client).
func RegisterGRPCServer(s grpc.ServiceRegistrar, e Endpoints, tracer *zipkin.Tracer) {
	pb.RegisterKeysServer(s, &keysServer{
		getKeys: kitgrpc.NewServer(e.JWKSEndpoint, decodeGRPCGetKeysRequest, encodeGRPCKeySet, grpcwire.ServerOptions(tracer)...),
	})
}

type keysServer struct {
	pb.UnimplementedKeysServer
	getKeys kitgrpc.Handler
}

func (s *keysServer) GetKeys(ctx context.Context, req *pb.GetKeysRequest) (*pb.KeySet, error) {
	return grpcwire.Serve[*pb.KeySet](ctx, s.getKeys, req)
}

func decodeGRPCGetKeysRequest(context.Context, any) (any, error) { return nil, nil }

func encodeGRPCKeySet(_ context.Context, response any) (any, error) {
	set := response.(auth.JWKS)
	m := &pb.KeySet{Keys: make([]*pb.Key, len(set.Keys)), MaxAgeSeconds: int64(jwksMaxAge.Seconds())}
	for i, k := range set.Keys {
		m.Keys[i] = &pb.Key{Kty: k.Kty, Crv: k.Crv, X: k.X, Kid: k.Kid, Alg: k.Alg, Use: k.Use}
	}
	return m, nil
}
