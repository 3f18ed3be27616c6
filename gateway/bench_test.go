package gateway

import (
	"io"
	"net/http"
	"testing"

	"github.com/kitshop/kitshop/pkg/logging"
	"github.com/kitshop/kitshop/pkg/observe"
)

// BenchmarkGateway measures one proxied GET /v1/products/{sku} with the whole chain
// (limits, request ID, metrics, round robin, retry, breaker), from parallel clients,
// as the binary runs it (JSON access log with ts/service/caller, zipkin spans to a
// no-op reporter) and with each of those layers left out, so that benchstat shows what
// each costs. gateway/bench/proxy.sh and make bench compare the gateway with nginx.
func BenchmarkGateway(b *testing.B) {
	for _, tc := range []struct {
		name  string
		level string
		trace bool
	}{
		{"binary", "info", true},
		{"no-access-log", "warn", true},
		{"no-tracing", "info", false},
		{"neither", "warn", false},
	} {
		b.Run(tc.name, func(b *testing.B) {
			keys := newTestKeys(b)
			inv := startInventory(b, keys.verifier)
			o := withUpstreams(testOptions(keys.verifier), map[string][]string{InventoryService: {inv.addr()}})
			logger, err := logging.New(io.Discard, "gateway", tc.level)
			if err != nil {
				b.Fatal(err)
			}
			o.Logger = logger
			o.Metrics = observe.NewMetrics("gateway")
			if tc.trace {
				tracer, rep, err := observe.NewTracer("gateway", "127.0.0.1:0", "")
				if err != nil {
					b.Fatal(err)
				}
				b.Cleanup(func() { _ = rep.Close() })
				o.Tracer = tracer
			}
			gw := startGateway(b, o)
			tr := http.DefaultTransport.(*http.Transport).Clone()
			tr.MaxIdleConnsPerHost = 100
			c := &http.Client{Transport: tr}
			url := gw.URL + "/v1/products/" + testSKU
			b.ReportAllocs()
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					resp, err := c.Get(url)
					if err != nil {
						b.Fatal(err)
					}
					_, _ = io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
					if resp.StatusCode != 200 {
						b.Fatalf("status %d", resp.StatusCode)
					}
				}
			})
		})
	}
}
