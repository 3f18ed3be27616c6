// Package gateway is kitshop's edge: it routes every public /v1/ call to the service that
// owns it, found in Consul, through a go-kit client endpoint per upstream service
// (instancer → round robin → bounded retry → hystrix → zipkin), after checking tokens
// and rate limits. It also serves the OpenAPI document, Swagger UI over it, and the
// storefront page.
package gateway

import (
	"crypto/tls"
	"errors"
	"maps"
	"net/http"
	"time"

	"github.com/go-kit/kit/metrics"
	"github.com/go-kit/kit/sd"
	"github.com/go-kit/log"
	"github.com/gorilla/mux"
	"github.com/openzipkin/zipkin-go"
	"github.com/openzipkin/zipkin-go/reporter"

	"github.com/kitshop/kitshop/pkg/admission"
	"github.com/kitshop/kitshop/pkg/auth"
	"github.com/kitshop/kitshop/pkg/client"
	"github.com/kitshop/kitshop/pkg/clientip"
	"github.com/kitshop/kitshop/pkg/httpjson"
	"github.com/kitshop/kitshop/pkg/observe"
)

// Options configure the gateway.
type Options struct {
	// Services maps the services routes name (UserService, …) to the names their
	// instances register under in Consul; a missing entry means the same name.
	Services map[string]string
	// Instancer finds the instances of a service by its Consul name.
	Instancer func(service string) (sd.Instancer, error)
	// Client configures the calls upstream: Caller ("gateway", so breakers are named
	// gateway→<service>), AttemptTimeout, Retries, Breaker, Tracer, Logger. Timeout is
	// taken per service from the route table.
	Client client.Options
	// UpstreamTLS, when set, gives the TLS configuration of calls to one service (by
	// its Consul name), so that an instance must prove it is that service; Client.TLS
	// is used otherwise.
	UpstreamTLS func(service string) *tls.Config
	// Verifier checks the tokens of 🔒 routes.
	Verifier auth.Verifier

	UserLimit Limit // per user, on 🔒 routes
	// AnonLimit is per client address, on every route: 🔒 routes check it before the
	// token, so made-up tokens are limited too.
	AnonLimit Limit
	// ClientIP finds the client's address behind the trusted proxies (load balancers
	// that set X-Forwarded-For); the zero Resolver takes the connection's peer.
	ClientIP clientip.Resolver
	// Admission limits calls in flight per route class (missing classes take
	// DefaultAdmission); a call over the limit waits up to AdmitWait for a turn, or
	// AdmitBusyWait from the moment a call finds its class's line full until none has
	// been refused for AdmitPatience (zero: the defaults), then gets 503 overloaded
	// with Retry-After.
	Admission     map[Class]Admit
	AdmitWait     time.Duration
	AdmitBusyWait time.Duration
	AdmitPatience time.Duration
	// AdmitFollowUp is how long the ticket lasts that a call admitted while its class
	// is busy gets (cookie kitshop_admit_<class>): the client's next calls of the class
	// within it wait ahead of first calls (see pkg/admission's Tickets). Zero:
	// admission.DefaultTicketTTL; negative: no tickets.
	AdmitFollowUp time.Duration
	MaxClients    int   // rate-limit buckets kept, per kind
	MaxBody       int64 // request bodies above this are refused with 413
	// MaxResponse bounds the upstream answer the gateway buffers (so a failed try can
	// be retried before anything reached the client).
	MaxResponse int64

	// Listener, when set, adds what the public listener answers itself around the
	// routes (pkg/app's App.Handler: /health, /metrics, the HTTPS redirect), inside the
	// request ID and the server span, so that those answers carry X-Request-Id and
	// X-Trace-Id too. They are neither in the access log nor in the per-route metrics
	// (a health check comes every second).
	Listener func(routes http.Handler) http.Handler

	Logger  log.Logger
	Metrics *observe.Metrics
	// Tracer starts the server span of every request; nil: one that records nothing,
	// so that an answer still names its trace.
	Tracer *zipkin.Tracer
	Now    func() time.Time
}

// Defaults for Options fields left zero.
const (
	DefaultMaxBody     = 1 << 20
	DefaultMaxResponse = 8 << 20
	DefaultMaxClients  = 100_000
)

