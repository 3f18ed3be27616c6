package inventory

import (
	"context"
	"fmt"
	"runtime"
	"sync/atomic"
	"testing"
	"time"

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
