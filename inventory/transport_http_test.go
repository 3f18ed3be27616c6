package inventory

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/go-kit/kit/sd"
	kitgrpc "github.com/go-kit/kit/transport/grpc"
	kithttp "github.com/go-kit/kit/transport/http"
	"github.com/go-kit/log"

	"github.com/kitshop/kitshop/pkg/auth"
	"github.com/kitshop/kitshop/pkg/client"
	"github.com/kitshop/kitshop/pkg/observe"
	"github.com/kitshop/kitshop/pkg/testenv"
)

// testAuth is a signing key's verifier and the tokens it signed for an admin and a
// customer.
type testAuth struct {
	verifier        auth.Verifier
	admin, customer string
}

func newTestAuth(t testing.TB) testAuth {
	t.Helper()
	kid, key, err := auth.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	signer := auth.NewSigner(kid, key, auth.DefaultIssuer, auth.DefaultAudience, time.Hour)
	a := testAuth{verifier: auth.NewVerifier(auth.StaticKeys{kid: signer.PublicKey()}, auth.DefaultIssuer, auth.DefaultAudience, signer.TTL())}
	if a.admin, _, err = signer.Sign(auth.Caller{UserID: "u-admin", Email: "a@x.io", Role: auth.RoleAdmin}, time.Now()); err != nil {
		t.Fatal(err)
	}
	if a.customer, _, err = signer.Sign(auth.Caller{UserID: "u-1", Email: "c@x.io", Role: auth.RoleCustomer}, time.Now()); err != nil {
		t.Fatal(err)
	}
	return a
}

// newTestServer serves the inventory over HTTP with a memory store of its own, seeded
// with products A (10 in stock) and B (2), believing the tokens of a.
func newTestServer(t testing.TB, a testAuth) *httptest.Server {
	t.Helper()
	svc, _, _ := newTestService(t)
	obs := observe.Observer{Logger: log.NewNopLogger(), Metrics: observe.NewMetrics("inventory")}
	srv := httptest.NewServer(MakeHTTPHandler(MakeServerEndpoints(svc, obs, a.verifier), nil))
	t.Cleanup(srv.Close)
	return srv
}

