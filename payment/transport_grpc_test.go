package payment

import (
	"context"
	"errors"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"

	"github.com/kitshop/kitshop/payment/pb"
	"github.com/kitshop/kitshop/pkg/errs"
	"github.com/kitshop/kitshop/pkg/testenv"
)

// newTestGRPCServer serves a memory-backed payment service over gRPC on loopback and
// returns its address.
func newTestGRPCServer(t *testing.T, proc Processor) string {
	t.Helper()
	e, tracer, _ := newTestEndpoints(t, proc)
	return testenv.GRPCServer(t, func(s *grpc.Server) { RegisterGRPCServer(s, e, tracer) })
}

// TestGRPCServer calls the gRPC service as any gRPC client would, with the generated
// stub: kitshop errors arrive as the status code of their kind, with their code in
// the details (what errs.FromGRPC reads back).
func TestGRPCServer(t *testing.T) {
	cc, err := grpc.NewClient(newTestGRPCServer(t, simulated(t)), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer cc.Close()
	charges := pb.NewChargesClient(cc)
	ctx := context.Background()
	valid := func() *pb.ChargeRequest {
		r := validRequest()
		return &pb.ChargeRequest{OrderId: r.OrderID, UserId: r.UserID, Amount: &pb.Money{Amount: r.Amount.Amount, Currency: r.Amount.Currency},
			Card: &pb.Card{Number: r.Card.Number, ExpMonth: int32(r.Card.ExpMonth), ExpYear: int32(r.Card.ExpYear), Cvc: r.Card.CVC}}
	}

	first, err := charges.Charge(ctx, valid())
	if err != nil || !first.Created || first.Replayed || first.Charge.Status != StatusSucceeded || first.Charge.CardLast4 != "4242" {
		t.Fatalf("charge = %v, %v; want a created, succeeded charge", first, err)
	}
	again, err := charges.Charge(ctx, valid())
	if err != nil || again.Created || !again.Replayed || again.Charge.Id != first.Charge.Id {
		t.Fatalf("repeat = %v, %v; want the first charge, replayed", again, err)
	}

	badCard := valid()
	badCard.Card.Number = "4242424242424241"
	otherAmount := valid()
	otherAmount.Amount.Amount++
	tests := []struct {
		name string
		call func() error
		code codes.Code
		want *errs.Error
	}{
		{"invalid card", func() error { _, err := charges.Charge(ctx, badCard); return err }, codes.InvalidArgument, ErrInvalidCardNumber},
		{"same order, other amount", func() error { _, err := charges.Charge(ctx, otherAmount); return err }, codes.Aborted, ErrIdempotencyMismatch},
		{"unknown charge", func() error { _, err := charges.Refund(ctx, &pb.ChargeID{Id: newChargeID()}); return err }, codes.NotFound, ErrChargeNotFound},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.call()
			if status.Code(err) != tt.code {
				t.Fatalf("status %v (%v), want %v", status.Code(err), err, tt.code)
			}
			got, ok := errs.FromGRPC(err)
			if !ok || !errors.Is(got, tt.want) {
				t.Fatalf("errs.FromGRPC = %v, %v; want %v", got, ok, tt.want)
			}
		})
	}
}
