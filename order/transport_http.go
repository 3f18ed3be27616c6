package order

import (
	"context"
	"net/http"

	"github.com/go-kit/kit/sd"
	kithttp "github.com/go-kit/kit/transport/http"
	"github.com/gorilla/mux"
	"github.com/openzipkin/zipkin-go"

	"github.com/kitshop/kitshop/pkg/client"
	"github.com/kitshop/kitshop/pkg/httpjson"
)

// IdempotencyKeyHeader carries the client's key for POST /v1/orders.
const IdempotencyKeyHeader = "Idempotency-Key"

// MakeHTTPHandler mounts the endpoints on their routes, all under /v1/ and all for a
// signed-in customer.
func MakeHTTPHandler(e Endpoints, tracer *zipkin.Tracer) http.Handler {
	r := httpjson.NewRouter(tracer)
	r.Handle("GET", "/v1/cart", e.GetCartEndpoint, decodeNothing, httpjson.Encode)
	r.Handle("PUT", "/v1/cart/items/{sku}", e.SetCartItemEndpoint, decodeSetCartItemRequest, httpjson.Encode)
	r.Handle("DELETE", "/v1/cart/items/{sku}", e.RemoveCartItemEndpoint, decodeSKURequest, httpjson.Encode)
	r.Handle("POST", "/v1/orders", e.PlaceOrderEndpoint, decodePlaceOrderRequest, httpjson.Encode)
	r.Handle("GET", "/v1/orders", e.ListOrdersEndpoint, decodeNothing, httpjson.Encode)
	r.Handle("GET", "/v1/orders/{id}", e.GetOrderEndpoint, decodeOrderIDRequest, httpjson.Encode)
	r.Handle("POST", "/v1/orders/{id}/cancel", e.CancelOrderEndpoint, decodeOrderIDRequest, httpjson.Encode)
	return r
}

func decodeNothing(context.Context, *http.Request) (any, error) { return nil, nil }

func decodeSetCartItemRequest(_ context.Context, r *http.Request) (any, error) {
	var req setCartItemRequest
	err := httpjson.Decode(nil, r, &req)
	req.SKU = mux.Vars(r)["sku"]
	return req, err
}

func decodeSKURequest(_ context.Context, r *http.Request) (any, error) {
	return skuRequest{SKU: mux.Vars(r)["sku"]}, nil
}

func decodePlaceOrderRequest(_ context.Context, r *http.Request) (any, error) {
	var req placeOrderRequest
	err := httpjson.Decode(nil, r, &req)
	req.IdempotencyKey = r.Header.Get(IdempotencyKeyHeader)
	return req, err
}

func decodeOrderIDRequest(_ context.Context, r *http.Request) (any, error) {
	return orderIDRequest{ID: mux.Vars(r)["id"]}, nil
}

// NewHTTPClient returns the order Service of the instances instancer finds, acting for
// the user whose token the context carries. Reads, cart updates and checkouts (keyed
// by their Idempotency-Key) are retried on another instance when one fails;
// cancellations are not.
func NewHTTPClient(instancer sd.Instancer, opts client.Options) Service {
	c := client.New("order", instancer, opts)
	return Endpoints{
		GetCartEndpoint:        c.Endpoint(client.Route{Name: "get_cart", Method: "GET", Encode: encodePath("/v1/cart"), Decode: httpjson.DecodeResponse[cartView], Idempotent: true}),
		SetCartItemEndpoint:    c.Endpoint(client.Route{Name: "set_cart_item", Method: "PUT", Encode: encodeSetCartItemRequest, Decode: httpjson.DecodeResponse[cartView], Idempotent: true}),
		RemoveCartItemEndpoint: c.Endpoint(client.Route{Name: "remove_cart_item", Method: "DELETE", Encode: encodeSKURequest, Decode: httpjson.DecodeResponse[cartView], Idempotent: true}),
		PlaceOrderEndpoint:     c.Endpoint(client.Route{Name: "place_order", Method: "POST", Encode: encodePlaceOrderRequest, Decode: httpjson.DecodeResponse[orderView], Idempotent: true}),
		ListOrdersEndpoint:     c.Endpoint(client.Route{Name: "list_orders", Method: "GET", Encode: encodePath("/v1/orders"), Decode: httpjson.DecodeResponse[listOrdersResponse], Idempotent: true}),
		GetOrderEndpoint:       c.Endpoint(client.Route{Name: "get_order", Method: "GET", Encode: encodeOrderPath(""), Decode: httpjson.DecodeResponse[orderView], Idempotent: true}),
		CancelOrderEndpoint:    c.Endpoint(client.Route{Name: "cancel_order", Method: "POST", Encode: encodeOrderPath("/cancel"), Decode: httpjson.DecodeResponse[orderView]}),
	}
}

func encodePath(path string) kithttp.EncodeRequestFunc {
	return func(_ context.Context, r *http.Request, _ any) error {
		r.URL.Path = path
		return nil
	}
}

func encodeSetCartItemRequest(ctx context.Context, r *http.Request, request any) error {
	req := request.(setCartItemRequest)
	r.URL.Path = "/v1/cart/items/" + req.SKU
	return kithttp.EncodeJSONRequest(ctx, r, req)
}

func encodeSKURequest(_ context.Context, r *http.Request, request any) error {
	r.URL.Path = "/v1/cart/items/" + request.(skuRequest).SKU
	return nil
}

func encodePlaceOrderRequest(ctx context.Context, r *http.Request, request any) error {
	req := request.(placeOrderRequest)
	r.URL.Path = "/v1/orders"
	r.Header.Set(IdempotencyKeyHeader, req.IdempotencyKey)
	return kithttp.EncodeJSONRequest(ctx, r, req)
}

func encodeOrderPath(suffix string) kithttp.EncodeRequestFunc {
	return func(_ context.Context, r *http.Request, request any) error {
		r.URL.Path = "/v1/orders/" + request.(orderIDRequest).ID + suffix
		return nil
	}
}
