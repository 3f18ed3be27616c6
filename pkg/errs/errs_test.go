package errs

import (
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

func TestWriteHTTP(t *testing.T) {
	tests := []struct {
		name       string
		err        error
		requestID  string // the answer's X-Request-Id, set before the error is written
		wantStatus int
		wantBody   string
		retryAfter string
	}{
		{"domain", E(Unprocessable, "out_of_stock", "none left"), "", 422, `{"error":{"code":"out_of_stock","message":"none left"}}` + "\n", ""},
		{"wrapped", fmt.Errorf("reserving: %w", E(NotFound, "x_not_found", "no x")), "", 404, `"code":"x_not_found"`, ""},
		{"unknown hides detail", errors.New("pq: relation users does not exist"), "", 500, `{"error":{"code":"internal","message":"internal error"}}` + "\n", ""},
		{"rate limited", E(RateLimited, "rate_limited", "slow down"), "", 429, `"rate_limited"`, "1"},
		{"unavailable", E(Unavailable, "service_unavailable", "down"), "", 503, `"service_unavailable"`, "1"},
		{"request named in the header", E(NotFound, "x_not_found", "no x"), "req-7", 404,
			`{"error":{"code":"x_not_found","message":"no x","request_id":"req-7"}}` + "\n", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := httptest.NewRecorder()
			if tt.requestID != "" {
				w.Header().Set(RequestIDHeader, tt.requestID)
			}
			WriteHTTP(w, tt.err)
			if w.Code != tt.wantStatus || !strings.Contains(w.Body.String(), tt.wantBody) {
				t.Fatalf("%d %s, want %d %s", w.Code, w.Body, tt.wantStatus, tt.wantBody)
			}
			if got := w.Header().Get("Retry-After"); got != tt.retryAfter {
				t.Errorf("Retry-After %q, want %q", got, tt.retryAfter)
			}
			if ct := w.Header().Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
				t.Errorf("content type %q", ct)
			}
		})
	}
}

func TestRoundTrip(t *testing.T) {
	sentinel := E(Unprocessable, "out_of_stock", "not enough stock")
	tests := []struct {
		status int
		body   string
		want   *Error
	}{
		{422, `{"error":{"code":"out_of_stock","message":"only 2 left"}}`, &Error{Unprocessable, "out_of_stock", "only 2 left"}},
		{404, `{"error":{"code":"nope","message":"m"}}`, &Error{NotFound, "nope", "m"}},
		{502, `<html>bad gateway</html>`, &Error{Internal, "upstream_error", "upstream answered 502 Bad Gateway"}},
		{503, ``, &Error{Unavailable, "upstream_error", "upstream answered 503 Service Unavailable"}},
	}
	for _, tt := range tests {
		resp := &http.Response{StatusCode: tt.status, Body: io.NopCloser(strings.NewReader(tt.body))}
		got := FromResponse(resp)
		if *got != *tt.want {
			t.Errorf("%d %s: got %+v, want %+v", tt.status, tt.body, got, tt.want)
		}
	}
	decoded := FromResponse(&http.Response{StatusCode: 422, Body: io.NopCloser(strings.NewReader(`{"error":{"code":"out_of_stock","message":"x"}}`))})
	if !errors.Is(decoded, sentinel) || errors.Is(decoded, E(Unprocessable, "payment_declined", "")) {
		t.Error("errors.Is must match kind and code")
	}
	if !IsBusiness(decoded) || IsBusiness(E(Unavailable, "x", "")) || IsBusiness(errors.New("x")) {
		t.Error("IsBusiness wrong")
	}
}
