// Command order serves carts and checkouts: the checkout saga across inventory and
// payment, its recovery loop, and the outbox relay of order events.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"time"

	"github.com/go-kit/log/level"

	"github.com/kitshop/kitshop/inventory"
	"github.com/kitshop/kitshop/order"
	"github.com/kitshop/kitshop/payment"
	"github.com/kitshop/kitshop/pkg/app"
	"github.com/kitshop/kitshop/pkg/auth"
	"github.com/kitshop/kitshop/pkg/config"
	"github.com/kitshop/kitshop/pkg/outbox"
)

func main() { app.Main("order", run) }

func run(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("order", flag.ExitOnError)
	var cfg app.Config
	cfg.RegisterFlags(fs, "order", ":8083")
	var oc order.Config
	fs.StringVar(&oc.Currency, "currency", "EUR", "the one currency the shop sells in")
	fs.DurationVar(&oc.RequestDeadline, "request-deadline", 5*time.Second, "how long a checkout waits for its saga before answering 202 pending")
	fs.DurationVar(&oc.SagaTimeout, "saga-timeout", 2*time.Minute, "how long a saga goes on in the background after its request answered")
	fs.DurationVar(&oc.ReservationTTL, "reservation-ttl", 15*time.Minute, "inventory's reservation TTL: a checkout older than this is compensated, not completed")
	fs.DurationVar(&oc.RecoveryGrace, "recovery-grace", 30*time.Second, "how long a saga may show no progress before the recovery loop takes it over")
	fs.DurationVar(&oc.Backoff.Min, "retry-backoff-min", 50*time.Millisecond, "first pause before retrying a saga step whose service is down")
	fs.DurationVar(&oc.Backoff.Max, "retry-backoff-max", 2*time.Second, "longest pause between retries of a saga step")
	interval := fs.Duration("recovery-interval", 10*time.Second, "how often unfinished sagas are looked for")
	amqpURL := fs.String("amqp-url", "", "RabbitMQ URL (amqp://guest:guest@127.0.0.1:5672/) the outbox is relayed to; empty relays nothing")
	tokenTTL := fs.Duration("token-ttl", auth.DefaultTokenTTL, "the user service's -token-ttl: tokens issued for longer (exp − iat) are refused")
	if err := config.Parse(fs, args, nil); err != nil {
		return err
	}
	// A saga renews its lease between remote calls: a lease that one call can outlast
	// would let recovery take over a saga whose charge is still in flight.
	if oc.RecoveryGrace < 2*cfg.CallTimeout {
		return fmt.Errorf("-recovery-grace (%s) must be at least twice -call-timeout (%s)", oc.RecoveryGrace, cfg.CallTimeout)
	}

	a, err := app.New(cfg, os.Stderr)
	if err != nil {
		return err
	}
	defer a.Close()
	db, err := a.OpenDB(ctx, order.Migrations())
	if err != nil {
		return err
	}
	store := order.NewMemoryStore()
	if db != nil {
		store = order.NewPostgresStore(db)
	}
	switch {
	case db == nil:
		_ = level.Warn(a.Logger).Log("msg", "memory store: order events are kept in memory and never published")
	case *amqpURL == "":
		_ = level.Warn(a.Logger).Log("msg", "no RabbitMQ URL: order events wait in the outbox table")
	default:
		relay, err := outbox.NewRelay(outbox.Config{DB: db, URL: *amqpURL, Logger: a.Logger, Metrics: a.Metrics, Tracer: a.Tracer})
		if err != nil {
			return err
		}
		a.AddCheck("rabbitmq", relay.Check)
		go func() { _ = relay.Run(ctx) }()
	}

	keys, err := a.UserKeys(auth.UserService, a.ClientOptionsFor("user"), auth.JWKSConfig{})
	if err != nil {
		return err
	}
	verifier := auth.NewVerifier(keys, auth.DefaultIssuer, auth.DefaultAudience, *tokenTTL)
	inv, pay, err := upstreams(a)
	if err != nil {
		return err
	}

	oc.Now, oc.Logger, oc.Metrics, oc.Tracer = time.Now, a.Logger, a.Metrics, a.Tracer
	saga := order.NewSaga(store, inv, pay, oc)
	defer saga.Close()
	go order.RecoverSagas(ctx, saga, store, *interval, a.Logger)
	svc := order.NewService(store, inv, saga, oc)
	return a.Run(ctx, order.MakeHTTPHandler(order.MakeServerEndpoints(svc, a.Observer(), verifier), a.Tracer))
}

// upstreams are the saga's inventory and payment, called over -internal-transport.
func upstreams(a *app.App) (inventory.Service, payment.Service, error) {
	instancer, newInventory, newPayment := a.Instancer, inventory.NewHTTPClient, payment.NewHTTPClient
	if a.InternalTransport() == app.TransportGRPC {
		instancer, newInventory, newPayment = a.GRPCInstancer, inventory.NewGRPCClient, payment.NewGRPCClient
	}
	inventories, err := instancer("inventory")
	if err != nil {
		return nil, nil, err
	}
	payments, err := instancer("payment")
	if err != nil {
		return nil, nil, err
	}
	return newInventory(inventories, a.ClientOptionsFor("inventory")), newPayment(payments, a.ClientOptionsFor("payment")), nil
}
