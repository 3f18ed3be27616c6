package order

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/go-kit/kit/sd"
	kithttp "github.com/go-kit/kit/transport/http"
	"github.com/go-kit/log"

	"github.com/kitshop/kitshop/pkg/auth"
	"github.com/kitshop/kitshop/pkg/client"
	"github.com/kitshop/kitshop/pkg/observe"
	"github.com/kitshop/kitshop/pkg/testenv"
)

// newTestServer serves the order service of e over HTTP, logging into logs, and returns
// tokens for two customers.
func newTestServer(t testing.TB, e *env, logs io.Writer) (srv *httptest.Server, alice, bob string) {
	t.Helper()
	kid, key, err := auth.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	signer := auth.NewSigner(kid, key, auth.DefaultIssuer, auth.DefaultAudience, time.Hour)
	verifier := auth.NewVerifier(auth.StaticKeys{kid: signer.PublicKey()}, auth.DefaultIssuer, auth.DefaultAudience, signer.TTL())
	obs := observe.Observer{Logger: log.NewJSONLogger(logs), Metrics: observe.NewMetrics("order")}
	srv = httptest.NewServer(MakeHTTPHandler(MakeServerEndpoints(e.svc, obs, verifier), nil))
	t.Cleanup(srv.Close)
	alice, _, _ = signer.Sign(auth.Caller{UserID: "alice", Email: "alice@example.com", Role: auth.RoleCustomer}, time.Now())
	bob, _, _ = signer.Sign(auth.Caller{UserID: "bob", Email: "bob@example.com", Role: auth.RoleCustomer}, time.Now())
	return srv, alice, bob
}

const (
	goodCard     = `"payment":{"card_number":"4242424242424242","exp_month":12,"exp_year":2030,"cvc":"123"}`
	declinedJSON = `"payment":{"card_number":"4000000000000002","exp_month":12,"exp_year":2030,"cvc":"123"}`
)

