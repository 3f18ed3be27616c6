package notification

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/go-kit/log"
	"github.com/openzipkin/zipkin-go"
	"github.com/openzipkin/zipkin-go/model"
	spanrecorder "github.com/openzipkin/zipkin-go/reporter/recorder"
	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/kitshop/kitshop/pkg/observe"
	"github.com/kitshop/kitshop/pkg/outbox"
	"github.com/kitshop/kitshop/pkg/outbox/outboxtest"
	"github.com/kitshop/kitshop/pkg/postgres"
	"github.com/kitshop/kitshop/pkg/testenv"
)

// rig is the pipeline of a test: an outbox database (the order service's side), a
// relay, RabbitMQ with exchanges and queues of the test's own, a proxy that can cut
// the broker off, the consumer and the notification database.
type rig struct {
	t        testing.TB
	direct   string // the broker's URL
	proxied  string // the same through the proxy
	proxy    *outboxtest.Proxy
	cfg      ConsumerConfig
	outboxDB *sql.DB
	store    Store
	notesDB  *sql.DB
	mailer   *countingMailer
	tracer   *zipkin.Tracer // nil: relay and consumer do not trace
}

// countingMailer counts the emails sent per order.
type countingMailer struct {
	mu      sync.Mutex
	byOrder map[string]int
	total   int
}

func (m *countingMailer) Send(_ context.Context, e Email) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.byOrder[e.Subject]++
	m.total++
	return nil
}

func (m *countingMailer) counts() (total int, repeated []string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	for subject, n := range m.byOrder {
		if n > 1 {
			repeated = append(repeated, fmt.Sprintf("%s ×%d", subject, n))
		}
	}
	return m.total, repeated
}

func newRig(t testing.TB) *rig {
	t.Helper()
	direct := testenv.AMQPURL(t)
	proxy, proxied := outboxtest.ProxyAMQP(t, direct)
	r := &rig{
		t: t, direct: direct, proxied: proxied, proxy: proxy,
		cfg: ConsumerConfig{
			Exchange:           testenv.Name("kitshop.events.test"),
			Queue:              testenv.Name("notification.order-events.test"),
			DeadLetterExchange: testenv.Name("kitshop.events.dlx.test"),
			Prefetch:           64, Workers: 4, MaxAttempts: 3,
			Backoff: outbox.Backoff{Min: 20 * time.Millisecond, Max: 300 * time.Millisecond},
			Logger:  log.NewNopLogger(),
		},
		outboxDB: testenv.Postgres(t, outbox.Migrations()),
		notesDB:  testenv.Postgres(t, Migrations()),
		mailer:   &countingMailer{byOrder: map[string]int{}},
	}
	r.cfg.DeadLetterQueue = r.cfg.Queue + ".dlq"
	r.store = NewPostgresStore(r.notesDB)
	t.Cleanup(func() {
		r.withChannel(func(ch *amqp.Channel) error {
			_, _ = ch.QueueDelete(r.cfg.Queue, false, false, false)
			_, _ = ch.QueueDelete(r.cfg.DeadLetterQueue, false, false, false)
			_ = ch.ExchangeDelete(r.cfg.Exchange, false, false)
			return ch.ExchangeDelete(r.cfg.DeadLetterExchange, false, false)
		})
	})
	return r
}

// withChannel runs f on a channel of a direct connection of its own.
func (r *rig) withChannel(f func(*amqp.Channel) error) {
	conn, err := amqp.Dial(r.direct)
	if err != nil {
		r.t.Errorf("dial: %v", err)
		return
	}
	defer conn.Close()
	ch, err := conn.Channel()
	if err != nil {
		r.t.Errorf("channel: %v", err)
		return
	}
	if err := f(ch); err != nil {
		r.t.Errorf("broker: %v", err)
	}
}

// service is the real service over the rig's store and mailer.
func (r *rig) service() Service { return NewService(r.store, r.mailer, time.Now) }

