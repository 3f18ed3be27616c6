// Package client builds go-kit client endpoints for calling another kitshop service
// found in Consul, over HTTP JSON (New) or gRPC (NewGRPC). Each call goes through
//
//	Consul instancer (passing only) → round-robin → bounded retry → hystrix → zipkin
//
// Retries happen only for idempotent calls and only for failures of the system
// (connection refused, 502/503/504, a read's attempt timing out); a business answer
// such as 422 out_of_stock travels through retry and breaker as a value, so it neither
// repeats the call nor trips the breaker, and comes out as the *errs.Error it was
// upstream. An instance that sheds the call (503 overloaded) may be retried elsewhere
// but is not counted by the breaker (see event). Every try carries its deadline to the
// instance (admission.TimeoutHeader).
package client

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"sync"
	"time"

	"github.com/afex/hystrix-go/hystrix"
	"github.com/go-kit/kit/endpoint"
	"github.com/go-kit/kit/sd"
	"github.com/go-kit/kit/sd/lb"
	kitzipkin "github.com/go-kit/kit/tracing/zipkin"
	kitgrpc "github.com/go-kit/kit/transport/grpc"
	kithttp "github.com/go-kit/kit/transport/http"
	"github.com/go-kit/log"
	"github.com/openzipkin/zipkin-go"

	"github.com/kitshop/kitshop/pkg/admission"
	"github.com/kitshop/kitshop/pkg/errs"
)

// Breaker configures the hystrix command guarding one caller→service pair.
type Breaker struct {
	MaxConcurrent   int           // calls in flight before the next is rejected
	ErrorPercent    int           // error rate that opens the circuit…
	VolumeThreshold int           // …once this many calls were seen in the rolling 10 s window
	SleepWindow     time.Duration // how long it stays open before a trial call
}

// DefaultBreaker is sized for a few hundred calls in flight: hystrix's own default of
// 10 concurrent calls rejects the 11th and then opens the circuit under modest load.
var DefaultBreaker = Breaker{MaxConcurrent: 500, ErrorPercent: 50, VolumeThreshold: 20, SleepWindow: 5 * time.Second}

// Options configure the calls one service (the caller) makes to another.
type Options struct {
	Caller string // the calling service; breakers are named "<caller>→<service>"

	// Timeout bounds one logical call, retries included; running out of it counts as
	// a timeout against the breaker. AttemptTimeout bounds each try of a read (GET or
	// HEAD), so one hung instance does not use the whole budget. A try of any other
	// call gets the whole budget that is left: a write cut off because it is slow, and
	// sent again, doubles the upstream's work exactly when it is busiest (and a slow
	// first call after a start — new connections, cold caches — is not a hung one).
	// Retries is the number of further tries for idempotent calls.
	Timeout        time.Duration
	AttemptTimeout time.Duration
	Retries        int

	Breaker    Breaker
	HTTPClient kithttp.HTTPClient // shared by all routes to this service; see NewHTTPClient
	// TLS, when set, makes calls over HTTPS with this configuration (kitshop's mTLS:
	// connect.Identity.ClientTLS); Defaults gives a missing HTTPClient this config (see
	// NewHTTPClient), and a given HTTPClient must carry it itself.
	TLS    *tls.Config
	Tracer *zipkin.Tracer
	Logger log.Logger
	// Before runs on every outgoing request (app sets auth.ContextToHTTP, so a call
	// made for a user carries that user's token); GRPCBefore on every gRPC call
	// (auth.ContextToGRPC).
	Before     []kithttp.RequestFunc
	GRPCBefore []kitgrpc.ClientRequestFunc

	// InvalidateAfter drops the known instances when Consul has been failing this long;
	// zero keeps the last good set for as long as Consul is away.
	InvalidateAfter time.Duration
}

// Defaults fills zero fields with kitshop's defaults.
func (o Options) Defaults() Options {
	if o.Timeout == 0 {
		o.Timeout = 3 * time.Second
	}
	if o.AttemptTimeout == 0 || o.AttemptTimeout > o.Timeout {
		o.AttemptTimeout = o.Timeout
	}
	if o.Breaker == (Breaker{}) {
		o.Breaker = DefaultBreaker
	}
	if o.HTTPClient == nil {
		o.HTTPClient = NewHTTPClient(o.Breaker.MaxConcurrent, o.TLS)
	}
	if o.Logger == nil {
		o.Logger = log.NewNopLogger()
	}
	return o
}

