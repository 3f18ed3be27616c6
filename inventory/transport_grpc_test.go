package inventory

import (
	"testing"

	"github.com/go-kit/log"
	"google.golang.org/grpc"

	"github.com/kitshop/kitshop/pkg/observe"
	"github.com/kitshop/kitshop/pkg/testenv"
)

// newTestGRPCServer serves the inventory over gRPC on loopback, as newTestServer does
// over HTTP, and returns its address.
func newTestGRPCServer(t testing.TB, a testAuth) string {
	t.Helper()
	svc, _, _ := newTestService(t)
	obs := observe.Observer{Logger: log.NewNopLogger(), Metrics: observe.NewMetrics("inventory")}
	return testenv.GRPCServer(t, func(s *grpc.Server) { RegisterGRPCServer(s, MakeServerEndpoints(svc, obs, a.verifier), nil) })
}
