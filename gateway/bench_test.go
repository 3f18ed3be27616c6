package gateway

import (
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/kitshop/kitshop/pkg/auth"
	"github.com/kitshop/kitshop/pkg/logging"
	"github.com/kitshop/kitshop/pkg/observe"
)

// BenchmarkGateway measures one proxied GET /v1/products/{sku} with the whole chain
// (limits, request ID, metrics, round robin, retry, breaker), from parallel clients,
// as the binary runs it (JSON access log with ts/service/caller, zipkin trace IDs with
// spans to a no-op reporter) and with the access log left out, so that benchstat shows
// what it costs. Tracing cannot be left out: every answer names its trace.
// gateway/bench/proxy.sh and make bench compare the gateway with nginx.
func BenchmarkGateway(b *testing.B) {
	for _, tc := range []struct {
		name  string
		level string
	}{
		{"binary", "info"},
		{"no-access-log", "warn"},
	} {
		b.Run(tc.name, func(b *testing.B) {
			keys := newTestKeys(b)
			inv := startInventory(b, keys.verifier)
			o := withUpstreams(testOptions(keys.verifier), map[string][]string{InventoryService: {inv.addr()}})
			gw := startGateway(b, observed(b, o, tc.level))
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

// BenchmarkGatewayShed is the price of saying no: POST /v1/orders while its class's
// one slot is taken (by a checkout the upstream holds), so every call is answered 503
// overloaded by the edge, access log and tracing on as in production. Under overload
// every call past the limit costs this, on the cores the admitted work needs.
func BenchmarkGatewayShed(b *testing.B) {
	keys := newTestKeys(b)
	hold := make(chan struct{})
	slow := startInstance(b, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { <-hold }))
	o := withUpstreams(testOptions(keys.verifier), map[string][]string{OrderService: {slow.addr()}})
	o.Admission = map[Class]Admit{ClassShop: {Limit: 1}}
	o.AdmitWait = time.Nanosecond
	gw := startGateway(b, observed(b, o, "info"))
	b.Cleanup(func() { close(hold) }) // before the servers close: cleanups run last first
	url := gw.URL + "/v1/orders"
	bearer := "Bearer " + keys.token(b, auth.Caller{UserID: "u1", Role: auth.RoleCustomer})
	checkout := func(c *http.Client) (int, error) {
		req, _ := http.NewRequest(http.MethodPost, url, strings.NewReader(`{}`))
		req.Header.Set("Authorization", bearer)
		req.Header.Set("Content-Type", "application/json")
		resp, err := c.Do(req)
		if err != nil {
			return 0, err
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return resp.StatusCode, nil
	}
	go func() { _, _ = checkout(http.DefaultClient) }() // takes the class's one slot until the benchmark ends (12 s at most)
	for deadline := time.Now().Add(5 * time.Second); slow.hits.Load() == 0; time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			b.Fatal("the slot was never taken")
		}
	}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.MaxIdleConnsPerHost = 100
	c := &http.Client{Transport: tr}
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if status, err := checkout(c); err != nil || status != http.StatusServiceUnavailable {
				b.Fatalf("status %d (%v), want 503", status, err)
			}
		}
	})
}

// observed gives o a logger at level (its lines discarded), metrics and the tracer of
// the binary without a Zipkin URL: the gateway's work for each as in production.
func observed(b *testing.B, o Options, level string) Options {
	logger, err := logging.New(io.Discard, "gateway", level)
	if err != nil {
		b.Fatal(err)
	}
	o.Logger = logger
	o.Metrics = observe.NewMetrics("gateway")
	tracer, rep, err := observe.NewTracer("gateway", "127.0.0.1:0", "")
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = rep.Close() })
	o.Tracer = tracer
	return o
}
