package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"time"

	"github.com/kitshop/kitshop/internal/stack"
)

type product struct {
	SKU       string      `json:"sku"`
	Name      string      `json:"name"`
	Price     stack.Money `json:"price"`
	Available int         `json:"available"`
}

type order struct {
	ID     string      `json:"id"`
	Status string      `json:"status"`
	Total  stack.Money `json:"total"`
	Items  []struct {
		SKU      string `json:"sku"`
		Quantity int    `json:"quantity"`
	} `json:"items"`
}

type notification struct {
	OrderID string `json:"order_id"`
	Type    string `json:"type"`
	To      string `json:"to"`
	Subject string `json:"subject"`
}

func step(format string, args ...any) { fmt.Printf("\n  ▸ %s\n", fmt.Sprintf(format, args...)) }

// demo walks a shopper through the gateway, printing every call.
func demo(ctx context.Context, s *stack.Stack) error {
	fmt.Println("\n  The story: a new shopper signs up, buys, gets an email, is declined, cancels.")
	shopper := stack.NewClient(s.GatewayURL)
	shopper.Verbose = true
	email := "shopper-" + randomHex(3) + "@kitshop.local"
	password := "correct-horse-" + randomHex(2)

	step("sign up and log in as %s", email)
	if _, err := shopper.Call(ctx, "POST", "/v1/users", map[string]string{"email": email, "password": password, "name": "New Shopper"}, nil); err != nil {
		return err
	}
	if err := shopper.Login(ctx, email, password); err != nil {
		return err
	}
	if _, err := shopper.Call(ctx, "GET", "/v1/users/me", nil, nil); err != nil {
		return err
	}

	step("browse the catalogue")
	var page struct {
		Products []product `json:"products"`
	}
	if _, err := shopper.Call(ctx, "GET", "/v1/products?limit=4", nil, &page); err != nil {
		return err
	}
	if len(page.Products) < 2 {
		return fmt.Errorf("the catalogue has %d products", len(page.Products))
	}
	first, second := page.Products[0], page.Products[1]
	if _, err := shopper.Call(ctx, "GET", "/v1/products/"+first.SKU, nil, nil); err != nil {
		return err
	}

	step("fill the cart: 2 × %s, 1 × %s", first.Name, second.Name)
	if _, err := shopper.Call(ctx, "PUT", "/v1/cart/items/"+first.SKU, map[string]int{"quantity": 2}, nil); err != nil {
		return err
	}
	if _, err := shopper.Call(ctx, "PUT", "/v1/cart/items/"+second.SKU, map[string]int{"quantity": 1}, nil); err != nil {
		return err
	}
	if _, err := shopper.Call(ctx, "GET", "/v1/cart", nil, nil); err != nil {
		return err
	}

	step("check out with the card that always works (4242 4242 4242 4242)")
	good := map[string]any{"payment": card("4242424242424242")}
	var confirmed order
	if _, err := shopper.Call(ctx, "POST", "/v1/orders", good, &confirmed, "Idempotency-Key", "demo-"+randomHex(8)); err != nil {
		return err
	}
	fmt.Printf("    order %s is %s, total %s\n", confirmed.ID, confirmed.Status, confirmed.Total)

	if s.AMQP != "" {
		step("the confirmation email arrives (outbox → RabbitMQ → notification)")
		if err := waitEmail(ctx, shopper, confirmed.ID, "order_confirmed"); err != nil {
			return err
		}
	}

	step("try again with a card the bank declines (4000 0000 0000 0002)")
	if _, err := shopper.Call(ctx, "PUT", "/v1/cart/items/"+second.SKU, map[string]int{"quantity": 1}, nil); err != nil {
		return err
	}
	_, err := shopper.Call(ctx, "POST", "/v1/orders", map[string]any{"payment": card("4000000000000002")}, nil, "Idempotency-Key", "demo-"+randomHex(8))
	if !stack.IsCode(err, "payment_declined") {
		return fmt.Errorf("a declined card gave %v, want 422 payment_declined", err)
	}
	fmt.Println("    declined, as it should be: the order is kept as failed and its stock released")

	step("cancel the first order: the payment is refunded and the stock returns")
	var before product
	if _, err := shopper.Call(ctx, "GET", "/v1/products/"+first.SKU, nil, &before); err != nil {
		return err
	}
	if _, err := shopper.Call(ctx, "POST", "/v1/orders/"+confirmed.ID+"/cancel", nil, nil); err != nil {
		return err
	}
	var after product
	if _, err := shopper.Call(ctx, "GET", "/v1/products/"+first.SKU, nil, &after); err != nil {
		return err
	}
	fmt.Printf("    %s available: %d before the cancel, %d after\n", first.Name, before.Available, after.Available)
	if _, err := shopper.Call(ctx, "GET", "/v1/orders", nil, nil); err != nil {
		return err
	}
	if s.AMQP != "" {
		if err := waitEmail(ctx, shopper, confirmed.ID, "order_cancelled"); err != nil {
			return err
		}
	}
	fmt.Printf("\n  Story done. Open %s/ to shop yourself (log in as %s / %s).\n\n", s.GatewayURL, stack.DemoEmail, stack.DemoPassword)
	return nil
}

func card(number string) map[string]any {
	return map[string]any{"card_number": number, "exp_month": 12, "exp_year": time.Now().Year() + 3, "cvc": "123"}
}

// waitEmail polls the shopper's notifications until the email of kind for orderID is
// recorded (it travels asynchronously).
func waitEmail(ctx context.Context, a *stack.Client, orderID, kind string) error {
	deadline := time.Now().Add(20 * time.Second)
	quiet := *a
	quiet.Verbose = false
	for {
		var list struct {
			Notifications []notification `json:"notifications"`
		}
		_, err := quiet.Call(ctx, "GET", "/v1/notifications", nil, &list)
		if err == nil {
			for _, n := range list.Notifications {
				if n.OrderID == orderID && n.Type == kind {
					_, _ = a.Call(ctx, "GET", "/v1/notifications", nil, nil)
					fmt.Printf("    email to %s: %q\n", n.To, n.Subject)
					return nil
				}
			}
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("no %s email for order %s after 20 s (last error: %v)", kind, orderID, err)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(250 * time.Millisecond):
		}
	}
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}
