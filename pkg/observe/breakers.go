package observe

import "github.com/prometheus/client_golang/prometheus"

// breakerCollector exports the breakers' states, read at each scrape, as
// kitshop_breaker_open{breaker="gateway→inventory"} 0 or 1.
type breakerCollector struct {
	desc   *prometheus.Desc
	states func() map[string]string
}

// RegisterBreakers exports the states that states reports (client.BreakerStates).
func (m *Metrics) RegisterBreakers(states func() map[string]string) {
	m.Registry.MustRegister(breakerCollector{
		desc: prometheus.NewDesc(Namespace+"_breaker_open", "Whether a circuit breaker is open (1) or closed (0).",
			[]string{"breaker"}, prometheus.Labels{"service": m.service}),
		states: states,
	})
}

func (c breakerCollector) Describe(ch chan<- *prometheus.Desc) { ch <- c.desc }

func (c breakerCollector) Collect(ch chan<- prometheus.Metric) {
	for name, state := range c.states() {
		open := 0.0
		if state == "open" {
			open = 1
		}
		ch <- prometheus.MustNewConstMetric(c.desc, prometheus.GaugeValue, open, name)
	}
}