// NewHTTPClient returns a client whose transport keeps enough idle connections for
// maxConns concurrent calls to one host (net/http keeps 2 by default, which under load
// means a new connection, and a socket in TIME_WAIT, per call), and opens them with a
// Dialer: a few at a time per instance, TLS (when tlsConf is set) with sessions
// resumed. A call waiting for its dial takes a connection handed back meanwhile.
func NewHTTPClient(maxConns int, tlsConf *tls.Config) *http.Client {
	t := http.DefaultTransport.(*http.Transport).Clone()
	t.MaxIdleConns = maxConns * 4
	t.MaxIdleConnsPerHost = maxConns
	t.IdleConnTimeout = 90 * time.Second
	d := &Dialer{TLS: tlsConf}
	if tlsConf != nil {
		t.DialTLSContext = d.DialContext
	} else {
		t.DialContext = d.DialContext
	}
	return &http.Client{Transport: t}
}

// Route is one upstream operation.
type Route struct {
	Name       string // for spans: "<service>.<name>"
	Method     string
	Encode     kithttp.EncodeRequestFunc  // sets the request's path, query and body
	Decode     kithttp.DecodeResponseFunc // reads a 2xx response
	Idempotent bool                       // safe to send twice: a GET, or a call carrying an idempotency key
	// PassThrough hands every answer below 500 to Decode, for a proxy that relays 4xx
	// answers as they are rather than as errors.
	PassThrough bool
}

// Service builds client endpoints for one upstream service, over HTTP.
type Service struct {
	*chain
	instancer sd.Instancer
	warm      *warmer
}

// chain is what the calls to one service share whatever their transport: its name,
// options and breaker, and the layers above the instances (retry → breaker → trace).
type chain struct {
	name        string
	opts        Options
	breaker     *breaker
	breakerName string // "<caller>→<service>"
}

func newChain(service string, opts Options) *chain {
	opts = opts.Defaults()
	name := opts.Caller + "→" + service
	hystrix.ConfigureCommand(name, hystrix.CommandConfig{
		Timeout:                int(opts.Timeout / time.Millisecond),
		MaxConcurrentRequests:  opts.Breaker.MaxConcurrent,
		ErrorPercentThreshold:  opts.Breaker.ErrorPercent,
		RequestVolumeThreshold: opts.Breaker.VolumeThreshold,
		SleepWindow:            int(opts.Breaker.SleepWindow / time.Millisecond),
	})
	return &chain{name: service, opts: opts, breaker: breakerFor(name, opts.Breaker.MaxConcurrent), breakerName: name}
}

// New prepares calls to service, whose instances instancer reports.
func New(service string, instancer sd.Instancer, opts Options) *Service {
	c := newChain(service, opts)
	scheme := "http"
	if c.opts.TLS != nil {
		scheme = "https"
	}
	return &Service{chain: c, instancer: instancer, warm: newWarmer(c.opts.HTTPClient, scheme)}
}

// BreakerName is the hystrix command guarding calls to this service.
func (c *chain) BreakerName() string { return c.breakerName }

// Endpoint returns the client endpoint for r.
func (s *Service) Endpoint(r Route) endpoint.Endpoint {
	return s.balance(s.instancer, s.factory(r), r.Name, r.Idempotent)
}

// balance is the chain over the endpoints factory makes for instancer's instances:
// round robin → retry (idempotent calls only) → breaker → business answers as errors
// → a span named "<service>.<name>".
func (c *chain) balance(instancer sd.Instancer, factory sd.Factory, name string, idempotent bool) endpoint.Endpoint {
	var endpointerOpts []sd.EndpointerOption
	if c.opts.InvalidateAfter > 0 {
		endpointerOpts = append(endpointerOpts, sd.InvalidateOnError(c.opts.InvalidateAfter))
	}
	endpointer := sd.NewEndpointer(instancer, factory, c.opts.Logger, endpointerOpts...)
	balancer := lb.NewRoundRobin(endpointer)

	retries := 0
	if idempotent {
		retries = c.opts.Retries
	}
	e := retry(balancer, c.opts.Timeout, retries)
	e = c.guard(e)
	e = unwrapBusiness(e)
	if c.opts.Tracer != nil {
		e = kitzipkin.TraceEndpoint(c.opts.Tracer, c.name+"."+name)(e)
	}
	return e
}

// factory turns an instance address into an endpoint for r, with a deadline per try,
// a client span carrying B3 headers, warm-up (warm.go) and ejection: an instance that
// refused or dropped a connection is skipped for a while, so retries go to the others
// at once.
func (s *Service) factory(r Route) sd.Factory {
	ej := &ejections{until: map[string]time.Time{}, cold: s.warm.cold}
	return func(instance string) (endpoint.Endpoint, io.Closer, error) {
		tgt := &url.URL{Scheme: "http", Host: instance}
		if s.opts.TLS != nil {
			tgt.Scheme = "https"
		}
		// Every try tells the instance how long it is waited for (admission.TimeoutHeader).
		opts := []kithttp.ClientOption{kithttp.SetClient(s.opts.HTTPClient), kithttp.ClientBefore(sendTimeout)}
		if len(s.opts.Before) > 0 {
			opts = append(opts, kithttp.ClientBefore(s.opts.Before...))
		}
		if s.opts.Tracer != nil {
			opts = append(opts, kitzipkin.HTTPClientTrace(s.opts.Tracer, kitzipkin.Name(s.name+"."+r.Name)))
		}
		e := kithttp.NewClient(r.Method, tgt, r.Encode, decodeWith(r.Decode, r.PassThrough), opts...).Endpoint()
		attempt := s.opts.AttemptTimeout
		if !isRead(r.Method) {
			attempt = 0
		}
		ej.add(instance)
		s.warm.add(instance)
		return ej.try(instance, attempt, e), closerFunc(func() error { ej.remove(instance); s.warm.remove(instance); return nil }), nil
	}
}

