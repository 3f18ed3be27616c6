package inventory

import (
	"context"
	"fmt"
	"runtime"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-kit/kit/sd"

	"github.com/kitshop/kitshop/pkg/client"
	"github.com/kitshop/kitshop/pkg/testenv"
)

// BenchmarkReservePostgres measures the reservation path (validation, one
// transaction: insert the reservation, conditional stock update, insert the line)
// against the real PostgreSQL, with 1 and 16 concurrent callers, on one hot product
// and spread over 12.
func BenchmarkReservePostgres(b *testing.B) {
	for _, products := range []int{1, 12} {
		for _, callers := range []int{1, 16} {
			b.Run(fmt.Sprintf("products=%d/callers=%d", products, callers), func(b *testing.B) {
				store := NewPostgresStore(testenv.Postgres(b, Migrations()))
				svc := NewService(store, "EUR", time.Hour, time.Now)
				ctx := context.Background()
				for i := 0; i < products; i++ {
					if _, err := svc.CreateProduct(ctx, product(fmt.Sprint("P", i), MaxStock)); err != nil {
						b.Fatal(err)
					}
				}
				var next atomic.Int64
				reserve := func() {
					n := next.Add(1)
					line := Line{SKU: fmt.Sprint("P", n%int64(products)), Quantity: 1}
					if _, err := svc.Reserve(ctx, fmt.Sprint("bench-", n), []Line{line}); err != nil {
						b.Error(err)
					}
				}
				b.ResetTimer()
				start := time.Now()
				if callers == 1 {
					for i := 0; i < b.N; i++ {
						reserve()
					}
				} else {
					b.SetParallelism((callers + runtime.GOMAXPROCS(0) - 1) / runtime.GOMAXPROCS(0))
					b.RunParallel(func(pb *testing.PB) {
						for pb.Next() {
							reserve()
						}
					})
				}
				b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "reservations/s")
			})
		}
	}
}

// BenchmarkClientTransports measures one call through each transport's whole client
// chain and server (memory store, loopback, no TLS): GetProduct, the read a cart
// makes per line, and Reserve with its Release, the saga's writes.
func BenchmarkClientTransports(b *testing.B) {
	a := newTestAuth(b)
	for _, transport := range []string{"http", "grpc"} {
		var c Service
		opts := client.Options{Caller: "bench-" + transport}
		if transport == "grpc" {
			c = NewGRPCClient(sd.FixedInstancer{newTestGRPCServer(b, a)}, opts.Defaults())
		} else {
			srv := newTestServer(b, a)
			c = NewHTTPClient(sd.FixedInstancer{strings.TrimPrefix(srv.URL, "http://")}, opts.Defaults())
		}
		ctx := context.Background()
		testenv.Eventually(b, 5*time.Second, "the client finds its instance", func() bool { _, err := c.GetProduct(ctx, "A"); return err == nil })
		b.Run(transport+"/get_product", func(b *testing.B) {
			b.ReportAllocs()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					if _, err := c.GetProduct(ctx, "A"); err != nil {
						b.Error(err)
					}
				}
			})
		})
		var n atomic.Int64
		b.Run(transport+"/reserve_release", func(b *testing.B) {
			b.ReportAllocs()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					id := fmt.Sprint(transport, "-", n.Add(1))
					if _, err := c.Reserve(ctx, id, []Line{{"A", 1}}); err != nil {
						b.Error(err)
					}
					if _, err := c.Release(ctx, id); err != nil {
						b.Error(err)
					}
				}
			})
		})
	}
}
