package errs_test

import (
	"errors"
	"fmt"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/kitshop/kitshop/pkg/errs"
)

func TestGRPCRoundTrip(t *testing.T) {
	tests := []struct {
		err  error
		code codes.Code
		want *errs.Error // what the client reads back
	}{
		{errs.E(errs.Unprocessable, "out_of_stock", "only 2 left"), codes.FailedPrecondition, errs.E(errs.Unprocessable, "out_of_stock", "only 2 left")},
		{errs.E(errs.Invalid, "invalid_sku", "bad"), codes.InvalidArgument, errs.E(errs.Invalid, "invalid_sku", "bad")},
		{errs.E(errs.NotFound, "product_not_found", "no"), codes.NotFound, errs.E(errs.NotFound, "product_not_found", "no")},
		{errs.E(errs.Conflict, "idempotency_mismatch", "other"), codes.Aborted, errs.E(errs.Conflict, "idempotency_mismatch", "other")},
		{errs.E(errs.RateLimited, "rate_limited", "slow"), codes.ResourceExhausted, errs.E(errs.RateLimited, "rate_limited", "slow")},
		{errs.E(errs.TooLarge, "too_large", "big"), codes.ResourceExhausted, errs.E(errs.TooLarge, "too_large", "big")},
		{errs.ErrOverloaded, codes.Unavailable, errs.ErrOverloaded},
		{errs.E(errs.Timeout, "upstream_timeout", "late"), codes.DeadlineExceeded, errs.E(errs.Timeout, "upstream_timeout", "late")},
		{fmt.Errorf("wrapped: %w", errs.E(errs.Forbidden, "forbidden", "no")), codes.PermissionDenied, errs.E(errs.Forbidden, "forbidden", "no")},
		// Not a kitshop error: internal, its detail kept from the wire.
		{errors.New("pq: connection refused"), codes.Internal, errs.E(errs.Internal, "internal", "internal error")},
	}
	for _, tt := range tests {
		t.Run(tt.want.Code, func(t *testing.T) {
			wire := errs.GRPCStatus(tt.err)
			if got := status.Code(wire); got != tt.code {
				t.Fatalf("status code %v, want %v", got, tt.code)
			}
			got, ok := errs.FromGRPC(wire)
			if !ok || *got != *tt.want {
				t.Fatalf("FromGRPC = %+v, %v; want %+v", got, ok, tt.want)
			}
		})
	}
}

// TestFromGRPCOfTheTransport: a status no kitshop service sent is not read as one.
func TestFromGRPCOfTheTransport(t *testing.T) {
	for _, err := range []error{
		status.Error(codes.Unavailable, "connection refused"),
		status.Error(codes.DeadlineExceeded, "context deadline exceeded"),
		errors.New("not a status at all"),
		nil,
	} {
		if e, ok := errs.FromGRPC(err); ok {
			t.Errorf("FromGRPC(%v) = %+v, true; want false", err, e)
		}
	}
}
