// Command payment runs the payment service: charges and refunds against a simulated
// card processor, with a ledger.
package main

import (
	"context"
	"flag"
	"math/rand/v2"
	"os"
	"time"

	"github.com/kitshop/kitshop/payment"
	"github.com/kitshop/kitshop/pkg/app"
	"github.com/kitshop/kitshop/pkg/config"
)

func main() { app.Main("payment", run) }

func run(ctx context.Context, args []string) error {
	var (
		cfg  app.Config
		proc payment.SimulatedConfig
		fs   = flag.NewFlagSet("payment", flag.ExitOnError)
	)
	cfg.RegisterFlags(fs, "payment", ":8084")
	fs.DurationVar(&proc.Latency, "processor-latency", 0, "latency the simulated card processor adds to every charge")
	fs.Float64Var(&proc.FailureRate, "processor-failure-rate", 0, "fraction (0 to 1) of charges the simulated processor fails with 503 processor_unavailable")
	fs.Uint64Var(&proc.Seed, "processor-seed", 0, "seed of the simulated processor's failures; 0 picks one at random")
	if err := config.Parse(fs, args, nil); err != nil {
		return err
	}
	if proc.Seed == 0 {
		proc.Seed = rand.Uint64()
	}
	processor, err := payment.NewSimulatedProcessor(proc)
	if err != nil {
		return err
	}

	a, err := app.New(cfg, os.Stderr)
	if err != nil {
		return err
	}
	defer a.Close()
	// The intentions already allow only order; the rule keeps the charges its alone
	// should an intention be widened.
	a.RestrictPaths("/internal/", "order")
	a.RestrictPaths(payment.GRPCPrefix, "order")

	db, err := a.OpenDB(ctx, payment.Migrations())
	if err != nil {
		return err
	}
	store := payment.NewMemoryStore()
	if db != nil {
		store = payment.NewPostgresStore(db)
	}

	processor = payment.InstrumentProcessor(processor,
		a.Metrics.Histogram("payment", "processor_duration_seconds", "Card processor latency by outcome.", "outcome"))

	svc := payment.NewService(store, processor, time.Now)
	svc = payment.Instrument(a.Metrics.Counter("payment", "charges_total", "Charges that moved money or were declined, and refunds, by outcome and decline code.", "outcome", "code"))(svc)

	endpoints := payment.MakeServerEndpoints(svc, a.Observer())
	payment.RegisterGRPCServer(a.GRPCServer(), endpoints, a.Tracer)
	return a.Run(ctx, payment.MakeHTTPHandler(endpoints, a.Tracer))
}
