package amqpconn_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/go-kit/log"
	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/kitshop/kitshop/pkg/amqpconn"
	"github.com/kitshop/kitshop/pkg/backoff"
	"github.com/kitshop/kitshop/pkg/testenv"
)

// A session that fails, or whose channel the broker closes, is followed by a new
// connection; Run returns nil when its context ends.
func TestSupervisorRedials(t *testing.T) {
	sup := amqpconn.Supervisor{
		URL:     testenv.AMQPURL(t),
		Name:    "kitshop amqpconn test",
		Backoff: backoff.Exponential{Min: 10 * time.Millisecond, Max: 50 * time.Millisecond},
		Logger:  log.NewNopLogger(),
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	sessions := make(chan int, 3)
	var closedErr error
	done := make(chan error, 1)
	go func() {
		n := 0
		done <- sup.Run(ctx, func(ctx context.Context, ch *amqp.Channel, closed <-chan error) error {
			n++
			sessions <- n
			switch n {
			case 1:
				return errors.New("session failed")
			case 2:
				// Declaring a queue passively that does not exist closes the channel.
				_, _ = ch.QueueDeclarePassive(testenv.Name("absent"), false, false, false, false, nil)
				closedErr = <-closed
				return closedErr
			}
			<-ctx.Done()
			return nil
		})
	}()
	for want := 1; want <= 3; want++ {
		select {
		case n := <-sessions:
			if n != want {
				t.Fatalf("session %d, want %d", n, want)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("session %d did not start", want)
		}
	}
	var amqpErr *amqp.Error
	if !errors.As(closedErr, &amqpErr) || amqpErr.Code != amqp.NotFound {
		t.Errorf("closed delivered %v, want the broker's 404", closedErr)
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("Run = %v, want nil", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Run did not return after its context ended")
	}
}
