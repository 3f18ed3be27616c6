package outbox_test

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"io/fs"
	"strings"
	"sync"
	"testing"
	"testing/fstest"
	"time"

	"github.com/go-kit/log"
	"github.com/openzipkin/zipkin-go"
	"github.com/openzipkin/zipkin-go/reporter"
	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/kitshop/kitshop/pkg/observe"
	"github.com/kitshop/kitshop/pkg/outbox"
	"github.com/kitshop/kitshop/pkg/outbox/outboxtest"
	"github.com/kitshop/kitshop/pkg/postgres"
	"github.com/kitshop/kitshop/pkg/testenv"
)

func TestEventValidate(t *testing.T) {
	now := time.Now()
	valid := outbox.Event{ID: "e1", Type: "order.confirmed", OccurredAt: now, AggregateID: "o1", Data: json.RawMessage(`{}`)}
	tests := []struct {
		name  string
		edit  func(*outbox.Event)
		valid bool
	}{
		{"valid", func(*outbox.Event) {}, true},
		{"no id", func(e *outbox.Event) { e.ID = "" }, false},
		{"long id", func(e *outbox.Event) { e.ID = strings.Repeat("x", 201) }, false},
		{"no type", func(e *outbox.Event) { e.Type = "" }, false},
		{"type with wildcard", func(e *outbox.Event) { e.Type = "order.*" }, false},
		{"type with empty word", func(e *outbox.Event) { e.Type = "order..confirmed" }, false},
		{"no aggregate", func(e *outbox.Event) { e.AggregateID = "" }, false},
		{"no time", func(e *outbox.Event) { e.OccurredAt = time.Time{} }, false},
		{"bad data", func(e *outbox.Event) { e.Data = json.RawMessage(`{`) }, false},
		{"no data", func(e *outbox.Event) { e.Data = nil }, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := valid
			tt.edit(&e)
			err := e.Validate()
			if (err == nil) != tt.valid {
				t.Fatalf("Validate() = %v, want valid %v", err, tt.valid)
			}
			if err != nil && !errors.Is(err, outbox.ErrInvalidEvent) {
				t.Fatalf("error %v is not ErrInvalidEvent", err)
			}
		})
	}
}

func TestNewEvent(t *testing.T) {
	e, err := outbox.NewEvent("order.confirmed", "o1", map[string]int{"n": 1}, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if len(e.ID) != 36 || e.ID[14] != '4' || string(e.Data) != `{"n":1}` || e.OccurredAt.Location() != time.UTC {
		t.Fatalf("NewEvent = %+v", e)
	}
	if other := outbox.NewID(); other == e.ID {
		t.Fatal("NewID repeats itself")
	}
	if _, err := outbox.NewEvent("order.confirmed", "o1", func() {}, time.Now()); !errors.Is(err, outbox.ErrInvalidEvent) {
		t.Fatalf("unencodable data: err = %v", err)
	}
}

func TestWithMigrations(t *testing.T) {
	service := fstest.MapFS{"0001_init.sql": {Data: []byte("CREATE TABLE orders (id text PRIMARY KEY);")}}
	merged := outbox.WithMigrations(service)
	names, err := fs.Glob(merged, "*.sql")
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(names, ","); got != "0001_init.sql,outbox_0001_init.sql" {
		t.Fatalf("migrations = %s", got)
	}
	db := testenv.Postgres(t, merged)
	var n int
	if err := db.QueryRow(`SELECT count(*) FROM schema_migrations`).Scan(&n); err != nil || n != 2 {
		t.Fatalf("applied %d migrations (%v), want 2", n, err)
	}
	if _, err := db.Exec(`SELECT seq FROM outbox, orders LIMIT 1`); err != nil {
		t.Fatal(err)
	}
}

// broker is a test's own exchange with a queue bound to everything on it.
type broker struct {
	url, exchange string
	deliveries    <-chan amqp.Delivery
}

func newBroker(t *testing.T) broker {
	t.Helper()
	url := testenv.AMQPURL(t)
	conn, err := amqp.Dial(url)
	if err != nil {
		testenv.Missing(t, "RabbitMQ", err)
	}
	ch, err := conn.Channel()
	if err != nil {
		t.Fatal(err)
	}
	b := broker{url: url, exchange: testenv.Name("outbox-test")}
	if err := outbox.DeclareExchange(ch, b.exchange); err != nil {
		t.Fatal(err)
	}
	q, err := ch.QueueDeclare("", false, true, true, false, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := ch.QueueBind(q.Name, "#", b.exchange, false, nil); err != nil {
		t.Fatal(err)
	}
	if b.deliveries, err = ch.Consume(q.Name, "", true, true, false, false, nil); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = ch.ExchangeDelete(b.exchange, false, false)
		_ = conn.Close()
	})
	return b
}

