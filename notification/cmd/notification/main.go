// Command notification emails customers about their orders, from the order events on
// RabbitMQ, and serves GET /v1/notifications.
package main

import (
	"context"
	"flag"
	"os"
	"time"

	"github.com/go-kit/log/level"

	"github.com/kitshop/kitshop/notification"
	"github.com/kitshop/kitshop/pkg/app"
	"github.com/kitshop/kitshop/pkg/auth"
	"github.com/kitshop/kitshop/pkg/config"
)

func main() { app.Main("notification", run) }

func run(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("notification", flag.ExitOnError)
	var cfg app.Config
	cfg.RegisterFlags(fs, "notification", ":8085")
	amqpURL := fs.String("amqp-url", "", "RabbitMQ URL (amqp://guest:guest@127.0.0.1:5672/); empty consumes no events")
	prefetch := fs.Int("prefetch", 64, "order events delivered and not yet acknowledged, at most")
	workers := fs.Int("workers", 4, "order events handled at once")
	maxAttempts := fs.Int("max-attempts", 3, "deliveries of a poison message before it goes to the dead-letter queue")
	smtpAddr := fs.String("smtp-addr", "", "SMTP server host:port; empty records emails without sending them")
	smtpFrom := fs.String("smtp-from", "kitshop <no-reply@kitshop.local>", "sender of the emails")
	smtpTimeout := fs.Duration("smtp-timeout", 10*time.Second, "bound of one email's delivery to the SMTP server")
	tokenTTL := fs.Duration("token-ttl", auth.DefaultTokenTTL, "the user service's -token-ttl: tokens issued for longer (exp − iat) are refused")
	if err := config.Parse(fs, args, nil); err != nil {
		return err
	}

	a, err := app.New(cfg, os.Stderr)
	if err != nil {
		return err
	}
	defer a.Close()
	db, err := a.OpenDB(ctx, notification.Migrations())
	if err != nil {
		return err
	}
	store := notification.NewMemoryStore()
	if db != nil {
		store = notification.NewPostgresStore(db)
	}
	var mailer notification.Mailer = notification.RecordOnly{}
	if *smtpAddr != "" {
		mailer = notification.SMTP{Addr: *smtpAddr, From: *smtpFrom, Timeout: *smtpTimeout}
	} else {
		_ = level.Info(a.Logger).Log("msg", "no SMTP address: emails are recorded, not sent")
	}
	keys, err := a.UserKeys(auth.UserService, a.ClientOptionsFor("user"), auth.JWKSConfig{})
	if err != nil {
		return err
	}
	verifier := auth.NewVerifier(keys, auth.DefaultIssuer, auth.DefaultAudience, *tokenTTL)

	svc := notification.NewService(store, mailer, time.Now)
	endpoints := notification.MakeServerEndpoints(svc, a.Observer(), verifier)

	runCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	consumed := make(chan struct{})
	if *amqpURL == "" {
		_ = level.Warn(a.Logger).Log("msg", "no RabbitMQ URL: order events are not consumed and no emails are sent")
		close(consumed)
	} else {
		consumer, err := notification.NewConsumer(notification.ConsumerConfig{
			URL: *amqpURL, Prefetch: *prefetch, Workers: *workers, MaxAttempts: *maxAttempts,
			Logger: a.Logger, Metrics: a.Metrics, Tracer: a.Tracer,
		}, endpoints)
		if err != nil {
			return err
		}
		a.AddCheck("rabbitmq", consumer.Check)
		go func() {
			defer close(consumed)
			_ = consumer.Run(runCtx)
		}()
	}
	err = a.Run(ctx, notification.MakeHTTPHandler(endpoints, a.Tracer))
	// Events in hand are acknowledged before the database closes.
	cancel()
	<-consumed
	return err
}
