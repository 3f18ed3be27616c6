package user

import (
	"testing"

	"github.com/go-kit/log"
	"google.golang.org/grpc"

	"github.com/kitshop/kitshop/pkg/observe"
	"github.com/kitshop/kitshop/pkg/testenv"
)

// newTestGRPCServer serves e's Keys service over gRPC on loopback and returns its
// address.
func newTestGRPCServer(t *testing.T, e *testEnv) string {
	t.Helper()
	obs := observe.Observer{Logger: log.NewJSONLogger(e.logs), Metrics: observe.NewMetrics("user")}
	return testenv.GRPCServer(t, func(s *grpc.Server) { RegisterGRPCServer(s, MakeServerEndpoints(e.svc, obs, e.verifier), nil) })
}
