package e2e

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/kitshop/kitshop/internal/stack"
	"github.com/kitshop/kitshop/pkg/testenv"
)

// loop runs f from workers goroutines until stop is closed, counting failures.
func loop(workers int, stop <-chan struct{}, f func(worker, i int) error) (calls, failures *atomic.Int64, firstErr *atomic.Value, done *sync.WaitGroup) {
	calls, failures, firstErr, done = new(atomic.Int64), new(atomic.Int64), new(atomic.Value), new(sync.WaitGroup)
	for w := 0; w < workers; w++ {
		done.Add(1)
		go func(w int) {
			defer done.Done()
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				calls.Add(1)
				if err := f(w, i); err != nil {
					if failures.Add(1) == 1 {
						firstErr.Store(err.Error())
					}
				}
			}
		}(w)
	}
	return
}

// TestKillInstanceUnderLoad: kill -9 one of two instances of inventory, payment and
// order while idempotent requests run: none fails, and the dead instance leaves Consul's
// passing set (and so the gateway's pool).
func TestKillInstanceUnderLoad(t *testing.T) {
	ctx := context.Background()
	c, _ := shopper(t)
	sku := newProduct(t, 100000, 100)
	settled(t, c)
	tests := []struct {
		service string
		request func(worker, i int) error
	}{
		{"inventory", func(_, _ int) error {
			_, err := c.Call(ctx, "GET", "/v1/products/"+sku, nil, nil)
			return err
		}},
		{"order", func(_, _ int) error {
			_, err := c.Call(ctx, "GET", "/v1/orders", nil, nil)
			return err
		}},
		// Checkouts reach payment with charges keyed by the order ID: idempotent, so
		// retried on the other instance.
		{"payment", func(w, i int) error {
			status, err := checkoutSettled(ctx, c, fmt.Sprintf("kill-payment-%s-%d-%d", sku, w, i), []line{{sku, 1}}, goodCard)
			if status != 201 {
				return fmt.Errorf("checkout: %d %v", status, err)
			}
			return nil
		}},
	}
	for _, tt := range tests {
		t.Run(tt.service, func(t *testing.T) {
			defer restore(t, tt.service)
			settled(t, c)
			stop := make(chan struct{})
			calls, failures, firstErr, done := loop(4, stop, tt.request)
			time.Sleep(time.Second)
			victim := procOf(t, tt.service)
			if err := env.stack.Kill(victim, syscall.SIGKILL); err != nil {
				t.Fatal(err)
			}
			testenv.Eventually(t, 10*time.Second, "the killed instance to leave the passing set", func() bool { return passing(t, tt.service) == 1 })
			time.Sleep(2 * time.Second)
			close(stop)
			done.Wait()
			if failures.Load() != 0 {
				t.Fatalf("%d of %d requests failed when %s was killed; first: %v", failures.Load(), calls.Load(), victim, firstErr.Load())
			}
			t.Logf("%d requests, none failed, while %s was killed", calls.Load(), victim)
		})
	}
}

// TestDependencyFaults: checkouts keep coming while PostgreSQL connections are
// terminated, RabbitMQ is cut off and the Consul agent restarts. Once everything is
// back: every order is final, each confirmed order has exactly one email.
func TestDependencyFaults(t *testing.T) {
	ctx := context.Background()
	sku := newProduct(t, 100000, 500)
	const shoppers = 4
	clients := make([]*stack.Client, shoppers)
	for i := range clients {
		clients[i], _ = shopper(t)
	}
	settled(t, clients[0])
	stop := make(chan struct{})
	var unsettled atomic.Int64
	calls, _, firstErr, done := loop(shoppers, stop, func(w, i int) error {
		status, err := checkoutSettled(ctx, clients[w], fmt.Sprintf("faults-%s-%d-%d", sku, w, i), []line{{sku, 1}}, goodCard)
		if status != 201 {
			unsettled.Add(1)
			return fmt.Errorf("checkout %d-%d: %d %v", w, i, status, err)
		}
		return nil
	})

	faults := []struct {
		name   string
		inject func() error
	}{
		{"PostgreSQL connections terminated", func() error {
			_, err := env.dbs["inventory"].Exec(`SELECT pg_terminate_backend(pid) FROM pg_stat_activity
				WHERE datname LIKE $1 AND pid <> pg_backend_pid()`, env.stack.Options.DBPrefix+"_%")
			return err
		}},
		{"RabbitMQ cut off for 3 s", func() error {
			env.broker.Down()
			time.Sleep(3 * time.Second)
			env.broker.Up()
			return nil
		}},
		{"Consul agent restarted", func() error { return env.stack.RestartConsul(ctx) }},
	}
	for _, f := range faults {
		time.Sleep(2 * time.Second)
		t.Logf("fault: %s", f.name)
		if err := f.inject(); err != nil {
			close(stop)
			done.Wait()
			t.Fatalf("%s: %v", f.name, err)
		}
	}
	// The instances register again with the new agent by themselves.
	for _, svc := range []string{"user", "inventory", "payment", "order", "notification", "gateway"} {
		if err := env.stack.WaitPassing(ctx, svc, map[bool]int{true: 1, false: 2}[svc == "gateway"]); err != nil {
			t.Fatalf("after the Consul restart: %v", err)
		}
	}
	time.Sleep(2 * time.Second)
	close(stop)
	done.Wait()
	if unsettled.Load() != 0 {
		t.Fatalf("%d of %d checkouts did not end confirmed; first: %v", unsettled.Load(), calls.Load(), firstErr.Load())
	}

	ids := orderIDs(t, clients)
	counts := statuses(t, ids)
	confirmed := counts["confirmed"]
	if int64(confirmed) != calls.Load() || len(counts) != 1 {
		t.Fatalf("orders by status %v after %d checkouts; want all confirmed", counts, calls.Load())
	}
	t.Logf("%d checkouts across the faults, %d orders confirmed", calls.Load(), confirmed)
	// Exactly one confirmation email per order: none lost, none twice.
	testenv.Eventually(t, 60*time.Second, "one email per confirmed order", func() bool {
		var emails, distinct int
		err := env.dbs["notification"].QueryRow(`SELECT count(*), count(DISTINCT order_id) FROM notifications
			WHERE type = 'order_confirmed' AND order_id = ANY($1)`, ids).Scan(&emails, &distinct)
		if err != nil {
			t.Logf("counting emails: %v", err)
			return false
		}
		if emails != distinct {
			t.Fatalf("%d emails for %d orders: duplicates", emails, distinct)
		}
		return emails == confirmed
	})
}
