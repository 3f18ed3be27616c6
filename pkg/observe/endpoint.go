package observe

import (
	"context"
	"time"

	"github.com/go-kit/kit/endpoint"
	kitzipkin "github.com/go-kit/kit/tracing/zipkin"
	"github.com/go-kit/log"
	"github.com/go-kit/log/level"
	"github.com/openzipkin/zipkin-go"

	"github.com/kitshop/kitshop/pkg/errs"
	"github.com/kitshop/kitshop/pkg/logging"
)

// Observer decorates server endpoints with a span, a log line and metrics.
type Observer struct {
	Logger  log.Logger
	Metrics *Metrics
	Tracer  *zipkin.Tracer
}

// Endpoint wraps e, the endpoint called name. Successes are logged at debug level,
// business refusals at info, failures at error; every call is counted and timed with
// its outcome ("ok" or the error code).
func (o Observer) Endpoint(name string, e endpoint.Endpoint) endpoint.Endpoint {
	next := e
	e = func(ctx context.Context, request any) (response any, err error) {
		begin := time.Now()
		defer func() {
			took := time.Since(begin)
			outcome := Outcome(err)
			o.Metrics.Requests.With("endpoint", name, "outcome", outcome).Add(1)
			o.Metrics.Duration.With("endpoint", name, "outcome", outcome).Observe(took.Seconds())
			logger := log.With(logging.WithTrace(ctx, o.Logger), "endpoint", name, "outcome", outcome, "took", took.String())
			if transport, ok := ctx.Value(transportKey{}).(string); ok {
				logger = log.With(logger, "transport", transport)
			}
			switch {
			case err == nil:
				_ = level.Debug(logger).Log("msg", "call")
			case errs.IsBusiness(err):
				_ = level.Info(logger).Log("msg", "call refused", "err", err)
			default:
				_ = level.Error(logger).Log("msg", "call failed", "err", err)
			}
		}()
		return next(ctx, request)
	}
	if o.Tracer != nil {
		traced := kitzipkin.TraceEndpoint(o.Tracer, name)(e)
		e = func(ctx context.Context, request any) (any, error) {
			return traced(WithTracer(ctx, o.Tracer), request)
		}
	}
	return e
}

type transportKey struct{}

// WithTransport records in ctx the transport a call came in over ("http", "grpc"),
// which its log line names.
func WithTransport(ctx context.Context, transport string) context.Context {
	return context.WithValue(ctx, transportKey{}, transport)
}

// Outcome is the metric label for err: "ok", or the error's code (a small fixed set).
func Outcome(err error) string {
	if err == nil {
		return "ok"
	}
	return errs.From(err).Code
}
