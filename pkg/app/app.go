// Package app is the defaults every kitshop service gets from one call: flags, logger,
// metrics, tracer, Consul client, database, the /health and /metrics routes, Consul
// registration and graceful shutdown. A service's main declares its own flags, calls
// New, builds its service and handler, and calls Run.
package app

import (
	"context"
	"database/sql"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"net"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/go-kit/kit/sd"
	kitgrpc "github.com/go-kit/kit/transport/grpc"
	kithttp "github.com/go-kit/kit/transport/http"
	"github.com/go-kit/log"
	"github.com/go-kit/log/level"
	consul "github.com/hashicorp/consul/api"
	"github.com/openzipkin/zipkin-go"
	"github.com/openzipkin/zipkin-go/reporter"
	"google.golang.org/grpc"

	"github.com/kitshop/kitshop/pkg/admission"
	"github.com/kitshop/kitshop/pkg/auth"
	"github.com/kitshop/kitshop/pkg/client"
	"github.com/kitshop/kitshop/pkg/clientip"
	"github.com/kitshop/kitshop/pkg/connect"
	"github.com/kitshop/kitshop/pkg/discovery"
	"github.com/kitshop/kitshop/pkg/logging"
	"github.com/kitshop/kitshop/pkg/observe"
	"github.com/kitshop/kitshop/pkg/postgres"
)

// Config is what every service is configured with. Each field is a flag with a
// KITSHOP_* environment fallback (see pkg/config).
type Config struct {
	Service       string
	HTTPAddr      string // listen address; ":0" picks a free port
	GRPCAddr      string // gRPC listen address of a service serving gRPC (GRPCServer)
	AdvertiseHost string // the host registered in Consul; AdvertiseRoute: found at start
	ConsulAddr    string // empty: do not register or discover
	DatabaseURL   string // empty: the service uses its in-memory store
	ZipkinURL     string // empty: propagate traces, report nothing
	LogLevel      string
	Tags          string        // comma-separated Consul tags
	Drain         time.Duration // pause between deregistering and closing the listener
	ShutdownGrace time.Duration // how long in-flight requests get to finish

	// The instance's Consul ACL token, for an agent with ACLs on: ConsulTokenFile (read
	// at start) or ConsulToken. Empty: the agent's default token.
	ConsulToken     string
	ConsulTokenFile string

	CheckInterval   time.Duration
	DeregisterAfter time.Duration
	Resync          time.Duration // how often the registration is checked and renewed
	DiscoveryGrace  time.Duration // how long an empty answer of a restarted agent is not believed
	PprofAddr       string        // where net/http/pprof listens; empty: nowhere

	// Transport security (see tls.go and docs/security.md).
	TLS             string        // "on": mTLS with Consul Connect's CA; "" or "off": plain HTTP
	TLSCert, TLSKey string        // the public certificate of the edge (Edge only)
	Edge            bool          // the listener faces clients, not services (the gateway)
	IntentionsCache time.Duration // how long an intention decision is reused

	// The edge only (see edge.go): the load balancers whose X-Forwarded-For and
	// X-Forwarded-Proto are believed (comma-separated CIDRs or addresses), and the
	// listener of /metrics and the detailed /health, registered in Consul.
	TrustedProxies string
	AdminAddr      string
	// ReusePort lets a replacement listen on the same port before this one stops.
	ReusePort bool

	// Admission (pkg/admission): requests worked on at once, and how long one more
	// waits for its turn before it is answered 503 overloaded. The edge (gateway) has
	// limits of its own per route class instead.
	AdmitLimit int
	AdmitWait  time.Duration

	// Calls to other services: over TransportHTTP or TransportGRPC, with these budgets.
	InternalTransport string
	CallTimeout       time.Duration
	AttemptTimeout    time.Duration
	CallRetries       int
	BreakerMax        int
	BreakerPercent    int
	BreakerVolume     int
	BreakerSleep      time.Duration
}

