package observe

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/go-kit/log"
	"github.com/openzipkin/zipkin-go"
	"github.com/openzipkin/zipkin-go/reporter/recorder"

	"github.com/kitshop/kitshop/pkg/errs"
)

func TestObserverEndpoint(t *testing.T) {
	var logs bytes.Buffer
	rec := recorder.NewReporter()
	tracer, _ := zipkin.NewTracer(rec)
	m := NewMetrics("test")
	o := Observer{Logger: log.NewJSONLogger(&logs), Metrics: m, Tracer: tracer}

	refused := errs.E(errs.Unprocessable, "out_of_stock", "none")
	tests := []struct {
		err     error
		outcome string
		logged  string
	}{
		{nil, "ok", ""}, // successes are debug lines, filtered by the real logger's level
		{refused, "out_of_stock", "call refused"},
		{errors.New("boom"), "internal", "call failed"},
	}
	for _, tt := range tests {
		logs.Reset()
		var sawTracer bool
		e := o.Endpoint("reserve", func(ctx context.Context, _ any) (any, error) {
			_, sawTracer = ctx.Value(tracerKey{}).(*zipkin.Tracer)
			return nil, tt.err
		})
		if _, err := e(context.Background(), nil); !errors.Is(err, tt.err) {
			t.Fatalf("err %v, want %v", err, tt.err)
		}
		if !sawTracer {
			t.Error("the tracer is not in the endpoint's context")
		}
		if got := counterValue(t, m, "kitshop_endpoint_requests_total", tt.outcome); got != 1 {
			t.Errorf("%s counted %v times", tt.outcome, got)
		}
		if tt.logged != "" && !strings.Contains(logs.String(), tt.logged) {
			t.Errorf("log %q lacks %q", logs.String(), tt.logged)
		}
	}
	if spans := rec.Flush(); len(spans) != 3 || spans[0].Name != "reserve" {
		t.Fatalf("spans %v", spans)
	}
}

// counterValue reads the requests counter of one outcome from the registry.
func counterValue(t *testing.T, m *Metrics, name, outcome string) float64 {
	t.Helper()
	families, err := m.Registry.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range families {
		if f.GetName() != name {
			continue
		}
		for _, metric := range f.GetMetric() {
			for _, l := range metric.GetLabel() {
				if l.GetName() == "outcome" && l.GetValue() == outcome {
					return metric.GetCounter().GetValue()
				}
			}
		}
	}
	return 0
}

func TestTracerWithoutCollectorSamplesNothing(t *testing.T) {
	tracer, rep, err := NewTracer("test", "127.0.0.1:1", "")
	if err != nil {
		t.Fatal(err)
	}
	defer rep.Close()
	span := tracer.StartSpan("request")
	defer span.Finish()
	if sc := span.Context(); sc.TraceID.Empty() || (sc.Sampled != nil && *sc.Sampled) {
		t.Fatalf("span context %+v: want a trace ID, not sampled", sc)
	}
}

func TestBreakerMetric(t *testing.T) {
	m := NewMetrics("test")
	m.RegisterBreakers(func() map[string]string { return map[string]string{"a→b": "open", "a→c": "closed"} })
	families, err := m.Registry.Gather()
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]float64{}
	for _, f := range families {
		if f.GetName() != "kitshop_breaker_open" {
			continue
		}
		for _, metric := range f.GetMetric() {
			for _, l := range metric.GetLabel() {
				if l.GetName() == "breaker" {
					got[l.GetValue()] = metric.GetGauge().GetValue()
				}
			}
		}
	}
	if got["a→b"] != 1 || got["a→c"] != 0 || len(got) != 2 {
		t.Fatalf("kitshop_breaker_open = %v", got)
	}
}