// TestHTTPRoutes sends each request to a server of its own, fresh from the seed, so
// that no row depends on what another did.
func TestHTTPRoutes(t *testing.T) {
	a := newTestAuth(t)
	admin, customer := a.admin, a.customer
	newProduct := `{"sku":"NEW","name":"New","description":"d","price":{"amount":500,"currency":"EUR"},"stock":3}`
	steps := []testenv.Step{
		{Name: "list", Method: "GET", Path: "/v1/products", Status: 200, Want: `"sku":"A"`},
		{Name: "list limit", Method: "GET", Path: "/v1/products?limit=1", Status: 200, Want: `"next_cursor":"QQ"`},
		{Name: "list bad limit", Method: "GET", Path: "/v1/products?limit=abc", Status: 400, Want: "invalid_limit"},
		{Name: "list absurd limit", Method: "GET", Path: "/v1/products?limit=100000", Status: 400, Want: "invalid_limit"},
		{Name: "list a category", Method: "GET", Path: "/v1/products?category=tea", Status: 200, Want: `{"products":[],"next_cursor":""}`},
		{Name: "list bad category", Method: "GET", Path: "/v1/products?category=Tea", Status: 400, Want: "invalid_category"},
		{Name: "list bad cursor", Method: "GET", Path: "/v1/products?cursor=%25%25", Status: 400, Want: "invalid_cursor"},
		{Name: "get", Method: "GET", Path: "/v1/products/A", Status: 200, Want: `"available":10`},
		{Name: "get public view hides stock", Method: "GET", Path: "/v1/products/A", Status: 200, Want: `"price":{"amount":1999,"currency":"EUR"},"available":10}`},
		{Name: "get unknown", Method: "GET", Path: "/v1/products/NOPE", Status: 404, Want: "product_not_found"},
		{Name: "unknown route", Method: "GET", Path: "/v1/nothing", Status: 404, Want: "not_found"},
		{Name: "wrong method", Method: "DELETE", Path: "/v1/products/A", Status: 405, Want: "method_not_allowed"},
		{Name: "method of another route", Method: "POST", Path: "/v1/products/A", Status: 405, Want: "method_not_allowed"},
		{Name: "internal method of another route", Method: "GET", Path: "/internal/v1/reservations", Status: 405, Want: "method_not_allowed"},
		{Name: "create without token", Method: "POST", Path: "/v1/products", Body: newProduct, Status: 401, Want: "missing_token"},
		{Name: "create with bad token", Method: "POST", Path: "/v1/products", Body: newProduct, Token: "garbage", Status: 401, Want: "invalid_token"},
		{Name: "create as customer", Method: "POST", Path: "/v1/products", Body: newProduct, Token: customer, Status: 403, Want: "forbidden"},
		{Name: "create", Method: "POST", Path: "/v1/products", Body: newProduct, Token: admin, Status: 201, Want: `"stock":3,"reserved":0`},
		{Name: "create with a category", Method: "POST", Path: "/v1/products", Body: strings.Replace(newProduct, `"stock"`, `"category":"tea","stock"`, 1), Token: admin, Status: 201, Want: `"category":"tea"`},
		{Name: "create with a bad category", Method: "POST", Path: "/v1/products", Body: strings.Replace(newProduct, `"stock"`, `"category":"Tea!","stock"`, 1), Token: admin, Status: 400, Want: "invalid_category"},
		{Name: "create duplicate", Method: "POST", Path: "/v1/products", Body: strings.Replace(newProduct, "NEW", "A", 1), Token: admin, Status: 409, Want: "sku_taken"},
		{Name: "create malformed", Method: "POST", Path: "/v1/products", Body: `{"sku":`, Token: admin, Status: 400, Want: "malformed_json"},
		{Name: "create unknown field", Method: "POST", Path: "/v1/products", Body: `{"sku":"Q","reserved":5}`, Token: admin, Status: 400, Want: "unknown_field"},
		{Name: "create wrong type", Method: "POST", Path: "/v1/products", Body: `{"sku":"Q","stock":"many"}`, Token: admin, Status: 400, Want: "invalid_field"},
		{Name: "create missing fields", Method: "POST", Path: "/v1/products", Body: `{"sku":"Q"}`, Token: admin, Status: 400, Want: "invalid_name"},
		{Name: "create two values", Method: "POST", Path: "/v1/products", Body: newProduct + newProduct, Token: admin, Status: 400, Want: "malformed_json"},
		{Name: "create form body", Method: "POST", Path: "/v1/products", Body: "sku=A", Token: admin, Header: map[string]string{"Content-Type": "application/x-www-form-urlencoded"}, Status: 400, Want: "unsupported_content_type"},
		{Name: "create empty body", Method: "POST", Path: "/v1/products", Token: admin, Status: 400, Want: "malformed_json"},
		{Name: "create huge body", Method: "POST", Path: "/v1/products", Body: `{"description":"` + strings.Repeat("x", 1<<20) + `"}`, Token: admin, Status: 413, Want: "body_too_large"},
		{Name: "set stock", Method: "PUT", Path: "/v1/products/B/stock", Body: `{"stock":7}`, Token: admin, Status: 200, Want: `"stock":7`},
		{Name: "set stock missing", Method: "PUT", Path: "/v1/products/B/stock", Body: `{}`, Token: admin, Status: 400, Want: "invalid_stock"},
		{Name: "set stock negative", Method: "PUT", Path: "/v1/products/B/stock", Body: `{"stock":-1}`, Token: admin, Status: 400, Want: "invalid_stock"},
		{Name: "set stock unknown", Method: "PUT", Path: "/v1/products/Z/stock", Body: `{"stock":1}`, Token: admin, Status: 404, Want: "product_not_found"},
		{Name: "set stock as customer", Method: "PUT", Path: "/v1/products/B/stock", Body: `{"stock":1}`, Token: customer, Status: 403, Want: "forbidden"},
		{Name: "reserve more than the stock", Method: "POST", Path: "/internal/v1/reservations", Body: `{"order_id":"o2","lines":[{"sku":"A","quantity":11}]}`, Status: 422, Want: "out_of_stock"},
		{Name: "reserve zero", Method: "POST", Path: "/internal/v1/reservations", Body: `{"order_id":"o2","lines":[{"sku":"A","quantity":0}]}`, Status: 400, Want: "invalid_quantity"},
		{Name: "reserve duplicate sku", Method: "POST", Path: "/internal/v1/reservations", Body: `{"order_id":"o2","lines":[{"sku":"A","quantity":1},{"sku":"A","quantity":1}]}`, Status: 400, Want: "duplicate_sku"},
		{Name: "reserve no lines", Method: "POST", Path: "/internal/v1/reservations", Body: `{"order_id":"o2","lines":[]}`, Status: 400, Want: "no_lines"},
		{Name: "get unknown reservation", Method: "GET", Path: "/internal/v1/reservations/o9", Status: 404, Want: "reservation_not_found"},
		{Name: "commit unknown", Method: "POST", Path: "/internal/v1/reservations/o9/commit", Status: 404, Want: "reservation_not_found"},
	}
	for _, st := range steps {
		t.Run(st.Name, func(t *testing.T) { st.Do(t, newTestServer(t, a).URL) })
	}
}

