package observe

import (
	"context"
	"testing"

	"github.com/openzipkin/zipkin-go"
	"github.com/openzipkin/zipkin-go/reporter"
)

func TestRecording(t *testing.T) {
	newTracer := func(s zipkin.Sampler) *zipkin.Tracer {
		tr, err := zipkin.NewTracer(reporter.NewNoopReporter(), zipkin.WithSampler(s))
		if err != nil {
			t.Fatal(err)
		}
		return tr
	}
	sampled, unsampled := newTracer(zipkin.AlwaysSample), newTracer(zipkin.NeverSample)
	tests := []struct {
		name string
		ctx  context.Context
		want bool
	}{
		{"no span", WithTracer(context.Background(), sampled), false},
		{"span without a tracer", zipkin.NewContext(context.Background(), sampled.StartSpan("r")), false},
		{"sampled span and tracer", WithTracer(zipkin.NewContext(context.Background(), sampled.StartSpan("r")), sampled), true},
		{"unsampled span", WithTracer(zipkin.NewContext(context.Background(), unsampled.StartSpan("r")), unsampled), false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := Recording(tt.ctx); got != tt.want {
				t.Errorf("Recording = %v, want %v", got, tt.want)
			}
			span, ctx := ChildSpan(tt.ctx, "sql select", "postgres")
			if (span != nil) != tt.want || (span == nil && ctx != tt.ctx) {
				t.Errorf("ChildSpan = %v, want a span: %v", span, tt.want)
			}
		})
	}
}
