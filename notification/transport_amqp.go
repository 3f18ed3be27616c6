package notification

import (
	"context"
	"encoding/json"
	"errors"
	"hash/fnv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/go-kit/kit/metrics"
	"github.com/go-kit/log"
	"github.com/go-kit/log/level"
	"github.com/openzipkin/zipkin-go"
	"github.com/openzipkin/zipkin-go/model"
	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/kitshop/kitshop/pkg/amqpconn"
	"github.com/kitshop/kitshop/pkg/backoff"
	"github.com/kitshop/kitshop/pkg/errs"
	"github.com/kitshop/kitshop/pkg/logging"
	"github.com/kitshop/kitshop/pkg/observe"
	"github.com/kitshop/kitshop/pkg/outbox"
)

// Queue names.
const (
	DefaultQueue              = "notification.order-events"
	DefaultDeadLetterExchange = "kitshop.events.dlx"
)

// ConsumerConfig configures a Consumer. URL and Metrics are required.
type ConsumerConfig struct {
	URL                string
	Exchange           string // outbox.DefaultExchange when empty
	Queue              string // DefaultQueue when empty
	DeadLetterExchange string // DefaultDeadLetterExchange when empty
	DeadLetterQueue    string // Queue + ".dlq" when empty

	Prefetch    int           // deliveries in flight, unacknowledged (default 64)
	Workers     int           // events handled at once (default 4)
	MaxAttempts int           // deliveries of a poison message before it is dead-lettered (default 3)
	Timeout     time.Duration // bound of one attempt at handling an event (default 30 s)
	Backoff     outbox.Backoff

	Name    string // connection name shown by the broker (default "kitshop notification")
	Logger  log.Logger
	Metrics *observe.Metrics
	Tracer  *zipkin.Tracer
}

// Consumer feeds the order events of a durable quorum queue to a Service. A delivery is
// acknowledged only after the service recorded its email, so a crash means redelivery,
// which the service deduplicates by event ID.
//
// A message the service refuses (not JSON, not an order event: an errs.Invalid error)
// is poison. Attempts are counted by the broker: a quorum queue stamps each redelivery
// with x-delivery-count. Before MaxAttempts the message is requeued; at MaxAttempts it is
// rejected into the dead-letter exchange, whose queue keeps it for a person to look at.
// Any other failure (the database is down) is not the message's fault: the worker
// retries it in place with backoff, holding it, until it succeeds or the connection
// ends, so an outage never dead-letters good events.
//
// An aggregate's events go to the same worker, in the order they arrive.
type Consumer struct {
	cfg       ConsumerConfig
	svc       Service
	connected atomic.Bool

	consumed     metrics.Counter
	deduplicated metrics.Counter
	deadLettered metrics.Counter
	requeued     metrics.Counter
}

// NewConsumer checks cfg, fills its defaults and registers the consumer's metrics
// kitshop_notification_{consumed,deduplicated,dead_lettered,requeued}_total.
func NewConsumer(cfg ConsumerConfig, svc Service) (*Consumer, error) {
	switch {
	case cfg.URL == "":
		return nil, errors.New("notification: consumer needs a RabbitMQ URL")
	case cfg.Metrics == nil:
		return nil, errors.New("notification: consumer needs metrics")
	}
	if cfg.Exchange == "" {
		cfg.Exchange = outbox.DefaultExchange
	}
	if cfg.Queue == "" {
		cfg.Queue = DefaultQueue
	}
	if cfg.DeadLetterExchange == "" {
		cfg.DeadLetterExchange = DefaultDeadLetterExchange
	}
	if cfg.DeadLetterQueue == "" {
		cfg.DeadLetterQueue = cfg.Queue + ".dlq"
	}
	if cfg.Prefetch <= 0 {
		cfg.Prefetch = 64
	}
	if cfg.Workers <= 0 {
		cfg.Workers = 4
	}
	if cfg.MaxAttempts <= 0 {
		cfg.MaxAttempts = 3
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = 30 * time.Second
	}
	if cfg.Backoff.Min <= 0 {
		cfg.Backoff = outbox.DefaultBackoff
	}
	if cfg.Name == "" {
		cfg.Name = "kitshop notification"
	}
	if cfg.Logger == nil {
		cfg.Logger = log.NewNopLogger()
	}
	m := cfg.Metrics
	c := &Consumer{
		cfg:          cfg,
		svc:          svc,
		consumed:     m.Counter("notification", "consumed_total", "Order events handled and acknowledged, duplicates included (an ack lost with its connection counts too)."),
		deduplicated: m.Counter("notification", "deduplicated_total", "Redelivered order events that sent nothing."),
		deadLettered: m.Counter("notification", "dead_lettered_total", "Poison messages moved to the dead-letter queue."),
		requeued:     m.Counter("notification", "requeued_total", "Poison messages returned to the queue for another attempt."),
	}
	// Shown as 0 from the start, so dashboards and alerts see the series.
	for _, counter := range []metrics.Counter{c.consumed, c.deduplicated, c.deadLettered, c.requeued} {
		counter.Add(0)
	}
	return c, nil
}

