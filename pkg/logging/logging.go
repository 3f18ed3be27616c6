// Package logging builds the go-kit/log JSON logger every service uses:
// ts, level, service, caller, trace_id, msg.
package logging

import (
	"context"
	"fmt"
	"io"

	"github.com/go-kit/log"
	"github.com/go-kit/log/level"
	"github.com/openzipkin/zipkin-go"
)

// New returns a JSON logger for service that drops entries below minLevel
// ("debug", "info", "warn" or "error").
func New(w io.Writer, service, minLevel string) (log.Logger, error) {
	var opt level.Option
	switch minLevel {
	case "debug":
		opt = level.AllowDebug()
	case "info", "":
		opt = level.AllowInfo()
	case "warn":
		opt = level.AllowWarn()
	case "error":
		opt = level.AllowError()
	default:
		return nil, fmt.Errorf("log level %q: want debug, info, warn or error", minLevel)
	}
	logger := NewJSONLogger(log.NewSyncWriter(w))
	logger = level.NewFilter(logger, opt)
	logger = log.With(logger, "ts", log.DefaultTimestampUTC, "service", service, "caller", log.DefaultCaller)
	return logger, nil
}

// WithTrace adds the trace ID of the span in ctx, if any, so log lines join traces.
func WithTrace(ctx context.Context, logger log.Logger) log.Logger {
	if span := zipkin.SpanFromContext(ctx); span != nil {
		return log.With(logger, "trace_id", span.Context().TraceID.String())
	}
	return logger
}