// RegisterFlags declares the common flags on fs with service's default listen address.
// Set Edge first for the public edge, which has no -admit-limit of its own.
func (c *Config) RegisterFlags(fs *flag.FlagSet, service, defaultAddr string) {
	c.Service = service
	fs.StringVar(&c.HTTPAddr, "http-addr", defaultAddr, "listen address (\":0\" picks a free port)")
	if !c.Edge {
		fs.StringVar(&c.GRPCAddr, "grpc-addr", ":0", "gRPC listen address of a service that serves gRPC (\":0\": a free port; registered in Consul either way)")
	}
	fs.StringVar(&c.AdvertiseHost, "advertise-host", "127.0.0.1", "host other services reach this instance at; \""+AdvertiseRoute+"\": this machine's address on its route to the Consul agent (in a container: the container's own address, so each replica registers its own)")
	fs.StringVar(&c.ConsulAddr, "consul-addr", "127.0.0.1:8500", "Consul agent address; empty disables registration and discovery")
	fs.StringVar(&c.ConsulToken, "consul-token", "", "Consul ACL token of this instance (with ACLs on, it must allow registering the service and fetching its certificate); empty: the agent's default")
	fs.StringVar(&c.ConsulTokenFile, "consul-token-file", "", "file holding the Consul ACL token, read at start (wins over -consul-token)")
	fs.StringVar(&c.DatabaseURL, "database-url", "", "PostgreSQL URL (postgres://…?sslmode=disable); empty uses an in-memory store")
	fs.StringVar(&c.ZipkinURL, "zipkin-url", "", "Zipkin span collector, e.g. http://127.0.0.1:9411/api/v2/spans")
	fs.StringVar(&c.LogLevel, "log-level", "info", "debug, info, warn or error")
	fs.StringVar(&c.Tags, "tags", "", "comma-separated Consul tags")
	fs.DurationVar(&c.Drain, "drain", 500*time.Millisecond, "pause after deregistering before the listener closes")
	fs.DurationVar(&c.ShutdownGrace, "shutdown-grace", 10*time.Second, "time in-flight requests get to finish on shutdown")
	fs.DurationVar(&c.CheckInterval, "check-interval", time.Second, "Consul health check interval")
	fs.DurationVar(&c.DeregisterAfter, "deregister-after", time.Minute, "Consul removes an instance critical this long (minimum 1m)")
	fs.DurationVar(&c.Resync, "consul-resync", 5*time.Second, "how often the instance checks it is still registered (an agent restart forgets it)")
	fs.StringVar(&c.PprofAddr, "pprof-addr", "", "serve net/http/pprof here (e.g. 127.0.0.1:6060); empty: off")
	fs.StringVar(&c.TLS, "tls", TLSOn, "\"on\": calls between services use mTLS with Consul Connect's CA and intentions; \"off\": plain HTTP (for debugging)")
	fs.StringVar(&c.TLSCert, "tls-cert", "", "the gateway's HTTPS certificate (PEM); empty: plain HTTP at the edge")
	fs.StringVar(&c.TLSKey, "tls-key", "", "the key of -tls-cert (PEM)")
	fs.DurationVar(&c.IntentionsCache, "intentions-cache", 5*time.Second, "how long a caller's authorisation by Consul intentions is reused")
	fs.DurationVar(&c.DiscoveryGrace, "discovery-grace", 15*time.Second, "after Consul was unreachable or restarted, how long an empty instance list is not believed")
	if c.Edge {
		fs.StringVar(&c.TrustedProxies, "trusted-proxies", "", "load balancers in front (CIDRs or addresses, comma-separated) whose X-Forwarded-For and X-Forwarded-Proto are believed; empty: none, the client is the connection's peer")
		fs.BoolVar(&c.ReusePort, "reuse-port", false, "listen with SO_REUSEPORT (Linux), so that a new gateway can take over the port of a running one before it stops; both serve until the old one has drained")
		fs.StringVar(&c.AdminAddr, "admin-addr", "", "serve /metrics and the detailed /health on this listener and register it in Consul (its check, Prometheus); empty: both on the public port, to loopback clients only")
	}
	if !c.Edge { // the edge's limits are its own, per route class
		fs.IntVar(&c.AdmitLimit, "admit-limit", DefaultAdmitLimit, "requests worked on at once; more wait up to -admit-wait, then get 503 overloaded")
		fs.DurationVar(&c.AdmitWait, "admit-wait", DefaultAdmitWait, "longest wait of a request for its turn (never past its caller's deadline)")
	}
	fs.StringVar(&c.InternalTransport, "internal-transport", TransportHTTP, "transport of the calls to other services: \""+TransportHTTP+"\" (JSON) or \""+TransportGRPC+"\"; the public API through the gateway is HTTP JSON either way")
	fs.DurationVar(&c.CallTimeout, "call-timeout", 3*time.Second, "budget of one call to another service, retries included (also the breaker timeout)")
	fs.DurationVar(&c.AttemptTimeout, "attempt-timeout", time.Second, "budget of one try of a read (GET) from another service; a try of a write gets what is left of -call-timeout")
	fs.IntVar(&c.CallRetries, "call-retries", 2, "further tries of an idempotent call to another service")
	fs.IntVar(&c.BreakerMax, "breaker-max-concurrent", client.DefaultBreaker.MaxConcurrent, "calls in flight to one service before more are rejected")
	fs.IntVar(&c.BreakerPercent, "breaker-error-percent", client.DefaultBreaker.ErrorPercent, "error rate that opens a breaker")
	fs.IntVar(&c.BreakerVolume, "breaker-volume", client.DefaultBreaker.VolumeThreshold, "calls in 10 s before a breaker may open")
	fs.DurationVar(&c.BreakerSleep, "breaker-sleep", client.DefaultBreaker.SleepWindow, "how long an open breaker waits before a trial call")
}

