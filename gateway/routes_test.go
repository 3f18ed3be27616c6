package gateway

import (
	"encoding/json"
	"net/http"
	"slices"
	"strings"
	"testing"
)

type openAPIDoc struct {
	OpenAPI string `json:"openapi"`
	Paths   map[string]map[string]struct {
		Security  []map[string][]string `json:"security"`
		Responses map[string]any        `json:"responses"`
	} `json:"paths"`
}

// TestOpenAPIMatchesRoutes fails when a route is missing from openapi.json, when the
// document describes an operation the gateway does not route, or when they disagree
// on whether a token is needed.
func TestOpenAPIMatchesRoutes(t *testing.T) {
	var doc openAPIDoc
	if err := json.Unmarshal(openAPI, &doc); err != nil {
		t.Fatalf("openapi.json: %v", err)
	}
	if !strings.HasPrefix(doc.OpenAPI, "3.0") {
		t.Errorf("openapi %q, want 3.0.x", doc.OpenAPI)
	}
	routed := map[string]Route{}
	for _, rt := range Routes() {
		routed[strings.ToLower(rt.Method)+" "+rt.Path] = rt
	}
	documented := map[string]bool{}
	for path, ops := range doc.Paths {
		for method, op := range ops {
			key := method + " " + path
			documented[key] = true
			rt, ok := routed[key]
			if !ok {
				t.Errorf("openapi.json documents %s, which the gateway does not route", key)
				continue
			}
			if secured := len(op.Security) > 0; secured != (rt.Access != Public) {
				t.Errorf("%s: openapi security %v, route access %v", key, op.Security, rt.Access)
			}
			if _, ok := op.Responses["401"]; ok != (rt.Access != Public) {
				t.Errorf("%s: a 401 answer is documented: %v; route access %v", key, ok, rt.Access)
			}
			if _, ok := op.Responses["503"]; !ok {
				t.Errorf("%s: the 503 answer is not documented", key)
			}
		}
	}
	for key := range routed {
		if !documented[key] {
			t.Errorf("route %s is missing from openapi.json", key)
		}
	}
}

func TestRoutesArePublicAndComplete(t *testing.T) {
	seen := map[string]bool{}
	services := []string{UserService, InventoryService, OrderService, NotificationService}
	for _, rt := range Routes() {
		if strings.HasPrefix(rt.Path, "/internal/") {
			t.Errorf("%s: internal routes are never exposed", rt.Name())
		}
		if seen[rt.Name()] {
			t.Errorf("%s listed twice", rt.Name())
		}
		seen[rt.Name()] = true
		if !slices.Contains(services, rt.Service) {
			t.Errorf("%s: unknown service %q", rt.Name(), rt.Service)
		}
		if rt.Timeout <= 0 {
			t.Errorf("%s: no timeout", rt.Name())
		}
		if rt.Method == http.MethodPost && rt.Retry == Idempotent {
			t.Errorf("%s: a POST is retried only with an Idempotency-Key", rt.Name())
		}
		if rt.Method == http.MethodGet && rt.Retry != Idempotent {
			t.Errorf("%s: a GET is safe to retry", rt.Name())
		}
	}
}
