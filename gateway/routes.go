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
// call waits in line for its turn — up to Options.AdmitWait, or AdmitBusyWait while
// the class is busy (Options.Admission) — then gets 503 overloaded with Retry-After.
type Admit struct {
	Limit  int
	Target time.Duration // zero: the limit is fixed
}

// DefaultAdmission is each class's admission. The ceilings are far above what two
// cores work on at once, so that a bigger machine is not held back. The shop's target
// is a few times the mean latency of its mix on an idle shop (~5 ms): past that, more
// calls at once only queue for the cores, refused ones and the load generator's too
// (on two cores, 16 calls of the shop at once keep them busy; 100 at once made every
// answer, even a refusal, wait up to seconds). Sign-up and login hash a password each.
var DefaultAdmission = map[Class]Admit{
	ClassShop: {Limit: 256, Target: 30 * time.Millisecond},
	ClassAuth: {Limit: 16, Target: 500 * time.Millisecond},
}

// minAdmission is the least an adaptive limit shrinks to: a few calls keep going
// whatever the latency, so that it can be seen to fall again.
const minAdmission = 4

// The line of a class (as long as its ceiling): a crowd waits its turn up to
// DefaultAdmitWait, so a burst on a shop whose limit is low is served, not refused (a
// crowd of 60 checkouts takes ~1.4 s to drain on two cores); once a call finds the
// line full, the class is busy — lasting overload — until no call has been refused for
// DefaultAdmitPatience, and meanwhile a call waits DefaultAdmitBusyWait at most, so
// that admitted work is not held up behind a standing queue.
const (
	DefaultAdmitWait     = 2 * time.Second
	DefaultAdmitPatience = time.Second
	DefaultAdmitBusyWait = 10 * time.Millisecond
)
