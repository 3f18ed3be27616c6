package order

import (
	"context"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-kit/kit/sd"
	kithttp "github.com/go-kit/kit/transport/http"

	"github.com/kitshop/kitshop/pkg/auth"
	"github.com/kitshop/kitshop/pkg/client"
	"github.com/kitshop/kitshop/pkg/testenv"
)

// BenchmarkCheckoutPostgres measures whole checkouts (a POST /v1/orders through the
// order service's HTTP transport and client, pricing, reserve, charge, commit, outbox)
// with order, inventory and payment all on PostgreSQL and talking HTTP, from 1 and 32
// concurrent clients (each buying its own product), and reports checkouts/s and
// latency percentiles.
func BenchmarkCheckoutPostgres(b *testing.B) {
	e := newEnv(b, envOptions{postgres: true})
	// One product per client, so the figure is the pipeline's, not one hot row's.
	stock := map[string]int{}
	for i := range 32 {
		stock[fmt.Sprint("BENCH-", i)] = 1000000
	}
	e.seed(stock)
	srv, alice, _ := newTestServer(b, e, nopWriter{})
	opts := client.Options{Caller: testenv.Name("bench"), Before: []kithttp.RequestFunc{auth.ContextToHTTP()}}
	c := NewHTTPClient(sd.FixedInstancer{strings.TrimPrefix(srv.URL, "http://")}, opts.Defaults())
	ctx := auth.HTTPToContext()(context.Background(), &http.Request{Header: http.Header{"Authorization": {"Bearer " + alice}}})
	prefix := testenv.Name("bench")
	var keys atomic.Int64 // across runs too: a repeated key would be a replay, not a checkout

	for _, clients := range []int{1, 32} {
		b.Run(fmt.Sprintf("clients=%d", clients), func(b *testing.B) {
			var (
				next      atomic.Int64
				mu        sync.Mutex
				latencies = make([]time.Duration, 0, b.N)
				wg        sync.WaitGroup
			)
			b.ResetTimer()
			begin := time.Now()
			for i := range clients {
				sku := fmt.Sprint("BENCH-", i)
				wg.Add(1)
				go func() {
					defer wg.Done()
					local := []time.Duration{}
					for {
						n := next.Add(1)
						if n > int64(b.N) {
							break
						}
						start := time.Now()
						o, err := c.PlaceOrder(ctx, fmt.Sprint(prefix, "-", keys.Add(1)), Checkout{Card: testCard, Items: []Line{{sku, 1}}})
						if err != nil || o.Status != StatusConfirmed {
							b.Errorf("checkout = %+v, %v", o, err)
							return
						}
						local = append(local, time.Since(start))
					}
					mu.Lock()
					latencies = append(latencies, local...)
					mu.Unlock()
				}()
			}
			wg.Wait()
			elapsed := time.Since(begin)
			b.StopTimer()
			if len(latencies) == 0 {
				return
			}
			slices.Sort(latencies)
			b.ReportMetric(float64(len(latencies))/elapsed.Seconds(), "checkouts/s")
			b.ReportMetric(float64(latencies[len(latencies)/2].Microseconds())/1000, "p50-ms")
			b.ReportMetric(float64(latencies[len(latencies)*99/100].Microseconds())/1000, "p99-ms")
		})
	}
}

type nopWriter struct{}

func (nopWriter) Write(p []byte) (int, error) { return len(p), nil }
