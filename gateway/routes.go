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

// Class groups routes under one admission limit (Options.Admission). The shop's routes
// share one: a call is refused under overload with the same chance whatever it asks,
// so the work served keeps the mix of the work offered — checkouts in proportion to
// browsing, neither pushing the other out. Password hashing (argon2id) has its own: a
// storm of logins is CPU-bound and must not take the shop's slots.
type Class string

const (
	ClassShop Class = "shop" // browsing, carts, checkouts, orders, emails
	ClassAuth Class = "auth" // sign-up and login: a password hash each
)

// Route is one public operation: which service answers it, what it needs from the
// caller, how long the gateway waits for it, whether a failed try may be repeated and
// which admission class it counts in. Path is a gorilla/mux pattern, written exactly
// as in openapi.json.
type Route struct {
	Method  string
	Path    string
	Service string
	Access  Access
	Timeout time.Duration
	Retry   Retry
	Class   Class
}

// Name is the route's label in logs, metrics and spans.
func (r Route) Name() string { return r.Method + " " + r.Path }

// Routes is the public API of docs/architecture.md. Nothing under /internal/ is ever listed.
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
		{http.MethodPost, "/v1/users", UserService, Public, hash, NoRetry, ClassAuth},
		{http.MethodPost, "/v1/auth/login", UserService, Public, hash, NoRetry, ClassAuth},
		{http.MethodGet, "/v1/users/me", UserService, Customer, read, Idempotent, ClassShop},
		{http.MethodGet, "/.well-known/jwks.json", UserService, Public, read, Idempotent, ClassShop},

		{http.MethodGet, "/v1/products", InventoryService, Public, read, Idempotent, ClassShop},
		{http.MethodGet, "/v1/products/{sku}", InventoryService, Public, read, Idempotent, ClassShop},
		{http.MethodPost, "/v1/products", InventoryService, Admin, write, NoRetry, ClassShop},
		{http.MethodPut, "/v1/products/{sku}/stock", InventoryService, Admin, write, Idempotent, ClassShop},

		{http.MethodGet, "/v1/cart", OrderService, Customer, read, Idempotent, ClassShop},
		{http.MethodPut, "/v1/cart/items/{sku}", OrderService, Customer, write, Idempotent, ClassShop},
		{http.MethodDelete, "/v1/cart/items/{sku}", OrderService, Customer, write, Idempotent, ClassShop},
		{http.MethodPost, "/v1/orders", OrderService, Customer, sagaTo, WithKeyOnly, ClassShop},
		{http.MethodGet, "/v1/orders", OrderService, Customer, read, Idempotent, ClassShop},
		{http.MethodGet, "/v1/orders/{id}", OrderService, Customer, read, Idempotent, ClassShop},
		{http.MethodPost, "/v1/orders/{id}/cancel", OrderService, Customer, sagaTo, WithKeyOnly, ClassShop},

		{http.MethodGet, "/v1/notifications", NotificationService, Customer, read, Idempotent, ClassShop},
	}
}

// Admit is the admission of one route class: at most Limit calls in flight through
// the gateway at once, and fewer while its calls take longer than Target on average
// (see pkg/admission: the limit is scaled by target/mean latency once per target's
// time; an answer 503 or 504 upstream counts as twice the target). Above the limit a
// call waits up to Options.AdmitWait for its turn, then gets 503 overloaded with
// Retry-After.
type Admit struct {
	Limit  int
	Target time.Duration // zero: the limit is fixed
}

// DefaultAdmission is each class's admission. The ceilings are far above what two
// cores work on at once, so that a crowd arriving on an idle shop is taken in and a
// bigger machine is not held back; the targets keep the latency of admitted work well
// inside the routes' deadlines however much more is offered (reads answer in 2 s or
// 504, checkouts in 12 s).
var DefaultAdmission = map[Class]Admit{
	ClassShop: {Limit: 256, Target: 500 * time.Millisecond},
	ClassAuth: {Limit: 16, Target: 500 * time.Millisecond},
}

// minAdmission is the least an adaptive limit shrinks to: a few calls keep going
// whatever the latency, so that it can be seen to fall again.
const minAdmission = 4

// DefaultAdmitWait is how long a call waits for a turn in its class by default: long
// enough to smooth a burst, short enough that under lasting overload a call is told
// at once rather than after a wait that ends in a refusal anyway.
const DefaultAdmitWait = 50 * time.Millisecond
