package httpjson

import (
	"net/http"

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
