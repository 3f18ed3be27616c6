package observe

import (
	"database/sql"

	"github.com/prometheus/client_golang/prometheus"
)

// PoolStats is what the pool collector reads: *sql.DB has it.
type PoolStats interface {
	Stats() sql.DBStats
}

// dbPoolCollector exports a database/sql pool's counts, read at each scrape, as
// kitshop_db_* series: connections open, in use, idle and the limit, and how often and
// how long callers waited for a connection.
type dbPoolCollector struct {
	db                                     PoolStats
	maxOpen, open, inUse, idle             *prometheus.Desc
	waitCount, waitDuration, closedMaxIdle *prometheus.Desc
}

// RegisterDBPool exports the pool statistics of db. Every series carries the service's
// constant label; a service has one pool, so nothing else tells them apart.
func (m *Metrics) RegisterDBPool(db PoolStats) {
	desc := func(name, help string) *prometheus.Desc {
		return prometheus.NewDesc(Namespace+"_db_"+name, help, nil, prometheus.Labels{"service": m.service})
	}
	m.Registry.MustRegister(dbPoolCollector{
		db:            db,
		maxOpen:       desc("max_open_connections", "The pool's limit of open connections (0: none)."),
		open:          desc("open_connections", "Connections to the database, in use or idle."),
		inUse:         desc("in_use_connections", "Connections lent to a caller."),
		idle:          desc("idle_connections", "Connections open and waiting in the pool."),
		waitCount:     desc("wait_count_total", "Times a caller waited for a connection because the pool was at its limit."),
		waitDuration:  desc("wait_duration_seconds_total", "Time callers spent waiting for a connection."),
		closedMaxIdle: desc("max_idle_closed_total", "Connections closed because the pool had more idle ones than it keeps."),
	})
}

func (c dbPoolCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{c.maxOpen, c.open, c.inUse, c.idle, c.waitCount, c.waitDuration, c.closedMaxIdle} {
		ch <- d
	}
}

func (c dbPoolCollector) Collect(ch chan<- prometheus.Metric) {
	s := c.db.Stats()
	ch <- prometheus.MustNewConstMetric(c.maxOpen, prometheus.GaugeValue, float64(s.MaxOpenConnections))
	ch <- prometheus.MustNewConstMetric(c.open, prometheus.GaugeValue, float64(s.OpenConnections))
	ch <- prometheus.MustNewConstMetric(c.inUse, prometheus.GaugeValue, float64(s.InUse))
	ch <- prometheus.MustNewConstMetric(c.idle, prometheus.GaugeValue, float64(s.Idle))
	ch <- prometheus.MustNewConstMetric(c.waitCount, prometheus.CounterValue, float64(s.WaitCount))
	ch <- prometheus.MustNewConstMetric(c.waitDuration, prometheus.CounterValue, s.WaitDuration.Seconds())
	ch <- prometheus.MustNewConstMetric(c.closedMaxIdle, prometheus.CounterValue, float64(s.MaxIdleClosed))
}
