package client_test

import (
	"context"
	"errors"
	"net"
	"sync/atomic"
	"testing"
	"time"

	"github.com/afex/hystrix-go/hystrix"
	"github.com/go-kit/kit/sd"
	"google.golang.org/grpc"
	"google.golang.org/grpc/keepalive"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/kitshop/kitshop/pkg/client"
	"github.com/kitshop/kitshop/pkg/errs"
	"github.com/kitshop/kitshop/pkg/testenv"
)

// grpcInstance is a live gRPC upstream whose one method, test.Who/Ask, answers its
// name, or the kitshop error its request names: "refuse" out_of_stock (422), "shed"
// errs.ErrOverloaded, "fail" a 503 of its own.
type grpcInstance struct {
	name  string
	addr  string
	calls atomic.Int64
}

func newGRPCInstance(t *testing.T, name string, opts ...grpc.ServerOption) *grpcInstance {
	in := &grpcInstance{name: name}
	in.addr = testenv.GRPCServer(t, func(s *grpc.Server) {
		s.RegisterService(&grpc.ServiceDesc{
			ServiceName: "test.Who",
			HandlerType: (*any)(nil),
			Methods: []grpc.MethodDesc{{MethodName: "Ask", Handler: func(_ any, _ context.Context, dec func(any) error, _ grpc.UnaryServerInterceptor) (any, error) {
				req := new(wrapperspb.StringValue)
				if err := dec(req); err != nil {
					return nil, err
				}
				in.calls.Add(1)
				switch req.Value {
				case "refuse":
					return nil, errs.GRPCStatus(errs.E(errs.Unprocessable, "out_of_stock", "none left"))
				case "shed":
					return nil, errs.GRPCStatus(errs.ErrOverloaded)
				case "fail":
					return nil, errs.GRPCStatus(errs.E(errs.Unavailable, "down", "failing on purpose"))
				}
				return wrapperspb.String(name), nil
			}}},
		}, nil)
	}, opts...)
	return in
}

func askRoute() client.GRPCRoute {
	return client.GRPCRoute{
		Name: "ask", Service: "test.Who", Method: "Ask",
		Encode:     func(_ context.Context, request any) (any, error) { return wrapperspb.String(request.(string)), nil },
		Decode:     func(_ context.Context, reply any) (any, error) { return reply.(*wrapperspb.StringValue).Value, nil },
		Reply:      &wrapperspb.StringValue{},
		Read:       true,
		Idempotent: true,
	}
}

// deadAddr is an address nothing listens on.
func deadAddr(t *testing.T) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

// TestGRPCChain: over gRPC, the chain behaves as over HTTP: a business answer comes
// back as its *errs.Error and is neither retried nor counted; a shed call is
// ErrOverloaded and not counted; a failing or unreachable instance is retried on
// another; and the failures of the system open the breaker.
func TestGRPCChain(t *testing.T) {
	a, b := newGRPCInstance(t, "a"), newGRPCInstance(t, "b")
	caller := testenv.Name("grpc-chain")
	opts := client.Options{Caller: caller, Timeout: 2 * time.Second, AttemptTimeout: time.Second, Retries: 2,
		Breaker: client.Breaker{MaxConcurrent: 100, ErrorPercent: 50, VolumeThreshold: 5, SleepWindow: time.Minute}}
	svc := client.NewGRPC("who", sd.FixedInstancer{a.addr, b.addr, deadAddr(t)}, opts)
	ask := svc.Endpoint(askRoute())
	ctx := context.Background()

	// Every call answers, the dead instance skipped once it refused a connection.
	for range 12 {
		got, err := ask(ctx, "who")
		if err != nil || (got != "a" && got != "b") {
			t.Fatalf("ask = %v, %v; want a or b", got, err)
		}
	}
	if a.calls.Load() == 0 || b.calls.Load() == 0 {
		t.Fatalf("calls a=%d b=%d; want both used", a.calls.Load(), b.calls.Load())
	}

	calls := func() int64 { return a.calls.Load() + b.calls.Load() }
	before := calls()
	for range 10 {
		_, err := ask(ctx, "refuse")
		var e *errs.Error
		if !errors.As(err, &e) || e.Kind != errs.Unprocessable || e.Code != "out_of_stock" {
			t.Fatalf("refused: err = %v; want 422 out_of_stock", err)
		}
	}
	if n := calls() - before; n != 10 {
		t.Fatalf("%d calls for 10 refusals; want each once (a business answer is not retried)", n)
	}
	before = calls()
	for range 10 {
		if _, err := ask(ctx, "shed"); !errors.Is(err, errs.ErrOverloaded) {
			t.Fatalf("shed: err = %v; want overloaded", err)
		}
	}
	// Shed calls are tried again elsewhere: the first try and Retries more, the dead
	// instance skipped without spending one.
	if n := calls() - before; n != 30 {
		t.Fatalf("%d calls for 10 sheds; want 30 (each tried 1 + 2 retries times)", n)
	}
	time.Sleep(100 * time.Millisecond) // hystrix counts outcomes asynchronously
	circuit, _, _ := hystrix.GetCircuit(svc.BreakerName())
	if circuit.IsOpen() {
		t.Fatal("business answers and sheds opened the breaker")
	}

	// 40 failures against the 22 answers before them: past the 50 % threshold.
	for range 40 {
		if _, err := ask(ctx, "fail"); errs.From(err).Kind != errs.Unavailable {
			t.Fatalf("fail: err = %v; want 503", err)
		}
	}
	testenv.Eventually(t, 2*time.Second, "the breaker open after failures", circuit.IsOpen)
	if _, err := ask(ctx, "who"); errs.From(err).Code != "service_unavailable" {
		t.Fatalf("with the breaker open: err = %v; want service_unavailable", err)
	}
}

// TestGRPCReconnects: an instance whose connection ends (here the server's own
// MaxConnectionAge sends GOAWAY; a reset or an idle timeout end it too) is called again,
// not ranked below the others for good.
func TestGRPCReconnects(t *testing.T) {
	a := newGRPCInstance(t, "a")
	b := newGRPCInstance(t, "b", grpc.KeepaliveParams(keepalive.ServerParameters{MaxConnectionAge: 100 * time.Millisecond, MaxConnectionAgeGrace: 50 * time.Millisecond}))
	svc := client.NewGRPC("who", sd.FixedInstancer{a.addr, b.addr}, client.Options{Caller: testenv.Name("grpc-reconnect")})
	ask := svc.Endpoint(askRoute())
	ctx := context.Background()
	for range 20 {
		if _, err := ask(ctx, "who"); err != nil {
			t.Fatal(err)
		}
	}
	time.Sleep(300 * time.Millisecond) // b's connection has aged out
	before := b.calls.Load()
	for range 40 {
		if _, err := ask(ctx, "who"); err != nil {
			t.Fatal(err)
		}
		time.Sleep(5 * time.Millisecond)
	}
	if n := b.calls.Load() - before; n < 10 {
		t.Fatalf("b answered %d of 40 calls after its connection ended; want about half", n)
	}
}
