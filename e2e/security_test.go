package e2e

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kitshop/kitshop/internal/stack"
	"github.com/kitshop/kitshop/pkg/testenv"
)

// TestSecurity: what one user must never reach of another, what a customer must never
// do, what the gateway must never route, and the tokens it must refuse.
func TestSecurity(t *testing.T) {
	ctx := context.Background()
	alice, _ := shopper(t)
	bob, _ := shopper(t)
	sku := newProduct(t, 10, 300)
	_, aliceOrder, err := checkout(ctx, alice, "sec-"+testenv.RandomHex(6), []line{{sku, 1}}, goodCard)
	if err != nil {
		t.Fatal(err)
	}
	waitNotification(t, alice, aliceOrder.ID, "order_confirmed", "")
	if _, err := alice.Call(ctx, "PUT", "/v1/cart/items/"+sku, map[string]int{"quantity": 2}, nil); err != nil {
		t.Fatal(err)
	}
	anon := stack.NewClient(env.stack.GatewayURL)
	tokenNone, tokenTampered, tokenHS256 := forgedTokens(t, alice.Token)

	tests := []struct {
		name       string
		client     *stack.Client
		token      string // overrides the client's
		method     string
		path       string
		body       any
		wantStatus int
		wantCode   string
	}{
		{"another user's order", bob, "", "GET", "/v1/orders/" + aliceOrder.ID, nil, 404, ""},
		{"cancel another user's order", bob, "", "POST", "/v1/orders/" + aliceOrder.ID + "/cancel", nil, 404, ""},
		{"customer creates a product", bob, "", "POST", "/v1/products", stack.Product{SKU: "X-" + testenv.RandomHex(3), Name: "x", Price: stack.Money{Amount: 1, Currency: "EUR"}}, 403, "forbidden"},
		{"customer sets stock", bob, "", "PUT", "/v1/products/" + sku + "/stock", map[string]int{"stock": 0}, 403, "forbidden"},
		{"internal route through the gateway", bob, "", "POST", "/internal/v1/reservations", map[string]any{"order_id": "x", "lines": []line{{sku, 10}}}, 404, ""},
		{"internal charge through the gateway", anon, "", "GET", "/internal/v1/charges?order_id=" + aliceOrder.ID, nil, 404, ""},
		{"sign up as admin", anon, "", "POST", "/v1/users", map[string]string{"email": "mass-" + testenv.RandomHex(3) + "@x.test", "password": "long-enough", "name": "M", "role": "admin"}, 400, ""},
		{"order with my own total", bob, "", "POST", "/v1/orders", map[string]any{"payment": card(goodCard), "items": []line{{sku, 1}}, "total": map[string]any{"amount": 1, "currency": "EUR"}}, 400, ""},
		{"order with my own status", bob, "", "POST", "/v1/orders", map[string]any{"payment": card(goodCard), "items": []line{{sku, 1}}, "status": "confirmed"}, 400, ""},
		{"cart line with my own price", bob, "", "PUT", "/v1/cart/items/" + sku, map[string]any{"quantity": 1, "unit_price": map[string]any{"amount": 1, "currency": "EUR"}}, 400, ""},
		{"no token", anon, "", "GET", "/v1/orders", nil, 401, ""},
		{"garbage token", anon, "not.a.jwt", "GET", "/v1/orders", nil, 401, ""},
		{"alg none", anon, tokenNone, "GET", "/v1/orders", nil, 401, ""},
		{"tampered payload", anon, tokenTampered, "GET", "/v1/orders", nil, 401, ""},
		{"HS256 with the public key as secret", anon, tokenHS256, "GET", "/v1/orders", nil, 401, ""},
		{"oversized body", bob, "", "PUT", "/v1/cart/items/" + sku, map[string]string{"quantity": strings.Repeat("9", 2<<20)}, 413, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := *tt.client
			if tt.token != "" {
				c.Token = tt.token
			}
			status, err := c.Call(ctx, tt.method, tt.path, tt.body, nil, "Idempotency-Key", "sec-"+testenv.RandomHex(6))
			if status != tt.wantStatus {
				t.Fatalf("status %d (%v), want %d", status, err, tt.wantStatus)
			}
			if tt.wantCode != "" && !stack.IsCode(err, tt.wantCode) {
				t.Fatalf("error %v, want code %s", err, tt.wantCode)
			}
		})
	}

	// Bob's lists show nothing of Alice's.
	for _, o := range orders(t, bob) {
		if o.ID == aliceOrder.ID {
			t.Fatal("bob sees alice's order")
		}
	}
	var bobMail struct {
		Notifications []struct {
			OrderID string `json:"order_id"`
		} `json:"notifications"`
	}
	if _, err := bob.Call(ctx, "GET", "/v1/notifications", nil, &bobMail); err != nil {
		t.Fatal(err)
	}
	for _, n := range bobMail.Notifications {
		if n.OrderID == aliceOrder.ID {
			t.Fatal("bob sees alice's email")
		}
	}
	var bobCart struct {
		Items []any `json:"items"`
	}
	if _, err := bob.Call(ctx, "GET", "/v1/cart", nil, &bobCart); err != nil || len(bobCart.Items) != 0 {
		t.Fatalf("bob's cart = %+v, %v; alice's lines must not show", bobCart, err)
	}
	// A 401 says how to authenticate.
	resp, err := http.Get(env.stack.GatewayURL + "/v1/orders")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if !strings.HasPrefix(resp.Header.Get("WWW-Authenticate"), "Bearer") {
		t.Errorf("401 without WWW-Authenticate: Bearer (got %q)", resp.Header.Get("WWW-Authenticate"))
	}
}

