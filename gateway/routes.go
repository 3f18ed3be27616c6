// Package gateway is kitshop's edge: it routes every public /v1/ call to the service that
// owns it, found in Consul, through a go-kit client endpoint per upstream service
// (instancer → round robin → bounded retry → hystrix → zipkin), after checking tokens
// and rate limits. It also serves the OpenAPI document and the storefront page.
package gateway

import (
	"net/http"
	"time"
)

// Upstream services, by the names routes use; Options.Services maps them to the names
// they are registered under in Consul.
const (
	UserService         = "user"
	InventoryService    = "inventory"
	OrderService        = "order"
	NotificationService = "notification"
)

// Access is what a route asks of the caller.
type Access int

const (
	Public   Access = iota // anyone, limited per client address
	Customer               // a valid access token (🔒), limited per user
	Admin                  // a valid token with the admin role; the upstream checks it again
)

// Retry says when a route's call may be sent again to another instance.
type Retry int

const (
	NoRetry     Retry = iota
	Idempotent        // always safe to repeat (GET, PUT, DELETE)
	WithKeyOnly       // safe only when the client sent an Idempotency-Key header
)

// Route is one public operation: which service answers it, what it needs from the
// caller, how long the gateway waits for it and whether a failed try may be repeated.
// Path is a gorilla/mux pattern, written exactly as in openapi.json.
type Route struct {
	Method  string
	Path    string
	Service string
	Access  Access
	Timeout time.Duration
	Retry   Retry
}

// Name is the route's label in logs, metrics and spans.
func (r Route) Name() string { return r.Method + " " + r.Path }

// Routes is the public API of DESIGN.md. Nothing under /internal/ is ever listed.
// Timeouts: reads are quick; registration and login hash a password (argon2id);
// checkout runs a saga across inventory and payment, and answers 202 itself when it
// outlives its own deadline, so the gateway waits a little longer than that.
func Routes() []Route {
	const (
		read   = 2 * time.Second
		write  = 3 * time.Second
		hash   = 5 * time.Second
		sagaTo = 12 * time.Second
	)
	return []Route{
		{http.MethodPost, "/v1/users", UserService, Public, hash, NoRetry},
		{http.MethodPost, "/v1/auth/login", UserService, Public, hash, NoRetry},
		{http.MethodGet, "/v1/users/me", UserService, Customer, read, Idempotent},
		{http.MethodGet, "/.well-known/jwks.json", UserService, Public, read, Idempotent},

		{http.MethodGet, "/v1/products", InventoryService, Public, read, Idempotent},
		{http.MethodGet, "/v1/products/{sku}", InventoryService, Public, read, Idempotent},
		{http.MethodPost, "/v1/products", InventoryService, Admin, write, NoRetry},
		{http.MethodPut, "/v1/products/{sku}/stock", InventoryService, Admin, write, Idempotent},

		{http.MethodGet, "/v1/cart", OrderService, Customer, read, Idempotent},
		{http.MethodPut, "/v1/cart/items/{sku}", OrderService, Customer, write, Idempotent},
		{http.MethodDelete, "/v1/cart/items/{sku}", OrderService, Customer, write, Idempotent},
		{http.MethodPost, "/v1/orders", OrderService, Customer, sagaTo, WithKeyOnly},
		{http.MethodGet, "/v1/orders", OrderService, Customer, read, Idempotent},
		{http.MethodGet, "/v1/orders/{id}", OrderService, Customer, read, Idempotent},
		{http.MethodPost, "/v1/orders/{id}/cancel", OrderService, Customer, sagaTo, WithKeyOnly},

		{http.MethodGet, "/v1/notifications", NotificationService, Customer, read, Idempotent},
	}
}
