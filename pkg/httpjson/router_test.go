package httpjson

import (
	"context"
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
