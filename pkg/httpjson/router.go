package httpjson

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"strings"

	"github.com/go-kit/kit/endpoint"
	kithttp "github.com/go-kit/kit/transport/http"
	"github.com/gorilla/mux"
	"github.com/openzipkin/zipkin-go"
)

// Router mounts go-kit endpoints on gorilla/mux routes with ServerOptions, and answers
// unmatched paths (404 not_found) and methods (405 method_not_allowed) with the JSON
// error body.
type Router struct {
	mux    *mux.Router
	tracer *zipkin.Tracer
	opts   []kithttp.ServerOption
}

// NewRouter returns a router whose routes trace with tracer (nil: no spans) and also
// get opts.
func NewRouter(tracer *zipkin.Tracer, opts ...kithttp.ServerOption) *Router {
	r := &Router{mux: mux.NewRouter(), tracer: tracer, opts: opts}
	r.mux.NotFoundHandler = NotFound()
	r.mux.MethodNotAllowedHandler = MethodNotAllowed()
	return r
}

// Handle serves e at rt, decoding requests with dec and encoding answers with enc.
func (r *Router) Handle(rt Route, e endpoint.Endpoint, dec kithttp.DecodeRequestFunc, enc kithttp.EncodeResponseFunc) {
	opts := append(ServerOptions(r.tracer, rt.Method+" "+rt.Path), r.opts...)
	// Path before Methods: gorilla/mux 1.8 forgets a method mismatch when a later
	// route's method matcher matches, answering 404 where 405 is right.
	r.mux.Path(rt.Path).Methods(rt.Method).Handler(kithttp.NewServer(e, dec, enc, opts...))
}

func (r *Router) ServeHTTP(w http.ResponseWriter, req *http.Request) { r.mux.ServeHTTP(w, req) }

// Route is one HTTP route of a service, written once: the server mounts it with
// Router.Handle and the client points its requests at it with SetPath.
type Route struct {
	Method string
	Path   string // a gorilla/mux template such as /v1/products/{sku}
}

// SetPath sets r's path to rt's, its variables replaced in order by values. Each value
// is escaped, so that one holding a slash names a segment and never another route.
// Too many or too few values is a programming error, and panics.
func (rt Route) SetPath(r *http.Request, values ...string) {
	var path, raw strings.Builder
	rest := rt.Path
	for _, v := range values {
		before, after, ok := strings.Cut(rest, "{")
		_, tail, closed := strings.Cut(after, "}")
		if !ok || !closed {
			panic(fmt.Sprintf("httpjson: route %s %s has fewer variables than %d values", rt.Method, rt.Path, len(values)))
		}
		path.WriteString(before + v)
		raw.WriteString(before + url.PathEscape(v))
		rest = tail
	}
	if strings.Contains(rest, "{") {
		panic(fmt.Sprintf("httpjson: route %s %s has more variables than %d values", rt.Method, rt.Path, len(values)))
	}
	path.WriteString(rest)
	raw.WriteString(rest)
	r.URL.Path, r.URL.RawPath = path.String(), raw.String()
}

// EncodePath is a go-kit EncodeRequestFunc for a route without variables or body.
func EncodePath(rt Route) kithttp.EncodeRequestFunc {
	return func(_ context.Context, r *http.Request, _ any) error {
		rt.SetPath(r)
		return nil
	}
}

// EncodeJSON is a go-kit EncodeRequestFunc for a route without variables whose body is
// the request as JSON.
func EncodeJSON(rt Route) kithttp.EncodeRequestFunc {
	return func(ctx context.Context, r *http.Request, request any) error {
		rt.SetPath(r)
		return kithttp.EncodeJSONRequest(ctx, r, request)
	}
}
