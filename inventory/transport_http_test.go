package inventory

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
)

// newTestServer serves the inventory over HTTP with a memory store, and returns tokens
// for an admin and a customer.
func newTestServer(t *testing.T) (srv *httptest.Server, admin, customer string) {
	t.Helper()
	kid, key, err := auth.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	signer := auth.NewSigner(kid, key, auth.DefaultIssuer, auth.DefaultAudience, time.Hour)
	verifier := auth.NewVerifier(auth.StaticKeys{kid: signer.PublicKey()}, auth.DefaultIssuer, auth.DefaultAudience, signer.TTL())
	svc, _, _ := newTestService(t)
	obs := observe.Observer{Logger: log.NewNopLogger(), Metrics: observe.NewMetrics("inventory")}
	srv = httptest.NewServer(MakeHTTPHandler(MakeServerEndpoints(svc, obs, verifier), nil))
	t.Cleanup(srv.Close)
	admin, _, err = signer.Sign(auth.Caller{UserID: "u-admin", Email: "a@x.io", Role: auth.RoleAdmin}, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	customer, _, _ = signer.Sign(auth.Caller{UserID: "u-1", Email: "c@x.io", Role: auth.RoleCustomer}, time.Now())
	return srv, admin, customer
}

func TestHTTPRoutes(t *testing.T) {
	srv, admin, customer := newTestServer(t)
	newProduct := `{"sku":"NEW","name":"New","description":"d","price":{"amount":500,"currency":"EUR"},"stock":3}`
	tests := []struct {
		name, method, path, body, token string
		wantStatus                      int
		wantCode                        string // error code, or a string the body must contain
	}{
		{"list", "GET", "/v1/products", "", "", 200, `"sku":"A"`},
		{"list limit", "GET", "/v1/products?limit=1", "", "", 200, `"next_cursor":"QQ"`},
		{"list bad limit", "GET", "/v1/products?limit=abc", "", "", 400, "invalid_limit"},
		{"list absurd limit", "GET", "/v1/products?limit=100000", "", "", 400, "invalid_limit"},
		{"list bad cursor", "GET", "/v1/products?cursor=%25%25", "", "", 400, "invalid_cursor"},
		{"get", "GET", "/v1/products/A", "", "", 200, `"available":10`},
		{"get public view hides stock", "GET", "/v1/products/A", "", "", 200, `"price":{"amount":1999,"currency":"EUR"},"available":10}`},
		{"get unknown", "GET", "/v1/products/NOPE", "", "", 404, "product_not_found"},
		{"unknown route", "GET", "/v1/nothing", "", "", 404, "not_found"},
		{"wrong method", "DELETE", "/v1/products/A", "", "", 405, "method_not_allowed"},
		{"method of another route", "POST", "/v1/products/A", "", "", 405, "method_not_allowed"},
		{"internal method of another route", "GET", "/internal/v1/reservations", "", "", 405, "method_not_allowed"},
		{"create without token", "POST", "/v1/products", newProduct, "", 401, "missing_token"},
		{"create with bad token", "POST", "/v1/products", newProduct, "garbage", 401, "invalid_token"},
		{"create as customer", "POST", "/v1/products", newProduct, customer, 403, "forbidden"},
		{"create", "POST", "/v1/products", newProduct, admin, 201, `"stock":3,"reserved":0`},
		{"create duplicate", "POST", "/v1/products", strings.Replace(newProduct, "NEW", "A", 1), admin, 409, "sku_taken"},
		{"create malformed", "POST", "/v1/products", `{"sku":`, admin, 400, "malformed_json"},
		{"create unknown field", "POST", "/v1/products", `{"sku":"Q","reserved":5}`, admin, 400, "unknown_field"},
		{"create wrong type", "POST", "/v1/products", `{"sku":"Q","stock":"many"}`, admin, 400, "invalid_field"},
		{"create missing fields", "POST", "/v1/products", `{"sku":"Q"}`, admin, 400, "invalid_name"},
		{"create two values", "POST", "/v1/products", newProduct + newProduct, admin, 400, "malformed_json"},
		{"create empty body", "POST", "/v1/products", "", admin, 400, "malformed_json"},
		{"create huge body", "POST", "/v1/products", `{"description":"` + strings.Repeat("x", 1<<20) + `"}`, admin, 413, "body_too_large"},
		{"set stock", "PUT", "/v1/products/B/stock", `{"stock":7}`, admin, 200, `"stock":7`},
		{"set stock missing", "PUT", "/v1/products/B/stock", `{}`, admin, 400, "invalid_stock"},
		{"set stock negative", "PUT", "/v1/products/B/stock", `{"stock":-1}`, admin, 400, "invalid_stock"},
		{"set stock unknown", "PUT", "/v1/products/Z/stock", `{"stock":1}`, admin, 404, "product_not_found"},
		{"set stock as customer", "PUT", "/v1/products/B/stock", `{"stock":1}`, customer, 403, "forbidden"},
		{"reserve", "POST", "/internal/v1/reservations", `{"order_id":"o1","lines":[{"sku":"A","quantity":2}]}`, "", 200, `"status":"reserved"`},
		{"reserve again", "POST", "/internal/v1/reservations", `{"order_id":"o1","lines":[{"sku":"A","quantity":2}]}`, "", 200, `"status":"reserved"`},
		{"reserve mismatch", "POST", "/internal/v1/reservations", `{"order_id":"o1","lines":[{"sku":"A","quantity":1}]}`, "", 409, "idempotency_mismatch"},
		{"reserve too many", "POST", "/internal/v1/reservations", `{"order_id":"o2","lines":[{"sku":"A","quantity":9}]}`, "", 422, "out_of_stock"},
		{"reserve zero", "POST", "/internal/v1/reservations", `{"order_id":"o2","lines":[{"sku":"A","quantity":0}]}`, "", 400, "invalid_quantity"},
		{"reserve duplicate sku", "POST", "/internal/v1/reservations", `{"order_id":"o2","lines":[{"sku":"A","quantity":1},{"sku":"A","quantity":1}]}`, "", 400, "duplicate_sku"},
		{"reserve no lines", "POST", "/internal/v1/reservations", `{"order_id":"o2","lines":[]}`, "", 400, "no_lines"},
		{"get reservation", "GET", "/internal/v1/reservations/o1", "", "", 200, `"quantity":2`},
		{"get unknown reservation", "GET", "/internal/v1/reservations/o9", "", "", 404, "reservation_not_found"},
		{"commit", "POST", "/internal/v1/reservations/o1/commit", "", "", 200, `"status":"committed"`},
		{"commit unknown", "POST", "/internal/v1/reservations/o9/commit", "", "", 404, "reservation_not_found"},
		{"release committed", "POST", "/internal/v1/reservations/o1/release", "", "", 200, `"status":"released"`},
		{"stock is back", "GET", "/v1/products/A", "", "", 200, `"available":10`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req, _ := http.NewRequest(tt.method, srv.URL+tt.path, strings.NewReader(tt.body))
			if tt.body != "" {
				req.Header.Set("Content-Type", "application/json")
			}
			if tt.token != "" {
				req.Header.Set("Authorization", "Bearer "+tt.token)
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != tt.wantStatus {
				t.Fatalf("status %d, want %d: %s", resp.StatusCode, tt.wantStatus, body)
			}
			if resp.StatusCode >= 400 {
				var e struct {
					Error struct{ Code, Message string }
				}
				if err := json.Unmarshal(body, &e); err != nil || e.Error.Code != tt.wantCode || e.Error.Message == "" {
					t.Fatalf("error body %s, want code %q", body, tt.wantCode)
				}
				return
			}
			if !bytes.Contains(body, []byte(tt.wantCode)) {
				t.Fatalf("body %s does not contain %s", body, tt.wantCode)
			}
		})
	}
}

func TestHTTPRejectsFormBodies(t *testing.T) {
	srv, admin, _ := newTestServer(t)
	req, _ := http.NewRequest("POST", srv.URL+"/v1/products", strings.NewReader("sku=A"))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Authorization", "Bearer "+admin)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 400 {
		t.Fatalf("status %d, want 400", resp.StatusCode)
	}
}

// TestHTTPClient runs the client against a live server: every Service method, and
// business errors coming back as the same domain errors.
func TestHTTPClient(t *testing.T) {
	srv, admin, _ := newTestServer(t)
	instancer := sd.FixedInstancer{strings.TrimPrefix(srv.URL, "http://")}
	opts := client.Options{Caller: "test", Before: []kithttp.RequestFunc{auth.ContextToHTTP()}}
	c := NewHTTPClient(instancer, opts.Defaults())
	ctx := context.Background()
	header := http.Header{"Authorization": []string{"Bearer " + admin}}
	adminCtx := auth.HTTPToContext()(ctx, &http.Request{Header: header})

	page, err := c.ListProducts(ctx, 1, "")
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
