package logging

import (
	"bytes"
	"context"
	"encoding/json"
	"testing"

	"github.com/go-kit/log/level"
	"github.com/openzipkin/zipkin-go"
	"github.com/openzipkin/zipkin-go/reporter"
)

func TestNew(t *testing.T) {
	tests := []struct {
		min       string
		wantDebug bool
		wantErr   bool
	}{
		{min: "debug", wantDebug: true},
		{min: "info"},
		{min: ""},
		{min: "loud", wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.min, func(t *testing.T) {
			var buf bytes.Buffer
			logger, err := New(&buf, "inventory", tt.min)
			if (err != nil) != tt.wantErr {
				t.Fatalf("err = %v", err)
			}
			if err != nil {
				return
			}
			_ = level.Debug(logger).Log("msg", "d")
			if got := buf.Len() > 0; got != tt.wantDebug {
				t.Errorf("debug logged = %v, want %v", got, tt.wantDebug)
			}
			buf.Reset()
			_ = level.Info(logger).Log("msg", "hello")
			var line map[string]any
			if err := json.Unmarshal(buf.Bytes(), &line); err != nil {
				t.Fatalf("not JSON: %q", buf.String())
			}
			for _, k := range []string{"ts", "level", "service", "caller", "msg"} {
				if _, ok := line[k]; !ok {
					t.Errorf("missing %q in %v", k, line)
				}
			}
			if c, _ := line["caller"].(string); c == "" || c[:len("logging_test.go")] != "logging_test.go" {
				t.Errorf("caller = %v, want this file", line["caller"])
			}
		})
	}
}

func TestWithTrace(t *testing.T) {
	tracer, err := zipkin.NewTracer(reporter.NewNoopReporter())
	if err != nil {
		t.Fatal(err)
	}
	span := tracer.StartSpan("x")
	ctx := zipkin.NewContext(context.Background(), span)
	var buf bytes.Buffer
	logger, _ := New(&buf, "s", "info")
	_ = WithTrace(ctx, logger).Log("msg", "m")
	var line map[string]any
	_ = json.Unmarshal(buf.Bytes(), &line)
	if line["trace_id"] != span.Context().TraceID.String() {
		t.Errorf("trace_id = %v, want %v", line["trace_id"], span.Context().TraceID)
	}
}
