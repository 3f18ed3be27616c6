package e2e

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/kitshop/kitshop/internal/stack"
	"github.com/kitshop/kitshop/pkg/testenv"
)

// TestLogsOfOneCheckout finds one checkout's lines in the logs of every service it
// crossed by the trace ID the gateway answered with, as `kitshop logs -trace` does (the
// suite's stack logs at debug, as the README's example does).
func TestLogsOfOneCheckout(t *testing.T) {
	ctx := context.Background()
	c, _ := shopper(t)
	sku := newProduct(t, 5, 900)
	if _, err := c.Call(ctx, "PUT", "/v1/cart/items/"+sku, map[string]int{"quantity": 1}, nil); err != nil {
		t.Fatal(err)
	}
	answer, err := c.Send(ctx, "POST", "/v1/orders", map[string]any{"payment": card(goodCard)}, nil, "Idempotency-Key", "logs-"+testenv.RandomHex(6))
	trace := answer.Header.Get("X-Trace-Id")
	if err != nil || answer.Status != http.StatusCreated || trace == "" {
		t.Fatalf("checkout answered %d (%v) with X-Trace-Id %q, want 201 and a trace ID", answer.Status, err, trace)
	}

	want := []string{"gateway", "order", "inventory", "payment", "notification"}
	var seen map[string]int
	testenv.Eventually(t, 20*time.Second, "the checkout's lines from every service it crossed", func() bool {
		seen = map[string]int{}
		for _, l := range logLines(t, env.stack, stack.LogFilter{TraceID: trace}) {
			seen[strings.TrimRight(l.Instance, "-0123456789")]++
		}
		for _, svc := range want {
			if seen[svc] == 0 {
				return false
			}
		}
		return true
	})
	t.Logf("lines of trace %s per service: %v", trace, seen)
}
