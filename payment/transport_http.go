package payment

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/url"

	"github.com/go-kit/kit/sd"
	kitzipkin "github.com/go-kit/kit/tracing/zipkin"
	"github.com/go-kit/kit/transport"
	kithttp "github.com/go-kit/kit/transport/http"
	"github.com/go-kit/log"
	"github.com/go-kit/log/level"
	"github.com/gorilla/mux"
	"github.com/openzipkin/zipkin-go"

	"github.com/kitshop/kitshop/pkg/auth"
	"github.com/kitshop/kitshop/pkg/client"
	"github.com/kitshop/kitshop/pkg/errs"
	"github.com/kitshop/kitshop/pkg/httpjson"
)

// ReplayedHeader marks an answer that repeats an earlier one (Stripe's name for it): a
// charge or refund called again with the same key, which moved no money.
const ReplayedHeader = "Idempotent-Replayed"

const chargesPath = "/internal/v1/charges"

// Errors of the routing layer.
var (
	ErrRouteNotFound    = errs.E(errs.NotFound, "not_found", "no such route")
	ErrMethodNotAllowed = errs.E(errs.MethodNotAllowed, "method_not_allowed", "method not allowed on this route")
)

// MakeHTTPHandler serves the payment endpoints:
//
//	POST /internal/v1/charges              charge (201 first, 200 repeat)
//	GET  /internal/v1/charges?order_id=    the order's charges
//	GET  /internal/v1/charges/{id}         one charge
//	POST /internal/v1/charges/{id}/refund  full refund
func MakeHTTPHandler(e Endpoints, logger log.Logger, tracer *zipkin.Tracer) http.Handler {
	opts := []kithttp.ServerOption{
		kithttp.ServerErrorEncoder(errs.EncodeError),
		kithttp.ServerErrorHandler(transport.ErrorHandlerFunc(func(ctx context.Context, err error) {
			// Endpoint errors are logged by the observer; this catches decode and
			// encode failures, of which only the unexpected ones matter.
			if !errs.IsBusiness(err) {
				_ = level.Error(logger).Log("msg", "transport error", "err", err)
			}
		})),
		kithttp.ServerBefore(auth.HTTPToContext()),
	}
	if tracer != nil {
		opts = append(opts, kitzipkin.HTTPServerTrace(tracer))
	}
	r := mux.NewRouter()
	r.Methods(http.MethodPost).Path(chargesPath).Handler(kithttp.NewServer(e.ChargeEndpoint, decodeChargeRequest, encodeResponse, opts...))
	r.Methods(http.MethodGet).Path(chargesPath).Handler(kithttp.NewServer(e.ListChargesEndpoint, decodeListRequest, encodeResponse, opts...))
	r.Methods(http.MethodGet).Path(chargesPath + "/{id}").Handler(kithttp.NewServer(e.GetChargeEndpoint, decodeChargeIDRequest, encodeResponse, opts...))
	r.Methods(http.MethodPost).Path(chargesPath + "/{id}/refund").Handler(kithttp.NewServer(e.RefundEndpoint, decodeChargeIDRequest, encodeResponse, opts...))
	r.NotFoundHandler = http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { errs.WriteHTTP(w, ErrRouteNotFound) })
	r.MethodNotAllowedHandler = http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { errs.WriteHTTP(w, ErrMethodNotAllowed) })
	return r
}

func decodeChargeRequest(_ context.Context, r *http.Request) (any, error) {
	var req chargeRequest
	// Decode needs the ResponseWriter only to stop reading at the size limit; a
	// MaxBytesReader with a nil writer does the same.
	if err := httpjson.Decode(nil, r, &req); err != nil {
		return nil, err
	}
	return req, nil
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
			Name: "list_charges", Method: http.MethodGet, Encode: encodeListClientRequest, Decode: decodeListResponse, Idempotent: true,
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

func encodeChargeClientRequest(_ context.Context, r *http.Request, request any) error {
	setPath(r, chargesPath)
	body, err := json.Marshal(request.(chargeRequest))
	if err != nil {
		return err
	}
	r.Header.Set("Content-Type", "application/json")
	r.ContentLength = int64(len(body))
	r.Body = io.NopCloser(bytes.NewReader(body))
	return nil
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

func decodeChargeResponse(_ context.Context, resp *http.Response) (any, error) {
	var j chargeJSON
	if err := json.NewDecoder(resp.Body).Decode(&j); err != nil {
		return nil, err
	}
	return chargeResponse{chargeJSON: j, status: resp.StatusCode, replayed: resp.Header.Get(ReplayedHeader) == "true"}, nil
}

func decodeListResponse(_ context.Context, resp *http.Response) (any, error) {
	var lr listResponse
	if err := json.NewDecoder(resp.Body).Decode(&lr); err != nil {
		return nil, err
	}
	return lr, nil
}