func startRelay(t *testing.T, db *sql.DB, url, exchange string, tracer *zipkin.Tracer) *outbox.Relay {
	t.Helper()
	return runRelay(t, outbox.Config{
		DB: db, URL: url, Exchange: exchange, BatchSize: 50, PollInterval: 20 * time.Millisecond,
		Backoff: outbox.Backoff{Min: 20 * time.Millisecond, Max: 200 * time.Millisecond},
		Logger:  log.NewNopLogger(), Metrics: observe.NewMetrics("test"), Tracer: tracer,
	})
}

func runRelay(t *testing.T, cfg outbox.Config) *outbox.Relay {
	t.Helper()
	r, err := outbox.NewRelay(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- r.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	})
	return r
}

// enqueue writes n events for each of the aggregates, in rounds, each event in its own
// transaction; event k of aggregate a has data {"a": a, "k": k}.
func enqueue(t *testing.T, ctx context.Context, db *sql.DB, aggregates []string, from, to int) []outbox.Event {
	t.Helper()
	var events []outbox.Event
	for k := from; k < to; k++ {
		for _, a := range aggregates {
			e, err := outbox.NewEvent("thing.happened", a, map[string]any{"a": a, "k": k}, time.Now())
			if err != nil {
				t.Fatal(err)
			}
			if err := postgres.InTx(ctx, db, nil, func(tx *sql.Tx) error { return outbox.Enqueue(ctx, tx, e) }); err != nil {
				t.Fatal(err)
			}
			events = append(events, e)
		}
	}
	return events
}

// receive reads deliveries until every event in want arrived, failing on a timeout or
// an aggregate's events out of order. Redeliveries of an event are allowed.
func receive(t *testing.T, deliveries <-chan amqp.Delivery, want []outbox.Event) map[string]amqp.Delivery {
	t.Helper()
	got := map[string]amqp.Delivery{}
	last := map[string]int{}
	timeout := time.After(30 * time.Second)
	for len(got) < len(want) {
		select {
		case d := <-deliveries:
			var e outbox.Event
			if err := json.Unmarshal(d.Body, &e); err != nil {
				t.Fatalf("body %q: %v", d.Body, err)
			}
			var data struct{ K int }
			if err := json.Unmarshal(e.Data, &data); err != nil {
				t.Fatal(err)
			}
			if prev, ok := last[e.AggregateID]; ok && data.K < prev {
				t.Fatalf("aggregate %s: event %d after event %d", e.AggregateID, data.K, prev)
			}
			last[e.AggregateID] = data.K
			got[e.ID] = d
		case <-timeout:
			t.Fatalf("received %d of %d events", len(got), len(want))
		}
	}
	return got
}

