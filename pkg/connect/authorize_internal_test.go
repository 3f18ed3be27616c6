package connect

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-kit/log"
	consul "github.com/hashicorp/consul/api"
)

// TestAuthorizerWithoutAgent: while the agent cannot be asked (a restart), a calling
// service keeps its latest answer, allowed or denied; one never answered for gets no
// decision (the middleware then answers 503, not 403).
func TestAuthorizerWithoutAgent(t *testing.T) {
	conf := consul.DefaultConfig()
	conf.Address = "127.0.0.1:1" // nothing listens: every question fails at once
	c, err := consul.NewClient(conf)
	if err != nil {
		t.Fatal(err)
	}
	a := NewAuthorizer(&Identity{service: "payment", agent: c.Agent()}, time.Second, nil, log.NewNopLogger())
	a.last["order"] = decision{allowed: true}
	a.last["gateway"] = decision{allowed: false, reason: "deny"}

	tests := []struct {
		caller      string
		wantAllowed bool
		wantErr     bool
	}{
		{"order", true, false},
		{"gateway", false, false},
		{"notification", false, true},
	}
	for _, tt := range tests {
		peer := Peer{URI: "spiffe://x.consul/ns/default/dc/dc1/svc/" + tt.caller, Service: tt.caller, Serial: "01"}
		ok, _, err := a.allowed(context.Background(), peer)
		if ok != tt.wantAllowed || (err != nil) != tt.wantErr {
			t.Errorf("%s: allowed %v, err %v; want %v, error %v", tt.caller, ok, err, tt.wantAllowed, tt.wantErr)
		}
	}
}

// TestAuthorizerAsksOnce: the first calls of a caller, arriving together, ask the
// agent one question; the first asker leaving does not fail the others.
func TestAuthorizerAsksOnce(t *testing.T) {
	var questions atomic.Int64
	agent := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !strings.HasSuffix(r.URL.Path, "/agent/connect/authorize") {
			http.NotFound(w, r)
			return
		}
		questions.Add(1)
		time.Sleep(100 * time.Millisecond)
		_ = json.NewEncoder(w).Encode(consul.AgentAuthorize{Authorized: true, Reason: "allowed by test"})
	}))
	defer agent.Close()
	conf := consul.DefaultConfig()
	conf.Address = strings.TrimPrefix(agent.URL, "http://")
	c, err := consul.NewClient(conf)
	if err != nil {
		t.Fatal(err)
	}
	a := NewAuthorizer(&Identity{service: "payment", agent: c.Agent()}, time.Minute, nil, log.NewNopLogger())
	peer := Peer{URI: "spiffe://x.consul/ns/default/dc/dc1/svc/order", Service: "order", Serial: "01"}

	leaving, leave := context.WithCancel(context.Background())
	first := make(chan error, 1)
	go func() {
		_, _, err := a.allowed(leaving, peer)
		first <- err
	}()
	for questions.Load() == 0 {
		time.Sleep(time.Millisecond)
	}
	var wg sync.WaitGroup
	var refused atomic.Int64
	for range 20 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if ok, _, err := a.allowed(context.Background(), peer); !ok || err != nil {
				refused.Add(1)
			}
		}()
	}
	leave()
	if err := <-first; !errors.Is(err, context.Canceled) {
		t.Fatalf("the caller that left: %v", err)
	}
	wg.Wait()
	if refused.Load() != 0 || questions.Load() != 1 {
		t.Fatalf("%d of 20 calls not allowed, %d questions to the agent; want 0 and 1", refused.Load(), questions.Load())
	}
}
