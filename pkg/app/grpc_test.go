package app_test

import (
	"context"
	"crypto/tls"
	"io"
	"net"
	"strconv"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/kitshop/kitshop/pkg/app"
	"github.com/kitshop/kitshop/pkg/connect"
	"github.com/kitshop/kitshop/pkg/discovery"
	"github.com/kitshop/kitshop/pkg/errs"
	"github.com/kitshop/kitshop/pkg/testenv"
)

// peerService is a gRPC service for tests: its one method answers the name of the
// calling service. It is registered twice, as an open and a restricted service.
func peerService(name string) *grpc.ServiceDesc {
	return &grpc.ServiceDesc{
		ServiceName: name,
		HandlerType: (*any)(nil),
		Methods: []grpc.MethodDesc{{
			MethodName: "Peer",
			Handler: func(_ any, ctx context.Context, dec func(any) error, interceptor grpc.UnaryServerInterceptor) (any, error) {
				in := new(wrapperspb.StringValue)
				if err := dec(in); err != nil {
					return nil, err
				}
				handler := func(ctx context.Context, _ any) (any, error) {
					p, _ := connect.PeerFrom(ctx)
					return wrapperspb.String(p.Service), nil
				}
				return interceptor(ctx, in, &grpc.UnaryServerInfo{FullMethod: "/" + name + "/Peer"}, handler)
			},
		}},
	}
}

func callPeer(ctx context.Context, cc *grpc.ClientConn, service string) (string, error) {
	out := new(wrapperspb.StringValue)
	err := cc.Invoke(ctx, "/"+service+"/Peer", wrapperspb.String(""), out)
	return out.GetValue(), err
}

// TestGRPCMutualTLS runs an instance serving gRPC with mTLS on: it registers its gRPC
// port with a gRPC health check that passes over TLS, a caller's Connect certificate
// names it to the method, a path rule on a service prefix refuses other callers, and
// a caller with no certificate is refused everything but the health service.
func TestGRPCMutualTLS(t *testing.T) {
	c, addr := testenv.Consul(t)
	a := newApp(t, addr)
	caller := newApp(t, addr)
	a.RestrictPaths("/test.Restricted/", "someone-else")
	srv := a.GRPCServer()
	srv.RegisterService(peerService("test.Open"), nil)
	srv.RegisterService(peerService("test.Restricted"), nil)
	if err := (connect.Intentions{a.Config.Service: {caller.Config.Service}}).Apply(c); err != nil {
		t.Fatal(err)
	}
	serve(t, a, nil)

	var grpcPort int
	testenv.Eventually(t, 15*time.Second, "passing, gRPC check included", func() bool {
		passing := instances(t, c, a.Config.Service, true)
		if len(passing) != 1 {
			return false
		}
		grpcPort, _ = strconv.Atoi(passing[0].Service.Meta[discovery.GRPCPortMeta])
		return grpcPort > 0 && len(passing[0].Checks) == 3 // the node's, HTTP, gRPC
	})
	target := net.JoinHostPort("127.0.0.1", strconv.Itoa(grpcPort))
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()

	dial := func(conf *tls.Config) *grpc.ClientConn {
		t.Helper()
		cc, err := grpc.NewClient(target, grpc.WithTransportCredentials(credentials.NewTLS(conf)))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { cc.Close() })
		return cc
	}
	mtls := dial(caller.ClientOptionsFor(a.Config.Service).TLS)
	if got, err := callPeer(ctx, mtls, "test.Open"); err != nil || got != caller.Config.Service {
		t.Fatalf("mTLS call: %q, %v; want the caller's name", got, err)
	}
	anonymous := dial(&tls.Config{InsecureSkipVerify: true})
	tests := []struct {
		name string
		cc   *grpc.ClientConn
		svc  string
	}{
		{"restricted method, caller not in the rule", mtls, "test.Restricted"},
		{"no client certificate", anonymous, "test.Open"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := callPeer(ctx, tt.cc, tt.svc)
			e, ok := errs.FromGRPC(err)
			if status.Code(err) != codes.PermissionDenied || !ok || e.Code != "forbidden" {
				t.Fatalf("err = %v; want PermissionDenied, forbidden", err)
			}
		})
	}
	resp, err := healthpb.NewHealthClient(anonymous).Check(ctx, &healthpb.HealthCheckRequest{})
	if err != nil || resp.Status != healthpb.HealthCheckResponse_SERVING {
		t.Fatalf("health without a certificate: %v, %v; want SERVING", resp, err)
	}
}

// TestInternalTransportFlag refuses a transport kitshop does not have.
func TestInternalTransportFlag(t *testing.T) {
	_, addr := testenv.Consul(t)
	for _, tt := range []struct {
		value string
		ok    bool
	}{{app.TransportHTTP, true}, {app.TransportGRPC, true}, {"carrier-pigeon", false}} {
		cfg := app.Config{Service: "transport-test", HTTPAddr: "127.0.0.1:0", AdvertiseHost: "127.0.0.1", LogLevel: "info", ConsulAddr: addr, TLS: app.TLSOff, AdmitLimit: 1, InternalTransport: tt.value}
		a, err := app.New(cfg, io.Discard)
		if (err == nil) != tt.ok {
			t.Fatalf("-internal-transport %s: err = %v, want ok = %v", tt.value, err, tt.ok)
		}
		if a != nil {
			a.Close()
		}
	}
}

// TestRestrictPathsFirst: a path rule added once the servers are built would guard
// nothing, so it is refused loudly.
func TestRestrictPathsFirst(t *testing.T) {
	_, addr := testenv.Consul(t)
	a := newApp(t, addr, "-tls", "off")
	a.RestrictPaths("/internal/", "order")
	a.GRPCServer()
	defer func() {
		if recover() == nil {
			t.Fatal("RestrictPaths after GRPCServer did not panic")
		}
	}()
	a.RestrictPaths("/kitshop.payment.v1.Charges/", "order")
}