// startConsumer runs a consumer of svc through the proxy and waits until it consumes.
func (r *rig) startConsumer(svc Service) (*Consumer, *observe.Metrics) {
	r.t.Helper()
	cfg := r.cfg
	cfg.URL = r.proxied
	cfg.Metrics = observe.NewMetrics("notification")
	cfg.Tracer = r.tracer
	c, err := NewConsumer(cfg, svc)
	if err != nil {
		r.t.Fatal(err)
	}
	r.run(c.Run)
	r.waitFor("the consumer to connect", func() bool { return c.Check(context.Background()) == nil })
	return c, cfg.Metrics
}

// startRelay runs a relay of the outbox database to url.
func (r *rig) startRelay(url string, poll time.Duration) *outbox.Relay {
	r.t.Helper()
	relay, err := outbox.NewRelay(outbox.Config{
		DB: r.outboxDB, URL: url, Exchange: r.cfg.Exchange, PollInterval: poll,
		Backoff: r.cfg.Backoff, Logger: log.NewNopLogger(), Metrics: observe.NewMetrics("order"), Tracer: r.tracer,
	})
	if err != nil {
		r.t.Fatal(err)
	}
	r.run(relay.Run)
	return relay
}

// run runs f until the test ends.
func (r *rig) run(f func(context.Context) error) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- f(ctx) }()
	r.t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			r.t.Errorf("Run: %v", err)
		}
	})
}

// enqueue writes n order events of typ, each for its own order in its own
// transaction, as the order service does when an order changes.
func (r *rig) enqueue(n int, typ string) []outbox.Event {
	r.t.Helper()
	ctx := context.Background()
	events := make([]outbox.Event, n)
	for i := range events {
		d := orderData()
		d.OrderID = outbox.NewID()
		e, err := outbox.NewEvent(typ, d.OrderID, d, time.Now())
		if err != nil {
			r.t.Fatal(err)
		}
		if err := postgres.InTx(ctx, r.outboxDB, nil, func(tx *sql.Tx) error { return outbox.Enqueue(ctx, tx, e) }); err != nil {
			r.t.Fatal(err)
		}
		events[i] = e
	}
	return events
}

// emails is how many notifications are recorded.
func (r *rig) emails() int {
	r.t.Helper()
	var n int
	if err := r.notesDB.QueryRow(`SELECT count(*) FROM notifications`).Scan(&n); err != nil {
		r.t.Fatal(err)
	}
	return n
}

// waitFor waits for cond, as long as a pipeline through a loaded broker may take.
func (r *rig) waitFor(what string, cond func() bool) {
	r.t.Helper()
	testenv.Eventually(r.t, 60*time.Second, what, cond)
}

// publish sends a raw message to the test exchange, as a misbehaving producer might.
func (r *rig) publish(key string, msg amqp.Publishing) {
	r.t.Helper()
	r.withChannel(func(ch *amqp.Channel) error {
		return ch.PublishWithContext(context.Background(), r.cfg.Exchange, key, false, false, msg)
	})
}

// counter reads a counter of m.
func counter(t testing.TB, m *observe.Metrics, name string) float64 {
	t.Helper()
	families, err := m.Registry.Gather()
	if err != nil {
		t.Fatal(err)
	}
	total := 0.0
	for _, f := range families {
		if f.GetName() == name {
			for _, metric := range f.GetMetric() {
				total += metric.GetCounter().GetValue()
			}
		}
	}
	return total
}

