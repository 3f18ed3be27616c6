package observe

import (
	"github.com/openzipkin/zipkin-go"
	"github.com/openzipkin/zipkin-go/reporter"
	zipkinhttp "github.com/openzipkin/zipkin-go/reporter/http"
)

// NewTracer returns a tracer for service at hostPort. Spans go to the Zipkin collector at
// zipkinURL (e.g. http://127.0.0.1:9411/api/v2/spans); with no URL, trace context still
// propagates but nothing is reported. Close the reporter on shutdown to flush spans.
func NewTracer(service, hostPort, zipkinURL string) (*zipkin.Tracer, reporter.Reporter, error) {
	rep := reporter.NewNoopReporter()
	if zipkinURL != "" {
		rep = zipkinhttp.NewReporter(zipkinURL)
	}
	local, err := zipkin.NewEndpoint(service, hostPort)
	if err != nil {
		_ = rep.Close()
		return nil, nil, err
	}
	tracer, err := zipkin.NewTracer(rep, zipkin.WithLocalEndpoint(local), zipkin.WithSharedSpans(true))
	if err != nil {
		_ = rep.Close()
		return nil, nil, err
	}
	return tracer, rep, nil
}