// Defaults of the admission flags: well above what two cores and a database work on
// at once (more only queues inside the process), and a wait far below the callers'
// deadlines, so that admitted work finishes in time.
const (
	DefaultAdmitLimit = 64
	DefaultAdmitWait  = 250 * time.Millisecond
)

// AdvertiseRoute as the advertised host stands for the local address of the route to
// the Consul agent: where Consul's checks and the instance's peers, on the agent's
// network, reach the instance.
const AdvertiseRoute = "auto"

// App holds what a running service shares across its parts.
type App struct {
	Config  Config
	Logger  log.Logger
	Metrics *observe.Metrics
	Tracer  *zipkin.Tracer
	Consul  *consul.Client // nil when ConsulAddr is empty

	reporter    reporter.Reporter
	listener    net.Listener
	admin       net.Listener      // the edge's admin listener; nil without AdminAddr
	identity    *connect.Identity // nil when TLS is off
	clients     clientip.Resolver // the edge's clients behind TrustedProxies
	draining    atomic.Bool       // shutting down: /health answers 503
	healthRound healthRound       // the latest round of dependency checks

	mu         sync.Mutex
	checks     map[string]func(context.Context) error
	closers    []io.Closer
	instancers map[string]*discovery.ConsulInstancer
	pathRules  []connect.PathRule
	rulesInUse bool                // the rules are fixed: RestrictPaths refuses more
	authz      *connect.Authorizer // with mTLS, made by the first of HTTP and gRPC to need it
	grpcServer *grpc.Server        // nil unless the service serves gRPC (GRPCServer)

	limiterOnce sync.Once
	limiter     *admission.Limiter // the admission limit of HTTP and gRPC calls
}

