package e2e

import (
	"bytes"
	"context"
	"encoding/json"
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
	body, _ := json.Marshal(map[string]any{"payment": card(goodCard)})
	req, err := http.NewRequestWithContext(ctx, "POST", env.stack.GatewayURL+"/v1/orders", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+c.Token)
	req.Header.Set("Idempotency-Key", "logs-"+testenv.RandomHex(6))
	resp, err := c.HTTP.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	trace := resp.Header.Get("X-Trace-Id")
	if resp.StatusCode != http.StatusCreated || trace == "" {
		t.Fatalf("checkout answered %d with X-Trace-Id %q, want 201 and a trace ID", resp.StatusCode, trace)
	}

	want := []string{"gateway", "order", "inventory", "payment", "notification"}
	var seen map[string]int
	testenv.Eventually(t, 20*time.Second, "the checkout's lines from every service it crossed", func() bool {
		r, err := stack.NewLogReader(env.stack.Logs(), stack.LogFilter{TraceID: trace})
		if err != nil {
			t.Fatal(err)
		}
		lines, err := r.Next()
		if err != nil {
			t.Fatal(err)
		}
		seen = map[string]int{}
		for _, l := range lines {
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
