package connect

import (
	"context"
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
