// Command gateway serves kitshop's public API, its OpenAPI document and the storefront,
// routing each call to a passing instance of the service that owns it.
package main

import (
	"context"
	"crypto/tls"
	"flag"
	"fmt"
	"os"
	"runtime/debug"

	"github.com/kitshop/kitshop/gateway"
	"github.com/kitshop/kitshop/pkg/admission"
	"github.com/kitshop/kitshop/pkg/app"
	"github.com/kitshop/kitshop/pkg/auth"
	"github.com/kitshop/kitshop/pkg/config"
)

func main() { app.Main("gateway", run) }

func run(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("gateway", flag.ExitOnError)
	cfg := app.Config{Edge: true}
	cfg.RegisterFlags(fs, "gateway", ":8080")
	services := map[string]*string{}
	for _, s := range []string{gateway.UserService, gateway.InventoryService, gateway.OrderService, gateway.NotificationService} {
		services[s] = fs.String(s+"-service", s, "Consul name of the "+s+" service")
	}
	userRate := fs.Float64("rate-user", 20, "requests a second allowed per user on 🔒 routes")
	userBurst := fs.Int("rate-user-burst", 40, "burst allowed per user")
	anonRate := fs.Float64("rate-anon", 20, "requests a second allowed per client address on public routes")
	anonBurst := fs.Int("rate-anon-burst", 40, "burst allowed per client address")
	maxClients := fs.Int("rate-max-clients", gateway.DefaultMaxClients, "rate-limit buckets kept per kind (users, addresses); idle ones are dropped first")
	maxBody := fs.Int64("max-body", gateway.DefaultMaxBody, "largest request body accepted (413 above)")
	maxResponse := fs.Int64("max-response", gateway.DefaultMaxResponse, "largest upstream answer relayed")
	admit := map[gateway.Class]*gateway.Admit{}
	for _, class := range []gateway.Class{gateway.ClassShop, gateway.ClassAuth} {
		d := gateway.DefaultAdmission[class]
		admit[class] = &gateway.Admit{}
		fs.IntVar(&admit[class].Limit, "admit-"+string(class), d.Limit,
			fmt.Sprintf("most calls of class %s in flight at once; more wait up to -admit-wait, then get 503 overloaded", class))
		fs.DurationVar(&admit[class].Target, "admit-target-"+string(class), d.Target,
			fmt.Sprintf("the mean latency the limit of class %s steers toward: fewer calls admitted while theirs is longer (0: the limit is fixed)", class))
	}
	admitWait := fs.Duration("admit-wait", gateway.DefaultAdmitWait, "longest wait of a call for a slot of its class")
	admitPatience := fs.Duration("admit-patience", gateway.DefaultAdmitPatience, "how long a class stays busy (calls wait at most -admit-busy-wait) after its last refusal, once a call has found its line full")
	admitBusyWait := fs.Duration("admit-busy-wait", gateway.DefaultAdmitBusyWait, "longest wait of a call while its class is busy (see -admit-patience)")
	admitFollowUp := fs.Duration("admit-follow-up", admission.DefaultTicketTTL, "how long a call admitted while its class is busy makes the client's next calls of the class follow-ups, served before first calls (0: no follow-ups)")
	jwksRefresh := fs.Duration("jwks-refresh", auth.DefaultJWKSMinRefresh, "least time between two fetches of the user service's keys (for an unknown key ID, or when their max-age is shorter)")
	tokenTTL := fs.Duration("token-ttl", auth.DefaultTokenTTL, "the user service's -token-ttl: tokens issued for longer (exp − iat) are refused")
	// The gateway's live heap is small (buffered bodies, limiter buckets) and almost all
	// its allocation is per request garbage: collecting less often buys throughput
	// (about 10 % measured under wrk) for a few tens of MB.
	gcPercent := fs.Int("gc-percent", 400, "Go GC target percentage (GOGC) for the gateway process")
	if err := config.Parse(fs, args, nil); err != nil {
		return err
	}
	if *userRate <= 0 || *anonRate <= 0 || *userBurst < 1 || *anonBurst < 1 {
		return fmt.Errorf("rate limits must be positive (raise them for load tests; they cannot be switched off)")
	}
	if *admitWait < 0 || *admitBusyWait < 0 || *admitPatience < 0 || *admitFollowUp < 0 {
		return fmt.Errorf("-admit-wait, -admit-busy-wait, -admit-patience and -admit-follow-up must not be negative")
	}
	if *admitFollowUp == 0 {
		*admitFollowUp = -1 // Options' zero is the default
	}
	for class, a := range admit {
		if a.Limit < 1 || a.Target < 0 {
			return fmt.Errorf("-admit-%s must be at least 1 and -admit-target-%s not negative", class, class)
		}
	}

	debug.SetGCPercent(*gcPercent)

	a, err := app.New(cfg, os.Stderr)
	if err != nil {
		return err
	}
	defer a.Close()
	if a.Consul == nil {
		return fmt.Errorf("the gateway needs Consul (-consul-addr) to find the services")
	}
	opts := gateway.Options{
		Services:  map[string]string{},
		Instancer: a.Instancer,
		Client:    a.ClientOptions(),
		// Each upstream must prove it is the service the route names.
		UpstreamTLS:   func(service string) *tls.Config { return a.ClientOptionsFor(service).TLS },
		ClientIP:      a.ClientIP(),
		UserLimit:     gateway.Limit{Rate: *userRate, Burst: *userBurst},
		AnonLimit:     gateway.Limit{Rate: *anonRate, Burst: *anonBurst},
		MaxClients:    *maxClients,
		Admission:     map[gateway.Class]gateway.Admit{},
		AdmitWait:     *admitWait,
		AdmitBusyWait: *admitBusyWait,
		AdmitPatience: *admitPatience,
		AdmitFollowUp: *admitFollowUp,
		MaxBody:       *maxBody,
		MaxResponse:   *maxResponse,
		// The listener's own answers (/health, /metrics, the HTTPS redirect) go inside
		// the gateway's request IDs and trace, so every answer names them.
		Listener: a.Handler,
		Logger:   a.Logger,
		Metrics:  a.Metrics,
		Tracer:   a.Tracer,
	}
	for s, name := range services {
		opts.Services[s] = *name
	}
	for class, a := range admit {
		opts.Admission[class] = *a
	}
	keys, err := a.UserKeys(opts.ServiceName(gateway.UserService), gateway.VerifierClientOptions(opts), auth.JWKSConfig{MinRefresh: *jwksRefresh})
	if err != nil {
		return err
	}
	opts.Verifier = auth.NewVerifier(keys, auth.DefaultIssuer, auth.DefaultAudience, *tokenTTL)
	h, err := gateway.New(opts)
	if err != nil {
		return err
	}
	return a.Serve(ctx, h)
}