// try is call as one try on instance: skipped while a readier instance is known, cut off
// after attempt (0: it has what is left of the call's budget), and the instance ejected
// when the try found it unreachable.
func (e *ejections) try(instance string, attempt time.Duration, call endpoint.Endpoint) endpoint.Endpoint {
	return func(ctx context.Context, request any) (any, error) {
		if e.skip(instance) {
			return nil, errEjected
		}
		if attempt > 0 {
			var cancel context.CancelFunc
			ctx, cancel = context.WithTimeout(ctx, attempt)
			defer cancel()
		}
		response, err := call(ctx, request)
		if err != nil && unreachable(err) {
			e.eject(instance)
		}
		return response, err
	}
}

func sendTimeout(ctx context.Context, r *http.Request) context.Context {
	admission.SetTimeout(ctx, r.Header)
	return ctx
}

// isRead reports whether method only reads, so that a try cut off and sent to
// another instance costs nothing but the first try's work.
func isRead(method string) bool { return method == http.MethodGet || method == http.MethodHead }

// ejections tracks which instances of one route are being skipped.
type ejections struct {
	mu    sync.Mutex
	until map[string]time.Time // zero: in use
	cold  func(instance string) bool
}

func (e *ejections) add(instance string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.until[instance] = time.Time{}
}

func (e *ejections) remove(instance string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	delete(e.until, instance)
}

func (e *ejections) eject(instance string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if _, ok := e.until[instance]; ok {
		e.until[instance] = time.Now().Add(ejectFor)
	}
}

// skip reports whether another instance is readier than instance: one in use beats
// one still warming up, which beats one ejected. When every instance is ejected, all
// are tried again rather than none.
func (e *ejections) skip(instance string) bool {
	now := time.Now()
	e.mu.Lock()
	defer e.mu.Unlock()
	rank := e.rank(instance, now)
	if rank == ready {
		return false
	}
	for other := range e.until {
		if other != instance && e.rank(other, now) < rank {
			return true
		}
	}
	return false
}

// An instance's readiness, best first.
const (
	ready = iota
	warming
	ejected
)

func (e *ejections) rank(instance string, now time.Time) int {
	switch {
	case now.Before(e.until[instance]):
		return ejected
	case e.cold(instance):
		return warming
	}
	return ready
}

type closerFunc func() error

func (f closerFunc) Close() error { return f() }

// ejectFor is how long an instance that refused or dropped a connection is skipped:
// long enough for its failing health check to take it out of Consul's passing set,
// short enough that a restarted instance is soon used again.
const ejectFor = 3 * time.Second

// errEjected is what an instance answers without being called while a readier one is
// known: it was recently unreachable, or is still warming up.
var errEjected = errors.New("client: instance skipped for a readier one (recently unreachable, or warming up)")

// unreachable reports whether err means the instance could not be talked to at all
// (refused, reset, closed mid-answer), as opposed to a slow or failing answer.
func unreachable(err error) bool {
	var opErr *net.OpError
	return errors.As(err, &opErr) || errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, errUnreachable)
}

// guard runs e inside the breaker, so failures of the system trip it.
func (c *chain) guard(e endpoint.Endpoint) endpoint.Endpoint {
	return func(ctx context.Context, request any) (any, error) {
		var response any
		err := c.breaker.do(ctx, func(ctx context.Context) error {
			var err error
			response, err = e(ctx, request)
			return err
		})
		if err != nil {
			return nil, c.translate(err)
		}
		return response, nil
	}
}

// translate turns a failure of the system into the *errs.Error a caller can act on.
func (c *chain) translate(err error) error {
	var upstream *upstreamError
	switch {
	case errors.As(err, &upstream):
		return upstream.err
	case errors.Is(err, hystrix.ErrCircuitOpen):
		return errs.E(errs.Unavailable, "service_unavailable", "%s is failing; its circuit breaker is open", c.name)
	case errors.Is(err, hystrix.ErrMaxConcurrency):
		return errs.ErrOverloaded.WithMessage("too many calls to %s in flight", c.name)
	case errors.Is(err, context.DeadlineExceeded):
		return errs.E(errs.Timeout, "upstream_timeout", "%s did not answer in time", c.name)
	case errors.Is(err, lb.ErrNoEndpoints):
		return errs.E(errs.Unavailable, "service_unavailable", "no healthy %s instance", c.name)
	case errors.Is(err, context.Canceled):
		return err
	}
	return errs.E(errs.Unavailable, "service_unavailable", "%s is unreachable", c.name)
}

