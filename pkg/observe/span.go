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

// ChildSpan starts a client span named name under the span in ctx. It returns nil and
// ctx unchanged when ctx carries no span or no tracer: nothing is traced then.
func ChildSpan(ctx context.Context, name, remoteService string) (zipkin.Span, context.Context) {
	parent := zipkin.SpanFromContext(ctx)
	tracer, _ := ctx.Value(tracerKey{}).(*zipkin.Tracer)
	if parent == nil || tracer == nil {
		return nil, ctx
	}
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
