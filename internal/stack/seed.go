package stack

import (
	"context"
	"fmt"
	"net/http"
)

// The demo shopper, created by Seed.
const (
	DemoEmail    = "demo@kitshop.local"
	DemoPassword = "demo-password"
	demoName     = "Demo Shopper"
)

// Product is a catalogue entry as the admin creates it.
type Product struct {
	SKU         string `json:"sku"`
	Name        string `json:"name"`
	Description string `json:"description"`
	Price       Money  `json:"price"`
	Stock       int    `json:"stock"`
}

// Catalogue is what Seed puts on sale.
func Catalogue() []Product {
	eur := func(cents int64) Money { return Money{Amount: cents, Currency: "EUR"} }
	return []Product{
		{"KIT-MUG-01", "Gopher mug", "Stoneware mug with the Go gopher, 330 ml.", eur(1299), 120},
		{"KIT-TEE-02", "Microservices T-shirt", "Organic cotton tee: 'It works on my cluster'.", eur(2499), 80},
		{"KIT-HOOD-03", "Circuit breaker hoodie", "Warm hoodie that opens after five failed attempts at cold.", eur(5999), 40},
		{"KIT-STK-04", "Sticker pack", "Twelve vinyl stickers: Consul, Zipkin, go-kit and friends.", eur(499), 500},
		{"KIT-NB-05", "Saga notebook", "A5 dotted notebook for compensating transactions.", eur(1499), 150},
		{"KIT-CAP-06", "Idempotent cap", "Put it on twice, still one cap.", eur(1999), 60},
		{"KIT-SOCK-07", "Retry socks", "Three pairs, with backoff.", eur(1199), 200},
		{"KIT-BAG-08", "Tote of messages", "Canvas tote, at-least-once delivery of your groceries.", eur(1799), 90},
		{"KIT-POS-09", "Trace poster", "A1 print of a checkout trace across five services.", eur(2199), 30},
		{"KIT-KEY-10", "Mechanical keyboard", "Tenkeyless, brown switches, for writing handlers.", eur(11999), 15},
		{"KIT-LAMP-11", "Health-check lamp", "Desk lamp: green when passing.", eur(3499), 25},
		{"KIT-LTD-12", "Limited gopher plush", "Numbered plush gopher. Only five were made.", eur(4999), 5},
	}
}

// Admin returns a client logged in as the stack's admin.
func (s *Stack) Admin(ctx context.Context) (*Client, error) {
	admin := NewClient(s.GatewayURL)
	if err := admin.Login(ctx, s.AdminEmail, s.AdminPassword); err != nil {
		return nil, fmt.Errorf("admin login: %w", err)
	}
	return admin, nil
}

// Seed creates the catalogue and the demo shopper on the stack (see SeedShop).
func Seed(ctx context.Context, s *Stack) error {
	created, err := SeedShop(ctx, nil, s.GatewayURL, s.AdminEmail, s.AdminPassword)
	if err != nil {
		return err
	}
	s.logf("catalogue: %d products (%d new); demo user %s", len(Catalogue()), created, DemoEmail)
	return nil
}

// SeedShop creates the catalogue (as the admin, who must exist) and the demo shopper
// through the gateway at gatewayURL with hc (nil: NewClient's), and says how many
// products were new. Both are idempotent: a product or the shopper that exists already
// is left as it is, so a restarted shop keeps its stock and orders.
func SeedShop(ctx context.Context, hc *http.Client, gatewayURL, adminEmail, adminPassword string) (created int, err error) {
	client := func() *Client {
		c := NewClient(gatewayURL)
		if hc != nil {
			c.HTTP = hc
		}
		return c
	}
	admin := client()
	if err := admin.Login(ctx, adminEmail, adminPassword); err != nil {
		return 0, fmt.Errorf("admin login: %w", err)
	}
	for _, p := range Catalogue() {
		_, err := admin.Call(ctx, "POST", "/v1/products", p, nil)
		switch {
		case err == nil:
			created++
		case IsCode(err, "sku_taken"):
		default:
			return created, fmt.Errorf("product %s: %w", p.SKU, err)
		}
	}
	_, err = client().Call(ctx, "POST", "/v1/users", map[string]string{"email": DemoEmail, "password": DemoPassword, "name": demoName}, nil)
	if err != nil && !IsCode(err, "email_taken") {
		return created, fmt.Errorf("demo user: %w", err)
	}
	return created, nil
}
