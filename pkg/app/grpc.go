package app

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"time"

	"github.com/go-kit/log/level"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/keepalive"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"

	"github.com/kitshop/kitshop/pkg/admission"
	"github.com/kitshop/kitshop/pkg/client"
	"github.com/kitshop/kitshop/pkg/clientip"
	"github.com/kitshop/kitshop/pkg/connect"
	"github.com/kitshop/kitshop/pkg/errs"
)

// Transports of the calls between services (Config.InternalTransport).
const (
	TransportHTTP = "http"
	TransportGRPC = "grpc"
)

// healthService is the gRPC health service's prefix: open to every caller and never
// shed, as GET /health is.
const healthService = "/grpc.health.v1.Health/"

// GRPCServer is the instance's gRPC server, for a service to register its gRPC
// services on before Run. Run then serves it on GRPCAddr beside HTTP, registered in
// Consul with a gRPC health check. Calls to it are secured as HTTP requests are (mTLS
// with the Connect leaf, intentions, path rules on the full method name; in plain
// mode, restricted methods answer loopback callers only) and admitted through the same
// admission limit; their deadline is the caller's own, carried by gRPC.
func (a *App) GRPCServer() *grpc.Server {
	secure := a.grpcSecure() // before the lock: it fixes the path rules under it
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.grpcServer != nil {
		return a.grpcServer
	}
	opts := []grpc.ServerOption{
		grpc.ChainUnaryInterceptor(secure, a.grpcAdmit()),
		// kitshop's methods are unary; a stream would pass none of the checks above.
		grpc.StreamInterceptor(func(any, grpc.ServerStream, *grpc.StreamServerInfo, grpc.StreamHandler) error {
			return status.Error(codes.Unimplemented, "kitshop serves unary calls only")
		}),
		// Callers keep their connections for as long as they run; a ping now and then
		// finds one that died without a FIN (a container removed) before a call does.
		grpc.KeepaliveEnforcementPolicy(keepalive.EnforcementPolicy{MinTime: 10 * time.Second, PermitWithoutStream: true}),
		// Fixed windows, as the callers' (client.GRPCWindow): no bandwidth-estimating PINGs.
		grpc.InitialWindowSize(client.GRPCWindow),
		grpc.InitialConnWindowSize(client.GRPCWindow),
	}
	if a.identity != nil {
		opts = append(opts, grpc.Creds(credentials.NewTLS(a.identity.ServerTLS())))
	}
	a.grpcServer = grpc.NewServer(opts...)
	healthpb.RegisterHealthServer(a.grpcServer, grpcHealth{a: a})
	return a.grpcServer
}

// grpcSecure is secure's part for gRPC: the instance's Authorizer with mTLS; in plain
// mode the restricted methods answer loopback callers only.
func (a *App) grpcSecure() grpc.UnaryServerInterceptor {
	if a.identity != nil {
		return a.authorizer().UnaryServerInterceptor(healthService)
	}
	rules := a.rules()
	return func(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
		rule, restricted := connect.RuleFor(rules, info.FullMethod)
		if !restricted {
			return handler(ctx, req)
		}
		var remote net.Addr
		if p, ok := peer.FromContext(ctx); ok {
			remote = p.Addr
		}
		if addr, ok := remote.(*net.TCPAddr); !ok || !clientip.Loopback(addr.AddrPort().Addr()) {
			_ = level.Warn(a.Logger).Log("msg", "plain gRPC: call from another host refused", "remote", fmt.Sprint(remote),
				"path", info.FullMethod, "reason", "methods under "+rule.Prefix+" answer loopback callers only without mTLS")
			return nil, errs.GRPCStatus(connect.ErrForbidden)
		}
		return handler(ctx, req)
	}
}

// grpcAdmit admits each call through the instance's admission limit (the one its HTTP
// routes share), within its caller's deadline; a shed call is answered Unavailable (errs.ErrOverloaded), which the
// calling chain neither counts against the breaker nor mistakes for a business answer.
func (a *App) grpcAdmit() grpc.UnaryServerInterceptor {
	limiter := a.admissionLimiter()
	return func(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
		if strings.HasPrefix(info.FullMethod, healthService) {
			return handler(ctx, req)
		}
		// The caller's deadline is gRPC's own; one past what an HTTP caller may send
		// (admission.MaxTimeout) is cut to it.
		if d, ok := ctx.Deadline(); ok && time.Until(d) > admission.MaxTimeout {
			var cancel context.CancelFunc
			ctx, cancel = context.WithTimeout(ctx, admission.MaxTimeout)
			defer cancel()
		}
		release, err := limiter.Admit(ctx)
		if err != nil {
			return nil, errs.GRPCStatus(errs.ErrOverloaded)
		}
		resp, err := handler(ctx, req)
		code := status.Code(err)
		release(code == codes.Unavailable || code == codes.DeadlineExceeded)
		return resp, err
	}
}

// serveGRPC serves the gRPC server, when a service asked for one, on GRPCAddr. It
// returns the port it listens on (0: none) and the function that stops it gracefully
// within grace.
func (a *App) serveGRPC(serveErr chan<- error) (port int, stop func(grace time.Duration), err error) {
	a.mu.Lock()
	srv := a.grpcServer
	a.mu.Unlock()
	if srv == nil {
		return 0, func(time.Duration) {}, nil
	}
	addr := a.Config.listenAddrOf(a.Config.GRPCAddr)
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return 0, nil, fmt.Errorf("listen %s (gRPC): %w", addr, err)
	}
	go func() {
		if err := srv.Serve(ln); err != nil && !errors.Is(err, grpc.ErrServerStopped) {
			serveErr <- fmt.Errorf("gRPC listener: %w", err)
		}
	}()
	return ln.Addr().(*net.TCPAddr).Port, func(grace time.Duration) {
		done := make(chan struct{})
		go func() { srv.GracefulStop(); close(done) }()
		select {
		case <-done:
		case <-time.After(grace):
			srv.Stop()
		}
	}, nil
}

// grpcHealth is the gRPC health service, answering as GET /health does: serving while
// every dependency check passes and the instance is not draining.
type grpcHealth struct {
	healthpb.UnimplementedHealthServer // List and Watch: Check answers for the instance
	a                                  *App
}

func (h grpcHealth) Check(ctx context.Context, req *healthpb.HealthCheckRequest) (*healthpb.HealthCheckResponse, error) {
	if req.GetService() != "" && req.GetService() != h.a.Config.Service {
		return nil, status.Errorf(codes.NotFound, "unknown service %q", req.GetService())
	}
	st := healthpb.HealthCheckResponse_SERVING
	if s, _ := h.a.health(ctx); s != "ok" {
		st = healthpb.HealthCheckResponse_NOT_SERVING
	}
	return &healthpb.HealthCheckResponse{Status: st}, nil
}

// admissionLimiter is the instance's one admission limit, for HTTP and gRPC alike.
func (a *App) admissionLimiter() *admission.Limiter {
	a.limiterOnce.Do(func() {
		shed := a.Metrics.Counter("admission", "shed_total", "Requests answered 503 overloaded by the admission limit.")
		a.limiter = admission.NewLimiter(a.Config.AdmitLimit, a.Config.AdmitWait, shed)
	})
	return a.limiter
}
