package app

import (
	"io"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
)

func TestCloseWhenDraining(t *testing.T) {
	tests := []struct {
		name      string
		draining  bool
		wantClose bool
	}{
		{"serving: the connection is kept", false, false},
		{"draining: the client is told to leave", true, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var draining atomic.Bool
			draining.Store(tt.draining)
			srv := httptest.NewServer(closeWhenDraining(&draining, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				_, _ = io.WriteString(w, "ok")
			})))
			defer srv.Close()
			resp, err := srv.Client().Get(srv.URL)
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != http.StatusOK || string(body) != "ok" {
				t.Fatalf("answer %d %q, want 200 ok", resp.StatusCode, body)
			}
			if resp.Close != tt.wantClose {
				t.Fatalf("connection closes after the answer: %v, want %v", resp.Close, tt.wantClose)
			}
		})
	}
}
