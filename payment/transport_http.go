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

// The routes, each written once for MakeHTTPHandler and NewHTTPClient; all are
// internal.
var (
	chargeRoute      = httpjson.Route{Method: http.MethodPost, Path: "/internal/v1/charges"}             // 201 first, 200 repeat
	listChargesRoute = httpjson.Route{Method: http.MethodGet, Path: "/internal/v1/charges"}              // ?order_id=
	getChargeRoute   = httpjson.Route{Method: http.MethodGet, Path: "/internal/v1/charges/{id}"}         // one charge
	refundRoute      = httpjson.Route{Method: http.MethodPost, Path: "/internal/v1/charges/{id}/refund"} // full refund
)

// MakeHTTPHandler mounts the endpoints on their routes.
func MakeHTTPHandler(e Endpoints, tracer *zipkin.Tracer) http.Handler {
	r := httpjson.NewRouter(tracer)
	r.Handle(chargeRoute, e.ChargeEndpoint, httpjson.DecodeRequest[chargeRequest], encodeResponse)
	r.Handle(listChargesRoute, e.ListChargesEndpoint, decodeListChargesRequest, encodeResponse)
	r.Handle(getChargeRoute, e.GetChargeEndpoint, decodeChargeIDRequest, encodeResponse)
	r.Handle(refundRoute, e.RefundEndpoint, decodeChargeIDRequest, encodeResponse)
	return r
}

func decodeChargeIDRequest(_ context.Context, r *http.Request) (any, error) {
	return chargeIDRequest{ID: mux.Vars(r)["id"]}, nil
}

func decodeListChargesRequest(_ context.Context, r *http.Request) (any, error) {
	return listChargesRequest{OrderID: r.URL.Query().Get("order_id")}, nil
}

// encodeResponse writes the response as JSON, marking replays.
func encodeResponse(ctx context.Context, w http.ResponseWriter, response any) error {
	if r, ok := response.(interface{ Replayed() bool }); ok && r.Replayed() {
		w.Header().Set(ReplayedHeader, "true")
	}
	return httpjson.Encode(ctx, w, response)
}

// NewHTTPClient returns the payment Service of the instances instancer finds.
// Charges and refunds are keyed (by order ID, by charge ID), so every route may be
// retried; a declined card is a charge, not an error, and never trips the breaker.
func NewHTTPClient(instancer sd.Instancer, opts client.Options) Service {
	c := client.New("payment", instancer, opts)
	return Endpoints{
		ChargeEndpoint:      c.Endpoint(client.Route{Name: "charge", Method: chargeRoute.Method, Encode: httpjson.EncodeJSON(chargeRoute), Decode: decodeChargeResponse, Idempotent: true}),
		RefundEndpoint:      c.Endpoint(client.Route{Name: "refund", Method: refundRoute.Method, Encode: encodeChargeIDRequest(refundRoute), Decode: decodeChargeResponse, Idempotent: true}),
		GetChargeEndpoint:   c.Endpoint(client.Route{Name: "get_charge", Method: getChargeRoute.Method, Encode: encodeChargeIDRequest(getChargeRoute), Decode: decodeChargeResponse, Idempotent: true}),
		ListChargesEndpoint: c.Endpoint(client.Route{Name: "list_charges", Method: listChargesRoute.Method, Encode: encodeListChargesRequest, Decode: httpjson.DecodeResponse[listChargesResponse], Idempotent: true}),
	}
}

func encodeChargeIDRequest(rt httpjson.Route) kithttp.EncodeRequestFunc {
	return func(_ context.Context, r *http.Request, request any) error {
		rt.SetPath(r, request.(chargeIDRequest).ID)
		return nil
	}
}

func encodeListChargesRequest(_ context.Context, r *http.Request, request any) error {
	listChargesRoute.SetPath(r)
	r.URL.RawQuery = url.Values{"order_id": {request.(listChargesRequest).OrderID}}.Encode()
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
