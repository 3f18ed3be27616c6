// Command inventory serves the catalogue and stock reservations.
package main

import (
	"context"
	"flag"
	"os"
	"time"

	"github.com/kitshop/kitshop/inventory"
	"github.com/kitshop/kitshop/pkg/app"
	"github.com/kitshop/kitshop/pkg/auth"
	"github.com/kitshop/kitshop/pkg/config"
)

func main() { app.Main("inventory", run) }

func run(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("inventory", flag.ExitOnError)
	var cfg app.Config
	cfg.RegisterFlags(fs, "inventory", ":8082")
	currency := fs.String("currency", "EUR", "the one currency the shop sells in")
	ttl := fs.Duration("reservation-ttl", 15*time.Minute, "how long a reservation holds stock before it expires")
	sweep := fs.Duration("expiry-interval", 5*time.Second, "how often expired reservations are returned to stock")
	tokenTTL := fs.Duration("token-ttl", auth.DefaultTokenTTL, "the user service's -token-ttl: tokens issued for longer (exp − iat) are refused")
	if err := config.Parse(fs, args, nil); err != nil {
		return err
	}

	a, err := app.New(cfg, os.Stderr)
	if err != nil {
		return err
	}
	defer a.Close()
	// Intentions let the gateway call this service; its /internal/ routes, and the
	// reservations over gRPC, are the order saga's alone.
	a.RestrictPaths("/internal/", "order")
	a.RestrictPaths(inventory.GRPCReservationsPrefix, "order")
	db, err := a.OpenDB(ctx, inventory.Migrations())
	if err != nil {
		return err
	}
	store := inventory.NewMemoryStore()
	if db != nil {
		store = inventory.NewPostgresStore(db)
	}
	keys, err := a.UserKeys(auth.UserService, a.ClientOptionsFor("user"), auth.JWKSConfig{})
	if err != nil {
		return err
	}
	verifier := auth.NewVerifier(keys, auth.DefaultIssuer, auth.DefaultAudience, *tokenTTL)

	svc := inventory.NewService(store, *currency, *ttl, time.Now)
	go inventory.ExpireReservations(ctx, store, *sweep, time.Now, a.Logger)
	endpoints := inventory.MakeServerEndpoints(svc, a.Observer(), verifier)
	inventory.RegisterGRPCServer(a.GRPCServer(), endpoints, a.Tracer)
	return a.Run(ctx, inventory.MakeHTTPHandler(endpoints, a.Tracer))
}