// New listens on the configured address (so the real port is known before the tracer
// and registration need it) and builds the logger, metrics, tracer and Consul client.
func New(cfg Config, logOutput io.Writer) (*App, error) {
	logger, err := logging.New(logOutput, cfg.Service, cfg.LogLevel)
	if err != nil {
		return nil, err
	}
	if err := cfg.validateTLS(); err != nil {
		return nil, err
	}
	switch cfg.InternalTransport {
	case "", TransportHTTP, TransportGRPC:
	default:
		return nil, fmt.Errorf("-internal-transport must be %q or %q, not %q", TransportHTTP, TransportGRPC, cfg.InternalTransport)
	}
	if !cfg.Edge && cfg.AdmitLimit < 1 {
		return nil, fmt.Errorf("-admit-limit must be at least 1")
	}
	if cfg.AdvertiseHost == AdvertiseRoute {
		if cfg.ConsulAddr == "" {
			return nil, fmt.Errorf("-advertise-host %s needs -consul-addr", AdvertiseRoute)
		}
		if cfg.AdvertiseHost, err = discovery.RouteAddress(cfg.ConsulAddr); err != nil {
			return nil, fmt.Errorf("-advertise-host %s: %w", AdvertiseRoute, err)
		}
	}
	proxies, err := clientip.ParsePrefixes(cfg.TrustedProxies)
	if err != nil {
		return nil, fmt.Errorf("-trusted-proxies: %w", err)
	}
	addr := cfg.listenAddr()
	ln, err := listen(addr, cfg.ReusePort)
	if err != nil {
		return nil, fmt.Errorf("listen %s: %w", addr, err)
	}
	if addr != cfg.HTTPAddr {
		_ = level.Info(logger).Log("msg", "plain HTTP between services: listening on loopback only; name an interface (0.0.0.0:port) to listen on others", "addr", addr)
	} else if !cfg.Edge && !cfg.tlsOn() && !loopbackHost(addr) {
		_ = level.Warn(logger).Log("msg", "plain HTTP on a public interface: every caller is anonymous, and the routes meant for one service (/internal/) answer loopback callers only", "addr", addr)
	}
	a := &App{
		Config:   cfg,
		Logger:   logger,
		Metrics:  observe.NewMetrics(cfg.Service),
		listener: ln,
		clients:  clientip.New(proxies),
		checks:   map[string]func(context.Context) error{},

		instancers: map[string]*discovery.ConsulInstancer{},
	}
	if cfg.AdminAddr != "" {
		if a.admin, err = net.Listen("tcp", cfg.AdminAddr); err != nil {
			ln.Close()
			return nil, fmt.Errorf("listen %s: %w", cfg.AdminAddr, err)
		}
	}
	a.Metrics.RegisterBreakers(client.BreakerStates)
	a.Tracer, a.reporter, err = observe.NewTracer(cfg.Service, a.HostPort(), cfg.ZipkinURL)
	if err != nil {
		ln.Close()
		return nil, err
	}
	if cfg.ConsulAddr != "" {
		conf := consul.DefaultConfig()
		conf.Address = cfg.ConsulAddr
		if cfg.ConsulToken != "" {
			conf.Token = cfg.ConsulToken
		}
		if cfg.ConsulTokenFile != "" {
			conf.TokenFile = cfg.ConsulTokenFile
		}
		if a.Consul, err = consul.NewClient(conf); err != nil {
			a.Close()
			return nil, fmt.Errorf("consul client: %w", err)
		}
	}
	if cfg.tlsOn() {
		if a.identity, err = a.newIdentity(); err != nil {
			a.Close()
			return nil, err
		}
		a.closers = append(a.closers, a.identity)
	}
	return a, nil
}

// Port is the port the instance actually listens on.
func (a *App) Port() int { return a.listener.Addr().(*net.TCPAddr).Port }

// AdminPort is the port of the edge's admin listener; 0 without one.
func (a *App) AdminPort() int {
	if a.admin == nil {
		return 0
	}
	return a.admin.Addr().(*net.TCPAddr).Port
}

// ClientIP finds the clients of the edge behind its trusted proxies.
func (a *App) ClientIP() clientip.Resolver { return a.clients }

// HostPort is the advertised host and the real port.
func (a *App) HostPort() string {
	return net.JoinHostPort(a.Config.AdvertiseHost, strconv.Itoa(a.Port()))
}

// AddCheck adds a dependency check to GET /health.
func (a *App) AddCheck(name string, check func(context.Context) error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.checks[name] = check
}

// OnClose closes c when the app closes, after the server has stopped.
func (a *App) OnClose(c io.Closer) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.closers = append(a.closers, c)
}

// OpenDB opens the service's PostgreSQL database (creating it and applying migrations),
// adds its ping to the health check and exports its pool's statistics (kitshop_db_*).
// It returns nil, nil when no URL is configured: the service then uses its memory store.
func (a *App) OpenDB(ctx context.Context, migrations fs.FS) (*sql.DB, error) {
	if a.Config.DatabaseURL == "" {
		_ = level.Warn(a.Logger).Log("msg", "no database URL: using the in-memory store; data is lost on exit")
		return nil, nil
	}
	db, err := postgres.Open(ctx, a.Config.DatabaseURL, postgres.DefaultPool, migrations)
	if err != nil {
		return nil, err
	}
	a.AddCheck("postgres", db.PingContext)
	a.Metrics.RegisterDBPool(db)
	a.OnClose(db)
	warmCtx, stopWarm := context.WithCancel(context.Background())
	go postgres.KeepWarm(warmCtx, db, postgres.DefaultPool)
	a.OnClose(closerFunc(func() error { stopWarm(); return nil })) // closed before db
	return db, nil
}

