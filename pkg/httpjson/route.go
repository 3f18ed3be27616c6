package httpjson

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"strings"

	kithttp "github.com/go-kit/kit/transport/http"
)

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
