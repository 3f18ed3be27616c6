package e2e

import (
	"context"
	"testing"
	"time"

	"github.com/kitshop/kitshop/internal/stack"
	"github.com/kitshop/kitshop/pkg/testenv"
)

// TestHappyPath walks the demo's story through the gateway, checking every answer.
func TestHappyPath(t *testing.T) {
	ctx := context.Background()
	c, email := shopper(t)

	var me struct{ ID, Email, Role string }
	if _, err := c.Call(ctx, "GET", "/v1/users/me", nil, &me); err != nil || me.Email != email || me.Role != "customer" || me.ID == "" {
		t.Fatalf("me = %+v, %v", me, err)
	}

	var page struct {
		Products []struct {
			SKU       string      `json:"sku"`
			Price     stack.Money `json:"price"`
			Available int         `json:"available"`
		} `json:"products"`
		NextCursor string `json:"next_cursor"`
	}
	if _, err := c.Call(ctx, "GET", "/v1/products?limit=5", nil, &page); err != nil || len(page.Products) != 5 || page.NextCursor == "" {
		t.Fatalf("catalogue page = %+v, %v", page, err)
	}

	sku := newProduct(t, 10, 1250)
	var cart struct {
		Items []struct {
			SKU       string      `json:"sku"`
			Quantity  int         `json:"quantity"`
			LineTotal stack.Money `json:"line_total"`
		} `json:"items"`
		Total stack.Money `json:"total"`
	}
	if _, err := c.Call(ctx, "PUT", "/v1/cart/items/"+sku, map[string]int{"quantity": 3}, &cart); err != nil {
		t.Fatal(err)
	}
	if len(cart.Items) != 1 || cart.Items[0].Quantity != 3 || cart.Total != (stack.Money{Amount: 3750, Currency: "EUR"}) {
		t.Fatalf("cart = %+v", cart)
	}

	key := "happy-" + testenv.RandomHex(6)
	var o order
	status, err := c.Call(ctx, "POST", "/v1/orders", map[string]any{"payment": card(goodCard)}, &o, "Idempotency-Key", key)
	if err != nil || status != 201 || o.Status != "confirmed" || o.Total.Amount != 3750 || len(o.Items) != 1 {
		t.Fatalf("checkout = %d %+v, %v", status, o, err)
	}
	// The same key again: the same order, nothing charged twice.
	var again order
	if _, err := c.Call(ctx, "POST", "/v1/orders", map[string]any{"payment": card(goodCard)}, &again, "Idempotency-Key", key); err != nil || again.ID != o.ID {
		t.Fatalf("repeat = %+v, %v; want order %s", again, err, o.ID)
	}
	if _, err := c.Call(ctx, "GET", "/v1/cart", nil, &cart); err != nil || len(cart.Items) != 0 {
		t.Fatalf("cart after checkout = %+v, %v", cart, err)
	}
	var product struct{ Available int }
	if _, err := c.Call(ctx, "GET", "/v1/products/"+sku, nil, &product); err != nil || product.Available != 7 {
		t.Fatalf("available after checkout = %d, %v; want 7", product.Available, err)
	}

	waitNotification(t, c, o.ID, "order_confirmed", email)

	_, _, err = checkout(ctx, c, "declined-"+testenv.RandomHex(6), []line{{sku, 1}}, declinedCard)
	if !stack.IsCode(err, "payment_declined") {
		t.Fatalf("declined card: %v", err)
	}
	if _, err := c.Call(ctx, "GET", "/v1/products/"+sku, nil, &product); err != nil || product.Available != 7 {
		t.Fatalf("available after a decline = %d, %v; want 7 (released)", product.Available, err)
	}

	var cancelled order
	if _, err := c.Call(ctx, "POST", "/v1/orders/"+o.ID+"/cancel", nil, &cancelled); err != nil || cancelled.Status != "cancelled" {
		t.Fatalf("cancel = %+v, %v", cancelled, err)
	}
	if _, err := c.Call(ctx, "POST", "/v1/orders/"+o.ID+"/cancel", nil, nil); !stack.IsCode(err, "order_not_cancellable") {
		t.Fatalf("second cancel: %v", err)
	}
	if _, err := c.Call(ctx, "GET", "/v1/products/"+sku, nil, &product); err != nil || product.Available != 10 {
		t.Fatalf("available after cancel = %d, %v; want 10", product.Available, err)
	}
	waitNotification(t, c, o.ID, "order_cancelled", email)

	list := orders(t, c)
	statuses := map[string]int{}
	for _, x := range list {
		statuses[x.Status]++
	}
	if len(list) != 2 || statuses["cancelled"] != 1 || statuses["failed"] != 1 {
		t.Fatalf("orders = %v", statuses)
	}
	var refunded int64
	if err := env.dbs["payment"].QueryRow(`SELECT count(*) FROM charges WHERE order_id = $1 AND status = 'refunded'`, o.ID).Scan(&refunded); err != nil || refunded != 1 {
		t.Fatalf("refunded charges of %s: %d, %v", o.ID, refunded, err)
	}
}

func waitNotification(t *testing.T, c *stack.Client, orderID, kind, to string) {
	t.Helper()
	testenv.Eventually(t, 30*time.Second, kind+" email for "+orderID, func() bool {
		var list struct {
			Notifications []struct {
				OrderID string `json:"order_id"`
				Type    string `json:"type"`
				To      string `json:"to"`
				Subject string `json:"subject"`
			} `json:"notifications"`
		}
		if _, err := c.Call(context.Background(), "GET", "/v1/notifications", nil, &list); err != nil {
			return false
		}
		for _, n := range list.Notifications {
			if n.OrderID == orderID && n.Type == kind {
				if (to != "" && n.To != to) || n.Subject == "" {
					t.Fatalf("email %+v, want to %s", n, to)
				}
				return true
			}
		}
		return false
	})
}