// 1 000 events cross a broker outage (every connection cut and new ones refused for a
// while) and a second cut while busy: 1 000 emails, none twice.
func TestThousandEventsAcrossBrokerOutage(t *testing.T) {
	r := newRig(t)
	consumer, metrics := r.startConsumer(r.service())
	relay := r.startRelay(r.proxied, 20*time.Millisecond)
	ctx := context.Background()

	r.enqueue(400, EventOrderConfirmed)
	r.waitFor("the first emails", func() bool { return r.emails() >= 100 })

	r.proxy.Down()
	r.waitFor("both ends to see the outage", func() bool {
		return consumer.Check(ctx) != nil && relay.Check(ctx) != nil
	})
	r.enqueue(300, EventOrderConfirmed)
	time.Sleep(500 * time.Millisecond) // reconnects fail meanwhile
	r.proxy.Up()

	r.enqueue(300, EventOrderCancelled)
	r.waitFor("more emails", func() bool { return r.emails() >= 700 })
	r.proxy.Cut() // again, with messages in flight both ways

	r.waitFor("1000 emails", func() bool { return r.emails() == 1000 })
	time.Sleep(300 * time.Millisecond) // late redeliveries would show now
	if n := r.emails(); n != 1000 {
		t.Fatalf("%d emails recorded, want 1000", n)
	}
	total, repeated := r.mailer.counts()
	if total != 1000 || len(repeated) > 0 {
		t.Fatalf("mailer sent %d emails, repeated: %v", total, repeated)
	}
	var unsent int
	if err := r.outboxDB.QueryRow(`SELECT count(*) FROM outbox WHERE sent_at IS NULL`).Scan(&unsent); err != nil || unsent != 0 {
		t.Fatalf("%d events unsent (%v)", unsent, err)
	}
	t.Logf("consumed %v (deduplicated %v) for 1000 events",
		counter(t, metrics, "kitshop_notification_consumed_total"), counter(t, metrics, "kitshop_notification_deduplicated_total"))
}

// crashBeforeAck handles an event, then kills the consumer's connection before the
// consumer can acknowledge: the crash after the email and before the ack.
type crashBeforeAck struct {
	Service
	proxy *outboxtest.Proxy

	mu       sync.Mutex
	outcomes []Outcome
}

func (c *crashBeforeAck) HandleEvent(ctx context.Context, e outbox.Event) (Outcome, error) {
	outcome, err := c.Service.HandleEvent(ctx, e)
	c.mu.Lock()
	defer c.mu.Unlock()
	c.outcomes = append(c.outcomes, outcome)
	if len(c.outcomes) == 1 {
		c.proxy.Down()
		go func() {
			time.Sleep(200 * time.Millisecond)
			c.proxy.Up()
		}()
	}
	return outcome, err
}

func (c *crashBeforeAck) seen() []Outcome {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]Outcome(nil), c.outcomes...)
}

func TestRedeliveryAfterCrashBeforeAckSendsOnce(t *testing.T) {
	r := newRig(t)
	svc := &crashBeforeAck{Service: r.service(), proxy: r.proxy}
	_, metrics := r.startConsumer(svc)
	r.startRelay(r.direct, 20*time.Millisecond)

	events := r.enqueue(1, EventOrderConfirmed)
	r.waitFor("the redelivery", func() bool { return len(svc.seen()) >= 2 })
	// The first ack may look sent from the client's side of the dead connection; the
	// duplicate's ack is the one that counts.
	r.waitFor("the duplicate's acknowledgement", func() bool {
		return counter(t, metrics, "kitshop_notification_deduplicated_total") == 1
	})
	t.Logf("acknowledged %v times", counter(t, metrics, "kitshop_notification_consumed_total"))

	if got := svc.seen(); len(got) != 2 || got[0] != Sent || got[1] != Duplicate {
		t.Fatalf("outcomes %v, want [Sent Duplicate]", got)
	}
	if total, _ := r.mailer.counts(); total != 1 || r.emails() != 1 {
		t.Fatalf("sent %d, recorded %d; want 1 and 1", total, r.emails())
	}
	var eventID string
	if err := r.notesDB.QueryRow(`SELECT event_id FROM notifications`).Scan(&eventID); err != nil || eventID != events[0].ID {
		t.Fatalf("recorded event %q (%v), want %q", eventID, err, events[0].ID)
	}
	r.withChannel(func(ch *amqp.Channel) error {
		q, err := ch.QueueDeclarePassive(r.cfg.Queue, true, false, false, false, nil)
		if err == nil && q.Messages != 0 {
			err = fmt.Errorf("%d messages left in the queue", q.Messages)
		}
		return err
	})
}

// callCounter counts HandleEvent calls per event ID.
type callCounter struct {
	Service
	mu    sync.Mutex
	calls map[string]int
}

func (c *callCounter) HandleEvent(ctx context.Context, e outbox.Event) (Outcome, error) {
	c.mu.Lock()
	c.calls[e.ID]++
	c.mu.Unlock()
	return c.Service.HandleEvent(ctx, e)
}

func (c *callCounter) count(id string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.calls[id]
}