// forgedTokens derives three tokens a verifier must refuse from a real one: with alg
// none, with a payload changed to role admin, and signed HS256 with the issuer's public
// key as the secret.
func forgedTokens(t *testing.T, real string) (none, tampered, hs256 string) {
	t.Helper()
	parts := strings.Split(real, ".")
	if len(parts) != 3 {
		t.Fatalf("token %q is not a JWS", real)
	}
	enc := base64.RawURLEncoding
	payload, err := enc.DecodeString(parts[1])
	if err != nil {
		t.Fatal(err)
	}
	var claims map[string]any
	if err := json.Unmarshal(payload, &claims); err != nil {
		t.Fatal(err)
	}
	claims["role"] = "admin"
	claims["exp"] = time.Now().Add(time.Hour).Unix()
	adminPayload, _ := json.Marshal(claims)

	none = enc.EncodeToString([]byte(`{"alg":"none","typ":"JWT"}`)) + "." + enc.EncodeToString(adminPayload) + "."
	tampered = parts[0] + "." + enc.EncodeToString(adminPayload) + "." + parts[2]

	var jwks struct {
		Keys []struct {
			X   string `json:"x"`
			Kid string `json:"kid"`
		} `json:"keys"`
	}
	if _, err := stack.NewClient(env.stack.GatewayURL).Call(context.Background(), "GET", "/.well-known/jwks.json", nil, &jwks); err != nil || len(jwks.Keys) == 0 {
		t.Fatalf("JWKS through the gateway: %+v, %v", jwks, err)
	}
	header := enc.EncodeToString([]byte(`{"alg":"HS256","typ":"JWT","kid":"` + jwks.Keys[0].Kid + `"}`))
	signingInput := header + "." + enc.EncodeToString(adminPayload)
	mac := hmac.New(sha256.New, []byte(jwks.Keys[0].X))
	mac.Write([]byte(signingInput))
	hs256 = signingInput + "." + enc.EncodeToString(mac.Sum(nil))
	return none, tampered, hs256
}

// TestLoginFlood is the outside review's probe: wrong passwords for one account sent
// all at once through the gateway. Each attempt is paid for before its password is
// checked, so no more than the per-email budget (10 a minute) are checked, and the rest
// are refused with 429 (a few may be shed with 503 by the gateway's admission limit
// of the auth routes); before, all 40 were checked.
func TestLoginFlood(t *testing.T) {
	const attempts, budget = 40, 10
	_, email := shopper(t)
	statuses := make(chan int, attempts)
	start := make(chan struct{})
	var wg sync.WaitGroup
	for range attempts {
		wg.Go(func() {
			c := stack.NewClient(env.stack.GatewayURL)
			<-start
			status, _ := c.Call(context.Background(), "POST", "/v1/auth/login", map[string]string{"email": email, "password": "not-the-password"}, nil)
			statuses <- status
		})
	}
	close(start)
	wg.Wait()
	close(statuses)
	count := map[int]int{}
	for s := range statuses {
		count[s]++
	}
	t.Logf("%d wrong passwords at once: %v", attempts, count)
	if count[http.StatusUnauthorized] > budget || count[http.StatusTooManyRequests] == 0 ||
		count[http.StatusUnauthorized]+count[http.StatusTooManyRequests]+count[http.StatusServiceUnavailable] != attempts {
		t.Fatalf("statuses %v: want at most %d checked (401), the rest 429 (or 503 shed)", count, budget)
	}
}
