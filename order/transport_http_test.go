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
	orderID := ""
	steps := []struct {
		name, method, path, key, body, token string
		wantStatus                           int
		want                                 string // error code, or a string the body must contain
	}{
		{"no token", "GET", "/v1/cart", "", "", "", 401, "missing_token"},
		{"bad token", "GET", "/v1/cart", "", "", "garbage", 401, "invalid_token"},
		{"empty cart", "GET", "/v1/cart", "", "", alice, 200, `{"items":[],"total":{"amount":0,"currency":"EUR"}}`},
		{"add", "PUT", "/v1/cart/items/A", "", `{"quantity":2}`, alice, 200, `"line_total":{"amount":3998,"currency":"EUR"}}],"total":{"amount":3998`},
		{"quantity missing", "PUT", "/v1/cart/items/A", "", `{}`, alice, 400, "invalid_quantity"},
		{"quantity negative", "PUT", "/v1/cart/items/A", "", `{"quantity":-1}`, alice, 400, "invalid_quantity"},
		{"quantity too big", "PUT", "/v1/cart/items/A", "", `{"quantity":100}`, alice, 400, "invalid_quantity"},
		{"quantity huge", "PUT", "/v1/cart/items/A", "", `{"quantity":100000000000000000000}`, alice, 400, "invalid_field"},
		{"quantity not a number", "PUT", "/v1/cart/items/A", "", `{"quantity":"two"}`, alice, 400, "invalid_field"},
		{"unknown field", "PUT", "/v1/cart/items/A", "", `{"quantity":1,"price":1}`, alice, 400, "unknown_field"},
		{"malformed", "PUT", "/v1/cart/items/A", "", `{"quantity":`, alice, 400, "malformed_json"},
		{"unknown SKU", "PUT", "/v1/cart/items/NOPE", "", `{"quantity":1}`, alice, 404, "product_not_found"},
		{"cart unchanged", "GET", "/v1/cart", "", "", alice, 200, `"quantity":2`},
		{"other cart", "GET", "/v1/cart", "", "", bob, 200, `"items":[]`},
		{"no key", "POST", "/v1/orders", "", `{` + goodCard + `}`, alice, 400, "missing_idempotency_key"},
		{"long key", "POST", "/v1/orders", strings.Repeat("k", 201), `{` + goodCard + `}`, alice, 400, "invalid_idempotency_key"},
		{"no payment", "POST", "/v1/orders", "k0", `{}`, alice, 400, "missing_payment"},
		{"bad card", "POST", "/v1/orders", "k0", `{"payment":{"card_number":"4242424242424241","exp_month":12,"exp_year":2030,"cvc":"123"}}`, alice, 400, "invalid_card_number"},
		{"empty cart checkout", "POST", "/v1/orders", "k0", `{` + goodCard + `}`, bob, 422, "cart_empty"},
		{"order unknown SKU", "POST", "/v1/orders", "k0", `{` + goodCard + `,"items":[{"sku":"NOPE","quantity":1}]}`, alice, 422, "unknown_sku"},
		{"order zero quantity", "POST", "/v1/orders", "k0", `{` + goodCard + `,"items":[{"sku":"A","quantity":0}]}`, alice, 400, "invalid_quantity"},
		{"order client price", "POST", "/v1/orders", "k0", `{` + goodCard + `,"items":[{"sku":"A","quantity":1,"unit_price":1}]}`, alice, 400, "unknown_field"},
		{"no orders yet", "GET", "/v1/orders", "", "", alice, 200, `{"orders":[]}`},
		{"checkout the cart", "POST", "/v1/orders", "k1", `{` + goodCard + `}`, alice, 201, `"status":"confirmed"`},
		{"replay", "POST", "/v1/orders", "k1", `{` + goodCard + `}`, alice, 201, `"id":"{id}"`},
		{"same key other body", "POST", "/v1/orders", "k1", `{` + goodCard + `,"items":[{"sku":"B","quantity":1}]}`, alice, 409, "idempotency_mismatch"},
		{"cart emptied", "GET", "/v1/cart", "", "", alice, 200, `"items":[]`},
		{"out of stock", "POST", "/v1/orders", "k2", `{` + goodCard + `,"items":[{"sku":"B","quantity":2}]}`, alice, 422, "out_of_stock"},
		{"declined", "POST", "/v1/orders", "k3", `{` + declinedJSON + `,"items":[{"sku":"B","quantity":1}]}`, alice, 422, "payment_declined"},
		{"list", "GET", "/v1/orders", "", "", alice, 200, `"failure":{"code":"payment_declined"`},
		{"get", "GET", "/v1/orders/{id}", "", "", alice, 200, `"total":{"amount":3998,"currency":"EUR"}`},
		{"someone else's", "GET", "/v1/orders/{id}", "", "", bob, 404, "order_not_found"},
		{"unknown order", "GET", "/v1/orders/ord_000000000000000000000000", "", "", alice, 404, "order_not_found"},
		{"cancel someone else's", "POST", "/v1/orders/{id}/cancel", "", "", bob, 404, "order_not_found"},
		{"cancel", "POST", "/v1/orders/{id}/cancel", "", "", alice, 200, `"status":"cancelled"`},
		{"cancel twice", "POST", "/v1/orders/{id}/cancel", "", "", alice, 409, "order_not_cancellable"},
		{"stock is back", "PUT", "/v1/cart/items/A", "", `{"quantity":10}`, alice, 200, `"quantity":10`},
		{"remove", "DELETE", "/v1/cart/items/A", "", "", alice, 200, `"items":[]`},
		{"unknown route", "GET", "/v1/nothing", "", "", alice, 404, "not_found"},
		{"wrong method", "DELETE", "/v1/orders", "", "", alice, 405, "method_not_allowed"},
		{"wrong method on an order", "DELETE", "/v1/orders/{id}", "", "", alice, 405, "method_not_allowed"},
		{"wrong method on cancel", "GET", "/v1/orders/{id}/cancel", "", "", alice, 405, "method_not_allowed"},
		{"wrong method on a cart line", "GET", "/v1/cart/items/A", "", "", alice, 405, "method_not_allowed"},
	}
	for _, st := range steps {
		path := strings.ReplaceAll(st.path, "{id}", orderID)
		req, _ := http.NewRequest(st.method, srv.URL+path, strings.NewReader(st.body))
		if st.body != "" {
			req.Header.Set("Content-Type", "application/json")
		}
		if st.token != "" {
			req.Header.Set("Authorization", "Bearer "+st.token)
		}
		if st.key != "" {
			req.Header.Set(IdempotencyKeyHeader, st.key)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != st.wantStatus {
			t.Fatalf("%s: status %d, want %d: %s", st.name, resp.StatusCode, st.wantStatus, body)
		}
		if resp.StatusCode >= 400 {
			var eb struct {
				Error struct{ Code, Message string }
			}
			if err := json.Unmarshal(body, &eb); err != nil || eb.Error.Code != st.want || eb.Error.Message == "" {
				t.Fatalf("%s: error body %s, want code %q", st.name, body, st.want)
			}
			continue
		}
		if st.name == "checkout the cart" {
			var o struct{ ID string }
			_ = json.Unmarshal(body, &o)
			orderID = o.ID
		}
		if want := strings.ReplaceAll(st.want, "{id}", orderID); !bytes.Contains(body, []byte(want)) {
			t.Fatalf("%s: body %s does not contain %s", st.name, body, want)
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