// Check reports whether the consumer is connected and consuming, for GET /health.
func (c *Consumer) Check(context.Context) error {
	if !c.connected.Load() {
		return errors.New("not connected to RabbitMQ")
	}
	return nil
}

// Run consumes until ctx is done, reconnecting with backoff whenever the connection is
// lost. It returns nil when ctx ends.
func (c *Consumer) Run(ctx context.Context) error {
	sup := amqpconn.Supervisor{URL: c.cfg.URL, Name: c.cfg.Name, Backoff: c.cfg.Backoff, Logger: c.cfg.Logger}
	return sup.Run(ctx, func(ctx context.Context, ch *amqp.Channel, closed <-chan error) error {
		defer c.connected.Store(false)
		return c.serve(ctx, ch, closed)
	})
}

// declare makes the queues and bindings: the queue bound to the order events, and
// its dead-letter exchange and queue.
func (c *Consumer) declare(ch *amqp.Channel) error {
	if err := outbox.DeclareExchange(ch, c.cfg.Exchange); err != nil {
		return err
	}
	if err := ch.ExchangeDeclare(c.cfg.DeadLetterExchange, amqp.ExchangeDirect, true, false, false, false, nil); err != nil {
		return err
	}
	if _, err := ch.QueueDeclare(c.cfg.DeadLetterQueue, true, false, false, false, nil); err != nil {
		return err
	}
	// Dead letters are routed by the queue they died in, so one exchange serves every
	// consumer's dead-letter queue.
	if err := ch.QueueBind(c.cfg.DeadLetterQueue, c.cfg.Queue, c.cfg.DeadLetterExchange, false, nil); err != nil {
		return err
	}
	if _, err := ch.QueueDeclare(c.cfg.Queue, true, false, false, false, amqp.Table{
		amqp.QueueTypeArg:           amqp.QueueTypeQuorum,
		"x-dead-letter-exchange":    c.cfg.DeadLetterExchange,
		"x-dead-letter-routing-key": c.cfg.Queue,
	}); err != nil {
		return err
	}
	for _, key := range []string{EventOrderConfirmed, EventOrderCancelled} {
		if err := ch.QueueBind(c.cfg.Queue, key, c.cfg.Exchange, false, nil); err != nil {
			return err
		}
	}
	return nil
}

// serve consumes over ch until it fails, closed reports the connection lost, or ctx
// ends. On return every worker has stopped; deliveries not acknowledged go back to the
// queue when the connection closes.
func (c *Consumer) serve(ctx context.Context, ch *amqp.Channel, closed <-chan error) error {
	if err := c.declare(ch); err != nil {
		return err
	}
	if err := ch.Qos(c.cfg.Prefetch, 0, false); err != nil {
		return err
	}
	deliveries, err := ch.Consume(c.cfg.Queue, "", false, false, false, false, nil)
	if err != nil {
		return err
	}
	c.connected.Store(true)
	_ = level.Info(c.cfg.Logger).Log("msg", "consuming order events", "queue", c.cfg.Queue)

	// live ends with the connection (or ctx): workers then drop what they hold.
	live, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	queues := make([]chan amqp.Delivery, c.cfg.Workers)
	for i := range queues {
		queues[i] = make(chan amqp.Delivery, c.cfg.Prefetch)
		wg.Add(1)
		go func(q <-chan amqp.Delivery) {
			defer wg.Done()
			for d := range q {
				if live.Err() == nil {
					c.handle(live, d)
				}
			}
		}(queues[i])
	}
	defer func() {
		cancel()
		for _, q := range queues {
			close(q)
		}
		wg.Wait()
	}()

	for {
		select {
		case <-ctx.Done():
			return nil
		case err := <-closed:
			return err
		case d, ok := <-deliveries:
			if !ok {
				return amqp.ErrClosed
			}
			// Never blocks: a worker's buffer holds Prefetch, the most in flight.
			queues[shard(d, len(queues))] <- d
		}
	}
}

