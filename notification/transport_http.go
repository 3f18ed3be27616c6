package notification

import (
	"context"
	"net/http"

	"github.com/openzipkin/zipkin-go"

	"github.com/kitshop/kitshop/pkg/httpjson"
)

// listNotificationsRoute is the one HTTP route: events do not arrive over HTTP (see
// Consumer).
var listNotificationsRoute = httpjson.Route{Method: http.MethodGet, Path: "/v1/notifications"}

// MakeHTTPHandler mounts the endpoint on its route.
func MakeHTTPHandler(e Endpoints, tracer *zipkin.Tracer) http.Handler {
	r := httpjson.NewRouter(tracer)
	r.Handle(listNotificationsRoute, e.ListNotificationsEndpoint, decodeListNotificationsRequest, httpjson.Encode)
	return r
}

func decodeListNotificationsRequest(context.Context, *http.Request) (any, error) {
	return listNotificationsRequest{}, nil
}