// upstreamError is a 5xx answer from an instance.
type upstreamError struct {
	status int
	err    *errs.Error
}

func (e *upstreamError) Error() string { return fmt.Sprintf("upstream %d: %v", e.status, e.err) }

// Unwrap lets errors.Is see the upstream's own error (errs.ErrOverloaded, say).
func (e *upstreamError) Unwrap() error { return e.err }

// businessFailure carries a 4xx answer through retry and breaker as a value.
type businessFailure struct{ err *errs.Error }

// decodeWith reads 2xx answers (and 4xx ones for a pass-through route) with dec;
// other 4xx answers become businessFailure values and 5xx answers upstreamErrors.
func decodeWith(dec kithttp.DecodeResponseFunc, passThrough bool) kithttp.DecodeResponseFunc {
	return func(ctx context.Context, resp *http.Response) (any, error) {
		if resp.StatusCode < 300 || passThrough && resp.StatusCode < 500 {
			return dec(ctx, resp)
		}
		return errorAnswer(resp.StatusCode, errs.FromResponse(resp))
	}
}

// errorAnswer is an upstream's error answer of status as the chain carries it, over
// either transport: below 500 a businessFailure value (no error, so neither retried nor
// counted), else an upstreamError, a failure of the system (Unavailable, or Timeout
// when the upstream says it timed out).
func errorAnswer(status int, e *errs.Error) (any, error) {
	if status < 500 {
		return businessFailure{e}, nil
	}
	if e.Kind != errs.Timeout {
		e.Kind = errs.Unavailable
	}
	return nil, &upstreamError{status: status, err: e}
}

// retryable reports whether another instance may succeed where this try failed:
// connection failures (refused, reset, closed mid-answer), an attempt's timeout, no instance yet, and 502/503/504.
func retryable(err error) bool {
	var upstream *upstreamError
	if errors.As(err, &upstream) {
		return upstream.status == http.StatusBadGateway ||
			upstream.status == http.StatusServiceUnavailable ||
			upstream.status == http.StatusGatewayTimeout
	}
	var netErr net.Error
	return errors.As(err, &netErr) || unreachable(err) ||
		errors.Is(err, context.DeadlineExceeded) || errors.Is(err, lb.ErrNoEndpoints)
}

// maxSkips bounds how many ejected instances one call skips (when every instance is
// ejected, all are tried again, so the bound is only a safety net).
const maxSkips = 16

// retry calls instances the balancer picks until one answers, within timeout. An
// ejected instance is skipped without spending a retry; a failure that another instance
// may not share (see retryable) is tried again, up to retries times. It does what
// go-kit's lb.RetryWithCallback does, but runs each try in the caller's goroutine (each
// try has its own deadline, so nothing waits past the budget): one goroutine and two
// channels less per call on every hot path.
func retry(balancer lb.Balancer, timeout time.Duration, retries int) endpoint.Endpoint {
	return func(ctx context.Context, request any) (any, error) {
		ctx, cancel := context.WithTimeout(ctx, timeout)
		defer cancel()
		skipped, failed := 0, 0
		for {
			e, err := balancer.Endpoint()
			if err == nil {
				var response any
				if response, err = e(ctx, request); err == nil {
					return response, nil
				}
			}
			if ctx.Err() != nil {
				return nil, ctx.Err()
			}
			if errors.Is(err, errEjected) {
				if skipped++; skipped > maxSkips {
					return nil, err
				}
				continue
			}
			if failed++; failed > retries || !retryable(err) {
				return nil, err
			}
		}
	}
}

// unwrapBusiness turns a businessFailure back into the error it carries.
func unwrapBusiness(e endpoint.Endpoint) endpoint.Endpoint {
	return func(ctx context.Context, request any) (any, error) {
		response, err := e(ctx, request)
		if f, ok := response.(businessFailure); ok {
			return nil, f.err
		}
		return response, err
	}
}

// BreakerStates reports every breaker this process configured, as "open" or "closed".
// (hystrix-go keeps its circuits process-wide, so this is the process's view.)
func BreakerStates() map[string]string {
	states := map[string]string{}
	for name := range hystrix.GetCircuitSettings() {
		cb, _, err := hystrix.GetCircuit(name)
		if err != nil {
			continue
		}
		states[name] = "closed"
		if cb.IsOpen() {
			states[name] = "open"
		}
	}
	return states
}
