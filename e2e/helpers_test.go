package e2e

import (
	"context"
	"database/sql"
	"fmt"
	"testing"
	"time"

	"github.com/lib/pq"

	"github.com/kitshop/kitshop/internal/stack"
	"github.com/kitshop/kitshop/pkg/testenv"
)

// shopper signs up a new user on the suite's stack and returns a client logged in as them.
func shopper(t *testing.T) (*stack.Client, string) {
	t.Helper()
	return env.shopper(t)
}

// shopper signs up a new user on s and returns a client logged in as them.
func (s *suite) shopper(t *testing.T) (*stack.Client, string) {
	t.Helper()
	ctx := context.Background()
	email := "e2e-" + testenv.RandomHex(5) + "@kitshop.test"
	c := stack.NewClient(s.stack.GatewayURL)
	if _, err := c.Call(ctx, "POST", "/v1/users", map[string]string{"email": email, "password": "e2e-password", "name": "E2E"}, nil); err != nil {
		t.Fatalf("sign up: %v", err)
	}
	if err := c.Login(ctx, email, "e2e-password"); err != nil {
		t.Fatalf("log in: %v", err)
	}
	return c, email
}

// newProduct creates a product of its own for a test on the suite's stack, as the admin.
func newProduct(t *testing.T, stock int, price int64) string {
	t.Helper()
	return env.newProduct(t, stock, price)
}

// newProduct creates a product of its own for a test on s, as the admin.
func (s *suite) newProduct(t *testing.T, stock int, price int64) string {
	t.Helper()
	ctx := context.Background()
	admin, err := s.stack.Admin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	sku := "E2E-" + testenv.RandomHex(4)
	p := stack.Product{SKU: sku, Name: "Test " + sku, Description: "made by " + t.Name(), Price: stack.Money{Amount: price, Currency: "EUR"}, Stock: stock}
	if _, err := admin.Call(ctx, "POST", "/v1/products", p, nil); err != nil {
		t.Fatalf("create product: %v", err)
	}
	return sku
}

type line struct {
	SKU      string `json:"sku"`
	Quantity int    `json:"quantity"`
}

type order struct {
	ID     string      `json:"id"`
	UserID string      `json:"user_id"`
	Status string      `json:"status"`
	Total  stack.Money `json:"total"`
	Items  []struct {
		SKU       string      `json:"sku"`
		Quantity  int         `json:"quantity"`
		UnitPrice stack.Money `json:"unit_price"`
	} `json:"items"`
}

func card(number string) map[string]any {
	return map[string]any{"card_number": number, "exp_month": 12, "exp_year": time.Now().Year() + 2, "cvc": "123"}
}

const goodCard, declinedCard = "4242424242424242", "4000000000000002"

// checkout places an order for items with key; it returns the HTTP status and the
// order (nil on an error answer).
func checkout(ctx context.Context, c *stack.Client, key string, items []line, number string) (int, *order, error) {
	var o order
	status, err := c.Call(ctx, "POST", "/v1/orders", map[string]any{"payment": card(number), "items": items}, &o, "Idempotency-Key", key)
	if err != nil {
		return status, nil, err
	}
	return status, &o, nil
}

// checkoutSettled repeats a checkout with the same key, as a careful client does, until
// the answer is final: 201 confirmed or a 4xx refusal. A 202 (the saga outlived the
// request) and 5xx answers are asked again, within the bound.
func checkoutSettled(ctx context.Context, c *stack.Client, key string, items []line, number string) (int, error) {
	deadline := time.Now().Add(60 * time.Second)
	for {
		status, _, err := checkout(ctx, c, key, items, number)
		if status == 201 || (status >= 400 && status < 500 && status != 429) {
			return status, err
		}
		if time.Now().After(deadline) {
			return status, fmt.Errorf("no final answer for %s: %d %v", key, status, err)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

func orders(t *testing.T, c *stack.Client) []order {
	t.Helper()
	var list struct {
		Orders []order `json:"orders"`
	}
	if _, err := c.Call(context.Background(), "GET", "/v1/orders", nil, &list); err != nil {
		t.Fatalf("list orders: %v", err)
	}
	return list.Orders
}

// passing counts the passing instances of service in the stack's Consul.
func passing(t *testing.T, service string) int {
	t.Helper()
	c, err := env.stack.Consul()
	if err != nil {
		t.Fatal(err)
	}
	entries, _, err := c.Health().Service(service, "", true, nil)
	if err != nil {
		return -1
	}
	return len(entries)
}

// restore brings service back to two passing instances after a test killed one.
func restore(t *testing.T, service string) {
	t.Helper()
	if passing(t, service) >= 2 {
		return
	}
	if _, err := env.stack.StartInstance(service); err != nil {
		t.Fatal(err)
	}
	if err := env.stack.WaitPassing(context.Background(), service, 2); err != nil {
		t.Fatal(err)
	}
}

// procOf returns the name of a live process of service.
func procOf(t *testing.T, service string) string {
	t.Helper()
	for _, p := range env.stack.Procs {
		if p.Service == service && p.Alive() {
			return p.Name
		}
	}
	t.Fatalf("no live %s process", service)
	return ""
}

// orderIDs lists the IDs of every order of the clients, as a PostgreSQL array, from
// the order database (the API lists a user's latest 100).
func orderIDs(t *testing.T, clients []*stack.Client) any {
	t.Helper()
	var users []string
	for _, c := range clients {
		var me struct {
			ID string `json:"id"`
		}
		if _, err := c.Call(context.Background(), "GET", "/v1/users/me", nil, &me); err != nil {
			t.Fatal(err)
		}
		users = append(users, me.ID)
	}
	return pq.Array(queryStrings(t, env.dbs["order"], `SELECT id FROM orders WHERE user_id = ANY($1)`, pq.Array(users)))
}

// queryStrings returns the one text column of query's rows.
func queryStrings(t *testing.T, db *sql.DB, query string, args ...any) []string {
	t.Helper()
	rows, err := db.Query(query, args...)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var values []string
	for rows.Next() {
		var v string
		if err := rows.Scan(&v); err != nil {
			t.Fatal(err)
		}
		values = append(values, v)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return values
}

// statuses counts the orders of ids by status.
func statuses(t *testing.T, ids any) map[string]int {
	t.Helper()
	rows, err := env.dbs["order"].Query(`SELECT status, count(*) FROM orders WHERE id = ANY($1) GROUP BY status`, ids)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	counts := map[string]int{}
	for rows.Next() {
		var status string
		var n int
		if err := rows.Scan(&status, &n); err != nil {
			t.Fatal(err)
		}
		counts[status] = n
	}
	return counts
}

// settled waits until the gateway serves every service again: a test that killed
// instances leaves breakers open for their sleep window, and the next test must not
// count that against itself.
func settled(t *testing.T, c *stack.Client) {
	t.Helper()
	ctx := context.Background()
	paths := []string{"/v1/products?limit=1", "/v1/orders", "/v1/cart", "/v1/notifications", "/v1/users/me"}
	testenv.Eventually(t, 30*time.Second, "every route to answer", func() bool {
		for _, p := range paths {
			if _, err := c.Call(ctx, "GET", p, nil, nil); err != nil {
				return false
			}
		}
		return true
	})
}

// logLines are the lines of st's logs that f matches, so far.
func logLines(t *testing.T, st *stack.Stack, f stack.LogFilter) []stack.LogLine {
	t.Helper()
	r, err := stack.NewLogReader(st.Logs(), f)
	if err != nil {
		t.Fatal(err)
	}
	lines, err := r.Next()
	if err != nil {
		t.Fatal(err)
	}
	return lines
}
