package outbox

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/go-kit/kit/metrics"
	"github.com/go-kit/log"
	"github.com/go-kit/log/level"
	"github.com/lib/pq"
	"github.com/openzipkin/zipkin-go"
	"github.com/openzipkin/zipkin-go/model"
	"github.com/openzipkin/zipkin-go/propagation/b3"
	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/kitshop/kitshop/pkg/amqpconn"
	"github.com/kitshop/kitshop/pkg/observe"
)

// Config configures a Relay. DB, URL and Metrics are required.
type Config struct {
	DB       *sql.DB
	URL      string // amqp://user:pass@host:5672/vhost
	Exchange string // DefaultExchange when empty

	BatchSize      int           // events published per transaction (default 100)
	PollInterval   time.Duration // pause when the outbox is drained (default 100 ms)
	ConfirmTimeout time.Duration // how long the broker gets to confirm a batch (default 10 s)
	Retention      time.Duration // sent events are deleted after this long (default 24 h)
	Backoff        Backoff       // reconnect and retry pauses (DefaultBackoff when zero)

	Name    string // connection name shown by the broker (default "kitshop outbox relay")
	Logger  log.Logger
	Metrics *observe.Metrics
	Tracer  *zipkin.Tracer // nil: no producer spans; stored trace headers still travel
}

// Relay publishes the events of an outbox table to RabbitMQ. Several relays may drain
// the same table at once: each batch is claimed with FOR UPDATE SKIP LOCKED, and only
// the oldest unsent event of each aggregate is eligible, so an aggregate's events are
// published in order, each after the previous one was confirmed.
type Relay struct {
	cfg       Config
	connected atomic.Bool

	published  metrics.Counter
	failed     metrics.Counter
	unroutable metrics.Counter
	lag        metrics.Histogram
	warned     atomic.Bool // about unroutable events, once
}

// NewRelay checks cfg, fills its defaults and registers the relay's metrics:
// kitshop_outbox_published_total{type}, kitshop_outbox_publish_failures_total and
// kitshop_outbox_lag_seconds (enqueue to confirm).
func NewRelay(cfg Config) (*Relay, error) {
	switch {
	case cfg.DB == nil:
		return nil, errors.New("outbox: relay needs a database")
	case cfg.URL == "":
		return nil, errors.New("outbox: relay needs a RabbitMQ URL")
	case cfg.Metrics == nil:
		return nil, errors.New("outbox: relay needs metrics")
	}
	if cfg.Exchange == "" {
		cfg.Exchange = DefaultExchange
	}
	if cfg.BatchSize <= 0 {
		cfg.BatchSize = 100
	}
	if cfg.PollInterval <= 0 {
		cfg.PollInterval = 100 * time.Millisecond
	}
	if cfg.ConfirmTimeout <= 0 {
		cfg.ConfirmTimeout = 10 * time.Second
	}
	if cfg.Retention <= 0 {
		cfg.Retention = 24 * time.Hour
	}
	if cfg.Backoff.Min <= 0 {
		cfg.Backoff = DefaultBackoff
	}
	if cfg.Name == "" {
		cfg.Name = "kitshop outbox relay"
	}
	if cfg.Logger == nil {
		cfg.Logger = log.NewNopLogger()
	}
	r := &Relay{
		cfg:        cfg,
		published:  cfg.Metrics.Counter("outbox", "published_total", "Events published to RabbitMQ and confirmed, by type.", "type"),
		failed:     cfg.Metrics.Counter("outbox", "publish_failures_total", "Events the broker refused or did not confirm (they are retried)."),
		unroutable: cfg.Metrics.Counter("outbox", "unroutable_total", "Events no queue was bound for (they stay in the outbox and are retried)."),
		lag:        cfg.Metrics.Histogram("outbox", "lag_seconds", "Time from enqueue to broker confirmation."),
	}
	r.failed.Add(0) // shown as 0 from the start, so alerts see the series
	r.unroutable.Add(0)
	return r, nil
}

// Check reports whether the relay holds a RabbitMQ connection, for GET /health.
func (r *Relay) Check(context.Context) error {
	if !r.connected.Load() {
		return errors.New("not connected to RabbitMQ")
	}
	return nil
}

// errBroker marks failures of the RabbitMQ connection, which end it.
type errBroker struct{ err error }

func (e errBroker) Error() string { return "rabbitmq: " + e.err.Error() }
func (e errBroker) Unwrap() error { return e.err }

// Run publishes until ctx is done, reconnecting with backoff whenever the connection
// is lost. Events enqueued meanwhile wait in the table. It returns nil when ctx ends.
func (r *Relay) Run(ctx context.Context) error {
	sup := amqpconn.Supervisor{URL: r.cfg.URL, Name: r.cfg.Name, Backoff: r.cfg.Backoff, Logger: r.cfg.Logger}
	return sup.Run(ctx, func(ctx context.Context, ch *amqp.Channel, closed <-chan error) error {
		defer r.connected.Store(false)
		return r.serve(ctx, ch, closed)
	})
}

