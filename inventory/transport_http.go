package inventory

import (
	"context"
	"net/http"
	"net/url"
	"strconv"

	"github.com/go-kit/kit/sd"
	kithttp "github.com/go-kit/kit/transport/http"
	"github.com/gorilla/mux"
	"github.com/openzipkin/zipkin-go"

	"github.com/kitshop/kitshop/pkg/client"
	"github.com/kitshop/kitshop/pkg/httpjson"
)

// MakeHTTPHandler mounts the endpoints on their routes: the public catalogue under
// /v1/ and the reservations other services use under /internal/v1/.
func MakeHTTPHandler(e Endpoints, tracer *zipkin.Tracer) http.Handler {
	r := httpjson.NewRouter(tracer)
	r.Handle("GET", "/v1/products", e.ListProductsEndpoint, decodeListProductsRequest, httpjson.Encode)
	r.Handle("GET", "/v1/products/{sku}", e.GetProductEndpoint, decodeGetProductRequest, httpjson.Encode)
	r.Handle("POST", "/v1/products", e.CreateProductEndpoint, decodeCreateProductRequest, httpjson.Encode)
	r.Handle("PUT", "/v1/products/{sku}/stock", e.SetStockEndpoint, decodeSetStockRequest, httpjson.Encode)
	r.Handle("POST", "/internal/v1/reservations", e.ReserveEndpoint, decodeReserveRequest, httpjson.Encode)
	r.Handle("GET", "/internal/v1/reservations/{order_id}", e.GetReservationEndpoint, decodeOrderIDRequest, httpjson.Encode)
	r.Handle("POST", "/internal/v1/reservations/{order_id}/commit", e.CommitEndpoint, decodeOrderIDRequest, httpjson.Encode)
	r.Handle("POST", "/internal/v1/reservations/{order_id}/release", e.ReleaseEndpoint, decodeOrderIDRequest, httpjson.Encode)
	return r
}

func decodeListProductsRequest(_ context.Context, r *http.Request) (any, error) {
	q := r.URL.Query()
	req := listProductsRequest{Cursor: q.Get("cursor")}
	if s := q.Get("limit"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 {
			return nil, ErrInvalidLimit
		}
		req.Limit = n
	}
	return req, nil
}

func decodeGetProductRequest(_ context.Context, r *http.Request) (any, error) {
	return getProductRequest{SKU: mux.Vars(r)["sku"]}, nil
}

func decodeCreateProductRequest(_ context.Context, r *http.Request) (any, error) {
	var req createProductRequest
	err := httpjson.Decode(nil, r, &req)
	return req, err
}

func decodeSetStockRequest(_ context.Context, r *http.Request) (any, error) {
	var req setStockRequest
	err := httpjson.Decode(nil, r, &req)
	req.SKU = mux.Vars(r)["sku"]
	return req, err
}

func decodeReserveRequest(_ context.Context, r *http.Request) (any, error) {
	var req reserveRequest
	err := httpjson.Decode(nil, r, &req)
	return req, err
}

func decodeOrderIDRequest(_ context.Context, r *http.Request) (any, error) {
	return orderIDRequest{OrderID: mux.Vars(r)["order_id"]}, nil
}

// NewHTTPClient returns the inventory Service of the instances instancer finds.
// Reads, reservations (keyed by order ID), commits and releases are idempotent and
// so retried on another instance when one fails; product creation is not.
func NewHTTPClient(instancer sd.Instancer, opts client.Options) Service {
	c := client.New("inventory", instancer, opts)
	return Endpoints{
		ListProductsEndpoint:   c.Endpoint(client.Route{Name: "list_products", Method: "GET", Encode: encodeListProductsRequest, Decode: httpjson.DecodeResponse[listProductsResponse], Idempotent: true}),
		GetProductEndpoint:     c.Endpoint(client.Route{Name: "get_product", Method: "GET", Encode: encodeGetProductRequest, Decode: httpjson.DecodeResponse[productView], Idempotent: true}),
		CreateProductEndpoint:  c.Endpoint(client.Route{Name: "create_product", Method: "POST", Encode: encodeCreateProductRequest, Decode: httpjson.DecodeResponse[stockView]}),
		SetStockEndpoint:       c.Endpoint(client.Route{Name: "set_stock", Method: "PUT", Encode: encodeSetStockRequest, Decode: httpjson.DecodeResponse[stockView], Idempotent: true}),
		ReserveEndpoint:        c.Endpoint(client.Route{Name: "reserve", Method: "POST", Encode: encodeReserveRequest, Decode: httpjson.DecodeResponse[reservationView], Idempotent: true}),
		GetReservationEndpoint: c.Endpoint(client.Route{Name: "get_reservation", Method: "GET", Encode: encodeReservationPath(""), Decode: httpjson.DecodeResponse[reservationView], Idempotent: true}),
		CommitEndpoint:         c.Endpoint(client.Route{Name: "commit", Method: "POST", Encode: encodeReservationPath("/commit"), Decode: httpjson.DecodeResponse[reservationView], Idempotent: true}),
		ReleaseEndpoint:        c.Endpoint(client.Route{Name: "release", Method: "POST", Encode: encodeReservationPath("/release"), Decode: httpjson.DecodeResponse[reservationView], Idempotent: true}),
	}
}

func encodeListProductsRequest(_ context.Context, r *http.Request, request any) error {
	req := request.(listProductsRequest)
	r.URL.Path = "/v1/products"
	q := url.Values{}
	if req.Limit != 0 {
		q.Set("limit", strconv.Itoa(req.Limit))
	}
	if req.Cursor != "" {
		q.Set("cursor", req.Cursor)
	}
	r.URL.RawQuery = q.Encode()
	return nil
}

func encodeGetProductRequest(_ context.Context, r *http.Request, request any) error {
	r.URL.Path = "/v1/products/" + request.(getProductRequest).SKU
	return nil
}

func encodeCreateProductRequest(ctx context.Context, r *http.Request, request any) error {
	r.URL.Path = "/v1/products"
	return kithttp.EncodeJSONRequest(ctx, r, request)
}

func encodeSetStockRequest(ctx context.Context, r *http.Request, request any) error {
	req := request.(setStockRequest)
	r.URL.Path = "/v1/products/" + req.SKU + "/stock"
	return kithttp.EncodeJSONRequest(ctx, r, req)
}

func encodeReserveRequest(ctx context.Context, r *http.Request, request any) error {
	r.URL.Path = "/internal/v1/reservations"
	return kithttp.EncodeJSONRequest(ctx, r, request)
}

func encodeReservationPath(suffix string) kithttp.EncodeRequestFunc {
	return func(_ context.Context, r *http.Request, request any) error {
		r.URL.Path = "/internal/v1/reservations/" + request.(orderIDRequest).OrderID + suffix
		return nil
	}
}
