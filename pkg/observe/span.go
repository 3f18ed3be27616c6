package observe

import (
	"context"

	"github.com/openzipkin/zipkin-go"
	"github.com/openzipkin/zipkin-go/model"
)

type tracerKey struct{}

// WithTracer returns ctx carrying tracer, so code below the endpoint (a store's SQL
// statements) can add child spans to the request's trace without a tracer parameter
// on every function.
func WithTracer(ctx context.Context, tracer *zipkin.Tracer) context.Context {
	return context.WithValue(ctx, tracerKey{}, tracer)
}

// Recording reports whether a child span of ctx would be recorded: ctx carries a tracer
// and a span whose trace is sampled. An unsampled trace still propagates its IDs to
// other services, but a span below it (a SQL statement) goes nowhere.
func Recording(ctx context.Context) bool {
	parent := zipkin.SpanFromContext(ctx)
	if parent == nil || ctx.Value(tracerKey{}) == nil {
		return false
	}
	sc := parent.Context()
	return sc.Debug || sc.Sampled == nil || *sc.Sampled
}

// ChildSpan starts a client span named name under the span in ctx. It returns nil and
// ctx unchanged when the span would not be recorded (see Recording).
func ChildSpan(ctx context.Context, name, remoteService string) (zipkin.Span, context.Context) {
	if !Recording(ctx) {
		return nil, ctx
	}
	parent := zipkin.SpanFromContext(ctx)
	tracer := ctx.Value(tracerKey{}).(*zipkin.Tracer)
	span := tracer.StartSpan(name,
		zipkin.Parent(parent.Context()),
		zipkin.Kind(model.Client),
		zipkin.RemoteEndpoint(&model.Endpoint{ServiceName: remoteService}),
	)
	return span, zipkin.NewContext(ctx, span)
}

// FinishSpan records err on span, if any, and finishes it. A nil span is fine.
func FinishSpan(span zipkin.Span, err error) {
	if span == nil {
		return
	}
	if err != nil {
		zipkin.TagError.Set(span, err.Error())
	}
	span.Finish()
}
