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

// The routes, each written once for MakeHTTPHandler and NewHTTPClient; all are under
// /v1/ and all for a signed-in customer.
var (
	getCartRoute        = httpjson.Route{Method: http.MethodGet, Path: "/v1/cart"}
	setCartItemRoute    = httpjson.Route{Method: http.MethodPut, Path: "/v1/cart/items/{sku}"}
	removeCartItemRoute = httpjson.Route{Method: http.MethodDelete, Path: "/v1/cart/items/{sku}"}
	placeOrderRoute     = httpjson.Route{Method: http.MethodPost, Path: "/v1/orders"}
	listOrdersRoute     = httpjson.Route{Method: http.MethodGet, Path: "/v1/orders"}
	getOrderRoute       = httpjson.Route{Method: http.MethodGet, Path: "/v1/orders/{id}"}
	cancelOrderRoute    = httpjson.Route{Method: http.MethodPost, Path: "/v1/orders/{id}/cancel"}
)

// MakeHTTPHandler mounts the endpoints on their routes.
func MakeHTTPHandler(e Endpoints, tracer *zipkin.Tracer) http.Handler {
	r := httpjson.NewRouter(tracer)
	r.Handle(getCartRoute, e.GetCartEndpoint, kithttp.NopRequestDecoder, httpjson.Encode)
	r.Handle(setCartItemRoute, e.SetCartItemEndpoint, decodeSetCartItemRequest, httpjson.Encode)
	r.Handle(removeCartItemRoute, e.RemoveCartItemEndpoint, decodeSKURequest, httpjson.Encode)
	r.Handle(placeOrderRoute, e.PlaceOrderEndpoint, decodePlaceOrderRequest, httpjson.Encode)
	r.Handle(listOrdersRoute, e.ListOrdersEndpoint, kithttp.NopRequestDecoder, httpjson.Encode)
	r.Handle(getOrderRoute, e.GetOrderEndpoint, decodeOrderIDRequest, httpjson.Encode)
	r.Handle(cancelOrderRoute, e.CancelOrderEndpoint, decodeOrderIDRequest, httpjson.Encode)
	return r
}

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
		GetCartEndpoint:        c.Endpoint(client.Route{Name: "get_cart", Method: getCartRoute.Method, Encode: httpjson.EncodePath(getCartRoute), Decode: httpjson.DecodeResponse[cartView], Idempotent: true}),
		SetCartItemEndpoint:    c.Endpoint(client.Route{Name: "set_cart_item", Method: setCartItemRoute.Method, Encode: encodeSetCartItemRequest, Decode: httpjson.DecodeResponse[cartView], Idempotent: true}),
		RemoveCartItemEndpoint: c.Endpoint(client.Route{Name: "remove_cart_item", Method: removeCartItemRoute.Method, Encode: encodeSKURequest, Decode: httpjson.DecodeResponse[cartView], Idempotent: true}),
		PlaceOrderEndpoint:     c.Endpoint(client.Route{Name: "place_order", Method: placeOrderRoute.Method, Encode: encodePlaceOrderRequest, Decode: httpjson.DecodeResponse[orderView], Idempotent: true}),
		ListOrdersEndpoint:     c.Endpoint(client.Route{Name: "list_orders", Method: listOrdersRoute.Method, Encode: httpjson.EncodePath(listOrdersRoute), Decode: httpjson.DecodeResponse[listOrdersResponse], Idempotent: true}),
		GetOrderEndpoint:       c.Endpoint(client.Route{Name: "get_order", Method: getOrderRoute.Method, Encode: encodeOrderIDRequest(getOrderRoute), Decode: httpjson.DecodeResponse[orderView], Idempotent: true}),
		CancelOrderEndpoint:    c.Endpoint(client.Route{Name: "cancel_order", Method: cancelOrderRoute.Method, Encode: encodeOrderIDRequest(cancelOrderRoute), Decode: httpjson.DecodeResponse[orderView]}),
	}
}

func encodeSetCartItemRequest(ctx context.Context, r *http.Request, request any) error {
	req := request.(setCartItemRequest)
	setCartItemRoute.SetPath(r, req.SKU)
	return kithttp.EncodeJSONRequest(ctx, r, req)
}

func encodeSKURequest(_ context.Context, r *http.Request, request any) error {
	removeCartItemRoute.SetPath(r, request.(skuRequest).SKU)
	return nil
}

func encodePlaceOrderRequest(ctx context.Context, r *http.Request, request any) error {
	req := request.(placeOrderRequest)
	placeOrderRoute.SetPath(r)
	r.Header.Set(IdempotencyKeyHeader, req.IdempotencyKey)
	return kithttp.EncodeJSONRequest(ctx, r, req)
}

func encodeOrderIDRequest(rt httpjson.Route) kithttp.EncodeRequestFunc {
	return func(_ context.Context, r *http.Request, request any) error {
		rt.SetPath(r, request.(orderIDRequest).ID)
		return nil
	}
}