// serve publishes over ch until it fails, closed reports the connection lost, or ctx
// ends.
func (r *Relay) serve(ctx context.Context, ch *amqp.Channel, closed <-chan error) error {
	// Events are published mandatory: one no queue takes (its consumer has not declared
	// its queue yet) comes back here before its confirm, and stays unsent. Each batch
	// drains what came back, so the buffer never fills and the library never blocks.
	returns := ch.NotifyReturn(make(chan amqp.Return, 2*r.cfg.BatchSize))
	if err := ch.Confirm(false); err != nil {
		return err
	}
	if err := DeclareExchange(ch, r.cfg.Exchange); err != nil {
		return err
	}
	r.connected.Store(true)
	_ = level.Info(r.cfg.Logger).Log("msg", "relaying outbox to rabbitmq", "exchange", r.cfg.Exchange)

	var nextPurge time.Time
	dbFailures := 0
	for {
		if now := time.Now(); now.After(nextPurge) {
			r.purge(ctx)
			nextPurge = now.Add(time.Minute)
		}
		n, err := r.relayBatch(ctx, ch, returns)
		var brokerErr errBroker
		switch {
		case errors.As(err, &brokerErr):
			return err
		case err != nil && ctx.Err() != nil:
			return nil
		case err != nil:
			_ = level.Error(r.cfg.Logger).Log("msg", "outbox batch failed", "err", err)
			dbFailures++
		default:
			dbFailures = 0
		}
		wait := r.cfg.PollInterval
		switch {
		case dbFailures > 0:
			wait = r.cfg.Backoff.Jittered(dbFailures - 1)
		case n > 0:
			wait = 0 // more may be waiting, or the next event of an aggregate just sent
		}
		timer := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			timer.Stop()
			return nil
		case err := <-closed:
			timer.Stop()
			return errBroker{err}
		case <-timer.C:
		}
	}
}

// pending is one claimed outbox row.
type pending struct {
	seq        int64
	id, typ    string
	aggregate  string
	occurredAt time.Time
	createdAt  time.Time
	body       []byte
	trace      []byte

	span    zipkin.Span
	confirm *amqp.DeferredConfirmation
}

// claimSQL takes, at most $1 at a time, the unsent rows that are first in line for
// their aggregate, skipping rows another relay holds. A row whose predecessor is held
// by another relay is not eligible, so it cannot overtake it.
const claimSQL = `SELECT o.seq, o.id, o.type, o.aggregate_id, o.occurred_at, o.created_at, o.body, o.trace
FROM outbox o
WHERE o.sent_at IS NULL
  AND NOT EXISTS (SELECT 1 FROM outbox p
                  WHERE p.aggregate_id = o.aggregate_id AND p.sent_at IS NULL AND p.seq < o.seq)
ORDER BY o.seq
LIMIT $1
FOR UPDATE OF o SKIP LOCKED`

// relayBatch claims a batch, publishes it, waits for the broker's confirms and marks
// the confirmed events sent, all in one transaction. It returns how many were sent.
func (r *Relay) relayBatch(ctx context.Context, ch *amqp.Channel, returns <-chan amqp.Return) (int, error) {
	tx, err := r.cfg.DB.BeginTx(ctx, nil)
	if err != nil {
		return 0, err
	}
	defer func() { _ = tx.Rollback() }() // a no-op after Commit

	batch, err := claim(ctx, tx, r.cfg.BatchSize)
	if err != nil || len(batch) == 0 {
		return 0, err
	}
	published, publishErr := r.publishAll(ctx, ch, batch)
	confirms := r.awaitConfirms(ctx, published)
	sent, confirmErr := r.settle(published, confirms, drainReturns(returns))
	if publishErr == nil {
		publishErr = confirmErr
	}
	if len(sent) > 0 {
		if err := markSent(ctx, tx, sent); err != nil {
			return 0, err
		}
	}
	if publishErr != nil {
		return len(sent), errBroker{publishErr}
	}
	return len(sent), nil
}

// publishAll publishes the batch in order, up to the first failure, and returns the
// events published.
func (r *Relay) publishAll(ctx context.Context, ch *amqp.Channel, batch []pending) ([]pending, error) {
	published := make([]pending, 0, len(batch))
	for _, p := range batch {
		var err error
		if p.confirm, err = r.publish(ctx, ch, &p); err != nil {
			return published, err
		}
		published = append(published, p)
	}
	return published, nil
}

// confirmation is the broker's answer to one published event.
type confirmation struct {
	acked bool
	err   error
}

// awaitConfirms waits, up to ConfirmTimeout in all, for the broker to confirm each
// published event, and ends its producer span.
func (r *Relay) awaitConfirms(ctx context.Context, published []pending) []confirmation {
	ctx, cancel := context.WithTimeout(ctx, r.cfg.ConfirmTimeout)
	defer cancel()
	confirms := make([]confirmation, len(published))
	for i, p := range published {
		confirms[i].acked, confirms[i].err = p.confirm.WaitContext(ctx)
		if p.span != nil {
			p.span.Finish()
		}
	}
	return confirms
}