// shard picks the worker of d's aggregate.
func shard(d amqp.Delivery, n int) int {
	key, _ := d.Headers[outbox.HeaderAggregateID].(string)
	if key == "" {
		key = d.MessageId
	}
	h := fnv.New32a()
	_, _ = h.Write([]byte(key))
	return int(h.Sum32() % uint32(n))
}

// handle takes one delivery to its acknowledgement, requeue or dead letter. live ends
// when the connection does; the handling itself is not cut short by shutdown.
func (c *Consumer) handle(live context.Context, d amqp.Delivery) {
	ctx := context.WithoutCancel(live)
	if c.cfg.Tracer != nil {
		opts := []zipkin.SpanOption{zipkin.Kind(model.Consumer), zipkin.Tags(map[string]string{
			"amqp.queue": c.cfg.Queue, "amqp.routing_key": d.RoutingKey, "message.id": d.MessageId,
		})}
		if sc, ok := outbox.SpanContextFrom(d.Headers); ok {
			opts = append(opts, zipkin.Parent(sc))
		}
		span := c.cfg.Tracer.StartSpan("consume "+d.RoutingKey, opts...)
		defer span.Finish()
		ctx = zipkin.NewContext(ctx, span)
	}
	logger := log.With(logging.WithTrace(ctx, c.cfg.Logger), "message_id", d.MessageId, "routing_key", d.RoutingKey)

	outcome, err := c.process(live, ctx, d, logger)
	if span := zipkin.SpanFromContext(ctx); span != nil && err != nil {
		zipkin.TagError.Set(span, err.Error())
	}
	switch {
	case err == nil:
		if ackErr := d.Ack(false); ackErr != nil {
			_ = level.Warn(logger).Log("msg", "ack failed; the event will be redelivered and deduplicated", "err", ackErr)
			return
		}
		c.consumed.Add(1)
		if outcome == Duplicate {
			c.deduplicated.Add(1)
		}
	case errs.IsBusiness(err):
		attempts := deliveryCount(d) + 1
		if attempts >= c.cfg.MaxAttempts {
			_ = level.Error(logger).Log("msg", "poison message dead-lettered", "attempts", attempts, "err", err)
			if rejectErr := d.Reject(false); rejectErr == nil {
				c.deadLettered.Add(1)
			}
			return
		}
		_ = level.Warn(logger).Log("msg", "message refused; requeued", "attempts", attempts, "err", err)
		if nackErr := d.Nack(false, true); nackErr == nil {
			c.requeued.Add(1)
		}
	default:
		// The connection ended while the service was failing: the broker redelivers.
		_ = level.Warn(logger).Log("msg", "event left unacknowledged", "err", err)
	}
}

// process decodes d and hands it to the service, retrying failures that are not the
// message's fault for as long as the connection lives.
func (c *Consumer) process(live, ctx context.Context, d amqp.Delivery, logger log.Logger) (Outcome, error) {
	var e outbox.Event
	if err := json.Unmarshal(d.Body, &e); err != nil {
		return 0, ErrMalformedEvent.WithMessage("the message body is not a JSON event: %v", err)
	}
	for attempt := 0; ; attempt++ {
		actx, cancel := context.WithTimeout(ctx, c.cfg.Timeout)
		outcome, err := c.svc.HandleEvent(actx, e)
		cancel()
		if err == nil || errs.IsBusiness(err) {
			return outcome, err
		}
		_ = level.Warn(logger).Log("msg", "handling failed; retrying", "attempt", attempt+1, "err", err)
		if !backoff.Sleep(live, c.cfg.Backoff.Jittered(attempt)) {
			return 0, err
		}
	}
}

// deliveryCount is how many times the broker delivered d before.
func deliveryCount(d amqp.Delivery) int {
	switch n := d.Headers["x-delivery-count"].(type) {
	case int64:
		return int(n)
	case int32:
		return int(n)
	case int:
		return n
	}
	return 0
}
