// Package grpcwire is what the gRPC transports of kitshop's services share, as
// httpjson is for HTTP: serving a go-kit gRPC handler with kitshop's errors as gRPC
// statuses, the server options every service uses, and timestamps on the wire.
package grpcwire

import (
	"context"
	"time"

	"github.com/go-kit/kit/tracing/zipkin"
	kitgrpc "github.com/go-kit/kit/transport/grpc"
	zipkingo "github.com/openzipkin/zipkin-go"
	"google.golang.org/grpc/metadata"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/kitshop/kitshop/pkg/auth"
	"github.com/kitshop/kitshop/pkg/errs"
	"github.com/kitshop/kitshop/pkg/observe"
)

// ServerOptions are the options of every kitshop gRPC handler: the caller's bearer
// token into the context, the transport for the call's log line, and a server span joined to the caller's trace (B3
// metadata) when tracer is set.
func ServerOptions(tracer *zipkingo.Tracer) []kitgrpc.ServerOption {
	opts := []kitgrpc.ServerOption{kitgrpc.ServerBefore(auth.GRPCToContext(), func(ctx context.Context, _ metadata.MD) context.Context {
		return observe.WithTransport(ctx, "grpc")
	})}
	if tracer != nil {
		opts = append(opts, zipkin.GRPCServerTrace(tracer))
	}
	return opts
}

// Serve runs h for req and returns its reply, or its error as a gRPC status carrying
// the kitshop error (errs.GRPCStatus), which the client chain turns back into the
// same *errs.Error.
func Serve[R any](ctx context.Context, h kitgrpc.Handler, req any) (R, error) {
	_, reply, err := h.ServeGRPC(ctx, req)
	if err != nil {
		var zero R
		return zero, errs.GRPCStatus(err)
	}
	return reply.(R), nil
}

// Time is t on the wire; nil for the zero time.
func Time(t time.Time) *timestamppb.Timestamp {
	if t.IsZero() {
		return nil
	}
	return timestamppb.New(t)
}

// FromTime is a time from the wire, in UTC; the zero time for nil.
func FromTime(ts *timestamppb.Timestamp) time.Time {
	if ts == nil {
		return time.Time{}
	}
	return ts.AsTime().UTC()
}