// drainReturns collects the IDs of the messages the broker returned as unroutable. A
// return arrives before the confirm of its message, so once a batch is confirmed every
// return of it is buffered.
func drainReturns(returns <-chan amqp.Return) map[string]bool {
	unroutable := map[string]bool{}
	for {
		select {
		case ret, open := <-returns:
			if !open { // the channel closed with the connection
				return unroutable
			}
			unroutable[ret.MessageId] = true
		default:
			return unroutable
		}
	}
}

// settle counts the outcome of each published event and returns the sequence numbers
// of those confirmed and routed, with an error naming the first one not confirmed.
func (r *Relay) settle(published []pending, confirms []confirmation, unroutable map[string]bool) ([]int64, error) {
	var unconfirmed error
	sent := make([]int64, 0, len(published))
	now := time.Now()
	for i, p := range published {
		c := confirms[i]
		if unroutable[p.id] {
			r.unroutable.Add(1)
			if !r.warned.Swap(true) {
				_ = level.Warn(r.cfg.Logger).Log("msg", "an event reached no queue; events stay in the outbox until a consumer's queue is bound", "type", p.typ)
			}
			continue
		}
		if c.err != nil || !c.acked {
			// Unconfirmed: it stays unsent and goes out again (the consumer dedups).
			r.failed.Add(1)
			if unconfirmed == nil {
				unconfirmed = fmt.Errorf("event %s not confirmed (acked %v, %v)", p.id, c.acked, c.err)
			}
			continue
		}
		sent = append(sent, p.seq)
		r.published.With("type", p.typ).Add(1)
		r.lag.Observe(now.Sub(p.createdAt).Seconds())
	}
	return sent, unconfirmed
}

// markSent marks the events seqs sent and commits tx.
func markSent(ctx context.Context, tx *sql.Tx, seqs []int64) error {
	if _, err := tx.ExecContext(ctx, `UPDATE outbox SET sent_at = now() WHERE seq = ANY($1)`, pq.Array(seqs)); err != nil {
		return err
	}
	return tx.Commit()
}

func claim(ctx context.Context, tx *sql.Tx, limit int) ([]pending, error) {
	rows, err := tx.QueryContext(ctx, claimSQL, limit)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var batch []pending
	for rows.Next() {
		var p pending
		if err := rows.Scan(&p.seq, &p.id, &p.typ, &p.aggregate, &p.occurredAt, &p.createdAt, &p.body, &p.trace); err != nil {
			return nil, err
		}
		batch = append(batch, p)
	}
	return batch, rows.Err()
}

// publish sends p as a persistent message whose ID is the event ID and whose type and
// routing key are the event type. The B3 headers continue the trace stored with the
// event, through a producer span when the relay traces.
func (r *Relay) publish(ctx context.Context, ch *amqp.Channel, p *pending) (*amqp.DeferredConfirmation, error) {
	headers := amqp.Table{HeaderAggregateID: p.aggregate}
	var stored b3.Map
	if json.Unmarshal(p.trace, &stored) == nil && len(stored) > 0 {
		if sc, err := stored.Extract(); err == nil && sc != nil {
			traced := *sc
			if r.cfg.Tracer != nil {
				p.span = r.cfg.Tracer.StartSpan("publish "+p.typ, zipkin.Kind(model.Producer), zipkin.Parent(*sc),
					zipkin.Tags(map[string]string{"amqp.exchange": r.cfg.Exchange, "event.id": p.id}))
				traced = p.span.Context()
			}
			for k, v := range TraceHeaders(traced) {
				headers[k] = v
			}
		}
	}
	dc, err := ch.PublishWithDeferredConfirmWithContext(ctx, r.cfg.Exchange, p.typ, true, false, amqp.Publishing{
		ContentType:  "application/json",
		DeliveryMode: amqp.Persistent,
		MessageId:    p.id,
		Type:         p.typ,
		Timestamp:    p.occurredAt,
		Headers:      headers,
		Body:         p.body,
	})
	if err != nil {
		if p.span != nil {
			p.span.Finish()
		}
		r.failed.Add(1)
		return nil, err
	}
	return dc, nil
}

// purge deletes events sent longer than Retention ago, a bounded number at a time.
func (r *Relay) purge(ctx context.Context) {
	_, err := r.cfg.DB.ExecContext(ctx, `DELETE FROM outbox WHERE seq IN (
		SELECT seq FROM outbox WHERE sent_at < $1 LIMIT 10000)`, time.Now().Add(-r.cfg.Retention))
	if err != nil && ctx.Err() == nil {
		_ = level.Warn(r.cfg.Logger).Log("msg", "purging sent outbox events failed", "err", err)
	}
}
