// Package amqpconn keeps a RabbitMQ connection up: amqp091 does not reconnect by
// itself, so a Supervisor dials, opens a channel, watches both for closing, and when
// either closes (or cannot be had) dials again with backoff.
package amqpconn

import (
	"context"
	"time"

	"github.com/go-kit/log"
	"github.com/go-kit/log/level"
	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/kitshop/kitshop/pkg/backoff"
)

// Session uses one channel until it fails, closed delivers why the connection or the
// channel closed, or ctx ends. The connection is closed when it returns.
type Session func(ctx context.Context, ch *amqp.Channel, closed <-chan error) error

// Supervisor runs a Session over a connection to URL, again and again.
type Supervisor struct {
	URL     string
	Name    string // connection name shown by the broker
	Backoff backoff.Exponential
	Logger  log.Logger
}

// Run runs session on each connection until ctx is done, redialling with backoff
// whenever the connection is lost. It returns nil when ctx ends.
func (s Supervisor) Run(ctx context.Context, session Session) error {
	for attempt := 0; ; attempt++ {
		if attempt > 0 && !backoff.Sleep(ctx, s.Backoff.Jittered(attempt-1)) {
			return nil
		}
		conn, err := Dial(s.URL, s.Name)
		if err != nil {
			_ = level.Warn(s.Logger).Log("msg", "rabbitmq unreachable; retrying", "err", err)
			continue
		}
		err = s.serve(ctx, conn, session)
		_ = conn.Close()
		if ctx.Err() != nil {
			return nil
		}
		_ = level.Warn(s.Logger).Log("msg", "rabbitmq connection lost; reconnecting", "err", err)
		attempt = 0
	}
}

func (s Supervisor) serve(ctx context.Context, conn *amqp.Connection, session Session) error {
	// Buffered so the library never blocks sending the close reason.
	connClosed := conn.NotifyClose(make(chan *amqp.Error, 1))
	ch, err := conn.Channel()
	if err != nil {
		return err
	}
	chClosed := ch.NotifyClose(make(chan *amqp.Error, 1))
	closed := make(chan error, 1)
	// Ends at the latest when the connection is closed after the session: amqp091 then
	// closes both notification channels.
	go func() {
		select {
		case e := <-connClosed:
			closed <- closeError(e)
		case e := <-chClosed:
			closed <- closeError(e)
		}
	}()
	return session(ctx, ch, closed)
}

// closeError is why a connection or channel closed; amqp091 sends nil for a close
// asked for by this side.
func closeError(e *amqp.Error) error {
	if e == nil {
		return amqp.ErrClosed
	}
	return e
}

// Dial connects to RabbitMQ at url, naming the connection (it shows in the broker's
// connection list) and bounding the TCP and AMQP handshake.
func Dial(url, name string) (*amqp.Connection, error) {
	props := amqp.NewConnectionProperties()
	props.SetClientConnectionName(name)
	return amqp.DialConfig(url, amqp.Config{
		Heartbeat:  10 * time.Second,
		Locale:     "en_US",
		Properties: props,
		Dial:       amqp.DefaultDial(5 * time.Second),
	})
}
