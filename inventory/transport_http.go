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

// The routes, each written once for MakeHTTPHandler and NewHTTPClient: the public
// catalogue under /v1/ and the reservations other services use under /internal/v1/.
var (
	listProductsRoute   = httpjson.Route{Method: http.MethodGet, Path: "/v1/products"}
	getProductRoute     = httpjson.Route{Method: http.MethodGet, Path: "/v1/products/{sku}"}
	createProductRoute  = httpjson.Route{Method: http.MethodPost, Path: "/v1/products"}
	setStockRoute       = httpjson.Route{Method: http.MethodPut, Path: "/v1/products/{sku}/stock"}
	reserveRoute        = httpjson.Route{Method: http.MethodPost, Path: "/internal/v1/reservations"}
	getReservationRoute = httpjson.Route{Method: http.MethodGet, Path: "/internal/v1/reservations/{order_id}"}
	commitRoute         = httpjson.Route{Method: http.MethodPost, Path: "/internal/v1/reservations/{order_id}/commit"}
	releaseRoute        = httpjson.Route{Method: http.MethodPost, Path: "/internal/v1/reservations/{order_id}/release"}
)

// MakeHTTPHandler mounts the endpoints on their routes.
func MakeHTTPHandler(e Endpoints, tracer *zipkin.Tracer) http.Handler {
	r := httpjson.NewRouter(tracer)
	r.Handle(listProductsRoute, e.ListProductsEndpoint, decodeListProductsRequest, httpjson.Encode)
	r.Handle(getProductRoute, e.GetProductEndpoint, decodeGetProductRequest, httpjson.Encode)
	r.Handle(createProductRoute, e.CreateProductEndpoint, httpjson.DecodeRequest[createProductRequest], httpjson.Encode)
	r.Handle(setStockRoute, e.SetStockEndpoint, decodeSetStockRequest, httpjson.Encode)
	r.Handle(reserveRoute, e.ReserveEndpoint, httpjson.DecodeRequest[reserveRequest], httpjson.Encode)
	r.Handle(getReservationRoute, e.GetReservationEndpoint, decodeOrderIDRequest, httpjson.Encode)
	r.Handle(commitRoute, e.CommitEndpoint, decodeOrderIDRequest, httpjson.Encode)
	r.Handle(releaseRoute, e.ReleaseEndpoint, decodeOrderIDRequest, httpjson.Encode)
	return r
}

func decodeListProductsRequest(_ context.Context, r *http.Request) (any, error) {
	q := r.URL.Query()
	req := listProductsRequest{Category: q.Get("category"), Cursor: q.Get("cursor")}
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

func decodeSetStockRequest(_ context.Context, r *http.Request) (any, error) {
	var req setStockRequest
	err := httpjson.Decode(nil, r, &req)
	req.SKU = mux.Vars(r)["sku"]
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
		ListProductsEndpoint:   c.Endpoint(client.Route{Name: "list_products", Method: listProductsRoute.Method, Encode: encodeListProductsRequest, Decode: httpjson.DecodeResponse[listProductsResponse], Idempotent: true}),
		GetProductEndpoint:     c.Endpoint(client.Route{Name: "get_product", Method: getProductRoute.Method, Encode: encodeGetProductRequest, Decode: httpjson.DecodeResponse[productView], Idempotent: true}),
		CreateProductEndpoint:  c.Endpoint(client.Route{Name: "create_product", Method: createProductRoute.Method, Encode: httpjson.EncodeJSON(createProductRoute), Decode: httpjson.DecodeResponse[stockView]}),
		SetStockEndpoint:       c.Endpoint(client.Route{Name: "set_stock", Method: setStockRoute.Method, Encode: encodeSetStockRequest, Decode: httpjson.DecodeResponse[stockView], Idempotent: true}),
		ReserveEndpoint:        c.Endpoint(client.Route{Name: "reserve", Method: reserveRoute.Method, Encode: httpjson.EncodeJSON(reserveRoute), Decode: httpjson.DecodeResponse[reservationView], Idempotent: true}),
		GetReservationEndpoint: c.Endpoint(client.Route{Name: "get_reservation", Method: getReservationRoute.Method, Encode: encodeOrderIDRequest(getReservationRoute), Decode: httpjson.DecodeResponse[reservationView], Idempotent: true}),
		CommitEndpoint:         c.Endpoint(client.Route{Name: "commit", Method: commitRoute.Method, Encode: encodeOrderIDRequest(commitRoute), Decode: httpjson.DecodeResponse[reservationView], Idempotent: true}),
		ReleaseEndpoint:        c.Endpoint(client.Route{Name: "release", Method: releaseRoute.Method, Encode: encodeOrderIDRequest(releaseRoute), Decode: httpjson.DecodeResponse[reservationView], Idempotent: true}),
	}
}

func encodeListProductsRequest(_ context.Context, r *http.Request, request any) error {
	req := request.(listProductsRequest)
	listProductsRoute.SetPath(r)
	q := url.Values{}
	if req.Category != "" {
		q.Set("category", req.Category)
	}
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
	getProductRoute.SetPath(r, request.(getProductRequest).SKU)
	return nil
}

func encodeSetStockRequest(ctx context.Context, r *http.Request, request any) error {
	req := request.(setStockRequest)
	setStockRoute.SetPath(r, req.SKU)
	return kithttp.EncodeJSONRequest(ctx, r, req)
}

func encodeOrderIDRequest(rt httpjson.Route) kithttp.EncodeRequestFunc {
	return func(_ context.Context, r *http.Request, request any) error {
		rt.SetPath(r, request.(orderIDRequest).OrderID)
		return nil
	}
}