func unsent(t *testing.T, db *sql.DB) int {
	t.Helper()
	var n int
	if err := db.QueryRow(`SELECT count(*) FROM outbox WHERE sent_at IS NULL`).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

func TestRelayPublishesInOrderWithSeveralRelays(t *testing.T) {
	b := newBroker(t)
	db := testenv.Postgres(t, outbox.Migrations())
	ctx := context.Background()

	tracer, err := zipkin.NewTracer(reporter.NewNoopReporter())
	if err != nil {
		t.Fatal(err)
	}
	// Each event is enqueued under a span, as a request handler would.
	span := tracer.StartSpan("checkout")
	spanCtx := zipkin.NewContext(ctx, span)
	aggregates := []string{"a", "b", "c", "d", "e"}
	events := enqueue(t, spanCtx, db, aggregates, 0, 40)
	span.Finish()

	for i := 0; i < 3; i++ {
		startRelay(t, db, b.url, b.exchange, tracer)
	}
	got := receive(t, b.deliveries, events)

	byID := map[string]outbox.Event{}
	for _, e := range events {
		byID[e.ID] = e
	}
	for id, d := range got {
		e := byID[id]
		if d.MessageId != e.ID || d.Type != e.Type || d.RoutingKey != e.Type || d.DeliveryMode != amqp.Persistent ||
			d.ContentType != "application/json" || d.Headers[outbox.HeaderAggregateID] != e.AggregateID {
			t.Fatalf("message %+v does not match event %+v", d, e)
		}
		sc, ok := outbox.SpanContextFrom(d.Headers)
		if !ok || sc.TraceID != span.Context().TraceID || sc.ParentID == nil {
			t.Fatalf("message of event %s carries trace %+v (ok %v), want a child span of trace %s", id, sc, ok, span.Context().TraceID)
		}
	}
	testenv.Eventually(t, 20*time.Second, "every event marked sent", func() bool { return unsent(t, db) == 0 })
}

func TestRelaySurvivesBrokerOutage(t *testing.T) {
	b := newBroker(t)
	proxy, url := outboxtest.ProxyAMQP(t, b.url)
	db := testenv.Postgres(t, outbox.Migrations())
	ctx := context.Background()
	aggregates := []string{"x", "y"}

	r := startRelay(t, db, url, b.exchange, nil)
	events := enqueue(t, ctx, db, aggregates, 0, 50)
	testenv.Eventually(t, 20*time.Second, "the relay connected", func() bool { return r.Check(ctx) == nil })

	proxy.Down()
	testenv.Eventually(t, 20*time.Second, "the relay reporting the outage", func() bool { return r.Check(ctx) != nil })
	events = append(events, enqueue(t, ctx, db, aggregates, 50, 100)...)
	time.Sleep(300 * time.Millisecond) // several failed reconnects
	proxy.Up()

	receive(t, b.deliveries, events)
	testenv.Eventually(t, 20*time.Second, "every event sent and the relay reconnected", func() bool { return unsent(t, db) == 0 && r.Check(ctx) == nil })
}

func TestRelayConfigIsChecked(t *testing.T) {
	m := observe.NewMetrics("test")
	for _, cfg := range []outbox.Config{
		{URL: "amqp://x", Metrics: m},
		{DB: &sql.DB{}, Metrics: m},
		{DB: &sql.DB{}, URL: "amqp://x"},
	} {
		if _, err := outbox.NewRelay(cfg); err == nil {
			t.Errorf("NewRelay(%+v) accepted an incomplete config", cfg)
		}
	}
}

func TestBackoff(t *testing.T) {
	b := outbox.Backoff{Min: 100 * time.Millisecond, Max: time.Second}
	for attempt, max := range []time.Duration{100, 200, 400, 800, 1000, 1000} {
		max *= time.Millisecond
		for i := 0; i < 20; i++ {
			if d := b.Delay(attempt); d < max/2 || d > max {
				t.Fatalf("Delay(%d) = %v, want %v..%v", attempt, d, max/2, max)
			}
		}
	}
}

// Concurrent enqueues of one aggregate keep their order when each transaction locks
// the aggregate first, as Enqueue's documentation asks.
func TestEnqueueOrderFollowsTheAggregateLock(t *testing.T) {
	b := newBroker(t)
	db := testenv.Postgres(t, outbox.WithMigrations(fstest.MapFS{
		"0001_counter.sql": {Data: []byte("CREATE TABLE counters (id text PRIMARY KEY, n int NOT NULL); INSERT INTO counters VALUES ('c', 0);")},
	}))
	ctx := context.Background()
	startRelay(t, db, b.url, b.exchange, nil)

	const writers, each = 4, 25
	var (
		wg   sync.WaitGroup
		mu   sync.Mutex
		want []outbox.Event
	)
	for w := 0; w < writers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < each; i++ {
				err := postgres.InTx(ctx, db, nil, func(tx *sql.Tx) error {
					var k int
					if err := tx.QueryRowContext(ctx, `UPDATE counters SET n = n + 1 WHERE id = 'c' RETURNING n`).Scan(&k); err != nil {
						return err
					}
					e, err := outbox.NewEvent("counter.incremented", "c", map[string]int{"k": k}, time.Now())
					if err != nil {
						return err
					}
					mu.Lock()
					want = append(want, e)
					mu.Unlock()
					return outbox.Enqueue(ctx, tx, e)
				})
				if err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	if t.Failed() {
		return
	}
	got := receive(t, b.deliveries, want)
	if len(got) != writers*each {
		t.Fatalf("got %d events, want %d", len(got), writers*each)
	}
}

func TestRelayPurgesOldSentEvents(t *testing.T) {
	b := newBroker(t)
	db := testenv.Postgres(t, outbox.Migrations())
	ctx := context.Background()
	events := enqueue(t, ctx, db, []string{"old", "recent"}, 0, 1)
	if _, err := db.Exec(`UPDATE outbox SET sent_at = now() - interval '2 hours' WHERE aggregate_id = 'old'`); err != nil {
		t.Fatal(err)
	}
	runRelay(t, outbox.Config{
		DB: db, URL: b.url, Exchange: b.exchange, Retention: time.Hour, PollInterval: 20 * time.Millisecond,
		Logger: log.NewNopLogger(), Metrics: observe.NewMetrics("test"),
	})
	receive(t, b.deliveries, events[1:])
	testenv.Eventually(t, 20*time.Second, "only the recent event left, sent", func() bool {
		var ids []string
		rows, err := db.Query(`SELECT aggregate_id FROM outbox`)
		if err != nil {
			t.Fatal(err)
		}
		defer rows.Close()
		for rows.Next() {
			var id string
			if err := rows.Scan(&id); err != nil {
				t.Fatal(err)
			}
			ids = append(ids, id)
		}
		return len(ids) == 1 && ids[0] == "recent" && unsent(t, db) == 0
	})
}

// TestUnroutableEventsWaitForAQueue: events published before any queue is bound (the
// consumer not deployed yet) are not lost: they stay unsent until a queue appears.
func TestUnroutableEventsWaitForAQueue(t *testing.T) {
	url := testenv.AMQPURL(t)
	conn, err := amqp.Dial(url)
	if err != nil {
		testenv.Missing(t, "RabbitMQ", err)
	}
	defer conn.Close()
	ch, err := conn.Channel()
	if err != nil {
		t.Fatal(err)
	}
	exchange := testenv.Name("outbox-unroutable")
	if err := outbox.DeclareExchange(ch, exchange); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = ch.ExchangeDelete(exchange, false, false) })

	db := testenv.Postgres(t, outbox.Migrations())
	ctx := context.Background()
	events := enqueue(t, ctx, db, []string{"a", "b"}, 0, 5)
	startRelay(t, db, url, exchange, nil)
	time.Sleep(500 * time.Millisecond) // many polls: every one finds no queue
	if n := unsent(t, db); n != len(events) {
		t.Fatalf("%d of %d events unsent with no queue bound; want all", n, len(events))
	}

	q, err := ch.QueueDeclare("", false, true, true, false, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := ch.QueueBind(q.Name, "#", exchange, false, nil); err != nil {
		t.Fatal(err)
	}
	deliveries, err := ch.Consume(q.Name, "", true, true, false, false, nil)
	if err != nil {
		t.Fatal(err)
	}
	receive(t, deliveries, events)
	testenv.Eventually(t, 20*time.Second, "every event marked sent", func() bool { return unsent(t, db) == 0 })
}