// TestHTTPRoutes walks a customer through the API, bad input included: every refusal
// is a clear 4xx with a JSON error body, and changes nothing.
func TestHTTPRoutes(t *testing.T) {
	e := newEnv(t, envOptions{})
	e.seed(map[string]int{"A": 10, "B": 1})
	logs := &testenv.SyncBuffer{}
	srv, alice, bob := newTestServer(t, e, logs)
	key := func(k string) map[string]string { return map[string]string{IdempotencyKeyHeader: k} }
	// One sequence: each step builds on the cart, stock and orders the steps before it
	// left. {id} stands for the order the checkout step confirms.
	steps := []testenv.Step{
		{Name: "no token", Method: "GET", Path: "/v1/cart", Status: 401, Want: "missing_token"},
		{Name: "bad token", Method: "GET", Path: "/v1/cart", Token: "garbage", Status: 401, Want: "invalid_token"},
		{Name: "empty cart", Method: "GET", Path: "/v1/cart", Token: alice, Status: 200, Want: `{"items":[],"total":{"amount":0,"currency":"EUR"}}`},
		{Name: "add", Method: "PUT", Path: "/v1/cart/items/A", Body: `{"quantity":2}`, Token: alice, Status: 200, Want: `"line_total":{"amount":3998,"currency":"EUR"}}],"total":{"amount":3998`},
		{Name: "quantity missing", Method: "PUT", Path: "/v1/cart/items/A", Body: `{}`, Token: alice, Status: 400, Want: "invalid_quantity"},
		{Name: "quantity negative", Method: "PUT", Path: "/v1/cart/items/A", Body: `{"quantity":-1}`, Token: alice, Status: 400, Want: "invalid_quantity"},
		{Name: "quantity too big", Method: "PUT", Path: "/v1/cart/items/A", Body: `{"quantity":100}`, Token: alice, Status: 400, Want: "invalid_quantity"},
		{Name: "quantity huge", Method: "PUT", Path: "/v1/cart/items/A", Body: `{"quantity":100000000000000000000}`, Token: alice, Status: 400, Want: "invalid_field"},
		{Name: "quantity not a number", Method: "PUT", Path: "/v1/cart/items/A", Body: `{"quantity":"two"}`, Token: alice, Status: 400, Want: "invalid_field"},
		{Name: "unknown field", Method: "PUT", Path: "/v1/cart/items/A", Body: `{"quantity":1,"price":1}`, Token: alice, Status: 400, Want: "unknown_field"},
		{Name: "malformed", Method: "PUT", Path: "/v1/cart/items/A", Body: `{"quantity":`, Token: alice, Status: 400, Want: "malformed_json"},
		{Name: "unknown SKU", Method: "PUT", Path: "/v1/cart/items/NOPE", Body: `{"quantity":1}`, Token: alice, Status: 404, Want: "product_not_found"},
		{Name: "cart unchanged", Method: "GET", Path: "/v1/cart", Token: alice, Status: 200, Want: `"quantity":2`},
		{Name: "other cart", Method: "GET", Path: "/v1/cart", Token: bob, Status: 200, Want: `"items":[]`},
		{Name: "no key", Method: "POST", Path: "/v1/orders", Body: `{` + goodCard + `}`, Token: alice, Status: 400, Want: "missing_idempotency_key"},
		{Name: "long key", Method: "POST", Path: "/v1/orders", Body: `{` + goodCard + `}`, Token: alice, Header: key(strings.Repeat("k", 201)), Status: 400, Want: "invalid_idempotency_key"},
		{Name: "no payment", Method: "POST", Path: "/v1/orders", Body: `{}`, Token: alice, Header: key("k0"), Status: 400, Want: "missing_payment"},
		{Name: "bad card", Method: "POST", Path: "/v1/orders", Body: `{"payment":{"card_number":"4242424242424241","exp_month":12,"exp_year":2030,"cvc":"123"}}`, Token: alice, Header: key("k0"), Status: 400, Want: "invalid_card_number"},
		{Name: "empty cart checkout", Method: "POST", Path: "/v1/orders", Body: `{` + goodCard + `}`, Token: bob, Header: key("k0"), Status: 422, Want: "cart_empty"},
		{Name: "order unknown SKU", Method: "POST", Path: "/v1/orders", Body: `{` + goodCard + `,"items":[{"sku":"NOPE","quantity":1}]}`, Token: alice, Header: key("k0"), Status: 422, Want: "unknown_sku"},
		{Name: "order zero quantity", Method: "POST", Path: "/v1/orders", Body: `{` + goodCard + `,"items":[{"sku":"A","quantity":0}]}`, Token: alice, Header: key("k0"), Status: 400, Want: "invalid_quantity"},
		{Name: "order client price", Method: "POST", Path: "/v1/orders", Body: `{` + goodCard + `,"items":[{"sku":"A","quantity":1,"unit_price":1}]}`, Token: alice, Header: key("k0"), Status: 400, Want: "unknown_field"},
		{Name: "no orders yet", Method: "GET", Path: "/v1/orders", Token: alice, Status: 200, Want: `{"orders":[]}`},
		{Name: "checkout the cart", Method: "POST", Path: "/v1/orders", Body: `{` + goodCard + `}`, Token: alice, Header: key("k1"), Status: 201, Want: `"status":"confirmed"`},
		{Name: "replay", Method: "POST", Path: "/v1/orders", Body: `{` + goodCard + `}`, Token: alice, Header: key("k1"), Status: 201, Want: `"id":"{id}"`},
		{Name: "same key other body", Method: "POST", Path: "/v1/orders", Body: `{` + goodCard + `,"items":[{"sku":"B","quantity":1}]}`, Token: alice, Header: key("k1"), Status: 409, Want: "idempotency_mismatch"},
		{Name: "cart emptied", Method: "GET", Path: "/v1/cart", Token: alice, Status: 200, Want: `"items":[]`},
		{Name: "out of stock", Method: "POST", Path: "/v1/orders", Body: `{` + goodCard + `,"items":[{"sku":"B","quantity":2}]}`, Token: alice, Header: key("k2"), Status: 422, Want: "out_of_stock"},
		{Name: "declined", Method: "POST", Path: "/v1/orders", Body: `{` + declinedJSON + `,"items":[{"sku":"B","quantity":1}]}`, Token: alice, Header: key("k3"), Status: 422, Want: "payment_declined"},
		{Name: "list", Method: "GET", Path: "/v1/orders", Token: alice, Status: 200, Want: `"failure":{"code":"payment_declined"`},
		{Name: "get", Method: "GET", Path: "/v1/orders/{id}", Token: alice, Status: 200, Want: `"total":{"amount":3998,"currency":"EUR"}`},
		{Name: "someone else's", Method: "GET", Path: "/v1/orders/{id}", Token: bob, Status: 404, Want: "order_not_found"},
		{Name: "unknown order", Method: "GET", Path: "/v1/orders/ord_000000000000000000000000", Token: alice, Status: 404, Want: "order_not_found"},
		{Name: "cancel someone else's", Method: "POST", Path: "/v1/orders/{id}/cancel", Token: bob, Status: 404, Want: "order_not_found"},
		{Name: "cancel", Method: "POST", Path: "/v1/orders/{id}/cancel", Token: alice, Status: 200, Want: `"status":"cancelled"`},
		{Name: "cancel twice", Method: "POST", Path: "/v1/orders/{id}/cancel", Token: alice, Status: 409, Want: "order_not_cancellable"},
		{Name: "stock is back", Method: "PUT", Path: "/v1/cart/items/A", Body: `{"quantity":10}`, Token: alice, Status: 200, Want: `"quantity":10`},
		{Name: "remove", Method: "DELETE", Path: "/v1/cart/items/A", Token: alice, Status: 200, Want: `"items":[]`},
		{Name: "unknown route", Method: "GET", Path: "/v1/nothing", Token: alice, Status: 404, Want: "not_found"},
		{Name: "wrong method", Method: "DELETE", Path: "/v1/orders", Token: alice, Status: 405, Want: "method_not_allowed"},
		{Name: "wrong method on an order", Method: "DELETE", Path: "/v1/orders/{id}", Token: alice, Status: 405, Want: "method_not_allowed"},
		{Name: "wrong method on cancel", Method: "GET", Path: "/v1/orders/{id}/cancel", Token: alice, Status: 405, Want: "method_not_allowed"},
		{Name: "wrong method on a cart line", Method: "GET", Path: "/v1/cart/items/A", Token: alice, Status: 405, Want: "method_not_allowed"},
	}
	orderID := ""
	for _, st := range steps {
		st.Path = strings.ReplaceAll(st.Path, "{id}", orderID)
		st.Want = strings.ReplaceAll(st.Want, "{id}", orderID)
		body := st.Do(t, srv.URL)
		if st.Name == "checkout the cart" {
			var o struct{ ID string }
			if err := json.Unmarshal([]byte(body), &o); err != nil || o.ID == "" {
				t.Fatalf("checkout: no order ID in %s", body)
			}
			orderID = o.ID
		}
	}
	for _, secret := range []string{"4242424242424242", "4000000000000002", `"cvc"`} {
		if strings.Contains(logs.String(), secret) {
			t.Fatalf("the logs carry card data (%s)", secret)
		}
	}
}

