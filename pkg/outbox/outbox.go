// Package outbox is kitshop's transactional outbox. A service writes an event with
// Enqueue in the same database transaction as the change the event announces, so the
// event exists if and only if the change does; a Relay then publishes the stored events
// to the RabbitMQ topic exchange "kitshop.events", at least once, in order per
// aggregate, and marks each sent only after the broker confirmed it. Consumers
// deduplicate by event ID.
package outbox

import (
	"context"
	"crypto/rand"
	"database/sql"
	"embed"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"regexp"
	"time"

	"github.com/openzipkin/zipkin-go"
	"github.com/openzipkin/zipkin-go/propagation/b3"

	"github.com/kitshop/kitshop/pkg/postgres"
)

// DefaultExchange is the durable topic exchange every kitshop event is published to.
const DefaultExchange = "kitshop.events"

// Event is the envelope of every kitshop event, and the JSON body of its message. Type
// is also the routing key ("order.confirmed"); AggregateID names the entity the event
// is about (an order ID) and orders its events.
type Event struct {
	ID          string          `json:"id"`
	Type        string          `json:"type"`
	OccurredAt  time.Time       `json:"occurred_at"`
	AggregateID string          `json:"aggregate_id"`
	Data        json.RawMessage `json:"data"`
}

// Errors of Enqueue and NewEvent.
var (
	ErrInvalidEvent = errors.New("outbox: invalid event")
)

// typePattern keeps types usable as topic routing keys: dot-separated words.
var typePattern = regexp.MustCompile(`^[a-z0-9_]+(\.[a-z0-9_]+)*$`)

// maxField bounds IDs and types, which travel as AMQP short strings.
const maxField = 200

// Validate reports why e cannot be published, if it cannot.
func (e Event) Validate() error {
	switch {
	case e.ID == "" || len(e.ID) > maxField:
		return fmt.Errorf("%w: id must be 1-%d bytes", ErrInvalidEvent, maxField)
	case len(e.Type) > maxField || !typePattern.MatchString(e.Type):
		return fmt.Errorf("%w: type %q is not a routing key such as order.confirmed", ErrInvalidEvent, e.Type)
	case e.AggregateID == "" || len(e.AggregateID) > maxField:
		return fmt.Errorf("%w: aggregate_id must be 1-%d bytes", ErrInvalidEvent, maxField)
	case e.OccurredAt.IsZero():
		return fmt.Errorf("%w: occurred_at is missing", ErrInvalidEvent)
	case !json.Valid(e.Data):
		return fmt.Errorf("%w: data is not JSON", ErrInvalidEvent)
	}
	return nil
}

// NewEvent builds an event of type typ about aggregateID with a fresh ID, occurring
// at now, whose data is data encoded as JSON.
func NewEvent(typ, aggregateID string, data any, now time.Time) (Event, error) {
	raw, err := json.Marshal(data)
	if err != nil {
		return Event{}, fmt.Errorf("%w: data: %v", ErrInvalidEvent, err)
	}
	e := Event{ID: NewID(), Type: typ, OccurredAt: now.UTC(), AggregateID: aggregateID, Data: raw}
	return e, e.Validate()
}

// NewID returns a random (version 4) UUID.
func NewID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	h := hex.EncodeToString(b[:])
	return h[0:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:32]
}

// Enqueue writes e to the outbox in tx, the caller's transaction. The trace context of
// ctx is stored with it, so the consumer's span joins the trace that caused the event.
//
// Events of one aggregate are published in the order they were enqueued. When several
// transactions may write events for the same aggregate at once, call Enqueue after the
// statement that locks the aggregate's row, so the lock orders them.
func Enqueue(ctx context.Context, tx *sql.Tx, e Event) error {
	if err := e.Validate(); err != nil {
		return err
	}
	body, err := json.Marshal(e)
	if err != nil {
		return fmt.Errorf("%w: %v", ErrInvalidEvent, err)
	}
	trace := []byte("{}")
	if span := zipkin.SpanFromContext(ctx); span != nil {
		m := b3.Map{}
		if m.Inject()(span.Context()) == nil {
			trace, _ = json.Marshal(m)
		}
	}
	_, err = tx.ExecContext(ctx, `INSERT INTO outbox (id, type, aggregate_id, occurred_at, body, trace)
		VALUES ($1, $2, $3, $4, $5, $6)`, e.ID, e.Type, e.AggregateID, e.OccurredAt, body, string(trace)) // jsonb takes text; []byte would go as binary
	if err != nil {
		return fmt.Errorf("outbox: enqueue %s: %w", e.Type, err)
	}
	return nil
}

//go:embed migrations/*.sql
var migrations embed.FS

// Migrations is the outbox table's schema, for postgres.Migrate alongside a service's
// own migrations; its file names start with "outbox_" so they never collide with them.
func Migrations() fs.FS {
	return postgres.Dir(migrations, "migrations")
}
