package testenv

import (
	"net"
	"testing"

	"google.golang.org/grpc"
)

// GRPCServer serves a gRPC server of opts, with the services register adds, on
// loopback until the test ends, and returns its address.
func GRPCServer(t testing.TB, register func(*grpc.Server), opts ...grpc.ServerOption) string {
	t.Helper()
	srv := grpc.NewServer(opts...)
	register(srv)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(srv.Stop)
	return ln.Addr().String()
}