func TestHTTPPendingIs202(t *testing.T) {
	e := newEnv(t, envOptions{wrapPay: func(p Payment) Payment { return flakyPayment{p, newFaults(1, 0, 1)} }, cfg: Config{RequestDeadline: 50 * time.Millisecond, SagaTimeout: 200 * time.Millisecond}})
	e.seed(map[string]int{"A": 1})
	srv, alice, _ := newTestServer(t, e, io.Discard)
	req, _ := http.NewRequest("POST", srv.URL+"/v1/orders", strings.NewReader(`{`+goodCard+`,"items":[{"sku":"A","quantity":1}]}`))
	req.Header.Set("Authorization", "Bearer "+alice)
	req.Header.Set(IdempotencyKeyHeader, "k")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 202 || !bytes.Contains(body, []byte(`"status":"pending"`)) {
		t.Fatalf("status %d: %s", resp.StatusCode, body)
	}
}

// TestHTTPClient runs the client against a live server: every Service method, with the
// caller's token carried from the context, and errors coming back as domain errors.
func TestHTTPClient(t *testing.T) {
	e := newEnv(t, envOptions{})
	e.seed(map[string]int{"A": 5})
	srv, alice, _ := newTestServer(t, e, io.Discard)
	opts := client.Options{Caller: "test", Before: []kithttp.RequestFunc{auth.ContextToHTTP()}}
	c := NewHTTPClient(sd.FixedInstancer{strings.TrimPrefix(srv.URL, "http://")}, opts.Defaults())
	ctx := auth.HTTPToContext()(context.Background(), &http.Request{Header: http.Header{"Authorization": {"Bearer " + alice}}})

	if _, err := c.GetCart(context.Background()); !errors.Is(err, auth.ErrNoToken) {
		t.Fatalf("no token: %v", err)
	}
	if cart, err := c.SetCartItem(ctx, "A", 2); err != nil || len(cart.Items) != 1 || cart.Total.Amount != 3998 {
		t.Fatalf("set: %+v %v", cart, err)
	}
	if _, err := c.SetCartItem(ctx, "NOPE", 2); !errors.Is(err, ErrProductNotFound) {
		t.Fatalf("set unknown: %v", err)
	}
	if cart, err := c.GetCart(ctx); err != nil || cart.Items[0].Name != "Product A" {
		t.Fatalf("get: %+v %v", cart, err)
	}
	o, err := c.PlaceOrder(ctx, "k1", Checkout{Card: testCard})
	if err != nil || o.Status != StatusConfirmed || o.UserID != "alice" || len(o.Items) != 1 {
		t.Fatalf("place: %+v %v", o, err)
	}
	if _, err := c.PlaceOrder(ctx, "k2", Checkout{Card: testCard, Items: []Line{{"A", 9}}}); !errors.Is(err, ErrOutOfStock) {
		t.Fatalf("out of stock: %v", err)
	}
	if got, err := c.GetOrder(ctx, o.ID); err != nil || got.ID != o.ID {
		t.Fatalf("get order: %+v %v", got, err)
	}
	if list, err := c.ListOrders(ctx); err != nil || len(list) != 2 {
		t.Fatalf("list: %+v %v", list, err)
	}
	if got, err := c.CancelOrder(ctx, o.ID); err != nil || got.Status != StatusCancelled {
		t.Fatalf("cancel: %+v %v", got, err)
	}
	if cart, err := c.RemoveCartItem(ctx, "A"); err != nil || len(cart.Items) != 0 {
		t.Fatalf("remove: %+v %v", cart, err)
	}
}
