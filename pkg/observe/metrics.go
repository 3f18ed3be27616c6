// Package observe gives services and clients their metrics (Prometheus through go-kit
// metrics, one registry per service, no global registry) and tracing (zipkin-go), and the
// endpoint middleware that logs, counts and times every call.
package observe

import (
	"net/http"

	kitprometheus "github.com/go-kit/kit/metrics/prometheus"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Namespace prefixes every kitshop metric.
const Namespace = "kitshop"

// Metrics is one service's metric registry.
type Metrics struct {
	Registry *prometheus.Registry
	service  string

	// Requests and Duration are the per-endpoint metrics every endpoint reports,
	// labelled by endpoint and outcome ("ok" or the error code).
	Requests *kitprometheus.Counter
	Duration *kitprometheus.Histogram
}

// NewMetrics makes a registry with Go runtime and process collectors and the
// per-endpoint metrics. Every metric carries a constant label service.
func NewMetrics(service string) *Metrics {
	m := &Metrics{Registry: prometheus.NewRegistry(), service: service}
	m.Registry.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	m.Requests = m.Counter("endpoint", "requests_total", "Endpoint calls by endpoint and outcome.", "endpoint", "outcome")
	m.Duration = m.Histogram("endpoint", "duration_seconds", "Endpoint latency by endpoint and outcome.", "endpoint", "outcome")
	return m
}

// Counter registers a counter kitshop_<subsystem>_<name>.
func (m *Metrics) Counter(subsystem, name, help string, labels ...string) *kitprometheus.Counter {
	cv := prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: Namespace, Subsystem: subsystem, Name: name, Help: help,
		ConstLabels: prometheus.Labels{"service": m.service},
	}, labels)
	m.Registry.MustRegister(cv)
	return kitprometheus.NewCounter(cv)
}

// Gauge registers a gauge kitshop_<subsystem>_<name>.
func (m *Metrics) Gauge(subsystem, name, help string, labels ...string) *kitprometheus.Gauge {
	gv := prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Namespace: Namespace, Subsystem: subsystem, Name: name, Help: help,
		ConstLabels: prometheus.Labels{"service": m.service},
	}, labels)
	m.Registry.MustRegister(gv)
	return kitprometheus.NewGauge(gv)
}

// Histogram registers a latency histogram kitshop_<subsystem>_<name> with buckets from
// 0.5 ms to 10 s.
func (m *Metrics) Histogram(subsystem, name, help string, labels ...string) *kitprometheus.Histogram {
	hv := prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Namespace: Namespace, Subsystem: subsystem, Name: name, Help: help,
		ConstLabels: prometheus.Labels{"service": m.service},
		Buckets:     []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10},
	}, labels)
	m.Registry.MustRegister(hv)
	return kitprometheus.NewHistogram(hv)
}

// Handler serves the registry in the Prometheus text format.
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.Registry, promhttp.HandlerOpts{Registry: m.Registry})
}
