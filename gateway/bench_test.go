package gateway

import (
	"io"
	"net/http"
	"testing"

	"github.com/go-kit/log"

	"github.com/kitshop/kitshop/pkg/observe"
)

// BenchmarkGateway measures one proxied GET /v1/products/{sku} with the whole chain
// (access log to io.Discard, metrics, limits, retry, breaker), from parallel clients.
// gateway/bench/proxy.sh compares the gateway with nginx under wrk.
func BenchmarkGateway(b *testing.B) {
	keys := newTestKeys(b)
	inv := startInventory(b, keys.verifier)
	o := withUpstreams(testOptions(keys.verifier), map[string][]string{InventoryService: {inv.addr()}})
	o.Logger = log.NewJSONLogger(io.Discard)
	o.Metrics = observe.NewMetrics("gateway")
	gw := startGateway(b, o)
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.MaxIdleConnsPerHost = 100
	c := &http.Client{Transport: tr}
	url := gw.URL + "/v1/products/" + testSKU
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
}
