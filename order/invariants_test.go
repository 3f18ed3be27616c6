package order

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/kitshop/kitshop/payment"
)

// The invariants of the checkout saga, with order, inventory and payment all on the
// real PostgreSQL. (The third, a saga killed between any two steps, is
// TestKillBetweenStepsPostgres.)

// TestInvariantNoOversellPostgres: 200 concurrent checkouts of a product with stock 50
// confirm exactly 50 and fail 150 out_of_stock, leaving stock 0 and nothing reserved.
func TestInvariantNoOversellPostgres(t *testing.T) {
	const stock, buyers = 50, 200
	e := newEnv(t, envOptions{postgres: true, cfg: Config{RequestDeadline: time.Minute}})
	e.seed(map[string]int{"LAST": stock})
	var wg sync.WaitGroup
	for i := 0; i < buyers; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, err := e.svc.PlaceOrder(as(fmt.Sprint("buyer-", i)), "k", Checkout{Card: testCard, Items: []Line{{"LAST", 1}}})
			if err != nil && !errors.Is(err, ErrOutOfStock) {
				t.Errorf("buyer %d: %v", i, err)
			}
		}()
	}
	wg.Wait()
	e.saga.Wait()

	count := map[string]int{}
	for i := 0; i < buyers; i++ {
		list, err := e.store.ListOrders(context.Background(), fmt.Sprint("buyer-", i), 10)
		if err != nil || len(list) != 1 {
			t.Fatalf("buyer %d: %d orders, %v", i, len(list), err)
		}
		o := list[0]
		count[o.Status+"/"+o.FailureCode]++
		e.checkSettled(o)
	}
	if count["confirmed/"] != stock || count["failed/out_of_stock"] != buyers-stock {
		t.Fatalf("outcomes %v; want %d confirmed and %d failed out_of_stock", count, stock, buyers-stock)
	}
	if onHand, reserved := e.stock("LAST"); onHand != 0 || reserved != 0 {
		t.Fatalf("LAST: %d on hand, %d reserved; want 0 and 0", onHand, reserved)
	}
}

// TestInvariantFlakyPaymentPostgres: with the card processor failing 30 % of charges,
// answers lost on the way back, and some cards declined, every order ends confirmed or
// failed; a failed order holds no stock and keeps no charge that is not refunded.
func TestInvariantFlakyPaymentPostgres(t *testing.T) {
	const orders = 60
	e := newEnv(t, envOptions{
		postgres:  true,
		processor: payment.SimulatedConfig{FailureRate: 0.3, Seed: 7},
		wrapPay:   func(p Payment) Payment { return flakyPayment{p, newFaults(0, 0.15, 3)} },
		cfg:       Config{RequestDeadline: time.Minute},
	})
	e.seed(map[string]int{"A": 1000})
	var wg sync.WaitGroup
	for i := 0; i < orders; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			card := testCard
			if i%5 == 0 {
				card = declinedCard
			}
			_, err := e.svc.PlaceOrder(as(fmt.Sprint("u", i)), "k", Checkout{Card: card, Items: []Line{{"A", 2}}})
			if err != nil && !errors.Is(err, ErrPaymentDeclined) {
				t.Errorf("order %d: %v", i, err)
			}
		}()
	}
	wg.Wait()
	e.saga.Wait()

	confirmed := 0
	for i := 0; i < orders; i++ {
		list, err := e.store.ListOrders(context.Background(), fmt.Sprint("u", i), 10)
		if err != nil || len(list) != 1 {
			t.Fatalf("user %d: %d orders, %v", i, len(list), err)
		}
		o := list[0]
		if o.Status != StatusConfirmed && o.Status != StatusFailed {
			t.Fatalf("order %s ended %s", o.ID, o.Status)
		}
		e.checkSettled(o)
		if o.Status == StatusConfirmed {
			confirmed++
		}
	}
	if confirmed != orders-orders/5 {
		t.Errorf("%d confirmed; every order with a good card should be (%d)", confirmed, orders-orders/5)
	}
	if onHand, reserved := e.stock("A"); onHand != 1000-2*confirmed || reserved != 0 {
		t.Fatalf("A: %d on hand, %d reserved; want %d and 0", onHand, reserved, 1000-2*confirmed)
	}
}
