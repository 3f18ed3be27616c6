package httpjson

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	kithttp "github.com/go-kit/kit/transport/http"
)

func TestRouter(t *testing.T) {
	r := NewRouter(nil)
	echo := func(_ context.Context, request any) (any, error) { return map[string]any{"got": request}, nil }
	decode := func(_ context.Context, req *http.Request) (any, error) { return req.Method + " " + req.URL.Path, nil }
	r.Handle(Route{"GET", "/things"}, echo, decode, Encode)
	r.Handle(Route{"POST", "/things/{id}"}, echo, decode, Encode)
	r.Handle(Route{"DELETE", "/other"}, echo, decode, kithttp.EncodeJSONResponse)

	tests := []struct {
		method, path string
		status       int
		body         string
	}{
		{"GET", "/things", 200, `{"got":"GET /things"}`},
		{"POST", "/things/7", 200, `{"got":"POST /things/7"}`},
		{"GET", "/nothing", 404, `"code":"not_found"`},
		{"PUT", "/things", 405, `"code":"method_not_allowed"`},
		// A method another route has must still be a 405 on this path.
		{"POST", "/things", 405, `"code":"method_not_allowed"`},
		{"DELETE", "/things/7", 405, `"code":"method_not_allowed"`},
	}
	for _, tt := range tests {
		w := httptest.NewRecorder()
		r.ServeHTTP(w, httptest.NewRequest(tt.method, tt.path, nil))
		if w.Code != tt.status || !strings.Contains(w.Body.String(), tt.body) {
			t.Errorf("%s %s = %d %s, want %d %s", tt.method, tt.path, w.Code, w.Body, tt.status, tt.body)
		}
	}
}

func TestRouteSetPath(t *testing.T) {
	tests := []struct {
		path      string
		values    []string
		want, raw string
	}{
		{"/v1/cart", nil, "/v1/cart", "/v1/cart"},
		{"/v1/products/{sku}", []string{"MUG-1"}, "/v1/products/MUG-1", "/v1/products/MUG-1"},
		{"/v1/orders/{id}/cancel", []string{"a b"}, "/v1/orders/a b/cancel", "/v1/orders/a%20b/cancel"},
		// A slash in a value stays in its segment: it cannot reach /v1/products/{sku}/stock.
		{"/v1/products/{sku}", []string{"x/stock"}, "/v1/products/x/stock", "/v1/products/x%2Fstock"},
		{"/a/{x}/b/{y}", []string{"1", "2"}, "/a/1/b/2", "/a/1/b/2"},
	}
	for _, tt := range tests {
		r := httptest.NewRequest("GET", "http://upstream/", nil)
		Route{"GET", tt.path}.SetPath(r, tt.values...)
		if r.URL.Path != tt.want || r.URL.EscapedPath() != tt.raw {
			t.Errorf("%s with %q = %q (sent as %q), want %q (%q)", tt.path, tt.values, r.URL.Path, r.URL.EscapedPath(), tt.want, tt.raw)
		}
	}
}

func TestRouteSetPathPanicsOnMismatch(t *testing.T) {
	for _, tt := range []struct {
		path   string
		values []string
	}{
		{"/v1/products/{sku}", nil},
		{"/v1/products", []string{"MUG-1"}},
	} {
		func() {
			defer func() {
				if recover() == nil {
					t.Errorf("%s with %q did not panic", tt.path, tt.values)
				}
			}()
			Route{"GET", tt.path}.SetPath(httptest.NewRequest("GET", "http://upstream/", nil), tt.values...)
		}()
	}
}

func TestEncodeJSON(t *testing.T) {
	r := httptest.NewRequest("POST", "http://upstream/", nil)
	if err := EncodeJSON(Route{"POST", "/v1/users"})(context.Background(), r, map[string]string{"email": "a@b.c"}); err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(r.Body)
	if r.URL.Path != "/v1/users" || r.Header.Get("Content-Type") != "application/json; charset=utf-8" || string(body) != "{\"email\":\"a@b.c\"}\n" {
		t.Errorf("EncodeJSON: %s %q %q", r.URL.Path, r.Header.Get("Content-Type"), body)
	}
}
