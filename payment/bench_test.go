package payment

import (
	"context"
	"net/http/httptest"
	"runtime"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-kit/kit/sd"
	"github.com/go-kit/log"

	"github.com/kitshop/kitshop/pkg/client"
	"github.com/kitshop/kitshop/pkg/observe"
	"github.com/kitshop/kitshop/pkg/testenv"
)

// benchClients is how many callers charge at once.
const benchClients = 16

// BenchmarkChargePostgres charges new orders against PostgreSQL from 16 concurrent
// clients, calling the service directly and through HTTP with the client the order
// service uses (retry, breaker, tracing), and reports charges/s and latency
// percentiles.
func BenchmarkChargePostgres(b *testing.B) {
	db := testenv.Postgres(b, Migrations())
	proc, err := NewSimulatedProcessor(SimulatedConfig{Seed: 1})
	if err != nil {
		b.Fatal(err)
	}
	svc := NewService(NewPostgresStore(db), proc, time.Now)

	b.Run("service", func(b *testing.B) { benchCharges(b, svc) })

	b.Run("http", func(b *testing.B) {
		logger := log.NewNopLogger()
		tracer, rep, err := observe.NewTracer("payment", "127.0.0.1:8084", "")
		if err != nil {
			b.Fatal(err)
		}
		defer rep.Close()
		obs := observe.Observer{Logger: logger, Metrics: observe.NewMetrics("payment"), Tracer: tracer}
		srv := httptest.NewServer(MakeHTTPHandler(MakeServerEndpoints(svc, obs), tracer))
		defer srv.Close()
		c := NewHTTPClient(sd.FixedInstancer{srv.Listener.Addr().String()}, client.Options{
			Caller: testenv.Name("bench"), Tracer: tracer, Retries: 2,
		})
		benchCharges(b, c)
	})
}

func benchCharges(b *testing.B, svc Service) {
	procs := runtime.GOMAXPROCS(0)
	b.SetParallelism((benchClients + procs - 1) / procs)
	var (
		mu        sync.Mutex
		latencies []time.Duration
		seq       atomic.Int64
		prefix    = testenv.Name("bench")
		ctx       = context.Background()
	)
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		local := make([]time.Duration, 0, 1024)
		for pb.Next() {
			r := validRequest()
			r.OrderID = prefix + "-" + strconv.FormatInt(seq.Add(1), 10)
			begin := time.Now()
			c, created, err := svc.Charge(ctx, r)
			if err != nil || !created || c.Status != StatusSucceeded {
				b.Errorf("charge = %+v, %v, %v", c, created, err)
				return
			}
			local = append(local, time.Since(begin))
		}
		mu.Lock()
		latencies = append(latencies, local...)
		mu.Unlock()
	})
	b.StopTimer()
	if len(latencies) == 0 {
		return
	}
	slices.Sort(latencies)
	at := func(q float64) float64 {
		return float64(latencies[int(q*float64(len(latencies)-1))]) / float64(time.Millisecond)
	}
	b.ReportMetric(float64(len(latencies))/b.Elapsed().Seconds(), "charges/s")
	b.ReportMetric(at(0.50), "p50-ms")
	b.ReportMetric(at(0.99), "p99-ms")
}