// TestHTTPReservationLifecycle is one sequence on one server: a reservation is made,
// replayed, refused when its order ID comes back with other lines, holds its stock back
// from other orders, and is committed and then released, which returns the stock. Each
// step depends on the ones before it; the first that fails stops the test.
func TestHTTPReservationLifecycle(t *testing.T) {
	srv := newTestServer(t, newTestAuth(t))
	for _, st := range []testenv.Step{
		{Name: "reserve", Method: "POST", Path: "/internal/v1/reservations", Body: `{"order_id":"o1","lines":[{"sku":"A","quantity":2}]}`, Status: 200, Want: `"status":"reserved"`},
		{Name: "reserve again", Method: "POST", Path: "/internal/v1/reservations", Body: `{"order_id":"o1","lines":[{"sku":"A","quantity":2}]}`, Status: 200, Want: `"status":"reserved"`},
		{Name: "reserve mismatch", Method: "POST", Path: "/internal/v1/reservations", Body: `{"order_id":"o1","lines":[{"sku":"A","quantity":1}]}`, Status: 409, Want: "idempotency_mismatch"},
		{Name: "reserved stock is held back", Method: "GET", Path: "/v1/products/A", Status: 200, Want: `"available":8`},
		{Name: "reserve more than is left", Method: "POST", Path: "/internal/v1/reservations", Body: `{"order_id":"o2","lines":[{"sku":"A","quantity":9}]}`, Status: 422, Want: "out_of_stock"},
		{Name: "get reservation", Method: "GET", Path: "/internal/v1/reservations/o1", Status: 200, Want: `"quantity":2`},
		{Name: "commit", Method: "POST", Path: "/internal/v1/reservations/o1/commit", Status: 200, Want: `"status":"committed"`},
		{Name: "release committed", Method: "POST", Path: "/internal/v1/reservations/o1/release", Status: 200, Want: `"status":"released"`},
		{Name: "stock is back", Method: "GET", Path: "/v1/products/A", Status: 200, Want: `"available":10`},
	} {
		st.Do(t, srv.URL)
	}
}

// TestClient runs the client of each transport against a live server: every Service
// method, and business errors coming back as the same domain errors.
func TestClient(t *testing.T) {
	for _, transport := range []string{"http", "grpc"} {
		t.Run(transport, func(t *testing.T) { testClient(t, transport) })
	}
}

func testClient(t *testing.T, transport string) {
	a := newTestAuth(t)
	opts := client.Options{Caller: "test-" + transport,
		Before: []kithttp.RequestFunc{auth.ContextToHTTP()}, GRPCBefore: []kitgrpc.ClientRequestFunc{auth.ContextToGRPC()}}
	var c Service
	if transport == "grpc" {
		c = NewGRPCClient(sd.FixedInstancer{newTestGRPCServer(t, a)}, opts.Defaults())
	} else {
		srv := newTestServer(t, a)
		c = NewHTTPClient(sd.FixedInstancer{strings.TrimPrefix(srv.URL, "http://")}, opts.Defaults())
	}
	ctx := context.Background()
	header := http.Header{"Authorization": []string{"Bearer " + a.admin}}
	adminCtx := auth.HTTPToContext()(ctx, &http.Request{Header: header})

	page, err := c.ListProducts(ctx, "", 1, "")
	if err != nil || len(page.Products) != 1 || page.Products[0].SKU != "A" || page.NextCursor == "" {
		t.Fatalf("list: %+v %v", page, err)
	}
	if p, err := c.GetProduct(ctx, "A"); err != nil || p.Available() != 10 || p.Price.Amount != 1999 {
		t.Fatalf("get: %+v %v", p, err)
	}
	if _, err := c.GetProduct(ctx, "NOPE"); !errors.Is(err, ErrProductNotFound) {
		t.Fatalf("get unknown: %v", err)
	}
	if _, err := c.CreateProduct(ctx, product("X", 1)); !errors.Is(err, auth.ErrNoToken) {
		t.Fatalf("create without token: %v", err)
	}
	if p, err := c.CreateProduct(adminCtx, product("X", 1)); err != nil || p.Stock != 1 || p.SKU != "X" {
		t.Fatalf("create as admin: %+v %v", p, err)
	}
	tea := product("T", 1)
	tea.Category = "tea"
	if p, err := c.CreateProduct(adminCtx, tea); err != nil || p.Category != "tea" {
		t.Fatalf("create with a category: %+v %v", p, err)
	}
	if page, err := c.ListProducts(ctx, "tea", 10, ""); err != nil || len(page.Products) != 1 || page.Products[0].SKU != "T" || page.Products[0].Category != "tea" {
		t.Fatalf("list a category: %+v %v", page, err)
	}
	if p, err := c.SetStock(adminCtx, "X", 4); err != nil || p.Stock != 4 {
		t.Fatalf("set stock as admin: %+v %v", p, err)
	}
	r, err := c.Reserve(ctx, "o1", []Line{{"A", 2}})
	if err != nil || r.Status != StatusReserved || r.Lines[0].UnitPrice.Amount != 1999 {
		t.Fatalf("reserve: %+v %v", r, err)
	}
	if _, err := c.Reserve(ctx, "o2", []Line{{"B", 5}}); !errors.Is(err, ErrOutOfStock) {
		t.Fatalf("reserve out of stock: %v", err)
	}
	if r, err := c.Commit(ctx, "o1"); err != nil || r.Status != StatusCommitted {
		t.Fatalf("commit: %+v %v", r, err)
	}
	if r, err := c.GetReservation(ctx, "o1"); err != nil || r.Status != StatusCommitted {
		t.Fatalf("get reservation: %+v %v", r, err)
	}
	if r, err := c.Release(ctx, "o1"); err != nil || r.Status != StatusReleased {
		t.Fatalf("release: %+v %v", r, err)
	}
}
