package main

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kitshop/kitshop/internal/stack"
)

// fakeGateway answers the calls seed makes: logins (503 for the first unavailable
// ones, as while the gateway finds no user instance yet), products and the demo user,
// each created once.
type fakeGateway struct {
	mu          sync.Mutex
	password    string
	unavailable int
	products    map[string]bool
	users       map[string]bool
	logins      int
}

func (g *fakeGateway) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	g.mu.Lock()
	defer g.mu.Unlock()
	var body map[string]any
	_ = json.NewDecoder(r.Body).Decode(&body)
	fail := func(status int, code string) {
		w.WriteHeader(status)
		_, _ = io.WriteString(w, `{"error":{"code":"`+code+`","message":"`+code+`"}}`)
	}
	switch r.URL.Path {
	case "/v1/auth/login":
		g.logins++
		if g.logins <= g.unavailable {
			fail(http.StatusServiceUnavailable, "unavailable")
			return
		}
		if body["password"] != g.password {
			fail(http.StatusUnauthorized, "invalid_credentials")
			return
		}
		_, _ = io.WriteString(w, `{"access_token":"admin-token","token_type":"Bearer","expires_in":900}`)
	case "/v1/products":
		if r.Header.Get("Authorization") != "Bearer admin-token" {
			fail(http.StatusUnauthorized, "unauthenticated")
			return
		}
		sku, _ := body["sku"].(string)
		if g.products[sku] {
			fail(http.StatusConflict, "sku_taken")
			return
		}
		g.products[sku] = true
		w.WriteHeader(http.StatusCreated)
	case "/v1/users":
		email, _ := body["email"].(string)
		if g.users[email] {
			fail(http.StatusConflict, "email_taken")
			return
		}
		g.users[email] = true
		w.WriteHeader(http.StatusCreated)
	default:
		fail(http.StatusNotFound, "not_found")
	}
}

func TestSeed(t *testing.T) {
	tests := []struct {
		name        string
		password    string
		unavailable int
		runs        int
		wantErr     string // empty: success
		wantOut     string // in the last run's output
	}{
		{name: "first start", password: "admin-pw", runs: 1, wantOut: "12 products (12 new)"},
		{name: "again: nothing new", password: "admin-pw", runs: 2, wantOut: "12 products (0 new)"},
		{name: "gateway not ready yet", password: "admin-pw", unavailable: 2, runs: 1, wantOut: "12 products (12 new)"},
		{name: "wrong admin password fails at once", password: "another", runs: 1, wantErr: "KITSHOP_ADMIN_PASSWORD"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g := &fakeGateway{password: tt.password, unavailable: tt.unavailable, products: map[string]bool{}, users: map[string]bool{}}
			srv := httptest.NewServer(g)
			defer srv.Close()
			var out strings.Builder
			var err error
			start := time.Now()
			for range tt.runs {
				out.Reset()
				err = seed(context.Background(), []string{"-gateway-url", srv.URL, "-admin-password", "admin-pw", "-timeout", "20s"}, &out)
			}
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("seed = %v, want an error about %s", err, tt.wantErr)
				}
				if time.Since(start) > 5*time.Second {
					t.Fatalf("seed took %s to give up on a wrong password", time.Since(start))
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !strings.Contains(out.String(), tt.wantOut) {
				t.Fatalf("output %q, want %q", out.String(), tt.wantOut)
			}
			if len(g.products) != len(stack.Catalogue()) || !g.users[stack.DemoEmail] {
				t.Fatalf("%d products and users %v, want the catalogue and the demo user", len(g.products), g.users)
			}
		})
	}
}
