package main

import (
	"net/http"
	"net/http/httptest"
	"testing"
	"time"
)

func TestHealthURL(t *testing.T) {
	tests := []struct {
		name    string
		args    []string
		addr    string
		want    string
		wantErr bool
	}{
		{name: "wildcard host", addr: ":8081", want: "http://127.0.0.1:8081/health"},
		{name: "ipv4 any", addr: "0.0.0.0:8082", want: "http://127.0.0.1:8082/health"},
		{name: "ipv6 any", addr: "[::]:8083", want: "http://127.0.0.1:8083/health"},
		{name: "explicit host", addr: "10.1.2.3:8084", want: "http://10.1.2.3:8084/health"},
		{name: "url argument wins", args: []string{"http://x:1/health"}, addr: ":8085", want: "http://x:1/health"},
		{name: "no address", wantErr: true},
		{name: "free port", addr: ":0", wantErr: true},
		{name: "no port", addr: "localhost", wantErr: true},
		{name: "two arguments", args: []string{"a", "b"}, wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := healthURL(tt.args, tt.addr)
			if (err != nil) != tt.wantErr {
				t.Fatalf("healthURL(%q, %q) error = %v, want error %v", tt.args, tt.addr, err, tt.wantErr)
			}
			if got != tt.want {
				t.Errorf("healthURL(%q, %q) = %q, want %q", tt.args, tt.addr, got, tt.want)
			}
		})
	}
}

func TestCheck(t *testing.T) {
	tests := []struct {
		status  int
		wantErr bool
	}{
		{http.StatusOK, false},
		{http.StatusServiceUnavailable, true},
		{http.StatusNotFound, true},
	}
	for _, tt := range tests {
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.URL.Path != "/health" || r.Method != http.MethodGet {
				http.NotFound(w, r)
				return
			}
			w.WriteHeader(tt.status)
		}))
		err := check(srv.URL+"/health", time.Second)
		srv.Close()
		if (err != nil) != tt.wantErr {
			t.Errorf("status %d: error = %v, want error %v", tt.status, err, tt.wantErr)
		}
	}
	for _, target := range []string{"http://127.0.0.1:1/health", "https://127.0.0.1/health", "::"} {
		if err := check(target, time.Second); err == nil {
			t.Errorf("%s passed the check", target)
		}
	}
}
