package order

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kitshop/kitshop/inventory"
	"github.com/kitshop/kitshop/notification"
	"github.com/kitshop/kitshop/payment"
	"github.com/kitshop/kitshop/pkg/auth"
	"github.com/kitshop/kitshop/pkg/errs"
)

func TestCart(t *testing.T) {
	e := newEnv(t, envOptions{})
	skus := map[string]int{"A": 10, "B": 10}
	for i := 0; i < MaxLines; i++ {
		skus[fmt.Sprint("L", i)] = 1
	}
	e.seed(skus)
	ctx := as("u1")

	cart, err := e.svc.GetCart(ctx)
	if err != nil || len(cart.Items) != 0 || cart.Total != (Money{0, "EUR"}) {
		t.Fatalf("empty cart = %+v, %v", cart, err)
	}
	steps := []struct {
		name     string
		sku      string
		quantity int
		remove   bool
		want     error
		lines    int
		total    int64
	}{
		{"add", "A", 2, false, nil, 1, 3998},
		{"add another", "B", 1, false, nil, 2, 5997},
		{"change quantity", "A", 1, false, nil, 2, 3998},
		{"most", "A", MaxQuantity, false, nil, 2, 1999 * (MaxQuantity + 1)},
		{"too many", "A", MaxQuantity + 1, false, ErrInvalidQuantity, 2, 1999 * (MaxQuantity + 1)},
		{"negative", "A", -1, false, ErrInvalidQuantity, 2, 1999 * (MaxQuantity + 1)},
		{"zero removes", "A", 0, false, nil, 1, 1999},
		{"unknown product", "NOPE", 1, false, ErrProductNotFound, 1, 1999},
		{"not a SKU", "a/b", 1, false, ErrProductNotFound, 1, 1999},
		{"delete", "B", 0, true, nil, 0, 0},
		{"delete absent", "B", 0, true, nil, 0, 0},
	}
	for _, st := range steps {
		if st.remove {
			cart, err = e.svc.RemoveCartItem(ctx, st.sku)
		} else {
			cart, err = e.svc.SetCartItem(ctx, st.sku, st.quantity)
		}
		if !errors.Is(err, st.want) {
			t.Fatalf("%s: err = %v, want %v", st.name, err, st.want)
		}
		if err != nil {
			cart, _ = e.svc.GetCart(ctx)
		}
		if len(cart.Items) != st.lines || cart.Total.Amount != st.total {
			t.Fatalf("%s: cart %+v; want %d lines, total %d", st.name, cart, st.lines, st.total)
		}
	}
	cart, _ = e.svc.SetCartItem(ctx, "A", 3)
	if it := cart.Items[0]; it.Name != "Product A" || it.UnitPrice != (Money{1999, "EUR"}) || it.LineTotal != (Money{5997, "EUR"}) {
		t.Fatalf("line %+v", it)
	}
	// Prices are inventory's at the time the cart is shown.
	if _, err := e.inv.CreateProduct(context.Background(), inventory.Product{SKU: "P", Name: "P", Price: inventory.Money{Amount: 100, Currency: "EUR"}, Stock: 1}); err != nil {
		t.Fatal(err)
	}
	if cart, _ := e.svc.SetCartItem(ctx, "P", 2); cart.Total.Amount != 5997+200 {
		t.Fatalf("total %d", cart.Total.Amount)
	}

	for i := 0; i < MaxLines-2; i++ {
		if _, err := e.svc.SetCartItem(ctx, fmt.Sprint("L", i), 1); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := e.svc.SetCartItem(ctx, fmt.Sprint("L", MaxLines-1), 1); !errors.Is(err, ErrCartFull) {
		t.Fatalf("51st line: %v", err)
	}
	if cart, _ := e.svc.GetCart(as("u2")); len(cart.Items) != 0 {
		t.Fatal("carts are shared between users")
	}
	if _, err := e.svc.GetCart(context.Background()); !errors.Is(err, auth.ErrNoToken) {
		t.Fatalf("no caller: %v", err)
	}
}

func TestCheckoutFromCart(t *testing.T) {
	e := newEnv(t, envOptions{})
	e.seed(map[string]int{"A": 10, "B": 5, "C": 5})
	ctx := as("u1")
	for sku, n := range map[string]int{"A": 2, "B": 1} {
		if _, err := e.svc.SetCartItem(ctx, sku, n); err != nil {
			t.Fatal(err)
		}
	}
	o, err := e.svc.PlaceOrder(ctx, "key-1", Checkout{Card: testCard})
	if err != nil || o.Status != StatusConfirmed || o.Total != (Money{3 * 1999, "EUR"}) || len(o.Items) != 2 || o.Items[0].SKU != "A" || o.Items[0].Name != "Product A" {
		t.Fatalf("checkout = %+v, %v", o, err)
	}
	e.checkSettled(o)
	if cart, _ := e.svc.GetCart(ctx); len(cart.Items) != 0 {
		t.Fatalf("cart after checkout: %+v", cart)
	}
	if again, err := e.svc.PlaceOrder(ctx, "key-1", Checkout{Card: testCard}); err != nil || again.ID != o.ID {
		t.Fatalf("replay with the cart emptied = %+v, %v", again, err)
	}
	if a, r := e.stock("A"); a != 8 || r != 0 {
		t.Fatalf("A: %d on hand, %d reserved", a, r)
	}
	events, err := e.store.Events(context.Background(), o.ID)
	if err != nil || len(events) != 1 || events[0].Type != "order.confirmed" || events[0].AggregateID != o.ID {
		t.Fatalf("events = %+v, %v", events, err)
	}
	// The event is what the notification service consumes.
	var data notification.OrderEvent
	if err := json.Unmarshal(events[0].Data, &data); err != nil {
		t.Fatal(err)
	}
	if data.OrderID != o.ID || data.UserID != "u1" || data.Email != "u1@example.com" || data.Status != "confirmed" ||
		len(data.Items) != 2 || data.Items[1].Name != "Product B" || data.Items[1].UnitPrice.Amount != 1999 || data.Total.Amount != 3*1999 {
		t.Fatalf("event data %s", events[0].Data)
	}
	mailer := notification.NewService(notification.NewMemoryStore(), notification.RecordOnly{}, time.Now)
	if outcome, err := mailer.HandleEvent(context.Background(), events[0]); err != nil || outcome != notification.Sent {
		t.Fatalf("notification refuses the event: %v, %v", outcome, err)
	}

	// The same key answers with the same order, whatever the cart holds now.
	if _, err := e.svc.SetCartItem(ctx, "C", 1); err != nil {
		t.Fatal(err)
	}
	again, err := e.svc.PlaceOrder(ctx, "key-1", Checkout{Card: testCard})
	if err != nil || again.ID != o.ID || again.Status != StatusConfirmed {
		t.Fatalf("replay = %+v, %v", again, err)
	}
	if _, err := e.svc.PlaceOrder(ctx, "key-1", Checkout{Card: testCard, Items: []Line{{"C", 1}}}); !errors.Is(err, ErrIdempotencyMismatch) {
		t.Fatalf("same key, other body: %v", err)
	}
	if _, err := e.svc.PlaceOrder(as("u2"), "key-1", Checkout{Card: testCard, Items: []Line{{"C", 1}}}); err != nil {
		t.Fatalf("another user's key space: %v", err)
	}
	if list, _ := e.svc.ListOrders(ctx); len(list) != 1 || list[0].ID != o.ID {
		t.Fatalf("u1's orders: %+v", list)
	}
}

func TestCheckoutRefusals(t *testing.T) {
	e := newEnv(t, envOptions{})
	e.seed(map[string]int{"A": 3})
	ctx := as("u1")

	_, err := e.svc.PlaceOrder(ctx, "k-oos", Checkout{Card: testCard, Items: []Line{{"A", 4}}})
	if !errors.Is(err, ErrOutOfStock) || !strings.Contains(err.Error(), "ord_") {
		t.Fatalf("out of stock: %v", err)
	}
	_, err = e.svc.PlaceOrder(ctx, "k-declined", Checkout{Card: declinedCard, Items: []Line{{"A", 2}}})
	if !errors.Is(err, ErrPaymentDeclined) {
		t.Fatalf("declined: %v", err)
	}
	if _, err := e.svc.PlaceOrder(ctx, "k-declined", Checkout{Card: declinedCard, Items: []Line{{"A", 2}}}); !errors.Is(err, ErrPaymentDeclined) {
		t.Fatalf("declined replay: %v", err)
	}
	list, err := e.svc.ListOrders(ctx)
	if err != nil || len(list) != 2 {
		t.Fatalf("orders %+v, %v", list, err)
	}
	for _, o := range list {
		if o.Status != StatusFailed {
			t.Errorf("order %s is %s", o.ID, o.Status)
		}
		e.checkSettled(o)
	}
	if a, r := e.stock("A"); a != 3 || r != 0 {
		t.Fatalf("A: %d on hand, %d reserved", a, r)
	}
	if _, err := e.svc.CancelOrder(ctx, list[0].ID); !errors.Is(err, ErrOrderNotCancellable) {
		t.Fatalf("cancel a failed order: %v", err)
	}
}

func TestCheckoutBadInput(t *testing.T) {
	e := newEnv(t, envOptions{})
	e.seed(map[string]int{"A": 3})
	many := make([]Line, MaxLines+1)
	for i := range many {
		many[i] = Line{SKU: fmt.Sprint("S", i), Quantity: 1}
	}
	expired := testCard
	expired.ExpYear = 2025
	tests := []struct {
		name string
		ctx  context.Context
		key  string
		c    Checkout
		want error
	}{
		{"no caller", context.Background(), "k", Checkout{Card: testCard, Items: []Line{{"A", 1}}}, auth.ErrNoToken},
		{"no key", as("u1"), "", Checkout{Card: testCard, Items: []Line{{"A", 1}}}, ErrMissingIdempotencyKey},
		{"long key", as("u1"), strings.Repeat("k", 201), Checkout{Card: testCard, Items: []Line{{"A", 1}}}, ErrInvalidIdempotencyKey},
		{"key with spaces", as("u1"), "a b", Checkout{Card: testCard, Items: []Line{{"A", 1}}}, ErrInvalidIdempotencyKey},
		{"empty cart", as("u1"), "k", Checkout{Card: testCard}, ErrCartEmpty},
		{"unknown SKU", as("u1"), "k", Checkout{Card: testCard, Items: []Line{{"A", 1}, {"NOPE", 1}}}, ErrUnknownSKU},
		{"bad SKU", as("u1"), "k", Checkout{Card: testCard, Items: []Line{{"../x", 1}}}, ErrInvalidSKU},
		{"zero quantity", as("u1"), "k", Checkout{Card: testCard, Items: []Line{{"A", 0}}}, ErrInvalidQuantity},
		{"negative quantity", as("u1"), "k", Checkout{Card: testCard, Items: []Line{{"A", -2}}}, ErrInvalidQuantity},
		{"huge quantity", as("u1"), "k", Checkout{Card: testCard, Items: []Line{{"A", 1 << 40}}}, ErrInvalidQuantity},
		{"duplicate SKU", as("u1"), "k", Checkout{Card: testCard, Items: []Line{{"A", 1}, {"A", 1}}}, ErrDuplicateSKU},
		{"too many lines", as("u1"), "k", Checkout{Card: testCard, Items: many}, ErrTooManyLines},
		{"no card", as("u1"), "k", Checkout{Items: []Line{{"A", 1}}}, ErrMissingCard},
		{"card fails Luhn", as("u1"), "k", Checkout{Card: Card{Number: "4242424242424241", ExpMonth: 1, ExpYear: 2030, CVC: "123"}, Items: []Line{{"A", 1}}}, payment.ErrInvalidCardNumber},
		{"expired card", as("u1"), "k", Checkout{Card: expired, Items: []Line{{"A", 1}}}, payment.ErrCardExpired},
		{"bad expiry", as("u1"), "k", Checkout{Card: Card{Number: testCard.Number, ExpMonth: 13, ExpYear: 2030, CVC: "123"}, Items: []Line{{"A", 1}}}, payment.ErrInvalidExpiry},
		{"bad CVC", as("u1"), "k", Checkout{Card: Card{Number: testCard.Number, ExpMonth: 1, ExpYear: 2030, CVC: "12"}, Items: []Line{{"A", 1}}}, payment.ErrInvalidCVC},
		// payment's rules, not a looser copy: four digits are for American Express only.
		{"4-digit CVC on a Visa card", as("u1"), "k", Checkout{Card: Card{Number: testCard.Number, ExpMonth: 1, ExpYear: 2030, CVC: "1234"}, Items: []Line{{"A", 1}}}, payment.ErrInvalidCVC},
		{"3-digit CVC on an Amex card", as("u1"), "k", Checkout{Card: Card{Number: "378282246310005", ExpMonth: 1, ExpYear: 2030, CVC: "123"}, Items: []Line{{"A", 1}}}, payment.ErrInvalidCVC},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := e.svc.PlaceOrder(tt.ctx, tt.key, tt.c)
			if !errors.Is(err, tt.want) {
				t.Fatalf("err = %v, want %v", err, tt.want)
			}
			if k := errs.From(err).Kind; k.Status() < 400 || k.Status() >= 500 {
				t.Fatalf("status %d", k.Status())
			}
		})
	}
	if list, _ := e.svc.ListOrders(as("u1")); len(list) != 0 {
		t.Fatalf("bad input created orders: %+v", list)
	}
	if a, r := e.stock("A"); a != 3 || r != 0 {
		t.Fatalf("bad input moved stock: %d %d", a, r)
	}
}

