package e2e

import (
	"context"
	"fmt"
	"sync"
	"testing"

	"github.com/kitshop/kitshop/internal/stack"
)

// TestNoOversell: 200 concurrent checkouts of a product with stock 50, from 20
// shoppers, through the gateway: exactly 50 are confirmed.
func TestNoOversell(t *testing.T) {
	const stock, shoppers, each = 50, 20, 10
	sku := newProduct(t, stock, 999)
	clients := make([]*stack.Client, shoppers)
	for i := range clients {
		clients[i], _ = shopper(t)
	}
	ctx := context.Background()
	var mu sync.Mutex
	outcomes := map[string]int{}
	var wg sync.WaitGroup
	for i := 0; i < shoppers*each; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			c := clients[i%shoppers]
			status, err := checkoutSettled(ctx, c, fmt.Sprintf("oversell-%s-%d", sku, i), []line{{sku, 1}}, goodCard)
			outcome := fmt.Sprint(status)
			if err != nil {
				if e, ok := err.(*stack.APIError); ok {
					outcome = e.Code
				} else {
					outcome = err.Error()
				}
			}
			mu.Lock()
			outcomes[outcome]++
			mu.Unlock()
		}(i)
	}
	wg.Wait()
	if outcomes["201"] != stock || outcomes["out_of_stock"] != shoppers*each-stock {
		t.Fatalf("outcomes %v; want %d confirmed and %d out_of_stock", outcomes, stock, shoppers*each-stock)
	}
	var onHand, reserved int
	if err := env.dbs["inventory"].QueryRow(`SELECT stock, reserved FROM products WHERE sku = $1`, sku).Scan(&onHand, &reserved); err != nil {
		t.Fatal(err)
	}
	if onHand != 0 || reserved != 0 {
		t.Fatalf("stock %d reserved %d after selling out; want 0 0", onHand, reserved)
	}
}