func TestPoisonMessagesAreDeadLettered(t *testing.T) {
	r := newRig(t)
	svc := &callCounter{Service: r.service(), calls: map[string]int{}}
	_, metrics := r.startConsumer(svc)
	r.startRelay(r.direct, 20*time.Millisecond)

	r.publish(EventOrderConfirmed, amqp.Publishing{MessageId: "not-json", Body: []byte("{not json")})
	unknown, err := outbox.NewEvent("order.shipped", "o-9", orderData(), time.Now())
	if err != nil {
		t.Fatal(err)
	}
	body, _ := json.Marshal(unknown)
	r.publish(EventOrderConfirmed, amqp.Publishing{MessageId: unknown.ID, Body: body})
	r.enqueue(1, EventOrderConfirmed)

	r.waitFor("two dead letters", func() bool {
		return counter(t, metrics, "kitshop_notification_dead_lettered_total") == 2
	})
	r.waitFor("the good event's email", func() bool { return r.emails() == 1 })
	if n := svc.count(unknown.ID); n != r.cfg.MaxAttempts {
		t.Fatalf("the unknown event was tried %d times, want %d", n, r.cfg.MaxAttempts)
	}

	var dead []string
	r.withChannel(func(ch *amqp.Channel) error {
		for {
			d, ok, err := ch.Get(r.cfg.DeadLetterQueue, true)
			if err != nil || !ok {
				return err
			}
			if _, died := d.Headers["x-death"]; !died {
				return fmt.Errorf("dead letter %s has no x-death header", d.MessageId)
			}
			dead = append(dead, d.MessageId)
		}
	})
	sort.Strings(dead)
	want := []string{"not-json", unknown.ID}
	sort.Strings(want)
	if fmt.Sprint(dead) != fmt.Sprint(want) {
		t.Fatalf("dead letters %v, want %v", dead, want)
	}

	// The consumer keeps going.
	r.enqueue(2, EventOrderCancelled)
	r.waitFor("the later emails", func() bool { return r.emails() == 3 })
}

// The consumer's spans join the trace in which the event was enqueued (the checkout's),
// through the relay's producer span.
func TestConsumerSpanJoinsTheEnqueuingTrace(t *testing.T) {
	r := newRig(t)
	spans := spanrecorder.NewReporter()
	tracer, err := zipkin.NewTracer(spans)
	if err != nil {
		t.Fatal(err)
	}
	r.tracer = tracer
	obs := observe.Observer{Logger: log.NewNopLogger(), Metrics: observe.NewMetrics("notification"), Tracer: tracer}
	r.startConsumer(MakeServerEndpoints(r.service(), obs, tokens{}))
	r.startRelay(r.direct, 20*time.Millisecond)

	checkout := tracer.StartSpan("checkout")
	ctx := zipkin.NewContext(context.Background(), checkout)
	d := orderData()
	e, err := outbox.NewEvent(EventOrderConfirmed, d.OrderID, d, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if err := postgres.InTx(ctx, r.outboxDB, nil, func(tx *sql.Tx) error { return outbox.Enqueue(ctx, tx, e) }); err != nil {
		t.Fatal(err)
	}
	checkout.Finish()
	r.waitFor("the email", func() bool { return r.emails() == 1 })

	// The consumer span ends after the email is sent (on the ack), so wait for it by
	// name rather than for a count of spans.
	kinds := map[string]model.Kind{}
	r.waitFor("the consumer's spans", func() bool {
		for _, s := range spans.Flush() {
			if s.TraceID != checkout.Context().TraceID {
				t.Fatalf("span %q is in trace %s, want the checkout's %s", s.Name, s.TraceID, checkout.Context().TraceID)
			}
			kinds[s.Name] = s.Kind
		}
		_, consumed := kinds["consume order.confirmed"]
		_, handled := kinds["handle_event"]
		return consumed && handled
	})
	if kinds["publish order.confirmed"] != model.Producer || kinds["consume order.confirmed"] != model.Consumer {
		t.Fatalf("spans %v, want a producer and a consumer span", kinds)
	}
	if _, ok := kinds["handle_event"]; !ok {
		t.Fatalf("spans %v lack the handle_event endpoint span", kinds)
	}
}
