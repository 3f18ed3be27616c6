package httpstatus

import (
	"net/http"
	"net/http/httptest"
	"testing"
)

func TestRecorder(t *testing.T) {
	tests := []struct {
		name    string
		handler func(w http.ResponseWriter)
		want    int
		written bool
	}{
		{"nothing written", func(http.ResponseWriter) {}, http.StatusOK, false},
		{"a header set, nothing written", func(w http.ResponseWriter) { w.Header().Set("X-A", "1") }, http.StatusOK, false},
		{"a body only", func(w http.ResponseWriter) { w.Write([]byte("x")) }, http.StatusOK, true},
		{"a status", func(w http.ResponseWriter) { w.WriteHeader(http.StatusTeapot) }, http.StatusTeapot, true},
		{"the first of two statuses", func(w http.ResponseWriter) {
			w.WriteHeader(http.StatusServiceUnavailable)
			w.WriteHeader(http.StatusOK)
		}, http.StatusServiceUnavailable, true},
		{"a status after the body", func(w http.ResponseWriter) {
			w.Write([]byte("x"))
			w.WriteHeader(http.StatusInternalServerError)
		}, http.StatusOK, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := httptest.NewRecorder()
			rec := NewRecorder(w)
			tt.handler(rec)
			if rec.Status != tt.want {
				t.Errorf("Status = %d, want %d", rec.Status, tt.want)
			}
			if rec.Written() != tt.written {
				t.Errorf("Written() = %v, want %v", rec.Written(), tt.written)
			}
			if w.Code != tt.want {
				t.Errorf("the client got %d, want %d", w.Code, tt.want)
			}
		})
	}
}