func TestConcurrentDuplicateCheckouts(t *testing.T) {
	e := newEnv(t, envOptions{})
	e.seed(map[string]int{"A": 100})
	ids := make([]string, 10)
	var wg sync.WaitGroup
	for i := range ids {
		wg.Add(1)
		go func() {
			defer wg.Done()
			o, err := e.svc.PlaceOrder(as("u1"), "same-key", Checkout{Card: testCard, Items: []Line{{"A", 1}}})
			if err != nil {
				t.Error(err)
			}
			ids[i] = o.ID
		}()
	}
	wg.Wait()
	e.saga.Wait()
	for _, id := range ids {
		if id != ids[0] {
			t.Fatalf("answers name different orders: %v", ids)
		}
	}
	if a, _ := e.stock("A"); a != 99 {
		t.Fatalf("A on hand %d, want 99", a)
	}
}

func TestCancel(t *testing.T) {
	e := newEnv(t, envOptions{})
	e.seed(map[string]int{"A": 5})
	ctx := as("u1")
	o, err := e.svc.PlaceOrder(ctx, "k", Checkout{Card: testCard, Items: []Line{{"A", 2}}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.svc.GetOrder(as("u2"), o.ID); !errors.Is(err, ErrOrderNotFound) {
		t.Fatalf("another user's order: %v", err)
	}
	if _, err := e.svc.CancelOrder(as("u2"), o.ID); !errors.Is(err, ErrOrderNotFound) {
		t.Fatalf("cancel another user's order: %v", err)
	}
	if _, err := e.svc.GetOrder(ctx, "ord_nope"); !errors.Is(err, ErrOrderNotFound) {
		t.Fatalf("unknown order: %v", err)
	}
	c, err := e.svc.CancelOrder(ctx, o.ID)
	if err != nil || c.Status != StatusCancelled {
		t.Fatalf("cancel = %+v, %v", c, err)
	}
	e.checkSettled(c)
	if charges := e.charges(o.ID); charges[0].Status != payment.StatusRefunded {
		t.Fatalf("charge %+v", charges[0])
	}
	if a, r := e.stock("A"); a != 5 || r != 0 {
		t.Fatalf("A: %d on hand, %d reserved", a, r)
	}
	if _, err := e.svc.CancelOrder(ctx, o.ID); !errors.Is(err, ErrOrderNotCancellable) {
		t.Fatalf("cancel twice: %v", err)
	}
	events, _ := e.store.Events(context.Background(), o.ID)
	if len(events) != 2 || events[1].Type != "order.cancelled" || !strings.Contains(string(events[1].Data), `"status":"cancelled"`) {
		t.Fatalf("events %+v", events)
	}
	if got, _ := e.svc.GetOrder(ctx, o.ID); got.Status != StatusCancelled {
		t.Fatalf("order is %s", got.Status)
	}
}

// TestRequestDeadline: a saga slower than the request answers pending and finishes in
// the background.
func TestRequestDeadline(t *testing.T) {
	e := newEnv(t, envOptions{processor: payment.SimulatedConfig{Latency: 300 * time.Millisecond}, cfg: Config{RequestDeadline: 50 * time.Millisecond}})
	e.seed(map[string]int{"A": 5})
	o, err := e.svc.PlaceOrder(as("u1"), "k", Checkout{Card: testCard, Items: []Line{{"A", 1}}})
	if err != nil || o.Status != StatusPending {
		t.Fatalf("checkout = %+v, %v; want pending", o, err)
	}
	if again, err := e.svc.PlaceOrder(as("u1"), "k", Checkout{Card: testCard, Items: []Line{{"A", 1}}}); err != nil || again.ID != o.ID {
		t.Fatalf("replay while pending = %+v, %v", again, err)
	}
	e.saga.Wait()
	o, err = e.svc.GetOrder(as("u1"), o.ID)
	if err != nil || o.Status != StatusConfirmed {
		t.Fatalf("after the saga = %+v, %v", o, err)
	}
	e.checkSettled(o)
}

// TestServicesDown: steps whose service fails, before or after doing the work, are
// retried until they pass, and every order ends settled.
func TestServicesDown(t *testing.T) {
	e := newEnv(t, envOptions{
		wrapInv: func(i Inventory) Inventory { return flakyInventory{i, newFaults(0.4, 0.3, 1)} },
		wrapPay: func(p Payment) Payment { return flakyPayment{p, newFaults(0.4, 0.3, 2)} },
	})
	e.seed(map[string]int{"A": 100})
	var wg sync.WaitGroup
	orders := make([]Order, 20)
	for i := range orders {
		wg.Add(1)
		go func() {
			defer wg.Done()
			card := testCard
			if i%4 == 0 {
				card = declinedCard
			}
			o, err := e.svc.PlaceOrder(as(fmt.Sprint("u", i)), "k", Checkout{Card: card, Items: []Line{{"A", 1}}})
			if err != nil && !errors.Is(err, ErrPaymentDeclined) {
				t.Errorf("order %d: %v", i, err)
			}
			orders[i] = o
		}()
	}
	wg.Wait()
	e.saga.Wait()
	confirmed := 0
	for i := range orders {
		list, _ := e.store.ListOrders(context.Background(), fmt.Sprint("u", i), 10)
		if len(list) != 1 {
			t.Fatalf("user %d has %d orders", i, len(list))
		}
		e.checkSettled(list[0])
		if list[0].Status == StatusConfirmed {
			confirmed++
		}
	}
	if confirmed != 15 {
		t.Fatalf("%d confirmed, want 15", confirmed)
	}
	if a, r := e.stock("A"); a != 85 || r != 0 {
		t.Fatalf("A: %d on hand, %d reserved", a, r)
	}
}
