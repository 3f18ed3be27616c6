package observe_test

import (
	"context"
	"database/sql"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/kitshop/kitshop/pkg/observe"
	"github.com/kitshop/kitshop/pkg/testenv"
)

type fixedStats sql.DBStats

func (s fixedStats) Stats() sql.DBStats { return sql.DBStats(s) }

// openPool opens the test PostgreSQL with a pool of at most maxOpen connections.
func openPool(t *testing.T, maxOpen int) *sql.DB {
	t.Helper()
	db, err := sql.Open("postgres", testenv.PostgresURL(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	db.SetMaxOpenConns(maxOpen)
	if err := db.PingContext(context.Background()); err != nil {
		t.Fatal(err)
	}
	return db
}

// lend takes a connection out of db's pool until the test ends.
func lend(t *testing.T, db *sql.DB) *sql.Conn {
	t.Helper()
	c, err := db.Conn(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func TestRegisterDBPool(t *testing.T) {
	tests := []struct {
		name string
		pool func(t *testing.T) observe.PoolStats
		want map[string]float64
		// waited: kitshop_db_wait_duration_seconds_total must be above 0 (a real wait's
		// length is not known beforehand); otherwise it must be want's value.
		waited bool
	}{
		{
			name: "every field of the stats",
			pool: func(*testing.T) observe.PoolStats {
				return fixedStats{MaxOpenConnections: 20, OpenConnections: 7, InUse: 5, Idle: 2,
					WaitCount: 3, WaitDuration: 1500 * time.Millisecond, MaxIdleClosed: 4}
			},
			want: map[string]float64{
				"kitshop_db_max_open_connections": 20, "kitshop_db_open_connections": 7,
				"kitshop_db_in_use_connections": 5, "kitshop_db_idle_connections": 2,
				"kitshop_db_wait_count_total": 3, "kitshop_db_wait_duration_seconds_total": 1.5,
				"kitshop_db_max_idle_closed_total": 4,
			},
		},
		{
			name: "postgres: one connection idle after a ping",
			pool: func(t *testing.T) observe.PoolStats { return openPool(t, 2) },
			want: map[string]float64{
				"kitshop_db_max_open_connections": 2, "kitshop_db_open_connections": 1,
				"kitshop_db_in_use_connections": 0, "kitshop_db_idle_connections": 1,
				"kitshop_db_wait_count_total": 0, "kitshop_db_wait_duration_seconds_total": 0,
				"kitshop_db_max_idle_closed_total": 0,
			},
		},
		{
			name: "postgres: two connections lent",
			pool: func(t *testing.T) observe.PoolStats {
				db := openPool(t, 3)
				lend(t, db)
				lend(t, db)
				return db
			},
			want: map[string]float64{
				"kitshop_db_max_open_connections": 3, "kitshop_db_open_connections": 2,
				"kitshop_db_in_use_connections": 2, "kitshop_db_idle_connections": 0,
				"kitshop_db_wait_count_total": 0, "kitshop_db_wait_duration_seconds_total": 0,
				"kitshop_db_max_idle_closed_total": 0,
			},
		},
		{
			name: "postgres: a caller waited for the only connection",
			pool: func(t *testing.T) observe.PoolStats {
				db := openPool(t, 1)
				held := lend(t, db)
				got := make(chan error, 1)
				go func() {
					c, err := db.Conn(context.Background())
					if err == nil {
						err = c.Close()
					}
					got <- err
				}()
				for db.Stats().WaitCount == 0 { // the second caller is queued
					runtime.Gosched()
				}
				held.Close()
				if err := <-got; err != nil {
					t.Fatal(err)
				}
				return db
			},
			want: map[string]float64{
				"kitshop_db_max_open_connections": 1, "kitshop_db_open_connections": 1,
				"kitshop_db_in_use_connections": 0, "kitshop_db_idle_connections": 1,
				"kitshop_db_wait_count_total": 1, "kitshop_db_max_idle_closed_total": 0,
			},
			waited: true,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := observe.NewMetrics("inventory")
			m.RegisterDBPool(tt.pool(t))
			families, err := m.Registry.Gather()
			if err != nil {
				t.Fatal(err)
			}
			got := map[string]float64{}
			for _, f := range families {
				for _, metric := range f.GetMetric() {
					if !strings.HasPrefix(f.GetName(), "kitshop_db_") {
						continue
					}
					labels := metric.GetLabel()
					if len(labels) != 1 || labels[0].GetName() != "service" || labels[0].GetValue() != "inventory" {
						t.Errorf("%s has labels %v, want service=inventory only", f.GetName(), labels)
					}
					v := metric.GetGauge().GetValue()
					if c := metric.GetCounter(); c != nil {
						v = c.GetValue()
					}
					got[f.GetName()] = v
				}
			}
			const waitDuration = "kitshop_db_wait_duration_seconds_total"
			if tt.waited {
				if got[waitDuration] <= 0 {
					t.Errorf("%s = %v after a wait, want > 0", waitDuration, got[waitDuration])
				}
				delete(got, waitDuration)
			}
			for name, want := range tt.want {
				if v, ok := got[name]; !ok || v != want {
					t.Errorf("%s = %v (exported: %t), want %v", name, v, ok, want)
				}
			}
			if len(got) != len(tt.want) {
				t.Errorf("exported %d kitshop_db_ series %v, want %d", len(got), got, len(tt.want))
			}
		})
	}
}