func (o Options) defaults() Options {
	if o.MaxBody == 0 {
		o.MaxBody = DefaultMaxBody
	}
	if o.MaxResponse == 0 {
		o.MaxResponse = DefaultMaxResponse
	}
	if o.MaxClients == 0 {
		o.MaxClients = DefaultMaxClients
	}
	if o.Logger == nil {
		o.Logger = log.NewNopLogger()
	}
	if o.Metrics == nil {
		o.Metrics = observe.NewMetrics("gateway")
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Tracer == nil {
		// Sampling nothing, reporting nowhere: trace IDs are made, spans cost nothing.
		// Only an option can fail NewTracer, and these two cannot.
		o.Tracer, _ = zipkin.NewTracer(reporter.NewNoopReporter(), zipkin.WithSampler(zipkin.NeverSample), zipkin.WithNoopSpan(true))
	}
	classes := maps.Clone(DefaultAdmission)
	maps.Copy(classes, o.Admission)
	o.Admission = classes
	if o.AdmitWait == 0 {
		o.AdmitWait = DefaultAdmitWait
	}
	if o.AdmitBusyWait == 0 {
		o.AdmitBusyWait = DefaultAdmitBusyWait
	}
	if o.AdmitPatience == 0 {
		o.AdmitPatience = DefaultAdmitPatience
	}
	if o.AdmitFollowUp == 0 {
		o.AdmitFollowUp = admission.DefaultTicketTTL
	}
	if o.Client.Caller == "" {
		o.Client.Caller = "gateway"
	}
	if o.Client.Logger == nil {
		o.Client.Logger = o.Logger
	}
	if o.Client.Tracer == nil {
		o.Client.Tracer = o.Tracer
	}
	return o
}

// ServiceName is the Consul name of a route's service.
func (o Options) ServiceName(service string) string {
	if name, ok := o.Services[service]; ok && name != "" {
		return name
	}
	return service
}

// gateway holds what the handlers share.
type gateway struct {
	opts     Options
	users    *limiters
	anons    *limiters
	classes  map[Class]*admission.Limiter
	requests metrics.Counter
	duration metrics.Histogram
}

// New returns the gateway's handler: the routes of Routes() proxied upstream, plus
// GET /openapi.json, Swagger UI over it at /docs and /docs/, and the storefront at /
// and /static/. Every answer goes through request IDs, a server span, the access log
// and the per-route metrics.
func New(o Options) (http.Handler, error) {
	o = o.defaults()
	if o.Instancer == nil || o.Verifier == nil {
		return nil, errors.New("gateway: Options.Instancer and Options.Verifier are required")
	}
	g := &gateway{
		opts:     o,
		users:    newLimiters(o.UserLimit, o.MaxClients, o.Now),
		anons:    newLimiters(o.AnonLimit, o.MaxClients, o.Now),
		classes:  map[Class]*admission.Limiter{},
		requests: o.Metrics.Counter("gateway", "requests_total", "Requests by route and status.", "route", "status"),
		duration: o.Metrics.Histogram("gateway", "request_duration_seconds", "Request latency by route and status.", "route", "status"),
	}
	shed := o.Metrics.Counter("gateway", "shed_total", "Requests answered 503 overloaded by the admission limit of their route class.", "class")
	limits := o.Metrics.Gauge("gateway", "admission_limit", "Calls of a route class admitted at once.", "class")
	for class, a := range o.Admission {
		var tickets *admission.Tickets
		if o.AdmitFollowUp > 0 {
			tickets = admission.NewTickets("kitshop_admit_"+string(class), o.AdmitFollowUp, o.Now)
		}
		g.classes[class] = admission.New(admission.Config{
			Limit: a.Limit, Min: minAdmission, Target: a.Target,
			MaxWait: o.AdmitWait, BusyWait: o.AdmitBusyWait, Patience: o.AdmitPatience, Tickets: tickets,
			Shed: shed.With("class", string(class)), Limits: limits.With("class", string(class)), Now: o.Now,
		})
	}
	endpoints, err := g.makeEndpoints(Routes())
	if err != nil {
		return nil, err
	}

	r := mux.NewRouter()
	r.NotFoundHandler = httpjson.NotFound()
	r.MethodNotAllowedHandler = httpjson.MethodNotAllowed()
	// Internal routes are never exposed, whatever the method.
	r.PathPrefix("/internal/").Handler(httpjson.NotFound())
	// Path before Methods on every route: gorilla/mux v1.8.1 forgets a method mismatch
	// (405) when a later route's first matcher succeeds, so a method matcher must never
	// be the first to match.
	for _, rt := range Routes() {
		r.Path(rt.Path).Methods(rt.Method).Handler(named(rt.Name(), g.routeHandler(rt, endpoints[rt.Name()])))
	}
	r.Path("/openapi.json").Methods(http.MethodGet).Handler(named("GET /openapi.json", openAPIHandler()))
	docs, err := docsHandler()
	if err != nil {
		return nil, err
	}
	r.Path("/docs").Methods(http.MethodGet, http.MethodHead).Handler(named("GET /docs", docs))
	// /docs/ is where a hand-typed URL often ends; the page has one address.
	r.Path("/docs/").Methods(http.MethodGet, http.MethodHead).Handler(named("GET /docs/", http.RedirectHandler("/docs", http.StatusMovedPermanently)))
	r.PathPrefix("/docs/").Methods(http.MethodGet, http.MethodHead).Handler(named("GET /docs/", docs))
	store, err := storefrontHandler()
	if err != nil {
		return nil, err
	}
	r.Path("/").Methods(http.MethodGet, http.MethodHead).Handler(named("GET /", store))
	r.PathPrefix("/static/").Methods(http.MethodGet, http.MethodHead).Handler(named("GET /static/", store))
	return g.instrument(r), nil
}
