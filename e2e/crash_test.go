package e2e

import (
	"context"
	"fmt"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/kitshop/kitshop/internal/stack"
	"github.com/kitshop/kitshop/pkg/testenv"
)

// TestOrderServiceCrash: kill -9 both order instances in the middle of checkouts and
// start new ones. No order stays pending past the reservation TTL, and stock and money
// reconcile: on hand + sold = initial, nothing left reserved, and the money kept
// (charged − refunded) equals the totals of the confirmed orders.
func TestOrderServiceCrash(t *testing.T) {
	ctx := context.Background()
	const initial, price = 1000, 700
	sku := newProduct(t, initial, price)
	const shoppers, each = 8, 5
	clients := make([]*stack.Client, shoppers)
	for i := range clients {
		clients[i], _ = shopper(t)
	}
	settled(t, clients[0])

	var wg sync.WaitGroup
	for i := 0; i < shoppers*each; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			// Answers do not matter here: the process serving them dies.
			_, _, _ = checkout(ctx, clients[i%shoppers], fmt.Sprintf("crash-%s-%d", sku, i), []line{{sku, 1 + i%3}}, goodCard)
		}(i)
	}
	time.Sleep(300 * time.Millisecond)
	var killed []string
	for _, p := range env.stack.Procs {
		if p.Service == "order" && p.Alive() {
			if err := env.stack.Kill(p.Name, syscall.SIGKILL); err != nil {
				t.Fatal(err)
			}
			killed = append(killed, p.Name)
		}
	}
	t.Logf("killed %v mid-checkout", killed)
	wg.Wait()
	for range killed {
		if _, err := env.stack.StartInstance("order"); err != nil {
			t.Fatal(err)
		}
	}
	if err := env.stack.WaitPassing(ctx, "order", 2); err != nil {
		t.Fatal(err)
	}
	settled(t, clients[0])

	ids := orderIDs(t, clients)
	testenv.Eventually(t, ttl+30*time.Second, "every order to be final", func() bool {
		var pending int
		if err := env.dbs["order"].QueryRow(`SELECT count(*) FROM orders WHERE status = 'pending' AND id = ANY($1)`, ids).Scan(&pending); err != nil {
			t.Logf("counting pending orders: %v", err)
			return false
		}
		return pending == 0
	})

	var confirmedTotal, confirmedUnits int64
	if err := env.dbs["order"].QueryRow(`SELECT coalesce(sum(o.total_amount), 0), coalesce(sum(i.quantity), 0)
		FROM orders o JOIN order_items i ON i.order_id = o.id
		WHERE o.status = 'confirmed' AND i.sku = $1`, sku).Scan(&confirmedTotal, &confirmedUnits); err != nil {
		t.Fatal(err)
	}
	var kept int64
	if err := env.dbs["payment"].QueryRow(`SELECT coalesce(sum(CASE WHEN kind = 'charge' THEN amount ELSE -amount END), 0)
		FROM ledger_entries WHERE order_id = ANY($1)`, ids).Scan(&kept); err != nil {
		t.Fatal(err)
	}
	var onHand, reserved int64
	if err := env.dbs["inventory"].QueryRow(`SELECT stock, reserved FROM products WHERE sku = $1`, sku).Scan(&onHand, &reserved); err != nil {
		t.Fatal(err)
	}
	var sold int64
	if err := env.dbs["inventory"].QueryRow(`SELECT coalesce(sum(l.quantity), 0) FROM reservation_lines l
		JOIN reservations r USING (order_id) WHERE r.status = 'committed' AND l.sku = $1`, sku).Scan(&sold); err != nil {
		t.Fatal(err)
	}
	t.Logf("confirmed %d units for %d; money kept %d; on hand %d, reserved %d, sold %d", confirmedUnits, confirmedTotal, kept, onHand, reserved, sold)
	if kept != confirmedTotal {
		t.Errorf("money kept %d, confirmed orders total %d", kept, confirmedTotal)
	}
	if reserved != 0 || onHand+sold != initial || sold != confirmedUnits {
		t.Errorf("on hand %d + sold %d != initial %d, or reserved %d != 0, or sold != confirmed units %d", onHand, sold, initial, reserved, confirmedUnits)
	}
}
