package app

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	stdlog "log"
	"net"
	"net/http"
	"net/http/pprof"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	kitlog "github.com/go-kit/log"
	"github.com/go-kit/log/level"

	"github.com/kitshop/kitshop/pkg/admission"
	"github.com/kitshop/kitshop/pkg/client"
	"github.com/kitshop/kitshop/pkg/discovery"
)

// checkTimeout bounds each dependency check of GET /health.
const checkTimeout = time.Second

// Run serves h (plus GET /health and GET /metrics) until ctx is done, registered in
// Consul while it serves: it is Serve(ctx, a.Handler(h)).
func (a *App) Run(ctx context.Context, h http.Handler) error { return a.Serve(ctx, a.Handler(h)) }

// Handler is what the public listener serves: h, plus GET /health and GET /metrics,
// behind the admission limit and what the mode asks (secure). The edge keeps /metrics
// and the detail of /health for operators (edge.go). The gateway wraps it in its own
// request IDs and trace, so that these answers carry them too.
func (a *App) Handler(h http.Handler) http.Handler {
	detailed := always
	if a.Config.Edge {
		detailed = a.local
	}
	mux := http.NewServeMux()
	mux.Handle("GET /health", a.healthHandler(detailed))
	mux.Handle("GET /metrics", operatorsOnly(a.Metrics.Handler(), detailed))
	mux.Handle("/", a.admit(h))
	return a.secure(mux)
}

// Serve serves handler (Handler's, or one around it) until ctx is done, registered in
// Consul while it serves. On shutdown it deregisters first, waits Drain so callers see
// the change, then stops accepting and gives in-flight requests ShutdownGrace.
func (a *App) Serve(ctx context.Context, handler http.Handler) error {
	listener, err := a.secureListener()
	if err != nil {
		return err
	}

	srv := a.newServer(closeWhenDraining(&a.draining, handler))
	serveErr := make(chan error, 3)
	go func() { serveErr <- srv.Serve(listener) }()
	if a.admin != nil {
		admin := http.NewServeMux()
		admin.Handle("GET /health", a.healthHandler(always))
		admin.Handle("GET /metrics", a.Metrics.Handler())
		adminSrv := a.newServer(admin)
		go func() {
			if err := adminSrv.Serve(a.admin); !errors.Is(err, http.ErrServerClosed) {
				serveErr <- fmt.Errorf("admin listener: %w", err)
			}
		}()
		defer adminSrv.Close() // after the public server's graceful shutdown
	}
	if a.Config.PprofAddr != "" {
		stopPprof, err := a.servePprof()
		if err != nil {
			_ = srv.Close()
			return err
		}
		defer stopPprof()
	}

	grpcPort, stopGRPC, err := a.serveGRPC(serveErr)
	if err != nil {
		_ = srv.Close()
		return err
	}

	var registrar *discovery.Registrar
	maintainCtx, stopMaintain := context.WithCancel(context.Background())
	defer stopMaintain()
	if a.Consul != nil {
		// With an admin listener, the edge registers it: Consul checks its /health and
		// Prometheus scrapes its /metrics there; clients reach the public port through
		// a load balancer, never through Consul.
		port, meta := a.Port(), map[string]string{"transport": a.transport()}
		if a.admin != nil {
			port, meta = a.AdminPort(), map[string]string{"transport": "http", "public_port": strconv.Itoa(a.Port())}
		}
		registrar = discovery.NewRegistrar(a.Consul, discovery.Registration{
			Service:         a.Config.Service,
			Host:            a.Config.AdvertiseHost,
			Port:            port,
			Tags:            splitTags(a.Config.Tags),
			Meta:            meta,
			GRPCPort:        grpcPort,
			GRPCTLS:         a.identity != nil,
			CheckInterval:   a.Config.CheckInterval,
			CheckTimeout:    checkTimeout + checkTimeout/2,
			DeregisterAfter: a.Config.DeregisterAfter,
		}, a.Logger)
		regCtx, cancel := context.WithTimeout(ctx, 10*time.Second)
		err := registrar.Register(regCtx)
		cancel()
		if err != nil {
			_ = srv.Close()
			stopGRPC(0)
			return err
		}
		go registrar.Maintain(maintainCtx, a.Config.Resync)
	}
	_ = level.Info(a.Logger).Log("msg", "serving", "addr", a.HostPort(), "grpc_port", grpcPort, "internal_transport", a.InternalTransport(), "consul_id", registrationID(registrar), "mtls", a.identity != nil)

	select {
	case err := <-serveErr:
		_ = srv.Close()
		stopGRPC(0)
		return err
	case <-ctx.Done():
	}

	_ = level.Info(a.Logger).Log("msg", "shutting down")
	a.draining.Store(true)
	stopMaintain()
	if registrar != nil {
		dctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		if err := registrar.Deregister(dctx); err != nil {
			_ = level.Warn(a.Logger).Log("msg", "deregistration failed; consul will drop the instance when its check fails", "err", err)
		}
		cancel()
		time.Sleep(a.Config.Drain)
	}
	sctx, cancel := context.WithTimeout(context.Background(), a.Config.ShutdownGrace)
	defer cancel()
	grpcStopped := make(chan struct{})
	go func() { stopGRPC(a.Config.ShutdownGrace); close(grpcStopped) }()
	defer func() { <-grpcStopped }()
	if err := srv.Shutdown(sctx); err != nil {
		return err
	}
	if err := <-serveErr; !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	_ = level.Info(a.Logger).Log("msg", "stopped")
	return nil
}