// Instancer watches the passing instances of service in Consul; every caller of the
// same service shares one watch.
func (a *App) Instancer(service string) (sd.Instancer, error) {
	return a.instancer(service, service, discovery.NewConsulInstancer)
}

// GRPCInstancer watches the passing instances of service at their gRPC port; every
// caller shares one watch.
func (a *App) GRPCInstancer(service string) (sd.Instancer, error) {
	return a.instancer(service+" grpc", service, discovery.NewConsulGRPCInstancer)
}

func (a *App) instancer(key, service string, watch func(*consul.Client, string, time.Duration, log.Logger) *discovery.ConsulInstancer) (sd.Instancer, error) {
	if a.Consul == nil {
		return nil, errors.New("no Consul address: cannot discover " + service)
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	if ins, ok := a.instancers[key]; ok {
		return ins, nil
	}
	ins := watch(a.Consul, service, a.Config.DiscoveryGrace, a.Logger)
	a.instancers[key] = ins
	a.closers = append(a.closers, ins)
	return ins, nil
}

// UserKeys is the source of the keys that verify tokens, in every service but user:
// the keys the instances of service (the user service's Consul name) publish,
// fetched over the internal transport with opts, and kept fresh until the app closes.
func (a *App) UserKeys(service string, opts client.Options, cfg auth.JWKSConfig) (*auth.JWKSSource, error) {
	instancer, fetcher := a.Instancer, auth.NewUserJWKSFetcher
	if a.InternalTransport() == TransportGRPC {
		instancer, fetcher = a.GRPCInstancer, auth.NewUserGRPCJWKSFetcher
	}
	users, err := instancer(service)
	if err != nil {
		return nil, err
	}
	keys := auth.NewJWKSSource(fetcher(users, opts), cfg)
	a.OnClose(keys)
	return keys, nil
}

// InternalTransport is the transport of this service's calls to others:
// TransportHTTP or TransportGRPC.
func (a *App) InternalTransport() string {
	if a.Config.InternalTransport == "" {
		return TransportHTTP
	}
	return a.Config.InternalTransport
}

// ClientOptions are the options for calls from this service to others. With TLS on,
// the server must be a kitshop service; ClientOptionsFor says which.
func (a *App) ClientOptions() client.Options { return a.ClientOptionsFor("") }

// ClientOptionsFor are the options for calls to service only: with TLS on, its
// instances must present a Connect certificate for that service (an instance of
// another service registered under its name is refused at the handshake).
func (a *App) ClientOptionsFor(service string) client.Options {
	c := a.Config
	o := client.Options{
		Caller:         c.Service,
		Timeout:        c.CallTimeout,
		AttemptTimeout: c.AttemptTimeout,
		Retries:        c.CallRetries,
		Breaker: client.Breaker{
			MaxConcurrent:   c.BreakerMax,
			ErrorPercent:    c.BreakerPercent,
			VolumeThreshold: c.BreakerVolume,
			SleepWindow:     c.BreakerSleep,
		},
		Tracer:     a.Tracer,
		Logger:     a.Logger,
		Before:     []kithttp.RequestFunc{auth.ContextToHTTP()},
		GRPCBefore: []kitgrpc.ClientRequestFunc{auth.ContextToGRPC()},
	}
	if a.identity != nil {
		o.TLS = a.identity.ClientTLS(service)
	}
	return o.Defaults()
}

// Close releases what New and OnClose gathered, flushing spans last.
func (a *App) Close() {
	a.mu.Lock()
	closers := a.closers
	a.closers = nil
	a.mu.Unlock()
	for i := len(closers) - 1; i >= 0; i-- {
		_ = closers[i].Close()
	}
	a.listener.Close()
	if a.admin != nil {
		a.admin.Close()
	}
	if a.reporter != nil {
		_ = a.reporter.Close()
	}
}

// Observer decorates server endpoints with this app's logger, metrics and tracer.
func (a *App) Observer() observe.Observer {
	return observe.Observer{Logger: a.Logger, Metrics: a.Metrics, Tracer: a.Tracer}
}

type closerFunc func() error

func (f closerFunc) Close() error { return f() }
