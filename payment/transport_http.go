package payment

import (
	"context"
	"net/http"
	"net/url"

	"github.com/go-kit/kit/sd"
	kithttp "github.com/go-kit/kit/transport/http"
	"github.com/gorilla/mux"
	"github.com/openzipkin/zipkin-go"

	"github.com/kitshop/kitshop/pkg/client"
	"github.com/kitshop/kitshop/pkg/httpjson"
)

// ReplayedHeader marks an answer that repeats an earlier one (Stripe's name for it): a
// charge or refund called again with the same key, which moved no money.
const ReplayedHeader = "Idempotent-Replayed"

const chargesPath = "/internal/v1/charges"

// MakeHTTPHandler serves the payment endpoints, all internal:
//
//	POST /internal/v1/charges              charge (201 first, 200 repeat)
//	GET  /internal/v1/charges?order_id=    the order's charges
//	GET  /internal/v1/charges/{id}         one charge
//	POST /internal/v1/charges/{id}/refund  full refund
func MakeHTTPHandler(e Endpoints, tracer *zipkin.Tracer) http.Handler {
	r := httpjson.NewRouter(tracer)
	r.Handle("POST", chargesPath, e.ChargeEndpoint, decodeChargeRequest, encodeResponse)
	r.Handle("GET", chargesPath, e.ListChargesEndpoint, decodeListRequest, encodeResponse)
	r.Handle("GET", chargesPath+"/{id}", e.GetChargeEndpoint, decodeChargeIDRequest, encodeResponse)
	r.Handle("POST", chargesPath+"/{id}/refund", e.RefundEndpoint, decodeChargeIDRequest, encodeResponse)
	return r
}

func decodeChargeRequest(_ context.Context, r *http.Request) (any, error) {
	var req chargeRequest
	err := httpjson.Decode(nil, r, &req)
	return req, err
}

func decodeChargeIDRequest(_ context.Context, r *http.Request) (any, error) {
	return chargeIDRequest{ID: mux.Vars(r)["id"]}, nil
}

func decodeListRequest(_ context.Context, r *http.Request) (any, error) {
	return listRequest{OrderID: r.URL.Query().Get("order_id")}, nil
}

// encodeResponse writes the response as JSON, marking replays.
func encodeResponse(ctx context.Context, w http.ResponseWriter, response any) error {
	if r, ok := response.(interface{ Replayed() bool }); ok && r.Replayed() {
		w.Header().Set(ReplayedHeader, "true")
	}
	return httpjson.Encode(ctx, w, response)
}

// NewHTTPClient returns a Service that calls the payment instances instancer reports.
// Charges and refunds are keyed (by order ID, by charge ID), so every route may be
// retried; a declined card is a charge, not an error, and never trips the breaker.
func NewHTTPClient(instancer sd.Instancer, opts client.Options) Service {
	c := client.New("payment", instancer, opts)
	return Endpoints{
		ChargeEndpoint: c.Endpoint(client.Route{
			Name: "charge", Method: http.MethodPost, Encode: encodeChargeClientRequest, Decode: decodeChargeResponse, Idempotent: true,
		}),
		RefundEndpoint: c.Endpoint(client.Route{
			Name: "refund", Method: http.MethodPost, Encode: encodeRefundClientRequest, Decode: decodeChargeResponse, Idempotent: true,
		}),
		GetChargeEndpoint: c.Endpoint(client.Route{
			Name: "get_charge", Method: http.MethodGet, Encode: encodeGetChargeClientRequest, Decode: decodeChargeResponse, Idempotent: true,
		}),
		ListChargesEndpoint: c.Endpoint(client.Route{
			Name: "list_charges", Method: http.MethodGet, Encode: encodeListClientRequest, Decode: httpjson.DecodeResponse[listResponse], Idempotent: true,
		}),
	}
}

// setPath sets the request's path from segments, escaping each.
func setPath(r *http.Request, path string, segments ...string) {
	raw := path
	for _, s := range segments {
		path += "/" + s
		raw += "/" + url.PathEscape(s)
	}
	r.URL.Path, r.URL.RawPath = path, raw
}

func encodeChargeClientRequest(ctx context.Context, r *http.Request, request any) error {
	setPath(r, chargesPath)
	return kithttp.EncodeJSONRequest(ctx, r, request)
}

func encodeRefundClientRequest(_ context.Context, r *http.Request, request any) error {
	setPath(r, chargesPath, request.(chargeIDRequest).ID, "refund")
	return nil
}

func encodeGetChargeClientRequest(_ context.Context, r *http.Request, request any) error {
	setPath(r, chargesPath, request.(chargeIDRequest).ID)
	return nil
}

func encodeListClientRequest(_ context.Context, r *http.Request, request any) error {
	setPath(r, chargesPath)
	r.URL.RawQuery = url.Values{"order_id": {request.(listRequest).OrderID}}.Encode()
	return nil
}

// decodeChargeResponse reads a charge and whether the answer was a replay.
func decodeChargeResponse(ctx context.Context, resp *http.Response) (any, error) {
	v, err := httpjson.DecodeResponse[chargeView](ctx, resp)
	if err != nil {
		return nil, err
	}
	return chargeResponse{chargeView: v.(chargeView), status: resp.StatusCode, replayed: resp.Header.Get(ReplayedHeader) == "true"}, nil
}