// admit bounds a service's own routes (not /health nor /metrics, which must answer
// however busy the instance is) by its admission limit, within the deadline its caller
// sent. The edge is left alone: its limits are per route class (gateway), and its
// callers' deadlines are their own business.
func (a *App) admit(h http.Handler) http.Handler {
	if a.Config.Edge {
		return h
	}
	return admission.WithCallerTimeout(a.admissionLimiter().Middleware(h))
}

// newServer is the HTTP server of one listener, with kitshop's timeouts.
func (a *App) newServer(h http.Handler) *http.Server {
	return &http.Server{
		Handler:           h,
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       30 * time.Second,
		WriteTimeout:      60 * time.Second,
		IdleTimeout:       120 * time.Second,
		MaxHeaderBytes:    64 << 10,
		// Failed TLS handshakes (a certificate of another CA, none at all where one is
		// required) are logged here, as JSON lines like every other.
		ErrorLog: stdlog.New(kitlog.NewStdlibAdapter(level.Warn(a.Logger)), "", 0),
	}
}

// closeWhenDraining ends every connection after its answer once the instance drains
// ("Connection: close"; a GOAWAY over HTTP/2), so that clients leave it between
// requests, on their own terms. Left to Shutdown, a kept-alive connection is closed
// while idle, and a client sending on it just then gets no answer: a PUT or POST is
// not retried on a new connection.
func closeWhenDraining(draining *atomic.Bool, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if draining.Load() {
			w.Header().Set("Connection", "close")
		}
		next.ServeHTTP(w, r)
	})
}

// healthHandler answers 200 when every check passes and the instance is not draining,
// 503 otherwise, with each check's result (and the breakers' states) to the requests
// detailed accepts, and the status alone to others.
func (a *App) healthHandler(detailed func(*http.Request) bool) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		status, results := a.health(r.Context())
		code := http.StatusOK
		if status != "ok" {
			code = http.StatusServiceUnavailable
		}
		w.Header().Set("Content-Type", "application/json; charset=utf-8")
		w.WriteHeader(code)
		if !detailed(r) {
			_ = json.NewEncoder(w).Encode(map[string]string{"status": status})
			return
		}
		body := map[string]any{"status": status, "service": a.Config.Service, "checks": results}
		if breakers := client.BreakerStates(); len(breakers) > 0 {
			body["breakers"] = breakers // informative: an open breaker is not this instance failing
		}
		_ = json.NewEncoder(w).Encode(body)
	})
}

// health answers from the latest round of dependency checks: the status is "ok",
// "failing" (a check failed) or "draining" (shutting down), with each check's result.
func (a *App) health(ctx context.Context) (status string, results map[string]string) {
	failing, results := a.healthRound.answer(ctx, a.checkRound)
	switch {
	case failing:
		status = "failing"
	case a.draining.Load():
		status = "draining"
	default:
		status = "ok"
	}
	return status, results
}

// checkRound runs every dependency check once.
func (a *App) checkRound(ctx context.Context) (failing bool, results map[string]string) {
	a.mu.Lock()
	names := make([]string, 0, len(a.checks))
	for name := range a.checks {
		names = append(names, name)
	}
	checks := a.checks
	a.mu.Unlock()
	sort.Strings(names)

	results = map[string]string{}
	for _, name := range names {
		cctx, cancel := context.WithTimeout(ctx, checkTimeout)
		err := checks[name](cctx)
		cancel()
		results[name] = "ok"
		if err != nil {
			results[name] = "failing"
			failing = true
			_ = level.Warn(a.Logger).Log("msg", "health check failing", "check", name, "err", err)
		}
	}
	return failing, results
}

// healthReuse is how long one round of checks answers for. Consul asks each interval
// over HTTP and, on a gRPC server, over gRPC too, and people may ask as well: they
// share a round (a database ping, the broker's state) instead of each running it.
const healthReuse = 500 * time.Millisecond

// healthRound is the latest round of checks. Callers that come while one runs wait
// for it rather than start their own.
type healthRound struct {
	mu      sync.Mutex
	at      time.Time // zero: none yet
	failing bool
	results map[string]string // never changed once made
}

func (r *healthRound) answer(ctx context.Context, run func(context.Context) (bool, map[string]string)) (bool, map[string]string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.at.IsZero() || time.Since(r.at) >= healthReuse {
		// Not the caller's cancellation: the round answers the others too.
		r.failing, r.results = run(context.WithoutCancel(ctx))
		r.at = time.Now()
	}
	return r.failing, r.results
}

// transport says in Consul how the instance is called, for people and tools reading
// the catalogue: "mtls" (Connect certificates), "https" (the edge) or "http".
func (a *App) transport() string {
	switch {
	case a.Config.Edge && a.Config.TLSCert != "":
		return "https"
	case !a.Config.Edge && a.identity != nil:
		return "mtls"
	}
	return "http"
}

func splitTags(s string) []string {
	var tags []string
	for _, t := range strings.Split(s, ",") {
		if t = strings.TrimSpace(t); t != "" {
			tags = append(tags, t)
		}
	}
	return tags
}

func registrationID(r *discovery.Registrar) string {
	if r == nil {
		return ""
	}
	return r.ID()
}

// servePprof serves the profiler on its own listener, apart from the service's port,
// so it is never reachable through the instance's registered address.
func (a *App) servePprof() (stop func(), err error) {
	ln, err := net.Listen("tcp", a.Config.PprofAddr)
	if err != nil {
		return nil, fmt.Errorf("pprof listen %s: %w", a.Config.PprofAddr, err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = srv.Serve(ln) }()
	_ = level.Info(a.Logger).Log("msg", "profiler listening", "addr", ln.Addr().String())
	return func() { _ = srv.Close() }, nil
}
