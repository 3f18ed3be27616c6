package notification

import (
	"context"
	"net/http"

	"github.com/openzipkin/zipkin-go"

	"github.com/kitshop/kitshop/pkg/httpjson"
)

// MakeHTTPHandler mounts GET /v1/notifications. Events do not arrive over HTTP: see
// Consumer.
func MakeHTTPHandler(e Endpoints, tracer *zipkin.Tracer) http.Handler {
	r := httpjson.NewRouter(tracer)
	r.Handle("GET", "/v1/notifications", e.ListNotificationsEndpoint, decodeListNotificationsRequest, httpjson.Encode)
	return r
}

func decodeListNotificationsRequest(context.Context, *http.Request) (any, error) {
	return listNotificationsRequest{}, nil
}
