package notification

import (
	"context"
	"net/http"

	kithttp "github.com/go-kit/kit/transport/http"
	"github.com/gorilla/mux"
	"github.com/openzipkin/zipkin-go"

	"github.com/kitshop/kitshop/pkg/httpjson"
)

// MakeHTTPHandler mounts GET /v1/notifications. Events do not arrive over HTTP: see
// Consumer.
func MakeHTTPHandler(e Endpoints, tracer *zipkin.Tracer) http.Handler {
	r := mux.NewRouter()
	r.NotFoundHandler = httpjson.NotFound()
	r.MethodNotAllowedHandler = httpjson.MethodNotAllowed()
	opts := httpjson.ServerOptions(tracer, "GET /v1/notifications")
	r.Methods("GET").Path("/v1/notifications").Handler(
		kithttp.NewServer(e.ListNotificationsEndpoint, decodeListNotificationsRequest, httpjson.Encode, opts...))
	return r
}

func decodeListNotificationsRequest(context.Context, *http.Request) (any, error) {
	return listNotificationsRequest{}, nil
}
